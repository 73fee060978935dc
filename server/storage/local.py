"""Blobs on the local file system: the default backend.

Layout under ``root`` (directories 0700, files 0600)::

    blobs/ab/ab12…ef   a blob, named by its full hex SHA-256, fanned out by
                       its first two digits
    staging/<id>/      resumable upload sessions (see ``_staging``)
    tmp/               blobs being written by ``put``

A blob appears under its name complete and synced, or not at all: ``put``
writes and fsyncs a temporary file and renames it; ``commit`` verifies the
staged file under an exclusive lock, fsyncs it and hard-links it into place
(copying only where the file system has no hard links), then fsyncs the
directory. Names are built only from keys that matched the strict hex form.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from server.storage import (
    CHUNK_SIZE,
    BlobNotFoundError,
    RangeNotSatisfiableError,
    Readable,
    check_digest,
)
from server.storage._io import (
    RangeReader,
    backend_errors,
    buffered,
    spool,
    write_all,
)
from server.storage._staging import StagingArea, remove_stale_files
from vault._atomic import fsync_directory

__all__ = ["LocalBlobStore"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# os.link fails with these where the file system has no hard links.
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS}


class LocalBlobStore:
    """A :class:`server.storage.BlobStore` in a directory of the local file system."""

    def __init__(self, root: Path) -> None:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._blobs = root / "blobs"
        self._tmp = root / "tmp"
        for directory in (self._blobs, self._tmp):
            directory.mkdir(mode=0o700, exist_ok=True)
        self._staging = StagingArea(root / "staging")

    def _path(self, key: str) -> Path:
        check_digest(key)
        return self._blobs / key[:2] / key

    # -- uploads -------------------------------------------------------------

    @backend_errors(OSError)
    def begin(self, upload_id: str, size: int) -> None:
        self._staging.begin(upload_id, size)

    @backend_errors(OSError)
    def write_at(self, upload_id: str, offset: int, data: Readable, length: int) -> None:
        self._staging.write_at(upload_id, offset, data, length)

    @backend_errors(OSError)
    def received(self, upload_id: str) -> list[tuple[int, int]]:
        return self._staging.received(upload_id)

    @backend_errors(OSError)
    def commit(self, upload_id: str, expected_sha256: str) -> str:
        target = self._path(expected_sha256)
        with self._staging.committing(upload_id, expected_sha256) as (fd, _):
            if not target.exists():
                target.parent.mkdir(mode=0o700, exist_ok=True)
                self._link_into_place(fd, self._staging.data_path(upload_id), target)
        return expected_sha256

    def _link_into_place(self, fd: int, source: Path, target: Path) -> None:
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            return  # the same content, stored meanwhile by another upload
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            self._copy_into_place(fd, target)
        fsync_directory(target.parent)

    def _copy_into_place(self, fd: int, target: Path) -> None:
        out, name = tempfile.mkstemp(prefix=".commit.", suffix=".tmp", dir=self._tmp)
        try:
            size = os.fstat(fd).st_size
            offset = 0
            while offset < size:
                data = os.pread(fd, min(CHUNK_SIZE, size - offset), offset)
                write_all(out, data, offset)
                offset += len(data)
            os.fsync(out)
            os.replace(name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        finally:
            os.close(out)

    @backend_errors(OSError)
    def abort(self, upload_id: str) -> None:
        self._staging.abort(upload_id)

    @backend_errors(OSError)
    def expire_staging(self, before: datetime) -> int:
        # Leftovers of a put or a copy cut short by a crash go too.
        remove_stale_files(self._tmp, before)
        return self._staging.expire(before)

    # -- blobs ---------------------------------------------------------------

    @backend_errors(OSError)
    def put(self, data: Readable, *, max_size: int | None = None) -> str:
        path, _, key = spool(data, self._tmp, max_size)
        try:
            target = self._path(key)
            if not target.exists():
                target.parent.mkdir(mode=0o700, exist_ok=True)
                # Replacing a blob that appeared meanwhile changes nothing:
                # the name is the hash of the content.
                os.replace(path, target)
                fsync_directory(target.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return key

    @backend_errors(OSError)
    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except FileNotFoundError:
            raise BlobNotFoundError("no such blob") from None
        try:
            size = os.fstat(fd).st_size
            stop = size if end is None else end
            if not 0 <= start <= stop <= size:
                raise RangeNotSatisfiableError(f"range not satisfiable: blob has {size} bytes")
            position = start

            @backend_errors(OSError)
            def read(count: int) -> bytes:
                nonlocal position
                data = os.pread(fd, count, position)
                position += len(data)
                return data

            reader = RangeReader(read, stop - start, lambda: os.close(fd))
        except BaseException:
            os.close(fd)
            raise
        return buffered(reader)

    @backend_errors(OSError)
    def size(self, key: str) -> int:
        try:
            return os.stat(self._path(key), follow_symlinks=False).st_size
        except FileNotFoundError:
            raise BlobNotFoundError("no such blob") from None

    @backend_errors(OSError)
    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    @backend_errors(OSError)
    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_directory(path.parent)
