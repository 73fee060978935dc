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
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
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

from vault.errors import VaultError

__all__ = [
    "Bar",
    "confirm",
    "err",
    "handle_errors",
    "json_mode",
    "out",
    "print_json",
    "report_failure",
    "shown",
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


def _plain(text: str) -> str:
    """Text with control and formatting characters replaced: messages may quote a server."""
    return "".join(
        "?" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") else ch
        for ch in text
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


class Bar:
    """A progress bar on stderr (bytes, MB/s, time left); silent without a terminal."""

    def __init__(self, label: str) -> None:
        self._label = label
        console = err()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=json_mode() or not console.is_terminal,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, *, total: int, done: int, resumed: bool) -> None:
        label = self._label + (" (resumed)" if resumed else "")
        self._task = self._progress.add_task(label, total=total, completed=done)
        # A first sample, so that the rate shows from the first piece on.
        self._progress.advance(self._task, 0)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)
