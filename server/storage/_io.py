"""Helpers shared by the backends: chunked copies, bounded readers, error translation."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ParamSpec, TypeVar

from server.storage import CHUNK_SIZE, BackendError, BlobTooLargeError, Readable

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

P = ParamSpec("P")
R = TypeVar("R")


def backend_errors(*kinds: type[BaseException]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn the listed library exceptions escaping a method into :class:`BackendError`."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return func(*args, **kwargs)
            except kinds as exc:
                # The cause stays chained for the server's debug log; the
                # message carries no path, bucket or host.
                raise BackendError("storage backend failed") from exc

        return wrapper

    return decorate


def write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """``pwrite`` all of ``data`` at ``offset`` (a write may be short)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def sha256_of(fd: int, size: int) -> str:
    """The hex SHA-256 of the first ``size`` bytes of ``fd``, read in chunks."""
    digest = hashlib.sha256()
    offset = 0
    while offset < size:
        data = os.pread(fd, min(CHUNK_SIZE, size - offset), offset)
        if not data:
            raise BackendError("storage backend failed: staged file is short")
        digest.update(data)
        offset += len(data)
    return digest.hexdigest()


def spool(data: Readable, directory: Path, max_size: int | None) -> tuple[Path, int, str]:
    """Copy ``data`` to a new 0600 file in ``directory``; its path, size and hex SHA-256.

    The file is synced. It is removed if anything fails, and it is the caller's
    to remove after use.
    """
    fd, name = tempfile.mkstemp(prefix=".put.", suffix=".tmp", dir=directory)
    path = Path(name)
    try:
        digest = hashlib.sha256()
        size = 0
        while chunk := data.read(CHUNK_SIZE):
            size += len(chunk)
            if max_size is not None and size > max_size:
                raise BlobTooLargeError(f"blob too large: more than {max_size} bytes")
            digest.update(chunk)
            write_all(fd, chunk, size - len(chunk))
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    finally:
        os.close(fd)
    return path, size, digest.hexdigest()


class RangeReader(io.RawIOBase):
    """A raw reader of exactly ``length`` bytes from a ``read(n)`` function.

    A source that ends before ``length`` bytes is an error, not a short blob.
    """

    def __init__(self, read: Callable[[int], bytes], length: int, close: Callable[[], None]):
        super().__init__()
        self._read = read
        self._remaining = length
        self._close = close

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._remaining, CHUNK_SIZE)
        if want <= 0:
            return 0
        data = self._read(want)
        if not data:
            raise BackendError("storage backend failed: blob is shorter than recorded")
        if len(data) > want:
            raise BackendError("storage backend failed: blob is longer than recorded")
        view[: len(data)] = data
        self._remaining -= len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._close()
            finally:
                super().close()


class FileWindow(io.RawIOBase):
    """A seekable read-only view of bytes ``[start, end)`` of a file descriptor.

    Given to boto3 as a request body so that a part is streamed from disk, not
    loaded. The descriptor is borrowed: closing the window leaves it open.
    """

    def __init__(self, fd: int, start: int, end: int) -> None:
        super().__init__()
        self._fd = fd
        self._start = start
        self._length = end - start
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._length + offset
        else:
            raise ValueError("invalid whence")
        if position < 0:
            raise ValueError("negative seek position")
        self._position = position
        return position

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._length - self._position, CHUNK_SIZE)
        if want <= 0:
            return 0
        data = os.pread(self._fd, want, self._start + self._position)
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def __len__(self) -> int:
        return self._length


def buffered(reader: io.RawIOBase) -> BinaryIO:
    """A buffered binary file over a raw reader, as callers expect from ``open``."""
    return io.BufferedReader(reader, buffer_size=64 * 1024)
