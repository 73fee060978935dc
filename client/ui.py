"""What the person at the keyboard sees: errors, tables, progress, questions.

Every command goes through :func:`handle_errors`, so a :class:`VaultError`
prints as ``evault: error: …`` plus ``evault: hint: …`` lines and exit status
1, and anything unexpected as one line suggesting ``--debug``. Text that
came from elsewhere (file names from manifests, names from cards) goes
through :func:`shown` first: a name must not be able to move the cursor,
recolour the terminal or fake a line of output.

With ``--json`` a command prints one JSON document on stdout and nothing
else there; messages and progress go to stderr.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from vault.errors import VaultError
from vault.manifest import SCRIPT_JOINERS, joiner_kept

if TYPE_CHECKING:
    from client.waits import Wait

__all__ = [
    "Bar",
    "Bars",
    "FileBar",
    "confirm",
    "err",
    "handle_errors",
    "json_mode",
    "out",
    "print_json",
    "printable",
    "report_failure",
    "shown",
    "tell_wait",
]

F = TypeVar("F", bound=Callable[..., Any])

_SECRET_MARK = "AGE-SECRET-KEY-"  # noqa: S105 — a prefix to look for, not a secret


def out() -> Console:
    """The console for results (stdout); wide when it is not a terminal, for pipes and logs."""
    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, soft_wrap=True, width=width)


def err() -> Console:
    """The console for messages and progress (stderr)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def json_mode() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("json_output"))


def print_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def shown(text: object) -> str:
    """Untrusted text made safe for a terminal and for rich markup."""
    return escape(_plain(str(text)))


def printable(text: object) -> str:
    """Untrusted text made safe for a terminal, without markup escapes: for rich ``Text``."""
    return _plain(str(text))


def _plain(text: str) -> str:
    """Text with control and formatting characters replaced: messages may quote a server.

    The zero-width space, non-joiner and joiner stay inside a word, where
    Khmer, Thai, Arabic, Persian and Indic writing need them.
    """
    return "".join(
        ch
        if ch in SCRIPT_JOINERS and joiner_kept(text, i)
        else "?"
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")
        else ch
        for i, ch in enumerate(text)
    )


def _fail(message: str, hint: str | None = None) -> None:
    click.echo(f"evault: error: {_plain(message)}", err=True)
    if hint:
        click.echo(f"evault: hint: {_plain(hint)}", err=True)


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def handle_errors(func: F) -> F:
    """Turn a :class:`VaultError` into ``evault: error: …`` and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return func(*args, **kwargs)
        except VaultError as exc:
            if debug:
                raise
            _fail(exc.message, exc.hint)
            sys.exit(1)
        except BrokenPipeError:
            _silence_stdout()
            sys.exit(1)
        except OSError as exc:
            if debug:
                raise
            name = str(exc.filename or "")
            where = f": {name}" if name and _SECRET_MARK not in name.upper() else ""
            _fail(f"{exc.strerror or exc}{where}")
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("evault: interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except Exception:
            if debug:
                raise
            _fail("unexpected internal error", "run again with --debug to see the details")
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def report_failure(what: str, exc: VaultError) -> None:
    """One failure among several (``what`` failed, the rest went on), as ``evault: error:``."""
    _fail(f"{what}: {exc.message}", exc.hint)


def confirm(question: str, *, yes: bool) -> None:
    """Ask a yes/no question on the terminal; anything but yes aborts.

    Raises:
        VaultError: declined, or no terminal to ask on (use ``--yes``).
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise VaultError(
            "nothing was changed: there is no terminal to confirm on", hint="add --yes"
        )
    if not click.confirm(question, default=False, err=True):
        raise VaultError("nothing was changed")


class _Board(Progress):
    """rich's progress display with one more line under the bars: what a network wait is for."""

    notice = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield from super().get_renderables()
        if self.notice:
            yield Text(self.notice, style="yellow")


_drawn: Bars | None = None
"""The progress on the screen now, if any: a wait is said inside it."""
_told_at: float | None = None
"""When the last line about the wait under way was printed (without a progress drawn)."""
_LINE_EVERY = 30.0
"""Seconds between two printed lines about one wait (a drawn notice is updated in place)."""


class Bars:
    """Progress bars on stderr (bytes, speed, time left); silent without a terminal or with --json.

    One bar per file (:meth:`file`); for several files, one bar more for
    all of them, and each file's bar goes once that file is done, so that a
    folder of hundreds of files keeps to a few lines.
    """

    def __init__(self, *, files: int = 1, total: int = 0) -> None:
        console = err()
        self._board = _Board(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=json_mode() or not console.is_terminal,
        )
        self._files = files
        self._finished = 0
        self._lock = threading.Lock()
        self._overall: TaskID | None = None
        if files > 1:
            self._overall = self._board.add_task(self._count(), total=total)

    def _count(self) -> str:
        return f"{self._finished} of {self._files} files"

    def __enter__(self) -> Bars:
        global _drawn
        self._board.start()
        if not self._board.disable:
            _drawn = self
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        global _drawn
        if _drawn is self:
            _drawn = None
        self._board.notice = ""
        self._board.stop()

    @property
    def drawn(self) -> bool:
        return not self._board.disable

    def file(self, label: str) -> FileBar:
        """The bar of one file (what :class:`client.transfer.Progress` asks for)."""
        return FileBar(self, label)

    def say(self, text: str) -> None:
        """Print a result line (rich markup) on stdout, above the bars when both share a screen.

        rich moves the bars down for what is printed through their own
        console only; printed elsewhere on the same terminal, a line would be
        drawn over. When stdout goes elsewhere (a file, a pipe), it goes there.
        A single file's bar is done by then: it stays, and the line comes under it.
        """
        if self._overall is None:
            self._stop()
        elif self.drawn and sys.stdout.isatty():
            self._board.console.print(text, highlight=False, soft_wrap=True)
            return
        out().print(text)

    def notice(self, text: str) -> None:
        """Show ``text`` under the bars, in place of the last notice ("" clears it)."""
        self._board.notice = text
        self._board.refresh()

    def _moved(self, n: int) -> None:
        """``n`` bytes more of the whole are done (fewer if negative: a pass started again)."""
        if self._overall is not None and n:
            self._board.advance(self._overall, n)

    def _done(self, task: TaskID | None, left: int) -> None:
        """A file is done (stored, failed or left out): the ``left`` bytes of its share
        not counted yet are counted now. Files may be under way side by side."""
        if self._overall is None:
            return
        if task is not None:
            self._board.remove_task(task)
        with self._lock:
            self._finished += 1
            self._board.advance(self._overall, left)
            self._board.update(self._overall, description=self._count())


class FileBar:
    """One file's bar among :class:`Bars`."""

    def __init__(self, bars: Bars, label: str) -> None:
        self._bars = bars
        self._label = label
        self._task: TaskID | None = None
        self._total = 0
        self._counted = 0
        """What this file added to the whole so far."""

    def start(self, *, total: int, done: int, resumed: bool) -> None:
        board = self._bars._board
        label = self._label + (" (resumed)" if resumed else "")
        self._total = total
        if self._task is None:
            self._task = board.add_task(label, total=total, completed=done)
        else:
            # Started again after a dropped connection: the same bar, its rate afresh.
            board.reset(self._task, total=total, completed=done, description=label)
        # A first sample, so that the rate shows from the first piece on.
        board.advance(self._task, 0)
        self._bars._moved(done - self._counted)
        self._counted = done

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._bars._board.advance(self._task, n)
            self._counted += n
            self._bars._moved(n)

    def done(self, size: int) -> None:
        """This file is over; ``size`` is what it counted for in the whole."""
        self._bars._done(self._task, size - self._counted)
        self._counted = size


class Bar(FileBar):
    """One file's progress bar on stderr (bytes, MB/s, time left); silent without a terminal."""

    def __init__(self, label: str) -> None:
        super().__init__(Bars(), label)

    def __enter__(self) -> Bar:
        self._bars.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.__exit__(*exc)


def tell_wait(wait: Wait, *, sending: bool = False) -> None:
    """Say a network wait on stderr: inside the progress drawn, else as a line.

    Called from the client's watch thread. A drawn notice is updated in
    place; printed lines come at most every :data:`_LINE_EVERY` seconds,
    and one more says when the server answers again.
    """
    global _told_at
    line = wait.line()
    if not wait.over:
        line += " (Ctrl-C stops; what was sent is kept)" if sending else " (Ctrl-C stops)"
    drawn = _drawn
    now = time.monotonic()
    if drawn is not None:
        if wait.over:
            drawn.notice("")
            drawn._board.console.print(f"evault: {shown(line)}", highlight=False, soft_wrap=True)
        else:
            drawn.notice(shown(line))
        return
    if wait.over:
        if _told_at is not None:
            err().print(f"evault: {shown(line)}")
        _told_at = None
        return
    if _told_at is None or now - _told_at >= _LINE_EVERY:
        _told_at = now
        err().print(f"evault: {shown(line)}")
