"""The commands shown in README.md and docs/*.md, read from there and run.

A ``console`` block shows commands after a ``$ `` prompt (``# `` for root in
the operators' guide), continued over lines ending in ``\\``, each followed
by what it prints. :class:`Transcript` runs such a command as the documents
show it, in bash on a pseudo-terminal, with only the documents' placeholders
(``CODE``, ``ITEM``, the example server's address, …) replaced by real values,
and checks that what it printed has the documented shape: every documented
output line begins the way a line of the real output does, up to its first
value that changes from run to run (an identifier, a number, a path, a date).
Every run is recorded, so a test can require that no documented command went
unrun.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ("README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
_PROMPTS = ("$ ", "# ")
_COMMENT = re.compile(r"\s{2,}# .*$")
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_CARRIAGE = re.compile(r"\r(?!\n)")
_HEREDOC = re.compile(r"<<'?(\w+)'?")
_VOLATILE = re.compile(r"[0-9/…@━┏┃┡│└╇┳]|^-|age1")
TIMEOUT = 60


@dataclasses.dataclass(frozen=True)
class DocCommand:
    """One command as a document shows it."""

    document: str
    line: int
    text: str
    output: tuple[str, ...]
    root: bool

    def __str__(self) -> str:
        return f"{self.document}:{self.line}: {self.text}"


def parse(document: str, text: str) -> list[DocCommand]:
    """The commands of the ``console`` blocks of one Markdown document."""
    commands: list[DocCommand] = []
    lines = text.splitlines()
    index = 0
    in_block = False
    current: dict[str, object] | None = None

    def close() -> None:
        nonlocal current
        if current is not None:
            output = tuple(str(x) for x in current["output"])  # type: ignore[attr-defined]
            commands.append(
                DocCommand(
                    document=document,
                    line=int(str(current["line"])),
                    text=str(current["text"]),
                    output=output,
                    root=bool(current["root"]),
                )
            )
        current = None

    while index < len(lines):
        line = lines[index]
        index += 1
        if line.startswith("```"):
            if in_block:
                close()
            in_block = line.strip() == "```console" and not in_block
            continue
        if not in_block:
            continue
        if line.startswith(_PROMPTS):
            close()
            start = index
            text = line[2:]
            while text.endswith("\\") and index < len(lines):
                text = text[:-1].rstrip() + " " + lines[index].strip()
                index += 1
            text = _COMMENT.sub("", text).strip()
            heredoc = _HEREDOC.search(text)
            if heredoc:
                body = []
                while index < len(lines) and lines[index] != heredoc[1]:
                    body.append(lines[index])
                    index += 1
                index += 1
                text = text + "\n" + "\n".join(body) + "\n" + heredoc[1]
            current = {"line": start, "text": text, "output": [], "root": line[0] == "#"}
        elif current is not None:
            current["output"].append(_COMMENT.sub("", line))  # type: ignore[attr-defined]
    close()
    return commands


def documented() -> list[DocCommand]:
    """Every command in README.md and the guides, in order."""
    found: list[DocCommand] = []
    for document in DOCUMENTS:
        found += parse(document, (ROOT / document).read_text(encoding="utf-8"))
    return found


def shape(line: str) -> str:
    """The fixed beginning of an output line: its words up to the first changing value."""
    words = []
    for word in line.split():
        if _VOLATILE.search(word):
            break
        words.append(word)
    return " ".join(words)


def _squeeze(text: str) -> str:
    return " ".join(_ESCAPE.sub("", text).replace("\r", "").split())


@dataclasses.dataclass
class Result:
    command: str
    status: int
    output: str


class Transcript:
    """Runs documented commands and records which ran."""

    def __init__(self) -> None:
        self.commands = documented()
        self.ran: set[tuple[str, int]] = set()

    def find(self, document: str, start: str) -> DocCommand:
        """The command of ``document`` that begins with ``start``.

        A command shown more than once is taken in order: the first that has
        not run yet.
        """
        found = [c for c in self.commands if c.document == document and c.text.startswith(start)]
        exact = [c for c in found if c.text == start]
        found = exact or found
        assert len({c.text for c in found}) == 1, (
            f"{document}: {len(found)} commands begin with {start!r}"
        )
        fresh = [c for c in found if (c.document, c.line) not in self.ran]
        return (fresh or found)[0]

    def run(
        self,
        document: str,
        start: str,
        *,
        env: Mapping[str, str],
        cwd: Path,
        replace: Mapping[str, str] | None = None,
        answers: Sequence[tuple[str, str]] = (),
        status: int = 0,
    ) -> Result:
        """Run the command of ``document`` beginning with ``start``, as documented.

        ``replace`` maps placeholders of the document to real values; each
        must occur in the command. ``answers`` are (question, reply) pairs
        typed on the terminal in order. The exit status must be ``status``
        and, when it is 0, the output must have the documented shape.
        """
        command = self.find(document, start)
        text = command.text
        for placeholder, value in (replace or {}).items():
            assert placeholder in text, f"{command}: no {placeholder!r} to replace"
            text = text.replace(placeholder, value)
        result = run_in_terminal(text, env=env, cwd=cwd, answers=answers)
        assert "Traceback" not in result.output, f"{command}\n{result.output}"
        assert result.status == status, f"{command}\nexit status {result.status}\n{result.output}"
        if status == 0:
            check_shape(command, result.output)
        self.ran.add((command.document, command.line))
        return result

    def export(
        self,
        document: str,
        start: str,
        env: dict[str, str],
        *,
        replace: Mapping[str, str] | None = None,
    ) -> None:
        """An ``export NAME=VALUE`` line: set it in ``env`` for the commands after it."""
        command = self.find(document, start)
        text = command.text
        for placeholder, value in (replace or {}).items():
            assert placeholder in text, f"{command}: no {placeholder!r} to replace"
            text = text.replace(placeholder, value)
        assert text.startswith("export "), command
        assert "=" in text, command
        name, value = text.removeprefix("export ").split("=", 1)
        env[name] = value
        self.ran.add((command.document, command.line))

    def start(
        self, document: str, start: str, *, env: Mapping[str, str], cwd: Path
    ) -> pexpect.spawn:
        """Start a command that keeps running (a server), as documented; the caller stops it."""
        command = self.find(document, start)
        self.ran.add((command.document, command.line))
        return pexpect.spawn(
            "/bin/bash",
            ["-c", f"exec {command.text}"],
            env=dict(env),
            cwd=str(cwd),
            encoding="utf-8",
            codec_errors="replace",
            timeout=TIMEOUT,
        )

    def unrun(self, documents: Iterable[str] = DOCUMENTS) -> list[str]:
        wanted = set(documents)
        return [
            str(c)
            for c in self.commands
            if c.document in wanted and (c.document, c.line) not in self.ran
        ]


def _lines(screen: str) -> str:
    """What a terminal showed, as lines: colours and cursor moves dropped, a line redrawn from
    its start (a lone carriage return, as progress bars do) taken as a new line."""
    return _CARRIAGE.sub("\n", _ESCAPE.sub("", screen)).replace("\r", "")


def check_shape(command: DocCommand, output: str) -> None:
    """Each documented output line begins like some line the command printed."""
    printed = [_squeeze(line) for line in _lines(output).splitlines()]
    for expected in command.output:
        fixed = shape(expected)
        if len(re.sub(r"[^A-Za-z]", "", fixed)) < 3:
            continue
        assert any(line.startswith(fixed) for line in printed), (
            f"{command}\ndocumented: {expected!r}\nprinted:\n{output}"
        )


def run_in_terminal(
    text: str, *, env: Mapping[str, str], cwd: Path, answers: Sequence[tuple[str, str]] = ()
) -> Result:
    """``bash -c TEXT`` on a pseudo-terminal of 200 columns; the status and everything shown."""
    log = io.StringIO()
    child = pexpect.spawn(
        "/bin/bash",
        ["-o", "pipefail", "-c", text],
        env=dict(env),
        cwd=str(cwd),
        encoding="utf-8",
        codec_errors="replace",
        dimensions=(50, 200),
        timeout=TIMEOUT,
    )
    child.logfile_read = log
    try:
        for question, reply in answers:
            child.expect_exact(question)
            child.sendline(reply)
        child.expect(pexpect.EOF)
        child.wait()
    finally:
        if child.isalive():
            child.close(force=True)
    child.close()
    status = child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)
    return Result(command=text, status=status, output=_lines(log.getvalue()))


def environment(**extra: str) -> dict[str, str]:
    """This environment without evault settings, proxies or colour forcing, plus ``extra``."""
    drop = ("EVAULT_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FORCE_COLOR")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    env |= {"TERM": "xterm", "NO_COLOR": "1", "LC_ALL": "C.UTF-8", "LESS": "-FX", "COLUMNS": "200"}
    env |= extra
    return env
