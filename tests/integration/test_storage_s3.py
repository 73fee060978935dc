"""The S3 blob store over real HTTP, against moto's standalone S3 server on loopback.

The same behavioural contract as the local store runs here, plus what only
S3 has: multipart uploads, ranged reads across parts, abandoned multipart
uploads, and backend failures reported as :class:`BackendError`.
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.storage import CHUNK_SIZE, BackendError, new_upload_id
from server.storage._io import FileWindow
from server.storage.s3 import MIN_PART_SIZE, S3BlobStore
from tests.unit.server_storage.contract import BlobStoreContract, MiB, data_of, read_all, sha

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]


@pytest.fixture
def store(s3_client: Any, bucket: str, tmp_path: Path) -> S3BlobStore:
    return S3BlobStore(
        bucket, staging_dir=tmp_path / "staging", client=s3_client, part_size=MIN_PART_SIZE
    )


class TestS3BlobStore(BlobStoreContract):
    pass


def _upload_large(store: S3BlobStore, data: bytes) -> str:
    upload_id = new_upload_id()
    store.begin(upload_id, len(data))
    chunk = MiB
    offsets = list(range(0, len(data), chunk))
    for offset in reversed(offsets):  # last chunk first: order must not matter
        piece = data[offset : offset + chunk]
        store.write_at(upload_id, offset, io.BytesIO(piece), len(piece))
    return store.commit(upload_id, sha(data))


def test_multipart_upload_and_ranged_reads(store: S3BlobStore, s3_client: Any, bucket: str) -> None:
    data = data_of(20 * MiB + 12345, seed=20)
    key = _upload_large(store, data)
    assert key == sha(data)
    head = s3_client.head_object(Bucket=bucket, Key=f"blobs/{key}")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-5")  # five parts of 5 MiB (the last shorter)
    assert store.size(key) == len(data)
    # Ranges inside a part, across part boundaries, and at the end.
    boundary = MIN_PART_SIZE
    for start, end in [
        (0, 10),
        (boundary - 5, boundary + 5),
        (3 * boundary - 1, 4 * boundary + 1),
        (len(data) - 1, len(data)),
    ]:
        assert read_all(store, key, start, end) == data[start:end]
    digest = hashlib.sha256()
    with store.open(key) as reader:
        while chunk := reader.read(MiB):
            digest.update(chunk)
    assert digest.hexdigest() == key
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_put_of_a_large_blob_uses_multipart(
    store: S3BlobStore, s3_client: Any, bucket: str
) -> None:
    data = data_of(MIN_PART_SIZE + 1, seed=21)
    key = store.put(io.BytesIO(data))
    head = s3_client.head_object(Bucket=bucket, Key=f"blobs/{key}")
    assert head["ETag"].strip('"').endswith("-2")
    assert read_all(store, key) == data


def test_only_blobs_under_the_prefix(store: S3BlobStore, s3_client: Any, bucket: str) -> None:
    key = store.put(io.BytesIO(b"header"))
    listed = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == [f"blobs/{key}"]


def test_expiry_aborts_abandoned_multipart_uploads(
    store: S3BlobStore, s3_client: Any, bucket: str
) -> None:
    started = s3_client.create_multipart_upload(Bucket=bucket, Key="blobs/" + "0" * 64)
    s3_client.upload_part(
        Bucket=bucket,
        Key="blobs/" + "0" * 64,
        UploadId=started["UploadId"],
        PartNumber=1,
        Body=b"left behind",
    )
    # moto reports every multipart upload as initiated on 2010-11-10.
    store.expire_staging(datetime(2010, 1, 1, tzinfo=UTC))
    assert len(s3_client.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 1
    store.expire_staging(datetime.now(UTC) + timedelta(minutes=5))
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_client_made_from_the_endpoint(
    s3_client: Any, s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    store = S3BlobStore(bucket, staging_dir=tmp_path, endpoint_url=s3_endpoint)
    key = store.put(io.BytesIO(b"made by the store"))
    assert read_all(store, key) == b"made by the store"


def test_backend_failure_is_a_backend_error(s3_client: Any, tmp_path: Path) -> None:
    store = S3BlobStore("no-such-bucket", staging_dir=tmp_path, client=s3_client)
    with pytest.raises(BackendError, match="storage backend failed") as caught:
        store.put(io.BytesIO(b"x"))
    assert "no-such-bucket" not in str(caught.value)
    upload_id = new_upload_id()
    store.begin(upload_id, 1)
    store.write_at(upload_id, 0, io.BytesIO(b"x"), 1)
    with pytest.raises(BackendError):
        store.commit(upload_id, sha(b"x"))
    # The session survives a failed upload, so the commit can be retried.
    assert store.received(upload_id) == [(0, 1)]


def test_part_size_below_the_s3_minimum_is_refused(s3_client: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3BlobStore("b", staging_dir=tmp_path, client=s3_client, part_size=MiB)


def test_parts_are_streamed_from_disk_in_bounded_reads(
    s3_client: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto runs in this process, so tracemalloc would count its copy of the
    # object too: instead, check that boto3 only ever asks for bounded reads.
    requested: list[int] = []

    class Recording(FileWindow):
        def read(self, size: int = -1, /) -> bytes:
            requested.append(size)
            return super().read(size)

        def readinto(self, buffer: Any, /) -> int:
            requested.append(len(memoryview(buffer)))
            return super().readinto(buffer)

    monkeypatch.setattr("server.storage.s3.FileWindow", Recording)
    store = S3BlobStore(bucket, staging_dir=tmp_path, client=s3_client, part_size=MIN_PART_SIZE)
    data = data_of(2 * MIN_PART_SIZE + 5, seed=22)
    key = store.put(io.BytesIO(data))
    assert read_all(store, key) == data
    assert requested
    assert all(0 <= size <= CHUNK_SIZE for size in requested), sorted(set(requested))
