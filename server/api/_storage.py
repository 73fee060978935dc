"""The API's answers to storage failures, the JSON shape of uploads and items, manifests."""

from __future__ import annotations

from typing import Any

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
from vault._base64 import b64decode
from vault.errors import FormatError

__all__ = [
    "item_json",
    "manifest_field",
    "missing_ranges",
    "service_error",
    "storage_error",
    "upload_json",
]

JsonObject = dict[str, object]

# Base64 of the largest manifest, with its padding.
_MAX_MANIFEST_TEXT = 4 * -(-service.MAX_MANIFEST_SIZE // 3)


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
        "item": upload.item_id,
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
        "owner": item.account_id,
        "sha256": item.payload_key,
        "size": item.payload_size,
        "header_sha256": item.header_key,
        "header_size": item.header_size,
        "manifest_sha256": item.manifest_key,
        "manifest_size": item.manifest_size,
        "disclosure_sha256": item.disclosure_key,
        "disclosure_size": item.disclosure_size,
        "created_at": int(item.created_at.timestamp()),
        "release_set": item.release_set,
        "released_in": item.released_in,
        "shared_with": editors,
    }


def service_error(exc: service.ItemTooLargeError | service.QuotaExceededError) -> ApiError:
    """The 413 of an upload refused up front."""
    code = "item_too_large" if isinstance(exc, service.ItemTooLargeError) else "quota_exceeded"
    return ApiError(413, code, exc.message)


def manifest_field(
    body: dict[str, Any], name: str = "manifest"
) -> service.EncryptedManifest | None:
    """The body's ``manifest`` (or ``name``: ``disclosure``), base64 of a small age file, parsed.

    ``None`` if absent or null. A disclosure is held to the manifest's rules.

    Raises:
        ApiError: 413 ``manifest_too_large`` (``disclosure_too_large``) above
            64 KiB; 400 ``bad_request`` for text that is not canonical padded
            base64, ``invalid_manifest`` (``invalid_disclosure``) for bytes
            that are not an age file of a manifest
            (:func:`server.services.items.parse_item_manifest`).
    """
    text = body.get(name)
    if text is None:
        return None
    too_large = ApiError(
        413,
        f"{name}_too_large",
        f"the {name} may have at most {service.MAX_MANIFEST_SIZE} bytes",
    )
    if isinstance(text, str) and len(text) > _MAX_MANIFEST_TEXT:
        raise too_large
    data = b64decode(text)
    if data is None:
        raise ApiError.bad_request(f"field {name!r} must be canonical padded base64")
    if len(data) > service.MAX_MANIFEST_SIZE:
        raise too_large
    try:
        parsed = service.parse_item_manifest(data)
    except FormatError as exc:
        message = exc.message.replace("invalid manifest", f"invalid {name}", 1)
        raise ApiError(400, f"invalid_{name}", message) from None
    return parsed
