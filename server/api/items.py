"""Items: list, metadata, streamed download with ranges, manifest, share, delete.

- ``GET /api/v1/items?limit=N&after=ID&decoys=0|1&with=manifest`` (reporter,
  editor): ``{"items": [item, …], "next": ID or null}``, a reporter's own
  items (with ``decoys=1``, their decoy items) or the items shared with an
  editor, oldest first, ``limit`` (default 100, at most 1000) at a time;
  ``next`` is the ``after`` of the following page. With ``with=manifest``
  each item also holds ``"manifest"``: its encrypted manifest in base64,
  exactly the bytes ``/items/<id>/manifest`` gives (null for an item without
  one), so a listing takes one request per page rather than one per item;
  such a page ends early once it holds :data:`MAX_PAGE_MANIFEST_BYTES` of
  manifests (``next`` then names where to go on).
- ``GET /api/v1/items/history?limit=N&after=ID`` (reporter): ``{"items":
  [ids], "next": ID or null, "moves_until": index or null}``, every item id
  the reporter ever had in this session's view (its items and its decoys),
  deleted ones too, sorted. ``moves_until``, for a session under duress that
  was shown a switch of its own, is the log index from which the real
  switch's moves (overdue, releasing, released) are not that switch's.
- ``GET /api/v1/items/<id>/entries`` (the owning reporter): ``{"entries":
  [{"receipt": tlog-proof, "entry": base64 leaf}, …]}``, the item's upload
  and share entries, oldest first, each with the receipt its write was
  answered with (against the checkpoint signed right after it).
- ``GET /api/v1/items/<id>`` (reporter, editor): ``{"item": item}``.
- ``GET /api/v1/items/<id>/content`` (reporter, editor): the age file, header
  then payload, as ``application/octet-stream`` with ``Content-Length`` and
  ``Accept-Ranges: bytes``; one ``Range: bytes=…`` gives 206 with
  ``Content-Range``, an unsatisfiable one 416. The body is streamed in pieces
  of at most 1 MiB. Each download appends an ``item.downloaded`` event; its
  log index is in the ``Evault-Log-Index`` header (the receipt is at
  ``/api/v1/log/proof/inclusion``).
- ``GET /api/v1/items/<id>/manifest`` (reporter, editor): the item's
  encrypted manifest, a whole age file, as ``application/octet-stream``
  with a strong ``ETag``; 404 ``no_manifest`` for an item without one. It
  is not logged: a few hundred bytes of metadata of an item the caller may
  already download, and each download of the item itself is logged.
- ``POST /api/v1/items/<id>/share`` (the owning reporter): ``{"header":
  base64 re-wrapped age header, "editors": [account ids], "manifest": base64
  re-wrapped manifest}`` → ``{"item": item, "receipt": tlog-proof, "entry":
  base64 leaf}``. The header replaces the old one (the payload is
  untouched) and must keep every stanza of the old one (400
  ``invalid_header`` otherwise); ``editors`` is the whole new set. An item
  with a manifest needs ``manifest`` (400 ``missing_manifest``): the current
  one re-wrapped, keeping every stanza of its header (400
  ``invalid_manifest`` otherwise) and everything after the header byte for
  byte (400 ``manifest_changed`` otherwise); an item without one takes none
  (400 ``unexpected_manifest``). Logs ``item.shared``, with the manifest's
  hash and size if there is one. 400 ``unknown_editor`` for an id that is
  not an editor. The old header and manifest blobs are kept.
- ``DELETE /api/v1/items/<id>`` (the owning reporter): ``{"receipt":
  tlog-proof, "entry": base64 leaf}``; the item is gone from the API, its
  ciphertext is kept for the cooling-off sweep.

An item is ``{"id", "vault", "owner", "sha256", "size", "header_sha256",
"header_size", "manifest_sha256", "manifest_size", "created_at",
"release_set", "shared_with"}``: the owning reporter's account id, the
payload's hash and size, the header's, the manifest's (both null for an item
without one), Unix seconds, and editor ids (an editor sees only their own).
Anything another account may not see is "not found", like an id that does
not exist; operators see no items at all. A reporter's session sees one
layer of items and the next as its decoys (``server.services.items``,
"Layers"): under duress, the decoy vault is the whole vault. ``entry`` is the exact log entry
the receipt proves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO

from flask import Blueprint, Response, g, request

from server.api._request import (
    app_state,
    blob_store,
    db_session,
    json_body,
    log_signer,
    query_ints,
    receipt_fields,
)
from server.api._storage import item_json, manifest_field, storage_error
from server.auth import current_account, requires_role, session_depth
from server.errors import ApiError
from server.models import Account, Item, LogCheckpoint
from server.services import items as service
from server.services import log as log_service
from server.services import switch as switch_service
from server.storage import CHUNK_SIZE, BlobStore, StorageError
from vault._base64 import b64decode, b64encode
from vault.errors import FormatError
from vault.protocol import parse_account_id

__all__ = ["items_api"]

PAGE_SIZE = 100
"""Items in one page of ``GET /items`` unless ``limit`` says otherwise."""
MAX_PAGE_SIZE = 1000
MAX_PAGE_MANIFEST_BYTES = 4 << 20
"""Manifest bytes after which a page of ``GET /items?with=manifest`` ends.

Manifests are a few KiB each but may have 64 KiB: without this bound a page
of 1000 could hold 64 MiB, all of it in a worker's memory at once."""

items_api = Blueprint("items", __name__)

JsonObject = dict[str, object]


def _visible(item_id: str) -> Item:
    try:
        return service.visible_item(db_session(), current_account(), item_id, depth=session_depth())
    except service.ItemNotFoundError:
        raise ApiError.not_found("no such item") from None


def _editors(account: Account, item: Item, editors: list[str]) -> list[str]:
    # An editor learns nothing about who else can read the item.
    return editors if item.account_id == account.id else [account.id]


@items_api.get("")
@requires_role("reporter", "editor")
def list_items() -> JsonObject:
    """One page of the items this account may see, oldest first (with manifests if asked)."""
    given = query_ints(required=(), optional=("limit", "decoys"), text=("after", "with"))
    limit = given.get("limit", PAGE_SIZE)
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ApiError.bad_request(f"query parameter 'limit' must be from 1 to {MAX_PAGE_SIZE}")
    decoys = given.get("decoys", 0)
    if decoys not in (0, 1):
        raise ApiError.bad_request("query parameter 'decoys' must be 0 or 1")
    extra = request.args.get("with")
    if extra not in (None, "manifest"):
        raise ApiError.bad_request("query parameter 'with' must be 'manifest'")
    after = request.args.get("after")
    account = current_account()
    session = db_session()
    try:
        # One more than asked says whether another page follows.
        found = service.list_items(
            session,
            account,
            limit=limit + 1,
            after=after,
            depth=session_depth(),
            decoys=bool(decoys),
        )
    except service.ItemNotFoundError:
        raise ApiError.bad_request("query parameter 'after' is not one of your items") from None
    page = list(found[:limit])
    manifests: dict[str, str | None] = {}
    if extra == "manifest":
        page, manifests = _with_manifests(page)
    shares = service.shared_with(session, page)
    answer = []
    for item in page:
        shown = item_json(item, _editors(account, item, shares[item.id]))
        if extra == "manifest":
            shown["manifest"] = manifests[item.id]
        answer.append(shown)
    more = len(found) > len(page)
    return {"items": answer, "next": page[-1].id if more else None}


def _with_manifests(page: list[Item]) -> tuple[list[Item], dict[str, str | None]]:
    """The page cut after :data:`MAX_PAGE_MANIFEST_BYTES` of manifests, and each in base64.

    The items are those the list shows, so each manifest is one the caller
    may fetch alone from ``/items/<id>/manifest``, byte for byte.
    """
    store = blob_store()
    manifests: dict[str, str | None] = {}
    held = 0
    for count, item in enumerate(page):
        if count and held >= MAX_PAGE_MANIFEST_BYTES:
            return page[:count], manifests
        data = _manifest_bytes(store, item)
        manifests[item.id] = None if data is None else b64encode(data)
        held += 0 if data is None else len(data)
    return page, manifests


def _manifest_bytes(store: BlobStore, item: Item) -> bytes | None:
    """The item's encrypted manifest as stored, or None for an item without one."""
    if item.manifest_key is None or item.manifest_size is None:
        return None
    try:
        with store.open(item.manifest_key) as reader:
            data = reader.read(service.MAX_MANIFEST_SIZE + 1)
    except StorageError as exc:
        raise storage_error(exc) from None
    if len(data) != item.manifest_size:
        raise RuntimeError("internal error: a stored manifest of another size")
    return data


@items_api.get("/history")
@requires_role("reporter")
def history() -> JsonObject:
    """Ids of every item this session's view ever held, deleted ones too, a page at a time."""
    limit = query_ints(required=(), optional=("limit",), text=("after",)).get("limit", PAGE_SIZE)
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ApiError.bad_request(f"query parameter 'limit' must be from 1 to {MAX_PAGE_SIZE}")
    after = request.args.get("after")
    session = db_session()
    account = current_account()
    found = service.item_history(
        session, account, depth=session_depth(), limit=limit + 1, after=after
    )
    moves_until = None
    if session_depth() > 0 and account.vault_id is not None:
        switch = switch_service.find_switch(session, account.vault_id)
        moves_until = None if switch is None else switch_service.view_since(switch)
    session.commit()
    page = list(found[:limit])
    return {
        "items": page,
        "next": page[-1] if len(found) > limit else None,
        "moves_until": moves_until,
    }


@items_api.get("/<item_id>/entries")
@requires_role("reporter")
def entries(item_id: str) -> JsonObject:
    """The item's upload and share entries, each with the receipt its write was answered with."""
    query_ints(required=())
    session = db_session()
    item = _visible(item_id)
    if item.account_id != current_account().id:
        raise ApiError.not_found("no such item")
    found = service.item_entries(session, item, types=("item.uploaded", "item.shared"))
    latest = log_service.latest_checkpoint(session)
    answer = []
    for entry in found:
        # The receipt its write was answered with: against the checkpoint signed with it.
        signed = session.get(LogCheckpoint, entry.idx + 1) or latest
        receipt = log_service.receipt(session, entry.idx, signed)
        answer.append({"receipt": receipt.marshal().decode(), "entry": b64encode(entry.data)})
    session.commit()
    return {"entries": answer}


@items_api.get("/<item_id>")
@requires_role("reporter", "editor")
def metadata(item_id: str) -> JsonObject:
    """One item's metadata."""
    query_ints(required=())
    item = _visible(item_id)
    editors = service.shared_with(db_session(), [item])[item.id]
    return {"item": item_json(item, _editors(current_account(), item, editors))}


def _etag(item: Item) -> str:
    """A strong entity tag of the age file: it changes when sharing replaces the header."""
    both = f"{item.header_key}:{item.payload_key}".encode("ascii")
    return '"' + hashlib.sha256(both).hexdigest()[:32] + '"'


def _range(total: int, etag: str) -> tuple[int, int] | None:
    """The one byte range asked for, ``None`` for the whole; 416 if unsatisfiable."""
    asked = request.range
    if asked is None or asked.units != "bytes" or len(asked.ranges) != 1:
        # No, a malformed, another unit's or a multi-range header: the whole
        # body (RFC 9110, 14.2, lets a server ignore Range).
        return None
    condition = request.headers.get("If-Range")
    if condition is not None and condition.strip() != etag:
        # A download resumed across a share (or with a date, or a weak tag):
        # its first bytes belong to another header, so it gets the whole file.
        return None
    found = asked.range_for_length(total)
    if found is None:
        raise ApiError(
            416,
            "range_not_satisfiable",
            f"the range is outside the item's {total} bytes",
            headers={"Content-Range": f"bytes */{total}"},
        )
    return found


def _stream(head: bytes, payload: BinaryIO | None) -> Iterator[bytes]:
    try:
        if head:
            yield head
        if payload is not None:
            while piece := payload.read(CHUNK_SIZE):
                yield piece
    finally:
        if payload is not None:
            payload.close()


@items_api.get("/<item_id>/content")
@requires_role("reporter", "editor")
def content(item_id: str) -> Response:
    """The age file of an item, streamed: its header, then its payload."""
    query_ints(required=())
    account = current_account()
    session = db_session()
    item = _visible(item_id)
    total = item.header_size + item.payload_size
    etag = _etag(item)
    asked = _range(total, etag)
    start, stop = asked if asked is not None else (0, total)
    store = blob_store()
    try:
        head = b""
        if start < item.header_size:
            with store.open(item.header_key) as reader:
                head = reader.read(item.header_size)[start:stop]
        payload = None
        if stop > item.header_size:
            payload = store.open(
                item.payload_key,
                max(0, start - item.header_size),
                stop - item.header_size,
            )
    except StorageError as exc:
        raise storage_error(exc) from None
    try:
        appended = service.log_download(session, account, item, log_signer())
        session.commit()
    except BaseException:
        if payload is not None:
            payload.close()
        raise
    headers = {
        "Content-Length": str(stop - start),
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Evault-Log-Index": str(appended.entry.idx),
    }
    if asked is not None:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{total}"
    return Response(
        _stream(head, payload),
        status=206 if asked is not None else 200,
        mimetype="application/octet-stream",
        headers=headers,
        direct_passthrough=True,
    )


def _manifest_etag(item: Item) -> str:
    """A strong entity tag of the manifest: its content address, shortened as for content."""
    if item.manifest_key is None:
        raise RuntimeError("internal error: an entity tag of no manifest")
    return '"' + item.manifest_key[:32] + '"'


@items_api.get("/<item_id>/manifest")
@requires_role("reporter", "editor")
def manifest(item_id: str) -> Response:
    """The encrypted manifest of an item, whole; not logged (see the module docstring)."""
    query_ints(required=())
    item = _visible(item_id)
    data = _manifest_bytes(blob_store(), item)
    if data is None:
        raise ApiError(404, "no_manifest", "the item has no manifest")
    return Response(
        data,
        mimetype="application/octet-stream",
        headers={"ETag": _manifest_etag(item)},
    )


@items_api.delete("/<item_id>")
@requires_role("reporter")
def remove(item_id: str) -> tuple[JsonObject, int]:
    """Delete an owned item and log ``item.deleted`` — or, in an armed vault, ask to.

    In an armed vault (and in any session under duress) the delete waits out
    the cooling-off delay: 202 ``{"status": "pending", "change", "receipt",
    "entry"}`` with the logged ``change.requested``.
    """
    query_ints(required=())
    session = db_session()
    account = current_account()
    token = g.get("token")
    duress = bool(token is not None and token.duress)
    try:
        item = service.visible_item(session, account, item_id, depth=session_depth())
        if item.account_id != account.id:
            raise service.ItemNotFoundError("no such item")
        requested = switch_service.request_delete(
            session,
            account=account,
            item=item,
            duress=duress,
            now=app_state().clock.now(),
            signer=log_signer(),
        )
        if requested is not None:
            switch = switch_service.find_switch(session, item.vault_id)
            if switch is None or requested.change is None:
                raise RuntimeError("internal error: a pending delete without its switch")
            pending: JsonObject = {
                "status": "pending",
                "change": switch_service.change_json(session, switch, requested.change),
                **receipt_fields(requested.appended),
            }
            session.commit()
            return pending, 202
        appended = service.delete_item(
            session,
            blob_store(),
            account=account,
            item_id=item_id,
            signer=log_signer(),
            depth=session_depth(),
        )
    except service.ItemNotFoundError:
        raise ApiError.not_found("no such item") from None
    except switch_service.PublishedError as exc:
        raise ApiError(409, "published", exc.message) from None
    except StorageError as exc:
        raise storage_error(exc) from None
    logged: JsonObject = {"status": "deleted", **receipt_fields(appended)}
    session.commit()
    return logged, 200


@items_api.post("/<item_id>/share")
@requires_role("reporter")
def share(item_id: str) -> JsonObject:
    """Replace an owned item's header and its set of editors; log ``item.shared``."""
    query_ints(required=())
    body = json_body()
    unknown = sorted(set(body) - {"header", "editors", "manifest"})
    if unknown:
        raise ApiError.bad_request(f"unknown field {unknown[0]!r}")
    for name in ("header", "editors"):
        if name not in body:
            raise ApiError.bad_request(f"missing field {name!r}")
    editors = body["editors"]
    if not isinstance(editors, list) or len(editors) > service.MAX_EDITORS:
        raise ApiError.bad_request(
            f"field 'editors' must be a list of at most {service.MAX_EDITORS} account ids"
        )
    try:
        editor_ids = [parse_account_id(editor) for editor in editors]
    except FormatError as exc:
        raise ApiError.bad_request(exc.message) from None
    if len(set(editor_ids)) != len(editor_ids):
        raise ApiError.bad_request("field 'editors' names an account twice")
    header = b64decode(body["header"])
    if header is None:
        raise ApiError.bad_request("field 'header' must be canonical padded base64")
    try:
        service.parse_item_header(header)
    except FormatError as exc:
        raise ApiError(400, "invalid_header", exc.message) from None
    new_manifest = manifest_field(body)
    account = current_account()
    session = db_session()
    try:
        appended = service.share_item(
            session,
            blob_store(),
            account=account,
            item_id=item_id,
            header=header,
            editors=editor_ids,
            signer=log_signer(),
            manifest=new_manifest,
            depth=session_depth(),
        )
    except service.ItemNotFoundError:
        raise ApiError.not_found("no such item") from None
    except service.UnknownEditorError as exc:
        raise ApiError(400, "unknown_editor", exc.message) from None
    except service.HeaderDropsStanzasError as exc:
        raise ApiError(400, "invalid_header", exc.message) from None
    except service.MissingManifestError as exc:
        raise ApiError(400, "missing_manifest", exc.message) from None
    except service.UnexpectedManifestError as exc:
        raise ApiError(400, "unexpected_manifest", exc.message) from None
    except service.ManifestDropsStanzasError as exc:
        raise ApiError(400, "invalid_manifest", exc.message) from None
    except service.ManifestChangedError as exc:
        raise ApiError(400, "manifest_changed", exc.message) from None
    except service.BlobMissingError as exc:
        raise ApiError(409, "share_again", exc.message) from None
    except StorageError as exc:
        raise storage_error(exc) from None
    logged = receipt_fields(appended)
    session.commit()
    item = service.visible_item(session, account, item_id, depth=session_depth())
    session.refresh(item)
    editors_now = service.shared_with(session, [item])[item.id]
    return {"item": item_json(item, editors_now), **logged}
