"""The behaviour every blob store must have, run against each backend.

A test module subclasses :class:`BlobStoreContract` as ``Test…`` and provides
a ``store`` fixture; the class itself is not collected.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.storage import (
    BlobNotFoundError,
    BlobStore,
    BlobTooLargeError,
    ChunkRejectedError,
    DigestMismatchError,
    IncompleteUploadError,
    MalformedIdError,
    RangeNotSatisfiableError,
    StorageError,
    UploadExistsError,
    UploadNotFoundError,
    new_upload_id,
)
from vault.errors import ServerError, VaultError

KiB = 1024
MiB = 1024 * KiB


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)  # noqa: S311 — test data, not secrets


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(store: BlobStore, upload_id: str, offset: int, data: bytes) -> None:
    store.write_at(upload_id, offset, io.BytesIO(data), len(data))


def read_all(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    with store.open(key, start, end) as reader:
        return reader.read()


def upload(store: BlobStore, data: bytes, chunk: int = 64 * KiB) -> str:
    upload_id = new_upload_id()
    store.begin(upload_id, len(data))
    for offset in range(0, len(data), chunk):
        write(store, upload_id, offset, data[offset : offset + chunk])
    return store.commit(upload_id, sha(data))


class BlobStoreContract:
    """Behavioural tests shared by every backend."""

    # -- resumable uploads ---------------------------------------------------

    def test_upload_in_order(self, store: BlobStore) -> None:
        data = data_of(300 * KiB + 7)
        key = upload(store, data)
        assert key == sha(data)
        assert store.exists(key)
        assert store.size(key) == len(data)
        assert read_all(store, key) == data

    def test_chunks_in_any_order(self, store: BlobStore) -> None:
        data = data_of(10 * KiB + 3, seed=1)
        upload_id = new_upload_id()
        store.begin(upload_id, len(data))
        offsets = list(range(0, len(data), 1000))
        random.Random(2).shuffle(offsets)  # noqa: S311
        for offset in offsets:
            write(store, upload_id, offset, data[offset : offset + 1000])
        assert store.received(upload_id) == [(0, len(data))]
        assert store.commit(upload_id, sha(data)) == sha(data)
        assert read_all(store, sha(data)) == data

    def test_repeated_and_overlapping_chunks_are_merged(self, store: BlobStore) -> None:
        data = data_of(1000, seed=3)
        upload_id = new_upload_id()
        store.begin(upload_id, len(data))
        write(store, upload_id, 100, data[100:300])
        write(store, upload_id, 100, data[100:300])
        assert store.received(upload_id) == [(100, 300)]
        write(store, upload_id, 250, data[250:400])
        write(store, upload_id, 600, data[600:700])
        write(store, upload_id, 400, data[400:450])  # touches 400: merged, not separate
        assert store.received(upload_id) == [(100, 450), (600, 700)]
        write(store, upload_id, 0, data[0:1000])
        assert store.received(upload_id) == [(0, 1000)]
        assert store.commit(upload_id, sha(data)) == sha(data)

    def test_received_tells_what_is_missing(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        store.begin(upload_id, 100)
        assert store.received(upload_id) == []
        write(store, upload_id, 90, bytes(10))
        write(store, upload_id, 0, bytes(10))
        assert store.received(upload_id) == [(0, 10), (90, 100)]

    def test_write_past_declared_size_is_refused(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        store.begin(upload_id, 100)
        with pytest.raises(ChunkRejectedError, match="past the declared size"):
            write(store, upload_id, 90, bytes(11))
        with pytest.raises(ChunkRejectedError):
            write(store, upload_id, 100, b"x")
        with pytest.raises(ChunkRejectedError):
            store.write_at(upload_id, -1, io.BytesIO(b"x"), 1)
        assert store.received(upload_id) == []

    def test_short_chunk_is_refused_and_not_recorded(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        store.begin(upload_id, 100)
        with pytest.raises(ChunkRejectedError, match="shorter"):
            store.write_at(upload_id, 0, io.BytesIO(bytes(10)), 20)
        assert store.received(upload_id) == []

    def test_only_length_bytes_are_taken(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        store.begin(upload_id, 4)
        store.write_at(upload_id, 0, io.BytesIO(b"abcdefgh"), 4)
        assert store.commit(upload_id, sha(b"abcd")) == sha(b"abcd")

    def test_commit_with_missing_bytes_is_refused(self, store: BlobStore) -> None:
        data = data_of(2000, seed=4)
        upload_id = new_upload_id()
        store.begin(upload_id, len(data))
        write(store, upload_id, 0, data[:1000])
        write(store, upload_id, 1001, data[1001:])
        with pytest.raises(IncompleteUploadError):
            store.commit(upload_id, sha(data))
        assert not store.exists(sha(data))
        # The session stays so the client can send the missing byte.
        write(store, upload_id, 1000, data[1000:1001])
        assert store.commit(upload_id, sha(data)) == sha(data)

    def test_commit_with_wrong_digest_keeps_nothing(self, store: BlobStore) -> None:
        data = data_of(2000, seed=5)
        upload_id = new_upload_id()
        store.begin(upload_id, len(data))
        write(store, upload_id, 0, data)
        wrong = sha(data + b"x")
        with pytest.raises(DigestMismatchError):
            store.commit(upload_id, wrong)
        assert not store.exists(wrong)
        assert not store.exists(sha(data))
        with pytest.raises(UploadNotFoundError):
            store.received(upload_id)

    def test_tampered_chunk_fails_the_digest(self, store: BlobStore) -> None:
        data = data_of(3000, seed=6)
        upload_id = new_upload_id()
        store.begin(upload_id, len(data))
        write(store, upload_id, 0, data)
        write(store, upload_id, 1000, bytes(10))
        with pytest.raises(DigestMismatchError):
            store.commit(upload_id, sha(data))
        assert not store.exists(sha(data))

    def test_empty_upload(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        store.begin(upload_id, 0)
        assert store.received(upload_id) == []
        key = store.commit(upload_id, sha(b""))
        assert key == sha(b"")
        assert store.size(key) == 0
        assert read_all(store, key) == b""

    def test_session_ends_with_commit(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        store.begin(upload_id, 1)
        write(store, upload_id, 0, b"a")
        store.commit(upload_id, sha(b"a"))
        for call in (
            lambda: store.received(upload_id),
            lambda: write(store, upload_id, 0, b"a"),
            lambda: store.commit(upload_id, sha(b"a")),
        ):
            with pytest.raises(UploadNotFoundError):
                call()

    def test_begin_twice_is_refused(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        store.begin(upload_id, 10)
        with pytest.raises(UploadExistsError):
            store.begin(upload_id, 10)

    def test_negative_size_is_refused(self, store: BlobStore) -> None:
        with pytest.raises(ChunkRejectedError):
            store.begin(new_upload_id(), -1)

    def test_unknown_upload(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        with pytest.raises(UploadNotFoundError):
            store.received(upload_id)
        with pytest.raises(UploadNotFoundError):
            write(store, upload_id, 0, b"x")
        with pytest.raises(UploadNotFoundError):
            store.commit(upload_id, sha(b"x"))
        store.abort(upload_id)

    @pytest.mark.parametrize(
        "upload_id",
        ["../../etc/passwd", "short", "a" * 65, "a/b" + "c" * 20, "." * 20, "", "é" * 20],
    )
    def test_malformed_upload_ids_are_refused(self, store: BlobStore, upload_id: str) -> None:
        with pytest.raises(MalformedIdError):
            store.begin(upload_id, 1)
        with pytest.raises(MalformedIdError):
            store.received(upload_id)
        with pytest.raises(MalformedIdError):
            store.abort(upload_id)

    @pytest.mark.parametrize(
        "key", ["../" + "a" * 61, "A" * 64, "a" * 63, "a" * 65, "g" * 64, "a" * 63 + "\n"]
    )
    def test_malformed_keys_are_refused(self, store: BlobStore, key: str) -> None:
        for call in (
            lambda: store.open(key),
            lambda: store.size(key),
            lambda: store.exists(key),
            lambda: store.delete(key),
        ):
            with pytest.raises(MalformedIdError):
                call()
        upload_id = new_upload_id()
        store.begin(upload_id, 0)
        with pytest.raises(MalformedIdError):
            store.commit(upload_id, key)

    def test_abort_removes_the_session(self, store: BlobStore) -> None:
        upload_id = new_upload_id()
        store.begin(upload_id, 10)
        write(store, upload_id, 0, bytes(10))
        store.abort(upload_id)
        with pytest.raises(UploadNotFoundError):
            store.received(upload_id)
        store.abort(upload_id)  # again: nothing to do
        store.begin(upload_id, 10)  # the id is free again

    def test_too_many_ranges_are_refused(
        self, store: BlobStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("server.storage._staging.MAX_RANGES", 8)
        upload_id = new_upload_id()
        store.begin(upload_id, 100)
        for index in range(8):
            write(store, upload_id, 2 * index, b"x")
        with pytest.raises(ChunkRejectedError, match="too many ranges"):
            write(store, upload_id, 50, b"x")
        write(store, upload_id, 1, b"x")  # filling a gap is still fine
        assert len(store.received(upload_id)) == 7

    def test_concurrent_writers(self, store: BlobStore) -> None:
        data = data_of(256 * KiB, seed=7)
        upload_id = new_upload_id()
        store.begin(upload_id, len(data))
        offsets = list(range(0, len(data), 4 * KiB))
        errors: list[BaseException] = []

        def worker(mine: list[int]) -> None:
            try:
                for offset in mine:
                    write(store, upload_id, offset, data[offset : offset + 4 * KiB])
            except BaseException as exc:  # noqa: BLE001 — reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(offsets[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert store.received(upload_id) == [(0, len(data))]
        assert read_all(store, store.commit(upload_id, sha(data))) == data

    def test_any_chunk_order(self, store: BlobStore) -> None:
        # The property is built per call: the class runs once per backend, and
        # hypothesis wants one executor per test function.
        @settings(max_examples=25, deadline=None)
        @given(
            size=st.integers(min_value=1, max_value=5000),
            cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
            repeats=st.lists(st.integers(min_value=0, max_value=20), max_size=5),
            seed=st.integers(min_value=0, max_value=2**32),
        )
        def check(size: int, cuts: list[int], repeats: list[int], seed: int) -> None:
            data = data_of(size, seed)
            bounds = sorted({0, size, *(cut % size for cut in cuts)})
            chunks = list(itertools.pairwise(bounds))
            chunks += [chunks[index % len(chunks)] for index in repeats]
            random.Random(seed).shuffle(chunks)  # noqa: S311
            upload_id = new_upload_id()
            store.begin(upload_id, size)
            for start, end in chunks:
                write(store, upload_id, start, data[start:end])
            assert store.received(upload_id) == [(0, size)]
            key = store.commit(upload_id, sha(data))
            assert read_all(store, key) == data

        check()

    # -- expiry --------------------------------------------------------------

    def test_expiry_removes_abandoned_sessions(self, store: BlobStore) -> None:
        old, fresh = new_upload_id(), new_upload_id()
        store.begin(old, 10)
        write(store, old, 0, bytes(5))
        now = datetime.now(UTC)
        assert store.expire_staging(now - timedelta(hours=1)) == 0
        assert store.received(old) == [(0, 5)]
        assert store.expire_staging(now + timedelta(seconds=5)) == 1
        with pytest.raises(UploadNotFoundError):
            store.received(old)
        store.begin(fresh, 10)
        assert store.expire_staging(now - timedelta(hours=1)) == 0
        assert store.received(fresh) == []

    # -- blobs ---------------------------------------------------------------

    def test_content_addressing(self, store: BlobStore) -> None:
        data = data_of(5000, seed=8)
        first = upload(store, data, chunk=1000)
        second = upload(store, data, chunk=777)
        third = store.put(io.BytesIO(data))
        assert first == second == third == sha(data)
        assert read_all(store, first) == data
        other = store.put(io.BytesIO(data + b"!"))
        assert other != first

    def test_put(self, store: BlobStore) -> None:
        header = b"age-encryption.org/v1\n-> X25519 abc\nxyz\n--- mac\n"
        key = store.put(io.BytesIO(header))
        assert key == sha(header)
        assert read_all(store, key) == header
        assert store.put(io.BytesIO(b"")) == sha(b"")

    def test_put_over_limit_is_refused(self, store: BlobStore) -> None:
        data = data_of(1001, seed=9)
        with pytest.raises(BlobTooLargeError):
            store.put(io.BytesIO(data), max_size=1000)
        assert not store.exists(sha(data))
        assert store.put(io.BytesIO(data[:1000]), max_size=1000) == sha(data[:1000])

    def test_ranges(self, store: BlobStore) -> None:
        data = data_of(200 * KiB + 1, seed=10)
        key = store.put(io.BytesIO(data))
        size = len(data)
        for start, end in [(0, 1), (0, size), (5, 70000), (size - 1, size), (100, 100), (7, None)]:
            assert read_all(store, key, start, end) == data[start:end]
        with store.open(key, 10, 20000) as reader:
            assert reader.read(3) == data[10:13]
            assert reader.read(5) == data[13:18]
            assert reader.read() == data[18:20000]
            assert reader.read() == b""
        for start, end in [(-1, 5), (5, 4), (0, size + 1), (size + 1, None)]:
            with pytest.raises(RangeNotSatisfiableError):
                store.open(key, start, end)

    def test_delete(self, store: BlobStore) -> None:
        key = store.put(io.BytesIO(b"to be deleted"))
        assert store.exists(key)
        store.delete(key)
        assert not store.exists(key)
        store.delete(key)  # again: nothing to do
        with pytest.raises(BlobNotFoundError):
            store.open(key)
        with pytest.raises(BlobNotFoundError):
            store.size(key)

    def test_missing_blob(self, store: BlobStore) -> None:
        key = sha(b"never stored")
        assert not store.exists(key)
        with pytest.raises(BlobNotFoundError):
            store.open(key)
        with pytest.raises(BlobNotFoundError):
            store.size(key)

    def test_errors_belong_to_the_one_tree(self) -> None:
        assert issubclass(StorageError, ServerError)
        assert issubclass(StorageError, VaultError)
