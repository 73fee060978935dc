"""Local files written safely: an unnamed temporary file, fsync, then a name.

A crash, an error or a signal never leaves a half-written file under the final
name. On Linux the temporary file has no name at all until it is complete
(``O_TMPFILE``), so even a killed process leaves no partial plaintext behind;
elsewhere a hidden ``.NAME.*.tmp`` beside the target is removed on failure.
Files holding keys or plaintext are created readable by their owner only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from vault.errors import ConfigError

__all__ = ["atomic_output", "default_mode", "open_device"]

_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS}


def default_mode() -> int:
    """0666 less the process umask: the mode of an ordinary new file."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_target(path: Path, overwrite: bool) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(
            f"{path} is a symbolic link", hint="name the file it points to, or another file"
        )
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path} exists and is not a regular file")
    if not overwrite:
        raise ConfigError(f"{path} already exists", hint="choose another name or use --force")


def _open_unnamed(directory: Path, mode: int) -> int | None:
    """An unnamed file in ``directory`` (Linux ``O_TMPFILE``), or ``None``."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(directory, flag | os.O_WRONLY, mode)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None
        raise


def _link_unnamed(fd: int, path: Path) -> None:
    # linkat(AT_SYMLINK_FOLLOW) on the /proc entry names an O_TMPFILE file;
    # os.link uses linkat only when given a directory descriptor.
    proc = os.open("/proc/self/fd", os.O_RDONLY)
    try:
        os.link(str(fd), path, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


def _create_exclusive(source: Path, path: Path, mode: int) -> None:
    """Copy a finished file to a new ``path`` that must not exist (no hard links here)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise ConfigError(f"{path} already exists") from None
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


@contextlib.contextmanager
def atomic_output(path: Path, *, mode: int = 0o600, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Write ``path`` atomically; on any exception nothing appears under its name.

    The file is created with ``mode`` (0600 by default). Without
    ``overwrite`` an existing file is never replaced, even one created
    meanwhile. Symbolic links and special files are refused.

    Raises:
        ConfigError: the target exists (without ``overwrite``), is a link or a
            special file, or the directory cannot be written.
    """
    directory = path.parent
    _check_target(path, overwrite)
    try:
        fd = _open_unnamed(directory, mode)
        tmp: Path | None = None
        if fd is None:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
            tmp = Path(name)
    except OSError as exc:
        raise ConfigError(f"cannot write to {directory}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as out:
            yield out
            out.flush()
            os.fsync(fd)
        if tmp is None:
            # Give the finished file a hidden name first, then its real one.
            tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
            _link_unnamed(fd, tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ConfigError(f"{path} already exists") from None
            except OSError as exc:
                # FAT and exFAT (USB sticks) have no hard links.
                if exc.errno not in _NO_LINK:
                    raise
                _create_exclusive(tmp, path, mode)
            tmp.unlink()
        _fsync_dir(directory)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    finally:
        os.close(fd)


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
