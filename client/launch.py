"""``evault``'s entry point: ``ls`` and ``inbox`` in a blink while a session unlock runs.

Listing is what a person does most. With a session unlock running
(``evault unlock``), ``evault ls`` and ``evault inbox`` (alone, or after
``--json``) ask it for the listing (:mod:`client._agent_list`) and print
what it sends back, without importing the rest of the client: the unlock
process is already started, logged in, and knows the manifests it checked.
The checks are the same; only where they run differs. Everything else, and
these two when no session unlock answers (or it cannot do the listing),
goes to :func:`client.cli.run` as before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["run"]

_LISTINGS = {
    ("ls",): (False, False),
    ("inbox",): (True, False),
    ("--json", "ls"): (False, True),
    ("--json", "inbox"): (True, True),
}
"""The command lines listed by the session unlock: (inbox, JSON)."""
_TERMINAL_WIDTH = 80
_PIPE_WIDTH = 160
"""As :func:`client.ui.out`: wide when the output is no terminal."""


def run() -> None:
    """The console entry point."""
    asked = _LISTINGS.get(tuple(sys.argv[1:]))
    if asked is not None:
        code = _listed(*asked)
        if code is not None:
            sys.exit(code)
    from client.cli import run as full

    full()


def _width(terminal: bool) -> int:
    if not terminal:
        return _PIPE_WIDTH
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and 10 <= int(columns) <= 10_000:
        return int(columns)
    try:
        return max(10, os.get_terminal_size(sys.stdout.fileno()).columns)
    except OSError:
        return _TERMINAL_WIDTH


def _listed(inbox: bool, as_json: bool) -> int | None:
    """List through the session unlock; its exit status, or None to do it the usual way."""
    from client._agent_link import connect
    from client.config import home

    connection = None
    try:
        paths = home()
        if not paths.keystore.exists():
            return None
        connection = connect(paths)
        if connection is None:
            return None
        terminal = sys.stdout.isatty()
        env = {
            name: os.environ[name]
            for name in ("TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")
            if name in os.environ and len(os.environ[name]) < 256
        }
        frames = connection.stream(
            {
                "op": "list",
                "inbox": inbox,
                "json": as_json,
                "width": _width(terminal),
                "terminal": terminal,
                "env": env,
                "server": os.environ.get("EVAULT_SERVER") or None,
                "proxy": os.environ.get("EVAULT_PROXY") or None,
                "ca_file": os.environ.get("EVAULT_CA_FILE") or None,
            }
        )
        return _print(frames)
    except KeyboardInterrupt:
        sys.stderr.write("evault: interrupted\n")
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1
    except Exception:  # noqa: BLE001 — then the command lists by itself
        # The session unlock could not list (it ended, or is of an older version):
        # the command lists by itself, asking for the passphrase if it must.
        return None
    finally:
        if connection is not None:
            connection.close()


def _print(frames: Iterator[dict[str, Any]]) -> int | None:
    """Print the frames of a listing; its exit status, or None if the command must list itself."""
    wrote = False
    for frame in frames:
        if frame.get("ok") is not True:
            return 1 if wrote else None
        text = frame.get("err")
        if isinstance(text, str):
            sys.stderr.write(text)
            sys.stderr.flush()
            continue
        text = frame.get("out")
        if isinstance(text, str):
            sys.stdout.write(text)
            wrote = True
            continue
        code = frame.get("exit")
        if frame.get("done") is True and type(code) is int:
            sys.stdout.flush()
            return code
        return 1 if wrote else None
    return 1 if wrote else None
