"""Resumable uploads of an item's payload (reporters only).

- ``POST /api/v1/uploads``: ``{"size": payload bytes, "sha256": hex SHA-256
  of the payload (optional, may be null), "header": base64 age header,
  "decoy": true or false (optional), "state": base64 (optional)}`` →
  201 ``{"upload": upload}``. The header must be one canonical age v1 header
  of at most 64 KiB. ``decoy`` makes the item one of the session's decoys
  (``server.services.items``, "Layers"). ``state`` is the client's own sealed
  record for resuming the upload (at most 128 KiB), kept unread and given back
  by ``GET /uploads``. The item's id is reserved now (``upload["item"]``), so
  the client can sign a manifest naming it before the commit. An item
  larger than ``EVAULT_MAX_ITEM_SIZE`` or one that would take the account
  over ``EVAULT_QUOTA_BYTES`` is refused here with 413 (``item_too_large``,
  ``quota_exceeded``), before any byte is stored.
- ``PUT /api/v1/uploads/<id>/chunks?offset=N``: a raw
  ``application/octet-stream`` body with ``Content-Length`` (at most
  :data:`MAX_CHUNK_SIZE`), streamed to storage at ``offset`` → ``{"upload":
  upload}``. Chunks may come in any order and again; a chunk cut short
  records nothing.
- ``GET /api/v1/uploads`` → ``{"uploads": [upload with "state"]}``: the
  unfinished uploads this kind of session opened (a session under duress
  lists only its own), oldest first, each with the ``state`` it was opened
  with (base64, or null).
- ``GET /api/v1/uploads/<id>`` → ``{"upload": upload}``.
- ``POST /api/v1/uploads/<id>/commit``, with an empty body or ``{"sha256":
  hex, "manifest": base64}`` (both optional, null is the same as absent) →
  201 ``{"item": item, "receipt": tlog-proof, "entry": base64 leaf}``: size
  and SHA-256 are checked before the item exists, whose id is the one
  reserved. ``sha256`` is required if the upload declared none (400
  ``missing_digest``, the session stays) and must equal the declared one if
  both are given. ``manifest`` is the item's encrypted manifest, a whole
  binary age v1 file of at most 64 KiB: a canonical header (as for uploads)
  then at least a payload nonce and one tag; 400 ``invalid_manifest`` or 413
  ``manifest_too_large`` otherwise (the session stays, so the client can
  retry). 409 ``upload_incomplete`` if bytes are missing (the session
  stays); 422 ``digest_mismatch`` if the bytes or the given hash differ from
  the declared hash (the session ends, nothing is kept). The
  ``item.uploaded`` event names the manifest's SHA-256 and size too. With
  the request header ``Evault-Log-Size: N`` (the size of the newest
  checkpoint the client verified; 400 if not a decimal), the answer also has
  ``consistency``: ``{"old": N, "new": size, "proof": [base64 hashes]}``, the
  RFC 9162 consistency proof from N to the receipt's checkpoint, when N is
  at least 1 and below that size; so a client checks that the log extends
  what it saw without a ``GET /log/proof/consistency`` per item.
- ``DELETE /api/v1/uploads/<id>`` → ``{"aborted": id}``; the bytes are removed.

An upload is ``{"id", "item", "size", "sha256", "expires_at", "received",
"missing"}``: ``item`` the reserved item id (null for a session opened by an
older server, whose item gets a new id), ``sha256`` null until the commit if
it was not declared, the last two lists of ``[start, end)`` byte ranges.
Another account's upload, and one opened by the other kind of session, is
"not found", like an unknown one. ``entry`` in a
commit answer is the exact log entry the receipt proves.
"""

from __future__ import annotations

import socket
from typing import Any

from flask import Blueprint, request

from server._memory import release_free_memory
from server.api._request import (
    app_state,
    blob_store,
    db_session,
    json_body,
    log_signer,
    optional_json_body,
    query_ints,
    receipt_fields,
    seen_log_size,
)
from server.api._storage import (
    item_json,
    manifest_field,
    service_error,
    storage_error,
    upload_json,
)
from server.auth import current_account, requires_role, session_depth
from server.errors import ApiError
from server.models import UploadSession
from server.services import items as service
from server.storage import (
    DigestMismatchError,
    MalformedIdError,
    Readable,
    StorageError,
    UploadNotFoundError,
    check_digest,
)
from vault._base64 import b64decode, b64encode
from vault.errors import FormatError

__all__ = ["MAX_CHUNK_SIZE", "uploads_api"]

uploads_api = Blueprint("uploads", __name__)

JsonObject = dict[str, object]

MAX_CHUNK_SIZE = 64 * 1024 * 1024
"""Largest chunk one request may carry; it is streamed, never held whole."""
# Base64 of the largest header, with its padding.
_MAX_HEADER_TEXT = 4 * -(-service.MAX_HEADER_SIZE // 3)
_MAX_STATE_TEXT = 4 * -(-service.MAX_CLIENT_STATE // 3)


def _limits() -> service.Limits:
    config = app_state().config
    return service.Limits(max_item_size=config.max_item_size, quota_bytes=config.quota_bytes)


def _find(upload_id: str) -> UploadSession:
    try:
        return service.find_upload(
            db_session(), current_account(), upload_id, depth=session_depth()
        )
    except service.UploadGoneError:
        raise ApiError.not_found("no such upload") from None


def _digest_field(body: dict[str, Any]) -> str | None:
    value = body.get("sha256")
    if value is None:
        return None
    try:
        return check_digest(value)
    except MalformedIdError:
        raise ApiError.bad_request("field 'sha256' must be 64 lowercase hex digits") from None


def _upload_answer(upload: UploadSession) -> JsonObject:
    try:
        received = blob_store().received(upload.id)
    except StorageError as exc:
        raise storage_error(exc) from None
    return {"upload": upload_json(upload, received)}


@uploads_api.post("")
@requires_role("reporter")
def create() -> tuple[JsonObject, int]:
    """Open an upload session, refusing up front what exceeds the limits."""
    body = json_body()
    unknown = sorted(set(body) - {"size", "sha256", "header", "decoy", "state"})
    if unknown:
        raise ApiError.bad_request(f"unknown field {unknown[0]!r}")
    for name in ("size", "header"):
        if name not in body:
            raise ApiError.bad_request(f"missing field {name!r}")
    size = body["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ApiError.bad_request("field 'size' must be a positive integer")
    sha256 = _digest_field(body)
    text = body["header"]
    if isinstance(text, str) and len(text) > _MAX_HEADER_TEXT:
        raise ApiError(413, "header_too_large", "the header may have at most 65536 bytes")
    header = b64decode(text)
    if header is None:
        raise ApiError.bad_request("field 'header' must be canonical padded base64")
    try:
        service.parse_item_header(header)
    except FormatError as exc:
        raise ApiError(400, "invalid_header", exc.message) from None
    decoy = body.get("decoy", False)
    if not isinstance(decoy, bool):
        raise ApiError.bad_request("field 'decoy' must be true or false")
    state = None
    if body.get("state") is not None:
        given = body["state"]
        state = (
            b64decode(given) if isinstance(given, str) and len(given) <= _MAX_STATE_TEXT else None
        )
        if state is None or not 0 < len(state) <= service.MAX_CLIENT_STATE:
            raise ApiError.bad_request(
                "field 'state' must be canonical padded base64 of 1 to "
                f"{service.MAX_CLIENT_STATE} bytes"
            )
    session = db_session()
    try:
        upload = service.create_upload(
            session,
            blob_store(),
            account=current_account(),
            size=size,
            sha256=sha256,
            header=header,
            limits=_limits(),
            depth=session_depth(),
            decoy=decoy,
            client_state=state,
        )
    except (service.ItemTooLargeError, service.QuotaExceededError) as exc:
        raise service_error(exc) from None
    except StorageError as exc:
        raise storage_error(exc) from None
    session.commit()
    return {"upload": upload_json(upload, [])}, 201


@uploads_api.get("")
@requires_role("reporter")
def unfinished() -> JsonObject:
    """The unfinished uploads this kind of session opened, with their clients' records."""
    query_ints(required=())
    session = db_session()
    store = blob_store()
    found = []
    try:
        for upload in service.open_uploads(session, current_account(), depth=session_depth()):
            try:
                received = store.received(upload.id)
            except UploadNotFoundError:
                # Its bytes are gone (the server stopped in the middle of its commit):
                # nothing to resume, and no reason to refuse the others.
                continue
            answer = upload_json(upload, received)
            state = upload.client_state
            answer["state"] = None if state is None else b64encode(state)
            found.append(answer)
    except StorageError as exc:
        raise storage_error(exc) from None
    session.commit()
    return {"uploads": found}


@uploads_api.get("/<upload_id>")
@requires_role("reporter")
def status(upload_id: str) -> JsonObject:
    """The ranges received so far and those still missing."""
    query_ints(required=())
    upload = _find(upload_id)
    db_session().commit()
    return _upload_answer(upload)


@uploads_api.put("/<upload_id>/chunks")
@requires_role("reporter")
def chunk(upload_id: str) -> JsonObject:
    """Store the body at ``offset``, streamed in bounded pieces."""
    offset = query_ints(required=("offset",))["offset"]
    upload = _find(upload_id)
    # No transaction stays open while the body arrives.
    db_session().commit()
    if request.mimetype != "application/octet-stream":
        raise ApiError(415, "unsupported_media_type", "the body must be application/octet-stream")
    length = request.content_length
    if length is None:
        raise ApiError(411, "length_required", "the chunk needs a Content-Length")
    if length > MAX_CHUNK_SIZE:
        raise ApiError(413, "too_large", f"a chunk may have at most {MAX_CHUNK_SIZE} bytes")
    if offset + length > upload.size:
        raise ApiError(
            400, "chunk_rejected", f"chunk ends past the declared size of {upload.size} bytes"
        )
    # A client whose connection died while the server's side stays open would
    # otherwise keep this request, and the session's lock, waiting forever:
    # under gunicorn, a read that gets nothing for EVAULT_READ_TIMEOUT seconds
    # fails. (The embedded server reads whole bodies before any view runs.)
    sock = request.environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        sock.settimeout(app_state().config.read_timeout)
    # Exactly ``length`` bytes are read from the server's own input stream:
    # werkzeug's wrapper would copy every piece twice more. A dropped
    # connection is a short read or an OSError, both refused by the store.
    body: Readable = request.environ["wsgi.input"]
    try:
        blob_store().write_at(upload.id, offset, body, length)
    except StorageError as exc:
        raise storage_error(exc) from None
    finally:
        # The body's buffers would otherwise stay with this worker while it idles.
        release_free_memory()
    return _upload_answer(upload)


@uploads_api.post("/<upload_id>/commit")
@requires_role("reporter")
def commit(upload_id: str) -> tuple[JsonObject, int]:
    """Check size and hash, then create the item with its manifest and log ``item.uploaded``."""
    query_ints(required=())
    seen_log_size()  # a malformed header is refused before anything is done
    body = optional_json_body() or {}
    unknown = sorted(set(body) - {"sha256", "manifest", "release", "disclosure"})
    if unknown:
        raise ApiError.bad_request(f"unknown field {unknown[0]!r}")
    release = body.get("release", False)
    if not isinstance(release, bool):
        raise ApiError.bad_request("field 'release' must be true or false")
    sha256 = _digest_field(body)
    manifest = manifest_field(body)
    disclosure = manifest_field(body, "disclosure")
    session = db_session()
    try:
        committed = service.commit_upload(
            session,
            blob_store(),
            account=current_account(),
            upload_id=upload_id,
            signer=log_signer(),
            sha256=sha256,
            manifest=manifest,
            release=release,
            depth=session_depth(),
            disclosure=disclosure,
        )
    except service.UploadGoneError:
        raise ApiError.not_found("no such upload") from None
    except service.MissingDigestError as exc:
        raise ApiError(400, "missing_digest", exc.message) from None
    except service.BlobMissingError as exc:
        raise ApiError(409, "upload_again", exc.message) from None
    except service.NotInReleaseError as exc:
        raise ApiError(409, "not_armed", exc.message) from None
    except service.UnexpectedDisclosureError as exc:
        raise ApiError(400, "unexpected_disclosure", exc.message) from None
    except StorageError as exc:
        if isinstance(exc, DigestMismatchError):
            # The session ended with its bytes; so does its row.
            session.commit()
        raise storage_error(exc) from None
    logged = receipt_fields(committed.appended, consistency=True)
    session.commit()
    return {"item": item_json(committed.item, []), **logged}, 201


@uploads_api.delete("/<upload_id>")
@requires_role("reporter")
def abort(upload_id: str) -> JsonObject:
    """End the session and remove its bytes."""
    query_ints(required=())
    session = db_session()
    upload = _find(upload_id)
    try:
        service.abort_upload(session, blob_store(), upload)
    except StorageError as exc:
        raise storage_error(exc) from None
    session.commit()
    return {"aborted": upload.id}
