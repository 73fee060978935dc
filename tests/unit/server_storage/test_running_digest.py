"""The SHA-256 kept while chunks arrive in order: used only when it provably describes the file.

Two stores on one directory stand for two server processes: each keeps its
own digests in memory and they share the staged files and write counters.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import server.storage._running as running
from server.storage import ChunkRejectedError, DigestMismatchError, new_upload_id
from server.storage._running import Hasher
from server.storage.local import LocalBlobStore
from tests.unit.server_storage.contract import KiB, sha, write

DATA = bytes(range(256)) * (3 * KiB)  # 768 KiB
PIECE = 256 * KiB


def _pieces(data: bytes) -> list[tuple[int, bytes]]:
    return [(offset, data[offset : offset + PIECE]) for offset in range(0, len(data), PIECE)]


class _CutShort(io.RawIOBase):
    """A body that delivers ``data`` and then loses its connection."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = data

    def read(self, size: int = -1, /) -> bytes:
        if not self._data:
            raise OSError("connection reset")
        out, self._data = self._data[:size], self._data[size:]
        return out


def _staged_in_order(store: LocalBlobStore) -> str:
    """A new session holding DATA, its chunks sent in order; its id."""
    upload_id = new_upload_id()
    store.begin(upload_id, len(DATA))
    for offset, piece in _pieces(DATA):
        write(store, upload_id, offset, piece)
    return upload_id


def _two_processes(root: Path) -> tuple[LocalBlobStore, LocalBlobStore]:
    return LocalBlobStore(root), LocalBlobStore(root)


def test_in_order_chunks_commit_without_reading_back(tmp_path: Path, read_backs: list[int]) -> None:
    store = LocalBlobStore(tmp_path)
    upload_id = _staged_in_order(store)
    assert store.commit(upload_id, sha(DATA)) == sha(DATA)
    assert read_backs == []
    with store.open(sha(DATA)) as blob:
        assert blob.read() == DATA


def test_a_wrong_hash_is_refused_on_the_fast_path(tmp_path: Path, read_backs: list[int]) -> None:
    store = LocalBlobStore(tmp_path)
    upload_id = _staged_in_order(store)
    with pytest.raises(DigestMismatchError):
        store.commit(upload_id, sha(DATA[:-1] + b"\x00"))
    assert read_backs == []
    assert not store.exists(sha(DATA))


def test_out_of_order_chunks_are_read_back(tmp_path: Path, read_backs: list[int]) -> None:
    store = LocalBlobStore(tmp_path)
    upload_id = new_upload_id()
    store.begin(upload_id, len(DATA))
    for offset, piece in reversed(_pieces(DATA)):
        write(store, upload_id, offset, piece)
    assert store.commit(upload_id, sha(DATA)) == sha(DATA)
    assert read_backs == [len(DATA)]


def test_a_chunk_sent_again_is_read_back(tmp_path: Path, read_backs: list[int]) -> None:
    store = LocalBlobStore(tmp_path)
    upload_id = _staged_in_order(store)
    write(store, upload_id, 0, DATA[:PIECE])
    assert store.commit(upload_id, sha(DATA)) == sha(DATA)
    assert read_backs == [len(DATA)]


def test_a_write_cut_short_over_hashed_bytes_is_caught(
    tmp_path: Path, read_backs: list[int]
) -> None:
    # The digest covers all of DATA; then a retry of the first chunk with other
    # bytes breaks off after touching the file. Trusting the digest would store
    # a blob whose name is not the hash of its bytes.
    store = LocalBlobStore(tmp_path)
    upload_id = _staged_in_order(store)
    with pytest.raises(ChunkRejectedError):
        store.write_at(upload_id, 0, _CutShort(b"\xff" * (PIECE // 2)), PIECE)
    with pytest.raises(DigestMismatchError):
        store.commit(upload_id, sha(DATA))
    assert read_backs == [len(DATA)]
    assert not store.exists(sha(DATA))


def test_a_write_by_another_process_is_read_back(tmp_path: Path, read_backs: list[int]) -> None:
    mine, other = _two_processes(tmp_path)
    upload_id = new_upload_id()
    mine.begin(upload_id, len(DATA))
    pieces = _pieces(DATA)
    for offset, piece in pieces:
        write(mine, upload_id, offset, piece)
    # The other process rewrites a chunk with different bytes.
    write(other, upload_id, PIECE, b"\x00" * PIECE)
    with pytest.raises(DigestMismatchError):
        mine.commit(upload_id, sha(DATA))
    assert read_backs == [len(DATA)]


def test_chunks_split_between_processes_are_read_back(
    tmp_path: Path, read_backs: list[int]
) -> None:
    first, second = _two_processes(tmp_path)
    upload_id = new_upload_id()
    first.begin(upload_id, len(DATA))
    for index, (offset, piece) in enumerate(_pieces(DATA)):
        write(first if index % 2 == 0 else second, upload_id, offset, piece)
    assert first.commit(upload_id, sha(DATA)) == sha(DATA)
    assert read_backs == [len(DATA)]


def test_a_commit_in_another_process_reads_back(tmp_path: Path, read_backs: list[int]) -> None:
    receiver, committer = _two_processes(tmp_path)
    upload_id = _staged_in_order(receiver)
    assert committer.commit(upload_id, sha(DATA)) == sha(DATA)
    assert read_backs == [len(DATA)]


def test_a_digest_never_outlives_its_session(tmp_path: Path, read_backs: list[int]) -> None:
    # The same id begun again elsewhere: this process's digest is of the old session.
    mine, other = _two_processes(tmp_path)
    upload_id = _staged_in_order(mine)
    other.abort(upload_id)
    other.begin(upload_id, len(DATA))
    replacement = bytes(reversed(DATA))
    write(other, upload_id, 0, replacement)
    assert mine.commit(upload_id, sha(replacement)) == sha(replacement)
    assert read_backs == [len(DATA)]


def test_a_session_begun_by_an_older_server_still_completes(
    tmp_path: Path, read_backs: list[int]
) -> None:
    # Older servers staged into ``data`` and kept no write counter.
    store = LocalBlobStore(tmp_path)
    upload_id = new_upload_id()
    store.begin(upload_id, len(DATA))
    session = tmp_path / "staging" / upload_id
    (session / "payload").rename(session / "data")
    (session / "writes").unlink()
    for offset, piece in _pieces(DATA):
        write(store, upload_id, offset, piece)
    assert store.commit(upload_id, sha(DATA)) == sha(DATA)
    assert read_backs == [len(DATA)]


def test_an_older_server_cannot_write_into_a_new_session(tmp_path: Path) -> None:
    # It writes without counting, so it must not find the staged file at all.
    store = LocalBlobStore(tmp_path)
    upload_id = new_upload_id()
    store.begin(upload_id, len(DATA))
    assert sorted(os.listdir(tmp_path / "staging" / upload_id)) == ["payload", "state", "writes"]


class _Failing:
    """A hash object whose update fails, as under memory pressure."""

    def update(self, data: bytes) -> None:
        raise MemoryError

    def copy(self) -> _Failing:
        return self


def test_a_hash_that_fails_loses_the_digest_not_the_write(
    tmp_path: Path, read_backs: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = sha(DATA)
    original = running.hashlib.sha256
    monkeypatch.setattr(running.hashlib, "sha256", _Failing)
    store = LocalBlobStore(tmp_path)
    upload_id = _staged_in_order(store)
    monkeypatch.setattr(running.hashlib, "sha256", original)
    assert store.commit(upload_id, expected) == expected
    assert read_backs == [len(DATA)]


@settings(max_examples=40, deadline=None)
@given(
    plan=st.lists(st.tuples(st.booleans(), st.integers(0, 2), st.booleans()), max_size=8),
    committer=st.booleans(),
)
def test_commit_is_right_whatever_the_order(
    tmp_path_factory: pytest.TempPathFactory, plan: list[tuple[bool, int, bool]], committer: bool
) -> None:
    # Any mix of processes, chunks, repeats and corrupted repeats: commit
    # succeeds exactly when the file holds DATA, fast path or not.
    root = tmp_path_factory.mktemp("store")
    stores = _two_processes(root)
    pieces = _pieces(DATA)
    upload_id = new_upload_id()
    stores[0].begin(upload_id, len(DATA))
    held = bytearray(len(DATA))
    for process, index, corrupt in [*plan, *((False, i, False) for i in range(len(pieces)))]:
        offset, piece = pieces[index]
        body = b"\x00" * len(piece) if corrupt else piece
        write(stores[process], upload_id, offset, body)
        held[offset : offset + len(body)] = body
    # The in-order pass at the end leaves DATA in the file.
    assert bytes(held) == DATA
    assert stores[committer].commit(upload_id, sha(DATA)) == sha(DATA)
    with stores[0].open(sha(DATA)) as blob:
        assert blob.read() == DATA


def test_a_piece_is_handed_over_only_once_the_one_before_is_hashed() -> None:
    # Memory stays bounded: a piece waits only while none is being hashed.
    started, go_on = threading.Event(), threading.Event()

    class Slow:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def update(self, piece: bytes) -> None:
            self.seen.append(len(piece))
            started.set()
            go_on.wait(10)

    hasher = Hasher(Slow())
    hasher.update(b"a" * 10)
    assert started.wait(10)
    second = threading.Thread(target=hasher.update, args=(b"b" * 20,))
    second.start()
    second.join(0.3)
    assert second.is_alive(), "the second piece was taken while the first was being hashed"
    go_on.set()
    second.join(10)
    assert not second.is_alive()
    slow = hasher.finish()
    assert slow is not None
    assert slow.seen == [10, 20]
