"""A SHA-256 kept while an upload's chunks arrive in order, so commit need not re-read.

A commit must know the SHA-256 of the staged bytes. Reading a 1 GiB file
back costs about as long as receiving it, so the process that receives the
chunks in order (a client sends them one after another over one kept-alive
connection) hashes them as they stream by. That digest is only a shortcut:
commit uses it when it provably describes the bytes on disk, and otherwise
reads the file back as before.

The proof is a **write counter** per session, in a small file beside the
staged data (``writes``: a random 16-byte session tag, then a big-endian
64-bit count). Every write increments it under an exclusive ``flock`` on that
file *before* it touches a byte. A process's digest records the count its
last write took; it is extended only by the next write, at the next offset,
when that write took the very next count and no write has started since,
and commit trusts it only when the count on disk still equals the recorded
one. So any other write — another process or thread, a repeat, a write cut
short after touching bytes — leaves the counter ahead of every digest that
predates it, and the file is read back. The digests live only in memory: a
restarted server simply reads back. The tag ties a digest to one session, so
an id that is used again can never meet a stale digest.

The counter needs no fsync: after a crash no digest survives either.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import os
import queue
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "COUNTER_FILE",
    "Count",
    "Hasher",
    "RunningDigests",
    "begin_write",
    "current",
    "start_counter",
]

COUNTER_FILE = "writes"

_TAG_SIZE = 16
_RECORD_SIZE = _TAG_SIZE + 8
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# Digests kept per process: one per upload this process is receiving, and
# more than any server has uploads in flight at once; the oldest go first.
_MAX_DIGESTS = 256


@dataclass(frozen=True)
class Count:
    """A session's tag and the number of writes begun so far."""

    tag: bytes
    count: int


def start_counter(directory: Path) -> None:
    """Create the counter of a new session in ``directory`` (a fresh tag, no writes)."""
    fd = os.open(directory / COUNTER_FILE, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        record = secrets.token_bytes(_TAG_SIZE) + (0).to_bytes(8, "big")
        if os.pwrite(fd, record, 0) != _RECORD_SIZE:
            raise OSError("short write of the upload's write counter")
    finally:
        os.close(fd)


# Threads of one process also take this, so that the counter stays exact
# even where flock locks belong to the process rather than the open file.
_IN_PROCESS = threading.Lock()


@contextlib.contextmanager
def _counter(directory: Path) -> Iterator[int | None]:
    try:
        fd = os.open(directory / COUNTER_FILE, os.O_RDWR | _NOFOLLOW)
    except FileNotFoundError:
        # A session begun by an older server, or one being removed.
        yield None
        return
    try:
        with _IN_PROCESS:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
    finally:
        os.close(fd)


def _read(fd: int) -> Count | None:
    record = os.pread(fd, _RECORD_SIZE, 0)
    if len(record) != _RECORD_SIZE:
        return None
    return Count(record[:_TAG_SIZE], int.from_bytes(record[_TAG_SIZE:], "big"))


def begin_write(directory: Path) -> Count | None:
    """Count one more write of the session; the count it took (``None``: no counter)."""
    with _counter(directory) as fd:
        if fd is None:
            return None
        current = _read(fd)
        if current is None:
            return None
        taken = Count(current.tag, current.count + 1)
        if os.pwrite(fd, taken.count.to_bytes(8, "big"), _TAG_SIZE) != 8:
            raise OSError("short write of the upload's write counter")
        return taken


def current(directory: Path) -> Count | None:
    """The session's count now (``None``: no counter)."""
    with _counter(directory) as fd:
        return None if fd is None else _read(fd)


@dataclass
class _Digest:
    tag: bytes
    count: int  # the count of the last write this digest covers
    length: int  # the bytes [0, length) it covers
    sha256: Any  # a hashlib object


class Hasher:
    """Hashes the pieces of one write on a helper thread while the next piece arrives.

    ``hashlib`` releases the GIL on large updates, so receiving and writing
    a piece overlap with hashing the one before on two cores. A piece is
    handed over only once the one before is hashed and let go, so at most
    one piece waits here and memory stays bounded.
    """

    def __init__(self, sha256: Any) -> None:
        self._sha256 = sha256
        self._failed = False
        self._queue: queue.Queue[bytes | None] = queue.Queue(1)
        self._thread = threading.Thread(target=self._run, name="upload-hasher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            piece = self._queue.get()
            try:
                if piece is None:
                    return
                if not self._failed:
                    self._sha256.update(piece)
            # Any failure (MemoryError, say) loses the digest, never the write.
            except Exception:  # noqa: BLE001
                self._failed = True
            finally:
                piece = None  # let go of it before saying it is done
                self._queue.task_done()

    def update(self, piece: bytes) -> None:
        self._queue.join()  # the piece before is hashed and let go
        self._queue.put(piece)

    def finish(self) -> Any | None:
        """Wait for every piece to be hashed; the hashlib object, ``None`` if hashing failed."""
        self._queue.put(None)
        self._thread.join()
        return None if self._failed else self._sha256


def _hasher(sha256: Any) -> Hasher | None:
    try:
        return Hasher(sha256)
    except RuntimeError:  # no thread to be had: this write goes without a digest
        return None


class RunningDigests:
    """The digests this process keeps for the uploads it receives in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._digests: collections.OrderedDict[str, _Digest] = collections.OrderedDict()

    def hasher_for(self, upload_id: str, taken: Count | None, offset: int) -> Hasher | None:
        """A hasher for a write at ``offset`` that took ``taken``; ``None`` if it cannot extend.

        A write extends a digest when it starts where the digest ends and took
        the count right after the digest's; the first write of a session, at
        offset 0 with count 1, starts one. Any other write drops the digest.
        """
        with self._lock:
            digest = self._digests.pop(upload_id, None)
        if taken is None:
            return None
        if digest is None or digest.tag != taken.tag:
            if offset == 0 and taken.count == 1:
                return _hasher(hashlib.sha256())
            return None
        if digest.count + 1 == taken.count and digest.length == offset:
            return _hasher(digest.sha256.copy())
        return None

    def record(
        self, upload_id: str, taken: Count, end: int, hasher: Hasher, now: Count | None
    ) -> None:
        """Keep the digest of ``[0, end)`` after a write that took ``taken`` finished.

        ``now`` is the count read once the write's bytes were synced, under the
        session's exclusive lock: if another write began meanwhile the digest
        may not describe the file, so it is dropped.
        """
        sha256 = hasher.finish()
        if sha256 is None or now != taken:
            return
        with self._lock:
            self._digests[upload_id] = _Digest(taken.tag, taken.count, end, sha256)
            while len(self._digests) > _MAX_DIGESTS:
                self._digests.popitem(last=False)

    def take(self, upload_id: str, now: Count | None, size: int) -> str | None:
        """The hex SHA-256 of all ``size`` bytes, if a digest provably covers them; forget it."""
        with self._lock:
            digest = self._digests.pop(upload_id, None)
        if digest is None or now is None:
            return None
        if (digest.tag, digest.count, digest.length) != (now.tag, now.count, size):
            return None
        hexdigest: str = digest.sha256.hexdigest()
        return hexdigest

    def forget(self, upload_id: str) -> None:
        with self._lock:
            self._digests.pop(upload_id, None)
