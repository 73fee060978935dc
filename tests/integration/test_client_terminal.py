"""What a person sees in a terminal: passphrase prompts, questions and the upload bar.

Each ``evault`` runs on a pseudo-terminal (pexpect) that is its controlling
terminal, with no ``EVAULT_PASSPHRASE``, so every passphrase is asked for on
``/dev/tty`` and typed like a person would; ``COLUMNS`` and ``TERM`` are set
so that rich draws the progress bar as it does for a person. The networked
commands talk to a real ``evault-server run`` on a loopback port the system
picks (it prints the port it got, so this process never opens a socket).
Nothing a person sees may be a traceback.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest
import wcwidth

from .conftest import EVAULT, EVAULT_SERVER, TIMEOUT, payload

pytestmark = pytest.mark.integration

STRONG = "correct horse battery staple orbit"
WEAK = "password1234"
COLUMNS = 100
ROWS = 30
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _environment(**extra: str) -> dict[str, str]:
    """This environment without any evault or colour settings, plus ``extra``."""
    dropped = ("EVAULT_", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(extra)
    return env


def _terminal_environment(home: Path) -> dict[str, str]:
    return _environment(
        EVAULT_HOME=str(home), TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS)
    )


def plain(screen: str) -> str:
    """The transcript without colours and cursor movements."""
    return _ESCAPE.sub("", screen).replace("\r", "")


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if not p.is_dir())


@dataclasses.dataclass
class Session:
    """One ``evault`` on a pseudo-terminal, and everything it wrote there."""

    child: pexpect.spawn
    log: io.StringIO

    def answer(self, prompt: str, reply: str) -> None:
        """Wait for ``prompt`` on the terminal and type ``reply`` and Enter."""
        self.child.expect_exact(prompt)
        self.child.sendline(reply)

    def finish(self) -> tuple[int, str]:
        """Wait for the program to end; its exit status and what the terminal showed."""
        self.child.expect(pexpect.EOF)
        self.child.close()
        screen = self.log.getvalue()
        assert "Traceback" not in screen, screen
        status = self.child.exitstatus
        assert status is not None, f"killed by signal {self.child.signalstatus}: {screen}"
        return status, screen

    def kill(self) -> None:
        if self.child.isalive():
            self.child.close(force=True)


def start(*args: str, home: Path) -> Session:
    """Start ``evault ARGS`` on a new terminal, with ``home`` as its home directory."""
    child = pexpect.spawn(
        str(EVAULT),
        list(args),
        env=_terminal_environment(home),
        encoding="utf-8",
        codec_errors="replace",
        dimensions=(ROWS, COLUMNS),
        timeout=TIMEOUT,
    )
    log = io.StringIO()
    child.logfile_read = log
    return Session(child, log)


Spawn = Callable[..., Session]


@pytest.fixture
def terminal() -> Iterator[Spawn]:
    """:func:`start`, with every program still running at the end of the test killed."""
    sessions: list[Session] = []

    def spawn(*args: str, home: Path) -> Session:
        sessions.append(start(*args, home=home))
        return sessions[-1]

    yield spawn
    for session in sessions:
        session.kill()


def run_scripted(*args: str, home: Path) -> subprocess.CompletedProcess[bytes]:
    """``evault ARGS`` without a terminal, the passphrase in the environment (setup only)."""
    result = subprocess.run(
        [str(EVAULT), *args],
        env=_environment(EVAULT_HOME=str(home), EVAULT_PASSPHRASE=STRONG),
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
        start_new_session=True,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"Traceback" not in result.stderr
    return result


def item_ids(home: Path) -> set[str]:
    listed = json.loads(run_scripted("--json", "ls", home=home).stdout)
    return {item["id"] for item in listed["items"]}


# The passphrase of a new keystore.


def test_init_refuses_a_weak_passphrase_with_a_hint(terminal: Spawn, tmp_path: Path) -> None:
    home = tmp_path / "home"
    session = terminal("init", "--name", "Alice", "--insecure-fast-kdf", home=home)

    session.answer("New passphrase: ", WEAK)
    status, screen = session.finish()

    text = plain(screen)
    assert status == 1, text
    assert "evault: error: passphrase too easy to guess" in text
    assert "evault: hint: " in text
    assert WEAK not in text  # not echoed
    assert "Repeat the passphrase" not in text
    assert not (home / "keystore").exists()


def test_init_refuses_a_mismatched_repeat_and_leaves_no_keystore(
    terminal: Spawn, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    session = terminal("init", "--name", "Alice", "--insecure-fast-kdf", home=home)

    session.answer("New passphrase: ", STRONG)
    session.answer("Repeat the passphrase: ", STRONG + " typo")
    status, screen = session.finish()

    text = plain(screen)
    assert status == 1, text
    assert "evault: error: the two passphrases did not match; nothing was created" in text
    assert files_under(home) == []


def test_init_with_a_strong_passphrase_typed_twice(terminal: Spawn, tmp_path: Path) -> None:
    home = tmp_path / "home"
    session = terminal("init", "--name", "Alice", "--insecure-fast-kdf", home=home)

    session.answer("New passphrase: ", STRONG)
    session.answer("Repeat the passphrase: ", STRONG)
    status, screen = session.finish()

    text = plain(screen)
    assert status == 0, text
    assert "warning: weak key derivation, for tests only" in text
    assert f"Created your keystore: {home / 'keystore'}" in text
    assert "Your fingerprint:" in text
    assert STRONG not in text
    assert (home / "keystore").is_file()


# Against a real server.


@dataclasses.dataclass(frozen=True)
class Server:
    url: str
    env: dict[str, str]

    def invite(self) -> str:
        result = subprocess.run(
            [str(EVAULT_SERVER), "invite", "create", "--role", "reporter"],
            env=self.env,
            capture_output=True,
            timeout=TIMEOUT,
            check=True,
        )
        return result.stdout.decode().split()[-1]


def _serving_url(proc: subprocess.Popen[bytes]) -> str:
    """The URL ``evault-server run`` announces once it listens."""
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + TIMEOUT
    while b"\n" not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            pytest.fail(f"evault-server run did not start: {seen!r}")
        ready, _, _ = select.select([proc.stdout], [], [], min(remaining, 0.1))
        if ready:
            seen += os.read(proc.stdout.fileno(), 4096)
    found = re.search(rb"serving on (http://127\.0\.0\.1:\d+)", seen)
    assert found, seen
    return found.group(1).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``evault-server run`` on a free loopback port with a fresh database."""
    root = tmp_path_factory.mktemp("server")
    env = _environment(EVAULT_DATA_DIR=str(root / "data"), EVAULT_LOG_LEVEL="WARNING")
    subprocess.run(
        [str(EVAULT_SERVER), "init"], env=env, capture_output=True, timeout=TIMEOUT, check=True
    )
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(EVAULT_SERVER), "run", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    try:
        yield Server(_serving_url(proc), env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    assert "Traceback" not in log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def reporter(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The home of a reporter registered on ``server``, by typing the passphrase."""
    home = tmp_path_factory.mktemp("reporter") / "home"
    run_scripted("init", "--name", "Alice", "--insecure-fast-kdf", home=home)
    session = start("--server", server.url, "register", "--invite", server.invite(), home=home)
    try:
        session.answer("Passphrase: ", STRONG)
        status, screen = session.finish()
    finally:
        session.kill()
    text = plain(screen)
    assert status == 0, text
    assert "Trusting the server's log key on first use." in text
    assert "Registered as reporter" in text
    return home


def test_add_asks_for_the_passphrase_and_draws_a_progress_bar(
    terminal: Spawn, reporter: Path, tmp_path: Path
) -> None:
    # Over 8 MiB, so the bar gets more than one upload piece and can show a rate.
    evidence = tmp_path / "interview-notes.bin"
    evidence.write_bytes(payload(20 * 1024 * 1024))
    session = terminal("add", str(evidence), home=reporter)

    session.answer("Passphrase: ", STRONG)
    status, screen = session.finish()

    text = plain(screen)
    assert status == 0, text
    assert STRONG not in text
    bar = re.search(
        r"interview-notes\.bin ━+ [\d.]+/20\.0 MiB [\d.]+ [kMG]B/s \d+:\d\d:\d\d\n", text
    )
    assert bar, text
    assert "20.0/20.0 MiB" in text
    stored = re.search(r"interview-notes\.bin: stored as item ([0-9a-f]{32}) \(20\.0 MiB\)", text)
    assert stored, text
    assert "receipt verified" in text
    assert stored.group(1) in item_ids(reporter)
    # The bar was drawn for a terminal: colours, and the line redrawn in place.
    assert "\x1b[" in screen
    assert "\r" in screen


def test_rm_asks_before_deleting(terminal: Spawn, reporter: Path, tmp_path: Path) -> None:
    evidence = tmp_path / "photo.jpg"
    evidence.write_bytes(payload(1000, seed=1))
    added = json.loads(run_scripted("--json", "add", str(evidence), home=reporter).stdout)
    item = added["added"][0]["item"]

    # The item is looked up first (it may be named by its file's name), then confirmed.
    declined = terminal("rm", item, home=reporter)
    declined.answer("Passphrase: ", STRONG)
    declined.answer(f"Delete item {item}? [y/N]: ", "n")
    status, screen = declined.finish()

    text = plain(screen)
    assert status == 1, text
    assert "evault: error: nothing was changed" in text
    assert item in item_ids(reporter)

    accepted = terminal("rm", item, home=reporter)
    accepted.answer("Passphrase: ", STRONG)
    accepted.answer(f"Delete item {item}? [y/N]: ", "y")
    status, screen = accepted.finish()

    text = plain(screen)
    assert status == 0, text
    assert re.search(rf"Deleted {item}; logged at entry \d+", text), text
    assert item not in item_ids(reporter)


def test_panic_declined_leaves_the_keystore(terminal: Spawn, tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_scripted("init", "--name", "Alice", "--insecure-fast-kdf", home=home)
    before = (home / "keystore").read_bytes()

    session = terminal("panic", home=home)
    session.answer(f"Destroy the keystore and all local state in {home}? [y/N]: ", "n")
    status, screen = session.finish()

    text = plain(screen)
    assert status == 1, text
    assert "evault: error: nothing was changed" in text
    assert "Destroyed" not in text
    assert (home / "keystore").read_bytes() == before


def test_arming_and_adding_say_what_becomes_public_and_ask(
    terminal: Spawn, reporter: Path, tmp_path: Path
) -> None:
    """Before arming, and for a file added to an armed vault: what goes public, then questions."""
    note = "from the ministry, source K"
    memo = tmp_path / "source-K.txt"
    memo.write_bytes(b"the memo")
    run_scripted("add", "--note", note, str(memo), home=reporter)
    count = len(item_ids(reporter))

    session = terminal("switch", "set", "--every", "1d", home=reporter)
    session.answer("Passphrase: ", STRONG)
    session.answer("Publish the file names? [Y/n]: ", "n")
    session.answer("Publish the capture times? [Y/n]: ", "")
    session.answer("Publish the notes? [y/N]: ", "")
    if count > 1:
        session.answer("Choose file by file instead? [y/N]: ", "")
    status, screen = session.finish()
    text = " ".join(plain(screen).split())
    assert status == 0, text
    assert f"the contents of these {count} file(s), their sizes, types and hashes" in text
    assert "your name as on your card (Alice)" in text
    assert "Notes stay private unless you say so." in text
    assert "source-K.txt (8 bytes, captured" in text
    assert (
        "source-K.txt: the release page shows capture time; private: the file name, the note"
        in text
    )
    assert "Armed: " in text

    later = tmp_path / "call.wav"
    later.write_bytes(b"a call")
    session = terminal("add", "--note", "K again", str(later), home=reporter)
    # Asked before anything is unlocked or sent.
    session.answer("call.wav: publish its name? [Y/n]: ", "")
    session.answer("call.wav: publish its capture time (", "n")
    session.answer("call.wav: publish its note? [y/N]: ", "y")
    session.answer("Passphrase: ", STRONG)
    status, screen = session.finish()
    text = " ".join(plain(screen).split())
    assert status == 0, text
    assert "call.wav joins the release set: when released, anyone can decrypt it" in text
    assert "call.wav: the release page shows name, note; private: the capture time" in text
    assert "in the release set" in text


def test_ls_fits_80_columns_with_wide_and_accented_names(reporter: Path, tmp_path: Path) -> None:
    names = [
        "ledger-2026-03-quarterly-final-signed.pdf",
        "報告書-二〇二六年-第三四半期-最終版-会計監査.pdf",
        "Cafe\u0301 Ame\u0301lie - entretien enregistre\u0301 au te\u0301le\u0301phone.m4a",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"evidence\n")
    run_scripted("add", *(str(tmp_path / name) for name in names), home=reporter)
    child = pexpect.spawn(
        str(EVAULT),
        ["ls"],
        env=_terminal_environment(reporter) | {"COLUMNS": "80"},
        encoding="utf-8",
        dimensions=(ROWS, 80),
        timeout=TIMEOUT,
    )
    log = io.StringIO()
    child.logfile_read = log
    session = Session(child, log)
    try:
        session.answer("Passphrase: ", STRONG)
        status, screen = session.finish()
    finally:
        session.kill()
    text = plain(screen)
    assert status == 0, text
    table = text[text.index("item ") :].splitlines()
    assert all(wcwidth.width(line) <= 80 for line in table), text
    assert "led…" not in text
    assert "ledger-20" in text
    assert "signed.pdf" in text
    assert "会計監査.pdf" in text or "監査.pdf" in text
    assert "phone.m4a" in text
    assert "every signature checked" in text
