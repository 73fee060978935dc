"""Small files replaced atomically: a temporary file beside the target, fsync, rename.

Used by the keystore, whose file must never be half written: either the old
file or the new one is under the name, whatever happens (an error, a full
disk, a crash or a power cut after the function returns). The new file is
created with mode 0600 whatever the umask and whatever the mode of the file it
replaces.

The core library must not import ``client/``, which has a general version of
this helper (``client.files.atomic_output``, with ``O_TMPFILE``); this one
writes a ``bytes`` value and raises :class:`OSError`, which the caller
translates into its own error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["write_atomically"]

# os.link fails with these where the file system has no hard links (FAT, exFAT).
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS}


def _check_target(path: Path, overwrite: bool) -> None:
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


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable. Some systems cannot open or fsync a
    # directory; the rename is still atomic there, only its durability is
    # left to the file system.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Write a new ``path`` that must not exist, for file systems without hard links."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def write_atomically(path: Path, data: bytes, *, overwrite: bool, mode: int = 0o600) -> None:
    """Put ``data`` under ``path`` in one step; on failure ``path`` is unchanged.

    The data goes to a hidden ``.NAME.*.tmp`` file in the same directory, is
    flushed to disk, then renamed over ``path`` and the directory is flushed.
    Without ``overwrite`` an existing file is never replaced, not even one
    created by another process meanwhile. The temporary file is removed on any
    exception; only a killed process can leave one behind.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        OSError: ``path`` is a symbolic link or not a regular file, or the
            directory cannot be written.
    """
    directory = path.parent
    _check_target(path, overwrite)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            if hasattr(os, "fchmod"):
                os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
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
                _write_exclusive(path, data, mode)
            tmp.unlink()
        _fsync_directory(directory)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
