"""Resumable upload sessions on local disk, shared by every backend.

Each session is a directory ``<root>/<upload_id>/`` (0700) holding:

- ``payload``: a sparse file of the declared size (0600), written with
  ``pwrite`` at the offsets the client sends;
- ``state``: the declared size and the merged ranges received, as JSON,
  replaced atomically (temporary file, fsync, rename) after the bytes of a
  chunk are synced, so a range is never recorded before its bytes are safe;
- ``writes``: the session's write counter (see ``_running``), which lets the
  process that received every chunk in order commit without reading the
  file back.

Several processes may serve one session at once (gunicorn workers, a client
retrying a chunk). They coordinate with ``flock`` on ``payload``: writers
hold a shared lock while they write bytes and an exclusive one while they
update ``state``; commit, abort and expiry hold it exclusively, so the bytes
that were hashed are the bytes that get stored. Whoever gets a lock checks
that ``payload`` is still the file under the session's name, so a writer
that waited behind a commit fails instead of writing into a blob. The
directory must therefore be on a file system whose ``flock`` locks belong to
each open file: any local one, not NFS (where Linux makes them per-process
POSIX locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from server.storage import (
    CHUNK_SIZE,
    ChunkRejectedError,
    DigestMismatchError,
    IncompleteUploadError,
    MalformedIdError,
    Readable,
    UploadExistsError,
    UploadNotFoundError,
    check_digest,
    check_upload_id,
)
from server.storage._io import sha256_of, write_all
from server.storage._running import (
    Hasher,
    RunningDigests,
    begin_write,
    current,
    start_counter,
)
from vault._atomic import fsync_directory

MAX_RANGES = 4096
"""Separate ranges one session may hold; bounds the state file and its parsing."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

Ranges = tuple[tuple[int, int], ...]

DATA_FILE = "payload"
"""The staged bytes. Sessions begun before the write counter existed call it
``data``; the new name keeps a server of that age, which writes without
counting, from ever writing into a session whose commit may trust a digest."""
_OLD_DATA_FILE = "data"


def _data_file(directory: Path) -> Path:
    new = directory / DATA_FILE
    return new if os.path.lexists(new) else directory / _OLD_DATA_FILE


def merge_range(ranges: Sequence[tuple[int, int]], start: int, end: int) -> Ranges:
    """``ranges`` (sorted, disjoint, not touching) with ``[start, end)`` added."""
    merged: list[tuple[int, int]] = []
    for low, high in ranges:
        if high < start or low > end:
            merged.append((low, high))
        else:
            start, end = min(start, low), max(end, high)
    merged.append((start, end))
    merged.sort()
    return tuple(merged)


class StagingArea:
    """Upload sessions under one directory; see the module docstring."""

    def __init__(self, root: Path) -> None:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._root = root
        self._digests = RunningDigests()

    def _dir(self, upload_id: str) -> Path:
        return self._root / check_upload_id(upload_id)

    # -- state ---------------------------------------------------------------

    @staticmethod
    def _read_state(directory: Path) -> tuple[int, Ranges]:
        try:
            text = (directory / "state").read_text(encoding="ascii")
        except FileNotFoundError:
            raise UploadNotFoundError("no such upload") from None
        try:
            record = json.loads(text)
            size = int(record["size"])
            ranges = tuple((int(low), int(high)) for low, high in record["ranges"])
        except (ValueError, TypeError, KeyError) as exc:
            # Written only by this module, atomically: a bad record is a bug.
            raise RuntimeError("internal error: staging state is corrupt") from exc
        return size, ranges

    @staticmethod
    def _write_state(directory: Path, size: int, ranges: Ranges) -> None:
        text = json.dumps({"size": size, "ranges": [list(r) for r in ranges]})
        fd, name = tempfile.mkstemp(prefix=".state.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(name, directory / "state")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        fsync_directory(directory)

    # -- locking -------------------------------------------------------------

    @staticmethod
    def _check_current(fd: int, directory: Path) -> None:
        try:
            info = os.stat(_data_file(directory), follow_symlinks=False)
        except FileNotFoundError:
            raise UploadNotFoundError("no such upload") from None
        mine = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (mine.st_dev, mine.st_ino):
            raise UploadNotFoundError("no such upload")

    @contextlib.contextmanager
    def _locked(self, upload_id: str, *, exclusive: bool) -> Iterator[tuple[int, Path]]:
        directory = self._dir(upload_id)
        try:
            fd = os.open(_data_file(directory), os.O_RDWR | _NOFOLLOW)
        except FileNotFoundError:
            raise UploadNotFoundError("no such upload") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            self._check_current(fd, directory)
            yield fd, directory
        finally:
            os.close(fd)  # also releases the lock

    @staticmethod
    def _remove(directory: Path) -> None:
        # Only files this module made live here; unlink never follows a link.
        for entry in os.scandir(directory):
            os.unlink(entry.path)
        os.rmdir(directory)
        fsync_directory(directory.parent)

    # -- sessions ------------------------------------------------------------

    def begin(self, upload_id: str, size: int) -> None:
        directory = self._dir(upload_id)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ChunkRejectedError("invalid upload size")
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            raise UploadExistsError("upload already begun") from None
        fd = os.open(directory / DATA_FILE, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        try:
            # Sparse: a session declaring a large size costs nothing until written.
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        start_counter(directory)
        self._write_state(directory, size, ())
        fsync_directory(self._root)

    def write_at(self, upload_id: str, offset: int, data: Readable, length: int) -> None:
        if offset < 0 or length < 0:
            raise ChunkRejectedError("invalid chunk offset or length")
        with self._locked(upload_id, exclusive=False) as (fd, directory):
            size, _ = self._read_state(directory)
            if offset + length > size:
                raise ChunkRejectedError(f"chunk ends past the declared size of {size} bytes")
            end = offset + length
            taken = begin_write(directory)
            hasher = self._digests.hasher_for(upload_id, taken, offset)
            try:
                self._receive(fd, data, offset, end, hasher)
                os.fdatasync(fd)
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._check_current(fd, directory)
                size, ranges = self._read_state(directory)
                if length:
                    ranges = merge_range(ranges, offset, end)
                if len(ranges) > MAX_RANGES:
                    # The bytes stay, unrecorded: the client sends contiguous chunks again.
                    raise ChunkRejectedError("upload split into too many ranges")
                self._write_state(directory, size, ranges)
                if hasher is not None and taken is not None:
                    self._digests.record(upload_id, taken, end, hasher, current(directory))
                    hasher = None
            finally:
                if hasher is not None:
                    hasher.finish()

    @staticmethod
    def _receive(fd: int, data: Readable, position: int, end: int, hasher: Hasher | None) -> None:
        """Copy ``data`` to ``[position, end)`` of ``fd``, hashing it on the way if asked."""
        while position < end:
            try:
                chunk = data.read(min(CHUNK_SIZE, end - position))
            except OSError as exc:
                raise ChunkRejectedError("chunk could not be read") from exc
            if not chunk:
                raise ChunkRejectedError("chunk shorter than its announced length")
            # Bytes, never a buffer the stream may reuse: what is hashed is what is written.
            chunk = bytes(chunk[: end - position])
            if hasher is not None:
                hasher.update(chunk)  # hashed while it is written and the next piece read
            write_all(fd, chunk, position)
            position += len(chunk)

    def received(self, upload_id: str) -> list[tuple[int, int]]:
        _, ranges = self._read_state(self._dir(upload_id))
        return list(ranges)

    @contextlib.contextmanager
    def committing(self, upload_id: str, expected_sha256: str) -> Iterator[tuple[int, int]]:
        """Lock a complete, verified session; yields its ``(fd, size)``.

        When the body of the ``with`` finishes, the session is removed; when
        it raises, the session stays so that the commit can be retried.
        """
        check_digest(expected_sha256)
        with self._locked(upload_id, exclusive=True) as (fd, directory):
            size, ranges = self._read_state(directory)
            if size and ranges != ((0, size),):
                raise IncompleteUploadError("upload incomplete: some bytes are missing")
            # The digest kept while the chunks arrived in order, or a read-back.
            actual = self._digests.take(upload_id, current(directory), size)
            if actual is None:
                actual = sha256_of(fd, size)
            if not hmac.compare_digest(actual, expected_sha256):
                self._remove(directory)
                raise DigestMismatchError("upload does not match its sha-256; send it again")
            os.fsync(fd)
            yield fd, size
            self._remove(directory)

    def data_path(self, upload_id: str) -> Path:
        """The staged file of a session, for a backend that links it into place."""
        return _data_file(self._dir(upload_id))

    def abort(self, upload_id: str) -> None:
        directory = self._dir(upload_id)
        self._digests.forget(upload_id)
        try:
            with self._locked(upload_id, exclusive=True):
                self._remove(directory)
        except UploadNotFoundError:
            # A session whose begin was cut short has a directory but no data.
            if directory.is_dir() and not directory.is_symlink():
                self._remove(directory)

    def expire(self, before: datetime) -> int:
        cutoff = before.timestamp()
        removed = 0
        for entry in os.scandir(self._root):
            try:
                check_upload_id(entry.name)
            except MalformedIdError:
                continue  # not a session directory
            if not entry.is_dir(follow_symlinks=False):
                continue
            directory = Path(entry.path)
            if self._expire_one(directory, cutoff):
                removed += 1
        return removed

    def _last_activity(self, directory: Path) -> float:
        try:
            return os.stat(directory / "state", follow_symlinks=False).st_mtime
        except FileNotFoundError:
            return os.stat(directory, follow_symlinks=False).st_mtime

    def _expire_one(self, directory: Path, cutoff: float) -> bool:
        try:
            if self._last_activity(directory) >= cutoff:
                return False
            try:
                fd = os.open(_data_file(directory), os.O_RDWR | _NOFOLLOW)
            except FileNotFoundError:
                self._remove(directory)
                return True
        except FileNotFoundError:  # committed or aborted meanwhile
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a write is in progress: the session is alive
            try:
                self._check_current(fd, directory)
            except UploadNotFoundError:
                return False
            if self._last_activity(directory) >= cutoff:
                return False
            self._remove(directory)
            return True
        finally:
            os.close(fd)


def remove_stale_files(directory: Path, before: datetime) -> int:
    """Remove regular files in ``directory`` last changed before ``before``; how many."""
    cutoff = before.timestamp()
    removed = 0
    for entry in os.scandir(directory):
        with contextlib.suppress(FileNotFoundError):
            info = entry.stat(follow_symlinks=False)
            if entry.is_file(follow_symlinks=False) and info.st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
    return removed
