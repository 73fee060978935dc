"""Local files written safely: a temporary file beside the target, fsync, rename.

A crash or an error never leaves a half-written file under the final name, and
files holding keys or plaintext are created readable by their owner only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from vault.errors import ConfigError


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(path: Path, *, mode: int = 0o600, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Write ``path`` atomically; on any exception nothing appears under its name.

    The file is created with ``mode`` (0600 by default). With ``overwrite``
    false, an existing file is never replaced, even one created meanwhile.

    Raises:
        ConfigError: the file exists and ``overwrite`` is false, or the
            directory cannot be written.
    """
    directory = path.parent
    if not overwrite and path.exists():
        raise ConfigError(f"{path} already exists", hint="choose another name or remove it first")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ConfigError(f"cannot write to {directory}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ConfigError(f"{path} already exists") from None
            tmp.unlink()
        _fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
