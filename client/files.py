"""Local output files for the client: atomic, private, never through a link.

The mechanism is :mod:`vault._atomic`; this module turns its errors into
messages for the person at the keyboard and adds the few cases the command
line needs (a device such as ``/dev/null``, the ordinary file mode).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import select
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from vault import _atomic
from vault._disk import FULL, free_space, no_room, refused_write
from vault.errors import ConfigError

__all__ = ["atomic_output", "check_room", "default_mode", "open_device", "open_input"]

_WAIT = 0.25
_SELECT_ON_PIPES = os.name == "posix"
"""Whether ``select`` can wait on a pipe here (on Windows it takes only sockets)."""


def default_mode() -> int:
    """0666 less the process umask: the mode of an ordinary new file."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _refused(path: Path, exc: OSError, needed: int | None = None) -> ConfigError:
    if isinstance(exc, FileExistsError):
        return ConfigError(f"{path} already exists", hint="choose another name or use --force")
    refused = refused_write(path, exc, needed=needed)
    if refused is not None:
        return ConfigError(refused[0], hint=refused[1])
    return ConfigError(f"cannot write {path}: {exc.strerror}")


def check_room(path: Path, needed: int) -> None:
    """Refuse before writing when ``path``'s folder has clearly less room than ``needed`` bytes.

    Raises:
        ConfigError: the folder's disk has less free space than that.
    """
    free = free_space(path.parent)
    if free is not None and free < needed:
        message, _ = no_room(path, needed=needed, free=free)
        raise ConfigError(
            message,
            hint="make room on that disk (or in your quota there), or write somewhere else; "
            "nothing was written",
        )


@contextlib.contextmanager
def atomic_output(
    path: Path, *, mode: int = 0o600, overwrite: bool = False, size: int | None = None
) -> Iterator[BinaryIO]:
    """:func:`vault._atomic.atomic_output`, with refusals as :class:`ConfigError`.

    ``size``, when known, is the size the file will have: a full disk is
    then said with the room needed as well as the room free.

    Raises:
        ConfigError: the target exists (without ``overwrite``, also when it
            appears while writing), or is a link or a special file; the
            folder cannot be written, or its disk is full (nothing is left
            behind then).
    """
    try:
        _atomic.check_target(path, overwrite)
    except OSError as exc:
        raise _refused(path, exc) from None
    writing = False
    try:
        with _atomic.atomic_output(path, mode=mode, overwrite=overwrite) as out:
            writing = True
            yield out
            writing = False
    except FileExistsError as exc:
        raise _refused(path, exc) from None
    except OSError as exc:
        # Raised by the caller's own work inside the block, only a refused write
        # is this file's; before and after it (creating, committing), any is.
        if writing and exc.errno not in (*FULL, errno.EROFS):
            raise
        raise _refused(path, exc, size) from None


def open_device(path: Path) -> BinaryIO:
    """Open an existing character device such as ``/dev/null`` for writing.

    Raises:
        ConfigError: ``path`` is not a character device, or is a link to one.
    """
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from None
    if not stat.S_ISCHR(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(
            f"refusing to write to {path}: not a regular file or a device",
            hint="write to a regular file, or use shell redirection",
        )
    return os.fdopen(fd, "wb")


class _PatientInput(io.RawIOBase):
    """A pipe, socket or terminal read in waits of at most a quarter second.

    Python runs a signal handler between bytecodes. A SIGTERM that lands just
    before a blocking ``read()`` is handled only when that read returns,
    which on an open, idle pipe is never; waiting in ``select`` with a
    timeout gives the handler its turn.
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: Any) -> int:
        fd = self._raw.fileno()
        try:
            while not select.select([fd], [], [], _WAIT)[0]:
                pass
        except (OSError, ValueError):
            # Not a descriptor select can wait on: a plain read, as on Windows.
            pass
        return self._raw.readinto(buffer)  # type: ignore[attr-defined, no-any-return]

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def open_input(path: Path | None) -> BinaryIO:
    """Standard input (``None``) or the file at ``path``, unbuffered, for streaming.

    Anything but a regular file is read through :class:`_PatientInput`, so
    that a stop signal always ends the command.
    """
    raw: BinaryIO = (
        sys.stdin.buffer.raw  # type: ignore[union-attr]
        if path is None
        else open(path, "rb", buffering=0)  # noqa: SIM115 — the caller closes it
    )
    try:
        regular = stat.S_ISREG(os.fstat(raw.fileno()).st_mode)
    except OSError:
        regular = False
    if regular or not _SELECT_ON_PIPES:
        return raw
    return cast(BinaryIO, _PatientInput(raw))
