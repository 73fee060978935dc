"""Blobs in S3-compatible object storage, over boto3.

Blobs are objects named ``<prefix><hex sha-256>`` in one bucket. Resumable
upload sessions are staged on local disk (``staging_dir``), because S3
multipart parts must be at least 5 MiB and cannot be written at arbitrary
offsets; with several server processes the staging directory must be shared
between them on one machine (its locks are local ``flock`` locks, which NFS
does not keep per open file), or uploads routed stickily to one machine.

``commit`` verifies the staged file (size, then SHA-256, streamed) under the
session's exclusive lock and only then uploads it: in one ``PutObject`` up to
``part_size``, else with an explicit multipart upload whose parts are read
from disk through a bounded window, so memory stays at about one buffer
whatever the size. A multipart upload that fails is aborted; one abandoned by
a crash is aborted by :meth:`S3BlobStore.expire_staging`. Reads are ranged
``GetObject`` requests streamed from the response body.

The credentials need ``s3:GetObject``, ``s3:PutObject``, ``s3:DeleteObject``,
``s3:AbortMultipartUpload`` and ``s3:ListBucket`` (without the last, S3 answers
403 instead of 404 for a missing blob, which is reported as a backend failure).
The bucket should have versioning off (or a lifecycle rule expiring
non-current versions), or ``delete`` leaves old versions behind.
"""

from __future__ import annotations

import contextlib
import io
import os
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from server.storage import (
    BlobNotFoundError,
    RangeNotSatisfiableError,
    Readable,
    check_digest,
)
from server.storage._io import FileWindow, RangeReader, backend_errors, buffered, spool
from server.storage._staging import StagingArea, remove_stale_files

__all__ = ["MIN_PART_SIZE", "S3BlobStore"]

MIN_PART_SIZE = 5 * 1024 * 1024
"""The smallest part S3 accepts in a multipart upload (all but the last part)."""

_MAX_PARTS = 10_000
_BACKEND = (BotoCoreError, ClientError, OSError)
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def _is_not_found(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return str(error.get("Code")) in _NOT_FOUND


class S3BlobStore:
    """A :class:`server.storage.BlobStore` in an S3 bucket (see the module docstring).

    ``client`` is a boto3 S3 client; without it one is made from
    ``endpoint_url``, ``region`` and boto3's usual credential chain.
    """

    def __init__(
        self,
        bucket: str,
        *,
        staging_dir: Path,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        prefix: str = "blobs/",
        part_size: int = 8 * 1024 * 1024,
        client: object | None = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes")
        if client is None:
            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                config=Config(retries={"mode": "standard", "max_attempts": 5}),
            )
        self._client: Any = client
        self._bucket = bucket
        self._prefix = prefix
        self._part_size = part_size
        staging_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._tmp = staging_dir / "tmp"
        self._tmp.mkdir(mode=0o700, exist_ok=True)
        self._staging = StagingArea(staging_dir / "staging")

    def _name(self, key: str) -> str:
        return self._prefix + check_digest(key)

    # -- uploads -------------------------------------------------------------

    @backend_errors(*_BACKEND)
    def begin(self, upload_id: str, size: int) -> None:
        self._staging.begin(upload_id, size)

    @backend_errors(*_BACKEND)
    def write_at(self, upload_id: str, offset: int, data: Readable, length: int) -> None:
        self._staging.write_at(upload_id, offset, data, length)

    @backend_errors(*_BACKEND)
    def received(self, upload_id: str) -> list[tuple[int, int]]:
        return self._staging.received(upload_id)

    @backend_errors(*_BACKEND)
    def commit(self, upload_id: str, expected_sha256: str) -> str:
        name = self._name(expected_sha256)
        with self._staging.committing(upload_id, expected_sha256) as (fd, size):
            if self._head(name) is None:
                self._upload(fd, size, name)
        return expected_sha256

    @backend_errors(*_BACKEND)
    def abort(self, upload_id: str) -> None:
        self._staging.abort(upload_id)

    @backend_errors(*_BACKEND)
    def expire_staging(self, before: datetime) -> int:
        remove_stale_files(self._tmp, before)
        removed = self._staging.expire(before)
        # Multipart uploads left by a crash hold parts (ciphertext) until aborted.
        paginator = self._client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() < before.timestamp():
                    self._client.abort_multipart_upload(
                        Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
        return removed

    def _upload(self, fd: int, size: int, name: str) -> None:
        if size <= self._part_size:
            self._client.put_object(
                Bucket=self._bucket, Key=name, Body=FileWindow(fd, 0, size), ContentLength=size
            )
            return
        part_size = max(self._part_size, -(-size // _MAX_PARTS))
        upload_id = self._client.create_multipart_upload(Bucket=self._bucket, Key=name)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, part_size), start=1):
                end = min(start + part_size, size)
                answer = self._client.upload_part(
                    Bucket=self._bucket,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=FileWindow(fd, start, end),
                    ContentLength=end - start,
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(*_BACKEND):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=name, UploadId=upload_id
                )
            raise

    # -- blobs ---------------------------------------------------------------

    def _head(self, name: str) -> int | None:
        """The size of object ``name``, or ``None`` if there is none."""
        try:
            answer = self._client.head_object(Bucket=self._bucket, Key=name)
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise
        return int(answer["ContentLength"])

    @backend_errors(*_BACKEND)
    def put(self, data: Readable, *, max_size: int | None = None) -> str:
        # Spooled to disk first: the key is the hash, known only at the end.
        path, size, key = spool(data, self._tmp, max_size)
        try:
            name = self._name(key)
            if self._head(name) is None:
                fd = os.open(path, os.O_RDONLY)
                try:
                    self._upload(fd, size, name)
                finally:
                    os.close(fd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return key

    @backend_errors(*_BACKEND)
    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        name = self._name(key)
        size = self._head(name)
        if size is None:
            raise BlobNotFoundError("no such blob")
        stop = size if end is None else end
        if not 0 <= start <= stop <= size:
            raise RangeNotSatisfiableError(f"range not satisfiable: blob has {size} bytes")
        if start == stop:
            return io.BytesIO(b"")
        try:
            answer = self._client.get_object(
                Bucket=self._bucket, Key=name, Range=f"bytes={start}-{stop - 1}"
            )
        except ClientError as exc:
            if _is_not_found(exc):
                raise BlobNotFoundError("no such blob") from None
            raise
        body = answer["Body"]

        @backend_errors(*_BACKEND)
        def read(count: int) -> bytes:
            return cast(bytes, body.read(count))

        return buffered(RangeReader(read, stop - start, body.close))

    @backend_errors(*_BACKEND)
    def size(self, key: str) -> int:
        size = self._head(self._name(key))
        if size is None:
            raise BlobNotFoundError("no such blob")
        return size

    @backend_errors(*_BACKEND)
    def exists(self, key: str) -> bool:
        return self._head(self._name(key)) is not None

    @backend_errors(*_BACKEND)
    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=self._name(key))
