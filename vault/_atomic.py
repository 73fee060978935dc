"""Files replaced atomically: the new content is complete before it gets the name.

Used for key files, keystores and decrypted output: either the old file or
the complete new one is under the name, whatever happens (an error, a full
disk, a signal, a crash or a power cut after the commit returns). On Linux
the new content lives in an unnamed file (``O_TMPFILE``) until it is
complete, so even a killed process leaves nothing behind; elsewhere a hidden
``.NAME.*.tmp`` beside the target is removed on any exception. Files are
created with the mode asked (0600 by default), whatever the umask.

Errors are :class:`OSError` (``FileExistsError`` when the target exists);
callers translate them into their own.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_output", "check_target", "fsync_directory", "write_atomically"]

# os.link fails with these where the file system has no hard links (FAT, exFAT).
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS}
_COPY = 1 << 20


def check_target(path: Path, overwrite: bool) -> None:
    """Refuse a symbolic link, a special file, or an existing file without ``overwrite``."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        # Replacing a link would put a regular file where the link was and
        # leave the file it points to as it was: refuse rather than surprise.
        raise OSError(errno.ELOOP, "is a symbolic link", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "exists and is not a regular file", str(path))
    if not overwrite:
        raise FileExistsError(errno.EEXIST, "already exists", str(path))


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable where the system allows it."""
    # Some systems cannot open or fsync a
    # directory; the rename is still atomic there, only its durability is
    # left to the file system.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _open_unnamed(directory: Path, mode: int) -> int | None:
    """An unnamed file in ``directory`` (Linux ``O_TMPFILE``), or ``None``."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(directory, flag | os.O_RDWR, mode)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None
        raise


def _copy_fd(fd: int, path: Path, mode: int) -> None:
    """Write the content of ``fd`` to a new ``path`` that must not exist."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    out = os.open(path, flags, mode)
    try:
        offset = 0
        while data := os.pread(fd, _COPY, offset):
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
            offset += len(data)
        os.fsync(out)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    finally:
        os.close(out)


def _name_unnamed(fd: int, tmp: Path, mode: int) -> None:
    """Give a finished unnamed file the hidden temporary name ``tmp``."""
    proc = os.open("/proc/self/fd", os.O_RDONLY)
    try:
        # linkat(AT_SYMLINK_FOLLOW) on the /proc entry names an O_TMPFILE
        # file; os.link uses linkat only when given a directory descriptor.
        os.link(str(fd), tmp, src_dir_fd=proc, follow_symlinks=True)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        _copy_fd(fd, tmp, mode)
    finally:
        os.close(proc)


@contextlib.contextmanager
def atomic_output(path: Path, *, mode: int = 0o600, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Write ``path`` atomically; on any exception nothing appears under its name.

    Without ``overwrite`` an existing file is never replaced, not even one
    created by another process meanwhile.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        OSError: ``path`` is a symbolic link or not a regular file, or the
            directory cannot be written.
    """
    directory = path.parent
    check_target(path, overwrite)
    tmp: Path | None = None
    fd = _open_unnamed(directory, mode)
    if fd is None:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        tmp = Path(name)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as out:
            yield out
            out.flush()
            os.fsync(fd)
        if tmp is None:
            # Chosen before the link exists, so the clean-up below knows it
            # whenever an interruption comes.
            tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
            _name_unnamed(fd, tmp, mode)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                # A hard link fails if the name exists, where a rename would
                # silently replace it.
                os.link(tmp, path)
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
                _copy_fd(fd, path, mode)
            tmp.unlink()
        fsync_directory(directory)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, overwrite: bool, mode: int = 0o600) -> None:
    """Put ``data`` under ``path`` in one step; on failure ``path`` is unchanged."""
    with atomic_output(path, mode=mode, overwrite=overwrite) as out:
        out.write(data)
