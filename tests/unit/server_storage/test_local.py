"""The local file-system blob store: the shared contract, its layout and its memory use."""

from __future__ import annotations

import fcntl
import io
import os
import stat
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.storage import BackendError, new_upload_id
from server.storage._staging import merge_range
from server.storage.local import LocalBlobStore
from tests.unit.server_storage.contract import BlobStoreContract, KiB, MiB, sha, write


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "store")


class TestLocalBlobStore(BlobStoreContract):
    pass


def _modes(root: Path) -> set[tuple[str, int]]:
    found = set()
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        found.add(("dir" if path.is_dir() else "file", mode))
    return found


def test_layout_and_permissions(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalBlobStore(root)
    key = store.put(io.BytesIO(b"header"))
    upload_id = new_upload_id()
    store.begin(upload_id, 4)
    write(store, upload_id, 0, b"data")
    assert (root / "blobs" / key[:2] / key).read_bytes() == b"header"
    assert (root / "staging" / upload_id / "payload").is_file()
    assert _modes(root) == {("dir", 0o700), ("file", 0o600)}
    committed = store.commit(upload_id, sha(b"data"))
    assert (root / "blobs" / committed[:2] / committed).read_bytes() == b"data"
    assert list((root / "staging").iterdir()) == []
    assert list((root / "tmp").iterdir()) == []
    assert _modes(root) == {("dir", 0o700), ("file", 0o600)}


def test_staged_file_is_sparse_until_written(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    upload_id = new_upload_id()
    store.begin(upload_id, 1 << 40)
    info = (tmp_path / "staging" / upload_id / "payload").stat()
    assert info.st_size == 1 << 40
    assert info.st_blocks * 512 < 1 * MiB
    store.abort(upload_id)


def test_a_symbolic_link_is_never_followed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "store")
    secret = tmp_path / "secret"
    secret.write_bytes(b"not a blob")
    key = sha(b"not a blob")
    (tmp_path / "store" / "blobs" / key[:2]).mkdir()
    (tmp_path / "store" / "blobs" / key[:2] / key).symlink_to(secret)
    with pytest.raises(BackendError):
        store.open(key)


def test_expiry_leaves_a_session_being_written(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    upload_id = new_upload_id()
    store.begin(upload_id, 10)
    fd = os.open(tmp_path / "staging" / upload_id / "payload", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # as write_at holds it while it writes
        assert store.expire_staging(datetime.now(UTC) + timedelta(hours=1)) == 0
    finally:
        os.close(fd)
    assert store.expire_staging(datetime.now(UTC) + timedelta(hours=1)) == 1


def test_expiry_removes_leftover_temporary_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    leftover = tmp_path / "tmp" / ".put.crashed.tmp"
    leftover.write_bytes(b"partial")
    old = time.time() - 7200
    os.utime(leftover, (old, old))
    store.expire_staging(datetime.now(UTC) - timedelta(hours=1))
    assert not leftover.exists()


def test_expiry_removes_a_session_whose_begin_was_cut_short(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    (tmp_path / "staging" / new_upload_id()).mkdir(mode=0o700)
    assert store.expire_staging(datetime.now(UTC) + timedelta(seconds=5)) == 1
    assert list((tmp_path / "staging").iterdir()) == []


def test_merge_range() -> None:
    assert merge_range([], 3, 5) == ((3, 5),)
    assert merge_range([(0, 2), (6, 8)], 2, 6) == ((0, 8),)
    assert merge_range([(0, 2), (6, 8)], 3, 4) == ((0, 2), (3, 4), (6, 8))
    assert merge_range([(0, 2), (6, 8), (10, 12)], 1, 11) == ((0, 12),)
    assert merge_range([(5, 9)], 0, 1) == ((0, 1), (5, 9))


class _Pattern:
    """A reader of ``size`` pseudo-random bytes that never holds them all."""

    def __init__(self, size: int) -> None:
        self.remaining = size

    def read(self, size: int, /) -> bytes:
        count = min(size, self.remaining)
        self.remaining -= count
        return os.urandom(count)


def test_memory_stays_flat_for_a_large_blob(tmp_path: Path) -> None:
    size = 64 * MiB
    store = LocalBlobStore(tmp_path)
    upload_id = new_upload_id()
    store.begin(upload_id, size)
    tracemalloc.start()
    try:
        # Whole 8 MiB requests: the store must still read them in bounded chunks.
        for offset in range(0, size, 8 * MiB):
            store.write_at(upload_id, offset, _Pattern(8 * MiB), 8 * MiB)
        with open(tmp_path / "staging" / upload_id / "payload", "rb") as staged:
            digest = _sha_of_file(staged)
        key = store.commit(upload_id, digest)
        with store.open(key) as reader:
            total = 0
            while chunk := reader.read(256 * KiB):
                total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < 4 * MiB, f"peak {peak} bytes"


def _sha_of_file(handle: io.BufferedReader) -> str:
    import hashlib

    digest = hashlib.sha256()
    while chunk := handle.read(MiB):
        digest.update(chunk)
    return digest.hexdigest()
