"""The API's answers to storage failures, and the JSON shape of uploads and items."""

from __future__ import annotations

from server.errors import ApiError
from server.models import Item, UploadSession
from server.services import items as service
from server.storage import (
    BackendError,
    BlobNotFoundError,
    BlobTooLargeError,
    ChunkRejectedError,
    DigestMismatchError,
    IncompleteUploadError,
    RangeNotSatisfiableError,
    StorageError,
    UploadNotFoundError,
)

__all__ = ["item_json", "missing_ranges", "service_error", "storage_error", "upload_json"]

JsonObject = dict[str, object]


def storage_error(exc: StorageError) -> ApiError:
    """The API error for a storage failure; a backend failure says nothing of the backend."""
    if isinstance(exc, UploadNotFoundError):
        return ApiError.not_found("no such upload")
    if isinstance(exc, ChunkRejectedError):
        return ApiError(400, "chunk_rejected", exc.message)
    if isinstance(exc, IncompleteUploadError):
        return ApiError(409, "upload_incomplete", exc.message)
    if isinstance(exc, DigestMismatchError):
        return ApiError(422, "digest_mismatch", exc.message)
    if isinstance(exc, BlobNotFoundError):
        # A download racing a share: the item changed under it.
        return ApiError.not_found("the item changed while reading it; try again")
    if isinstance(exc, RangeNotSatisfiableError):
        return ApiError(416, "range_not_satisfiable", exc.message)
    if isinstance(exc, BlobTooLargeError):
        return ApiError(413, "too_large", exc.message)
    if isinstance(exc, BackendError):
        return ApiError(503, "storage_unavailable", "storage is unavailable; try again later")
    raise RuntimeError("internal error: unexpected storage error") from exc


def missing_ranges(size: int, received: list[tuple[int, int]]) -> list[list[int]]:
    """The gaps of ``[0, size)`` that ``received`` (sorted, disjoint) does not cover."""
    gaps: list[list[int]] = []
    position = 0
    for start, end in received:
        if start > position:
            gaps.append([position, start])
        position = max(position, end)
    if position < size:
        gaps.append([position, size])
    return gaps


def upload_json(upload: UploadSession, received: list[tuple[int, int]]) -> JsonObject:
    """An upload session as the API returns it."""
    return {
        "id": upload.id,
        "size": upload.size,
        "sha256": upload.sha256,
        "expires_at": int(upload.expires_at.timestamp()),
        "received": [[start, end] for start, end in received],
        "missing": missing_ranges(upload.size, received),
    }


def item_json(item: Item, editors: list[str]) -> JsonObject:
    """An item's server-side metadata (DESIGN.md, "Item format"), as the API returns it."""
    return {
        "id": item.id,
        "vault": item.vault_id,
        "sha256": item.payload_key,
        "size": item.payload_size,
        "header_sha256": item.header_key,
        "header_size": item.header_size,
        "created_at": int(item.created_at.timestamp()),
        "release_set": item.release_set,
        "shared_with": editors,
    }


def service_error(exc: service.ItemTooLargeError | service.QuotaExceededError) -> ApiError:
    """The 413 of an upload refused up front."""
    code = "item_too_large" if isinstance(exc, service.ItemTooLargeError) else "quota_exceeded"
    return ApiError(413, code, exc.message)
