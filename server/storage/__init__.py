"""Blob storage: the one small interface behind which ciphertext is kept.

An item is stored as two blobs, its age header and its payload. Both are
opaque ciphertext to the server and both are **content-addressed**: a blob's
key is the lowercase hex SHA-256 of its bytes, the same in every backend, so
the key itself proves what the blob holds and a backend can be swapped by
copying blobs under their keys.

Payloads arrive through **resumable uploads**: :meth:`BlobStore.begin`
declares the size, :meth:`BlobStore.write_at` stores chunks at any offset, in
any order, possibly repeated or overlapping, :meth:`BlobStore.received` tells
a client what is missing, and :meth:`BlobStore.commit` checks that every byte
is there and that the SHA-256 is the one announced before the blob exists.
Small blobs (headers) go in one step through :meth:`BlobStore.put`.

Everything is streamed in chunks of at most 1 MiB: memory does not grow with
the size of a blob. Upload ids are server-generated (:func:`new_upload_id`)
but are still checked against a strict pattern, and so are keys and digests:
no path or object name is ever built from text that did not match.

Implementations: :class:`server.storage.local.LocalBlobStore` (the default)
and :class:`server.storage.s3.S3BlobStore`.

Blobs are shared by content, so :meth:`BlobStore.delete` removes a blob for
every item that refers to it: the metadata layer must call it only when no
item (of any account) refers to the key any more.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import BinaryIO, Protocol

from vault.errors import ServerError

__all__ = [
    "CHUNK_SIZE",
    "BackendError",
    "BlobNotFoundError",
    "BlobStore",
    "BlobTooLargeError",
    "ChunkRejectedError",
    "DigestMismatchError",
    "IncompleteUploadError",
    "MalformedIdError",
    "RangeNotSatisfiableError",
    "Readable",
    "StorageError",
    "UploadExistsError",
    "UploadNotFoundError",
    "check_digest",
    "check_upload_id",
    "new_upload_id",
]

CHUNK_SIZE = 1 << 20
"""The most bytes any storage operation holds in memory at once."""

_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


class StorageError(ServerError):
    """A storage operation that was refused or could not be done."""


class MalformedIdError(StorageError):
    """An upload id, blob key or digest that is not in its strict form."""


class UploadNotFoundError(StorageError):
    """No upload session with this id: never begun, committed, aborted or expired."""


class UploadExistsError(StorageError):
    """An upload session with this id was already begun."""


class ChunkRejectedError(StorageError):
    """A chunk outside the declared size, shorter than announced, or too fragmenting."""


class IncompleteUploadError(StorageError):
    """A commit before every byte of the declared size was received."""


class DigestMismatchError(StorageError):
    """The uploaded bytes do not have the SHA-256 announced; nothing was kept."""


class BlobNotFoundError(StorageError):
    """No blob under this key."""


class BlobTooLargeError(StorageError):
    """A blob given to ``put`` that is larger than the limit set."""


class RangeNotSatisfiableError(StorageError):
    """A byte range outside the blob."""


class BackendError(StorageError):
    """The disk or the object store failed; the cause is chained, never shown."""


class Readable(Protocol):
    """Anything with ``read(n)``: a file, ``io.BytesIO``, a WSGI input stream."""

    def read(self, size: int, /) -> bytes: ...


class BlobStore(Protocol):
    """Where blobs live; every method raises a :class:`StorageError` on failure.

    Offsets and ranges are half-open byte intervals ``[start, end)``.
    """

    def begin(self, upload_id: str, size: int) -> None:
        """Open an upload session for a blob of exactly ``size`` bytes.

        Raises:
            MalformedIdError, UploadExistsError, ChunkRejectedError (negative size).
        """
        ...

    def write_at(self, upload_id: str, offset: int, data: Readable, length: int) -> None:
        """Store ``length`` bytes read from ``data`` at ``offset``.

        The range counts as received only once all of it is written and synced.

        Raises:
            UploadNotFoundError, ChunkRejectedError: the chunk ends past the
                declared size, ``data`` ends early, or the upload would be
                split into too many separate ranges.
        """
        ...

    def received(self, upload_id: str) -> list[tuple[int, int]]:
        """The merged, sorted ranges received so far.

        Raises:
            UploadNotFoundError.
        """
        ...

    def commit(self, upload_id: str, expected_sha256: str) -> str:
        """Check the upload and turn it into a blob; its key.

        The session ends on success and on a digest mismatch (then nothing is
        kept and the client must start again); it stays open when bytes are
        missing or the backend failed, so the client can resume or retry.

        Raises:
            MalformedIdError, UploadNotFoundError, IncompleteUploadError,
            DigestMismatchError, BackendError.
        """
        ...

    def abort(self, upload_id: str) -> None:
        """End an upload session and remove its bytes; nothing if there is none."""
        ...

    def expire_staging(self, before: datetime) -> int:
        """Remove upload sessions idle since before ``before``; how many were removed.

        Sessions with a write in progress are left alone.
        """
        ...

    def put(self, data: Readable, *, max_size: int | None = None) -> str:
        """Store everything ``data`` holds, up to ``max_size`` bytes, as a blob; its key.

        Raises:
            BlobTooLargeError, BackendError.
        """
        ...

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """A streaming reader of bytes ``[start, end)`` of a blob (``end`` defaults to its size).

        Raises:
            MalformedIdError, BlobNotFoundError, RangeNotSatisfiableError.
        """
        ...

    def size(self, key: str) -> int:
        """The size of a blob in bytes.

        Raises:
            MalformedIdError, BlobNotFoundError.
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Remove a blob; nothing if there is none. See the module note on sharing."""
        ...


def new_upload_id() -> str:
    """A fresh, unguessable upload id (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


def check_upload_id(upload_id: str) -> str:
    """``upload_id`` if it has the strict form of an id, else :class:`MalformedIdError`."""
    if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
        raise MalformedIdError("malformed upload id")
    return upload_id


def check_digest(digest: str) -> str:
    """``digest`` if it is 64 lowercase hex digits (a SHA-256 or a blob key), else an error."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise MalformedIdError("malformed sha-256: expected 64 lowercase hex digits")
    return digest
