"""Items and their resumable uploads: limits, commit, manifests, visibility, deletion.

An item is two blobs, its age header and its payload, so that sharing later
replaces only the header, plus (since migration 0004) its encrypted manifest,
a whole small age file (DESIGN.md, "Item format"). A reporter first opens an
upload session that declares the payload's size (and, if the client knows it
yet, its SHA-256) and carries the header; the server reserves the item's id
then, so the client can sign a manifest naming it. The limits
(:data:`Limits`: largest item, bytes per account) are checked then, before a
byte of payload is accepted, so a refused upload leaves nothing behind. The
payload then arrives in chunks (:meth:`server.storage.BlobStore.write_at`);
the commit takes the SHA-256 if it was not declared and the encrypted
manifest, has the store check size and hash, stores the header and the
manifest, creates the item and appends an ``item.uploaded`` event in one
transaction.

The server cannot read a manifest. It checks only its form (one canonical age
header, then at least a payload nonce and one tag) and, on a share, that the
new manifest keeps every recipient of the current one and carries the very
same encrypted payload: a share adds readers, it never changes what the
manifest says.

Blobs are content-addressed and may be shared by items. Neither deleting an
item nor sharing it removes a blob: deleting evidence must wait out a
cooling-off delay (DESIGN.md, "Dead-man switch"), and a share must never make
an item undecryptable, so unreferenced ciphertext is left for a later sweep
that honours the delay. The check that the blobs of a new item exist happens
while the transaction holds the log's append lock
(:func:`server.services.log.append`).

Events hold ids, hashes and sizes only: the server knows nothing else.

Layers. A reporter's items are in layers (:attr:`server.models.Item.layer`):
0 for the real ones, 1 for those of the decoy vault. A session works in the
layer of its depth (:func:`server.auth.session_depth`: 1 under duress) and
sees the next layer as its decoys; an item of any other layer is "not
found" to it, like an id that does not exist. So a session under duress is
served the decoy vault as the whole vault, and the real items stay out of
its sight and reach.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from server.db import is_sqlite
from server.models import (
    Account,
    Item,
    ItemShare,
    ItemSide,
    LogEntry,
    Switch,
    UploadSession,
    utcnow,
)
from server.services import log
from server.services import switch as switch_service
from server.services.accounts import new_id
from server.storage import (
    BlobStore,
    DigestMismatchError,
    MalformedIdError,
    UploadNotFoundError,
    check_upload_id,
    new_upload_id,
)
from vault import canonical
from vault.age.format import Source, Stanza, parse_header
from vault.errors import FormatError, ServerError, VaultError
from vault.note import NoteSigner

__all__ = [
    "MAX_CLIENT_STATE",
    "MAX_HEADER_SIZE",
    "MAX_ITEM_ENTRIES",
    "MAX_MANIFEST_SIZE",
    "UPLOAD_LIFETIME",
    "BlobMissingError",
    "Committed",
    "EncryptedManifest",
    "HeaderDropsStanzasError",
    "ItemNotFoundError",
    "ItemTooLargeError",
    "Limits",
    "ManifestChangedError",
    "ManifestDropsStanzasError",
    "MissingDigestError",
    "MissingManifestError",
    "NotInReleaseError",
    "QuotaExceededError",
    "UnexpectedDisclosureError",
    "UnexpectedManifestError",
    "UnknownEditorError",
    "UploadGoneError",
    "abort_upload",
    "check_release_wrap",
    "check_share",
    "commit_upload",
    "create_upload",
    "delete_item",
    "expire_uploads",
    "find_upload",
    "item_entries",
    "item_history",
    "list_items",
    "log_download",
    "open_uploads",
    "parse_item_header",
    "parse_item_manifest",
    "release_wrap",
    "share_item",
    "shared_with",
    "used_bytes",
    "visible_item",
]

MAX_HEADER_SIZE = 64 * 1024
"""Largest item header accepted: room for hundreds of recipients."""
MAX_MANIFEST_SIZE = 64 * 1024
"""Largest encrypted manifest accepted, header and payload together."""
# After the header, an age file holds the 16-byte payload nonce and at least
# one STREAM chunk, which is at least its 16-byte Poly1305 tag.
_MIN_MANIFEST_BODY = 16 + 16
UPLOAD_LIFETIME = dt.timedelta(hours=48)
"""How long an upload session may take from its start to its commit."""
MAX_ITEM_ENTRIES = 10_000
"""Most log entries of one item that :func:`item_entries` reads."""
MAX_CLIENT_STATE = 128 * 1024
"""Largest sealed resume record a client may keep with an upload session."""


class ItemTooLargeError(ServerError):
    """The declared payload is larger than the server's largest item."""


class QuotaExceededError(ServerError):
    """The account would hold more than its quota with this upload."""


class UploadGoneError(ServerError):
    """No upload session with this id for this account: unknown, finished or expired."""


class ItemNotFoundError(ServerError):
    """No item with this id that this account may see."""


class BlobMissingError(ServerError):
    """A blob of a new item vanished before the item was recorded; upload again."""


class UnknownEditorError(ServerError):
    """An editor id that is not an enabled editor's account."""


class HeaderDropsStanzasError(ServerError):
    """A new header that leaves out a recipient stanza of the current one."""


class NotInReleaseError(VaultError):
    """An item sent for the release set of a vault that is not armed."""


class MissingDigestError(ServerError):
    """A commit without a SHA-256 of an upload that declared none."""


class UnexpectedDisclosureError(ServerError):
    """A disclosure sent with an upload that does not join the release set."""


class MissingManifestError(ServerError):
    """A share of an item with a manifest that does not send the re-wrapped manifest."""


class UnexpectedManifestError(ServerError):
    """A share that sends a manifest for an item committed without one."""


class ManifestDropsStanzasError(ServerError):
    """A new manifest whose header leaves out a recipient stanza of the current one."""


class ManifestChangedError(ServerError):
    """A new manifest whose encrypted payload is not the current one's, byte for byte."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class EncryptedManifest:
    """An item's encrypted manifest: a whole age v1 file, parsed but unreadable here.

    ``header`` is its age header and ``body`` what follows (the payload nonce
    and the encrypted payload), so that ``data == header + body``.
    """

    data: bytes
    header: bytes
    body: bytes


@dataclasses.dataclass(frozen=True, kw_only=True)
class Limits:
    """The largest item and the bytes each account may hold."""

    max_item_size: int
    quota_bytes: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Committed:
    """A new item and the log entry that records it."""

    item: Item
    appended: log.Appended


def parse_item_header(data: bytes) -> bytes:
    """``data`` if it is exactly one age v1 header of at most :data:`MAX_HEADER_SIZE` bytes.

    Raises:
        FormatError: too large, not a header, not canonical, or followed by more bytes.
    """
    if len(data) > MAX_HEADER_SIZE:
        raise FormatError(f"header too large: at most {MAX_HEADER_SIZE} bytes")
    source = Source(io.BytesIO(data))
    try:
        header = parse_header(source)
    except VaultError as exc:
        raise FormatError(f"invalid age header: {exc.message}") from None
    if source.read(1):
        raise FormatError("invalid age header: followed by more bytes (send the payload apart)")
    if header.marshal() != data:
        raise AssertionError("internal error: a parsed header does not reproduce its input")
    return data


def parse_item_manifest(data: bytes) -> EncryptedManifest:
    """``data`` split into header and body if it is one binary age v1 file of a manifest.

    The header is held to :func:`parse_item_header`'s rules; the file must be
    at most :data:`MAX_MANIFEST_SIZE` bytes and hold at least a payload nonce
    and one tag after its header. The payload itself is not (cannot be) checked.

    Raises:
        FormatError: too large, armored, no age header, or no payload.
    """
    if len(data) > MAX_MANIFEST_SIZE:
        raise FormatError(f"manifest too large: at most {MAX_MANIFEST_SIZE} bytes")
    try:
        header = parse_header(Source(io.BytesIO(data))).marshal()
    except VaultError as exc:
        raise FormatError(f"invalid manifest: invalid age header: {exc.message}") from None
    size = len(header)
    try:
        parse_item_header(data[:size])
    except FormatError as exc:
        raise FormatError(f"invalid manifest: {exc.message}") from None
    body = data[size:]
    if len(body) < _MIN_MANIFEST_BODY:
        raise FormatError("invalid manifest: the payload after the header is missing or cut short")
    return EncryptedManifest(data=data, header=data[:size], body=body)


def _lock_account(session: Session, account_id: str) -> None:
    # Serialises the quota check of one account's concurrent uploads.
    if is_sqlite(session):
        session.execute(update(Account).where(Account.id == account_id).values(id=Account.id))
    session.execute(select(Account.id).where(Account.id == account_id).with_for_update())


def used_bytes(session: Session, account_id: str) -> int:
    """Bytes held by the account: its items and its open upload sessions, headers included.

    An item's manifest counts once it is stored; an upload cannot declare it
    ahead, so the quota may be passed by one manifest (at most 64 KiB) per item.
    Expired sessions no longer count: their owner cannot reach them any more,
    and an interrupted upload must not lock its owner out until the next sweep.
    """
    held = Item.payload_size + Item.header_size + func.coalesce(Item.manifest_size, 0)
    items = session.scalar(
        select(func.coalesce(func.sum(held), 0)).where(Item.account_id == account_id)
    )
    uploads = session.scalar(
        select(
            func.coalesce(func.sum(UploadSession.size + func.length(UploadSession.header)), 0)
        ).where(UploadSession.account_id == account_id, UploadSession.expires_at > utcnow())
    )
    return int(items or 0) + int(uploads or 0)


def create_upload(
    session: Session,
    store: BlobStore,
    *,
    account: Account,
    size: int,
    sha256: str | None,
    header: bytes,
    limits: Limits,
    depth: int = 0,
    decoy: bool = False,
    client_state: bytes | None = None,
) -> UploadSession:
    """Open an upload session, in the caller's transaction; check the limits first.

    ``sha256`` may be ``None`` and given at the commit instead. The item's id
    is reserved now (:attr:`UploadSession.item_id`). The item will be in the
    layer ``depth`` (the session's), or the next one with ``decoy``.
    ``client_state`` is the client's sealed record for resuming, kept as is.

    Raises:
        ItemTooLargeError, QuotaExceededError: nothing is stored.
    """
    if size > limits.max_item_size:
        raise ItemTooLargeError(
            f"item too large: the payload may have at most {limits.max_item_size} bytes"
        )
    _lock_account(session, account.id)
    used = used_bytes(session, account.id)
    if used + size + len(header) > limits.quota_bytes:
        free = max(0, limits.quota_bytes - used)
        raise QuotaExceededError(
            f"quota exceeded: {free} of {limits.quota_bytes} bytes free, "
            f"this item needs {size + len(header)}"
        )
    now = utcnow()
    upload = UploadSession(
        id=new_upload_id(),
        account_id=account.id,
        item_id=new_id(),
        size=size,
        sha256=sha256,
        header=header,
        layer=depth + (1 if decoy else 0),
        depth=depth,
        client_state=client_state,
        created_at=now,
        expires_at=now + UPLOAD_LIFETIME,
    )
    session.add(upload)
    session.flush()
    store.begin(upload.id, size)
    return upload


def find_upload(
    session: Session, account: Account, upload_id: str, *, depth: int = 0
) -> UploadSession:
    """The account's unexpired upload session ``upload_id``, opened at ``depth``.

    Raises:
        UploadGoneError: malformed, unknown, another account's, of another
            depth, or expired.
    """
    try:
        check_upload_id(upload_id)
    except MalformedIdError:
        raise UploadGoneError("no such upload") from None
    upload = session.scalars(
        select(UploadSession).where(
            UploadSession.id == upload_id,
            UploadSession.account_id == account.id,
            UploadSession.depth == depth,
            UploadSession.expires_at > utcnow(),
        )
    ).one_or_none()
    if upload is None:
        raise UploadGoneError("no such upload")
    return upload


def open_uploads(session: Session, account: Account, *, depth: int = 0) -> Sequence[UploadSession]:
    """The account's unexpired upload sessions opened at ``depth``, oldest first (at most 1000)."""
    return session.scalars(
        select(UploadSession)
        .where(
            UploadSession.account_id == account.id,
            UploadSession.depth == depth,
            UploadSession.expires_at > utcnow(),
        )
        .order_by(UploadSession.created_at, UploadSession.id)
        .limit(1000)
    ).all()


def abort_upload(session: Session, store: BlobStore, upload: UploadSession) -> None:
    """End an upload session and remove its bytes, in the caller's transaction."""
    session.execute(delete(UploadSession).where(UploadSession.id == upload.id))
    store.abort(upload.id)


def commit_upload(
    session: Session,
    store: BlobStore,
    *,
    account: Account,
    upload_id: str,
    signer: NoteSigner,
    sha256: str | None = None,
    manifest: EncryptedManifest | None = None,
    release: bool = False,
    depth: int = 0,
    disclosure: EncryptedManifest | None = None,
) -> Committed:
    """Turn a complete upload into an item, in the caller's transaction.

    ``sha256`` is the payload's SHA-256 if the client gives it now; it is
    needed when the upload declared none and must equal the declared one
    otherwise. ``manifest`` (from :func:`parse_item_manifest`) is stored with
    the item, and so is ``disclosure`` (parsed the same way), the encrypted
    disclosure of an item that joins the release set (``release``). The item
    gets the id reserved when the upload opened, or a new one for a session
    of an older server. Nothing is stored before every
    check passed, and a blob stored for an item that is then refused is left
    for the sweep like any unreferenced blob.

    Raises:
        UploadGoneError: no such session.
        MissingDigestError: no SHA-256 declared or given; the session stays.
        IncompleteUploadError: bytes are missing; the session stays.
        DigestMismatchError: the bytes, or the SHA-256 given, do not match the
            declared SHA-256; the session row is deleted in the caller's
            transaction (which the caller should commit) and the staged bytes
            are gone.
        BlobMissingError: a concurrent delete removed the same bytes; upload again.
        UnexpectedDisclosureError: a disclosure for an item outside the release set.
    """
    if disclosure is not None and not release:
        raise UnexpectedDisclosureError(
            "a disclosure is for an item that joins the release set",
            hint="send 'release': true with it, or leave it out",
        )
    if release:
        switch = session.scalar(select(Switch).where(Switch.vault_id == account.vault_id))
        # A session under duress adds to the decoy vault's set of the switch it was shown.
        shown = None if switch is None else switch_service.shown_state(switch, duress=depth > 0)
        if shown not in ("armed", "overdue"):
            raise NotInReleaseError("the switch is not armed, so there is no release set to add to")
    upload = find_upload(session, account, upload_id, depth=depth)
    # End the read transaction: verifying a large payload takes a while.
    session.commit()
    expected = upload.sha256 or sha256
    if expected is None:
        raise MissingDigestError("the upload declared no sha-256; give 'sha256' with the commit")
    if sha256 is not None and sha256 != expected:
        # Like bytes that do not hash to the declared value: the session ends.
        session.execute(delete(UploadSession).where(UploadSession.id == upload.id))
        store.abort(upload.id)
        raise DigestMismatchError("the sha-256 given differs from the one declared; send it again")
    try:
        payload_key = store.commit(upload.id, expected)
    except DigestMismatchError:
        session.execute(delete(UploadSession).where(UploadSession.id == upload.id))
        raise
    except UploadNotFoundError:
        raise UploadGoneError("no such upload") from None
    header_key = store.put(io.BytesIO(upload.header), max_size=MAX_HEADER_SIZE)
    manifest_key = None
    if manifest is not None:
        manifest_key = store.put(io.BytesIO(manifest.data), max_size=MAX_MANIFEST_SIZE)
    disclosure_key = None
    if disclosure is not None:
        disclosure_key = store.put(io.BytesIO(disclosure.data), max_size=MAX_MANIFEST_SIZE)
    if account.vault_id is None:
        raise RuntimeError("internal error: an upload by an account without a vault")
    item = Item(
        id=upload.item_id or new_id(),
        account_id=account.id,
        vault_id=account.vault_id,
        header_key=header_key,
        header_size=len(upload.header),
        payload_key=payload_key,
        payload_size=upload.size,
        manifest_key=manifest_key,
        manifest_size=None if manifest is None else len(manifest.data),
        disclosure_key=disclosure_key,
        disclosure_size=None if disclosure is None else len(disclosure.data),
        release_set=release,
        layer=upload.layer,
        created_at=utcnow(),
    )
    event: dict[str, object] = {
        "type": "item.uploaded",
        "item": item.id,
        "account": account.id,
        "vault": account.vault_id,
        "sha256": payload_key,
        "size": upload.size,
        "header_sha256": header_key,
        "header_size": item.header_size,
    }
    if manifest_key is not None:
        event["manifest_sha256"] = manifest_key
        event["manifest_size"] = item.manifest_size
    if disclosure_key is not None:
        event["disclosure_sha256"] = disclosure_key
        event["disclosure_size"] = item.disclosure_size
    if release:
        event["release_set"] = True
    appended = log.append(session, event, signer)
    # The append lock is held: a delete of the same bytes either finished
    # before (and the blob is gone) or waits until this item is committed.
    keys = [payload_key, header_key]
    keys += [key for key in (manifest_key, disclosure_key) if key is not None]
    if not all(store.exists(key) for key in keys):
        raise BlobMissingError("the uploaded bytes were removed meanwhile; upload again")
    session.execute(delete(UploadSession).where(UploadSession.id == upload.id))
    item.log_index = appended.entry.idx
    session.add(item)
    session.add(ItemSide(item_id=item.id, account_id=account.id, layer=item.layer))
    session.flush()
    return Committed(item=item, appended=appended)


def expire_uploads(session: Session, store: BlobStore, *, limit: int = 100) -> int:
    """End up to ``limit`` expired upload sessions and remove their bytes; how many.

    Each is deleted from the database before its bytes, in the caller's
    transaction; staged bytes with no row left (a crash between the two) are
    removed by :meth:`server.storage.BlobStore.expire_staging`.
    """
    expired = session.scalars(
        select(UploadSession.id)
        .where(UploadSession.expires_at <= utcnow())
        .order_by(UploadSession.expires_at)
        .limit(limit)
    ).all()
    if not expired:
        return 0
    session.execute(delete(UploadSession).where(UploadSession.id.in_(expired)))
    for upload_id in expired:
        store.abort(upload_id)
    return len(expired)


def list_items(
    session: Session,
    account: Account,
    *,
    limit: int,
    after: str | None = None,
    depth: int = 0,
    decoys: bool = False,
) -> Sequence[Item]:
    """Up to ``limit`` items the account may see, oldest first, after item ``after``.

    A reporter sees their own items of the session's layer (``depth``), or
    with ``decoys`` those of the next; an editor those shared with them.

    Raises:
        ItemNotFoundError: ``after`` is not an item this account may see.
    """
    query = select(Item).order_by(Item.created_at, Item.id).limit(limit)
    if account.role == "reporter":
        layer = depth + (1 if decoys else 0)
        query = query.where(Item.account_id == account.id, Item.layer == layer)
    elif account.role == "editor":
        query = query.join(ItemShare, ItemShare.item_id == Item.id).where(
            ItemShare.editor_id == account.id
        )
    else:
        return []
    if after is not None:
        last = visible_item(session, account, after, depth=depth)
        query = query.where(
            or_(
                Item.created_at > last.created_at,
                and_(Item.created_at == last.created_at, Item.id > last.id),
            )
        )
    return session.scalars(query).all()


def visible_item(session: Session, account: Account, item_id: str, *, depth: int = 0) -> Item:
    """Item ``item_id`` if the account may see it (a reporter: at session ``depth``).

    Another reporter's item, one's own item outside the session's layer and
    its decoys, and an item not shared with an editor are "not found",
    exactly like an id that does not exist.

    Raises:
        ItemNotFoundError.
    """
    item = session.get(Item, item_id) if len(item_id) == 32 else None
    if item is not None:
        if (
            account.role == "reporter"
            and item.account_id == account.id
            and item.layer in (depth, depth + 1)
        ):
            return item
        if account.role == "editor":
            share = session.get(ItemShare, (item.id, account.id))
            if share is not None:
                return item
    raise ItemNotFoundError("no such item")


def shared_with(session: Session, items: Sequence[Item]) -> dict[str, list[str]]:
    """The editor ids of each item, sorted."""
    result: dict[str, list[str]] = {item.id: [] for item in items}
    if not result:
        return result
    rows = session.execute(
        select(ItemShare.item_id, ItemShare.editor_id)
        .where(ItemShare.item_id.in_(list(result)))
        .order_by(ItemShare.editor_id)
    ).all()
    for item_id, editor_id in rows:
        result[item_id].append(editor_id)
    return result


def log_download(
    session: Session, account: Account, item: Item, signer: NoteSigner
) -> log.Appended:
    """Append an ``item.downloaded`` event, in the caller's transaction."""
    event = {"type": "item.downloaded", "item": item.id, "account": account.id}
    return log.append(session, event, signer)


def delete_item(
    session: Session,
    store: BlobStore,
    *,
    account: Account,
    item_id: str,
    signer: NoteSigner,
    depth: int = 0,
) -> log.Appended:
    """Delete an owned item, in the caller's transaction; remove blobs no item uses.

    Raises:
        ItemNotFoundError: not the account's item (at ``depth``).
    """
    item = visible_item(session, account, item_id, depth=depth)
    if item.account_id != account.id:
        raise ItemNotFoundError("no such item")
    event = {"type": "item.deleted", "item": item.id, "account": account.id}
    appended = log.append(session, event, signer)
    # Under the append lock: a concurrent delete of the same item finished or waits.
    deleted = cast("CursorResult[Any]", session.execute(delete(Item).where(Item.id == item.id)))
    if deleted.rowcount != 1:
        raise ItemNotFoundError("no such item")
    # The blobs stay: deleting evidence takes effect only after a cooling-off
    # delay during which trustees can object (DESIGN.md, "Dead-man switch"),
    # so the bytes are kept for the sweep that will honour it. They are
    # ciphertext; nothing refers to them any more.
    return appended


MAX_EDITORS = 256
"""Most editors one item may be shared with."""


def check_share(
    session: Session,
    store: BlobStore,
    *,
    account: Account,
    item_id: str,
    header: bytes,
    editors: Sequence[str],
    manifest: EncryptedManifest | None = None,
    depth: int = 0,
) -> Item:
    """Every check of :func:`share_item`, and nothing stored or logged: the item.

    Raises:
        as :func:`share_item`.
    """
    item = visible_item(session, account, item_id, depth=depth)
    if item.account_id != account.id:
        raise ItemNotFoundError("no such item")
    wanted = sorted(set(editors))
    if wanted:
        found = set(
            session.scalars(
                select(Account.id).where(
                    Account.id.in_(wanted),
                    Account.role == "editor",
                    Account.disabled_at.is_(None),
                )
            ).all()
        )
        unknown = [editor for editor in wanted if editor not in found]
        if unknown:
            raise UnknownEditorError(f"not an editor's account: {unknown[0]}")
    _check_keeps_stanzas(store, item.header_key, header)
    if item.manifest_key is None:
        if manifest is not None:
            raise UnexpectedManifestError(
                "the item has no manifest; a share cannot add one",
                hint="share without 'manifest'",
            )
    elif manifest is None:
        raise MissingManifestError(
            "the item has a manifest: send it re-wrapped for the new editors",
            hint="re-wrap the current manifest (vault.age.rewrap), from GET …/manifest",
        )
    else:
        _check_same_manifest(store, item.manifest_key, manifest)
    return item


def check_release_wrap(
    session: Session, store: BlobStore, *, account: Account, item_id: str, header: bytes
) -> Item:
    """Every check of :func:`release_wrap`, and nothing stored or logged: the item.

    The header must keep every stanza of the item's current one (it adds
    the release recipient); the item must be the account's.

    Raises:
        ItemNotFoundError, HeaderDropsStanzasError.
    """
    item = visible_item(session, account, item_id)
    # Only real items join a release set; decoys are never released.
    if item.account_id != account.id or item.layer != 0:
        raise ItemNotFoundError("no such item")
    _check_keeps_stanzas(store, item.header_key, header)
    return item


def release_wrap(
    session: Session,
    store: BlobStore,
    *,
    account: Account,
    item_id: str,
    header: bytes,
    disclosure: EncryptedManifest,
    signer: NoteSigner,
) -> log.Appended:
    """Give an owned item the header with the release recipient, and its disclosure.

    The manifest and the editors stay as they are: the release recipient
    gets the item and the disclosure, never the manifest. Logs
    ``item.shared`` (the same editors and manifest, the new header, the
    disclosure's hash and size) in the caller's transaction.

    Raises:
        as :func:`check_release_wrap`; BlobMissingError.
    """
    item = check_release_wrap(session, store, account=account, item_id=item_id, header=header)
    editors = shared_with(session, [item])[item.id]
    header_key = store.put(io.BytesIO(header), max_size=MAX_HEADER_SIZE)
    disclosure_key = store.put(io.BytesIO(disclosure.data), max_size=MAX_MANIFEST_SIZE)
    event: dict[str, object] = {
        "type": "item.shared",
        "item": item.id,
        "account": account.id,
        "header_sha256": header_key,
        "header_size": len(header),
        "editors": editors,
    }
    if item.manifest_key is not None:
        event.update(manifest_sha256=item.manifest_key, manifest_size=item.manifest_size)
    event.update(disclosure_sha256=disclosure_key, disclosure_size=len(disclosure.data))
    appended = log.append(session, event, signer)
    # Under the append lock, as in share_item.
    if not (store.exists(header_key) and store.exists(disclosure_key)):
        raise BlobMissingError("the header or disclosure was removed meanwhile; arm again")
    session.execute(
        update(Item)
        .where(Item.id == item.id)
        .values(
            header_key=header_key,
            header_size=len(header),
            disclosure_key=disclosure_key,
            disclosure_size=len(disclosure.data),
        )
    )
    session.flush()
    return appended


def share_item(
    session: Session,
    store: BlobStore,
    *,
    account: Account,
    item_id: str,
    header: bytes,
    editors: Sequence[str],
    signer: NoteSigner,
    manifest: EncryptedManifest | None = None,
    depth: int = 0,
) -> log.Appended:
    """Replace an owned item's header, manifest and the set of editors it is shared with.

    ``header`` was re-wrapped by the client (:func:`vault.age.rewrap_header`)
    and parsed by :func:`parse_item_header`; the payload is untouched, so
    only the header is stored. ``manifest`` is required exactly when the item
    has one: the current manifest re-wrapped (:func:`vault.age.rewrap`), so
    it keeps every stanza and its encrypted payload byte for byte. ``editors``
    is the whole new set: an editor left out loses access. Logs
    ``item.shared`` in the caller's transaction. Every check comes before
    anything is stored.

    Raises:
        ItemNotFoundError: not the account's item.
        UnknownEditorError: an id that is not an enabled editor.
        HeaderDropsStanzasError: the header leaves out a current recipient.
        MissingManifestError, UnexpectedManifestError: a manifest missing or
            one too many.
        ManifestDropsStanzasError, ManifestChangedError: the manifest leaves
            out a current recipient or changes its payload.
    """
    item = check_share(
        session,
        store,
        account=account,
        item_id=item_id,
        header=header,
        editors=editors,
        manifest=manifest,
        depth=depth,
    )
    wanted = sorted(set(editors))
    header_key = store.put(io.BytesIO(header), max_size=MAX_HEADER_SIZE)
    values: dict[str, object] = {"header_key": header_key, "header_size": len(header)}
    event: dict[str, object] = {
        "type": "item.shared",
        "item": item.id,
        "account": account.id,
        "header_sha256": header_key,
        "header_size": len(header),
        "editors": wanted,
    }
    keys = [header_key]
    if manifest is not None:
        manifest_key = store.put(io.BytesIO(manifest.data), max_size=MAX_MANIFEST_SIZE)
        keys.append(manifest_key)
        values.update(manifest_key=manifest_key, manifest_size=len(manifest.data))
        event.update(manifest_sha256=manifest_key, manifest_size=len(manifest.data))
    appended = log.append(session, event, signer)
    # Under the append lock, as in commit_upload and delete_item.
    if not all(store.exists(key) for key in keys):
        raise BlobMissingError("the header or manifest was removed meanwhile; share again")
    old_key = item.header_key
    changed = cast(
        "CursorResult[Any]",
        session.execute(update(Item).where(Item.id == item.id).values(**values)),
    )
    if changed.rowcount != 1:
        raise ItemNotFoundError("no such item")
    session.execute(delete(ItemShare).where(ItemShare.item_id == item.id))
    session.add_all(ItemShare(item_id=item.id, editor_id=editor) for editor in wanted)
    session.flush()
    # The old header and manifest blobs are kept: sharing must never be a
    # way to make an item undecryptable (a stolen token, a coerced reporter).
    del old_key
    return appended


def _stanzas(data: bytes) -> set[Stanza]:
    parse_item_header(data)
    return set(parse_header(Source(io.BytesIO(data))).stanzas)


def _drops_stanzas(current: bytes, new_header: bytes) -> bool:
    return bool(_stanzas(current) - _stanzas(new_header))


def _check_keeps_stanzas(store: BlobStore, current_key: str, new_header: bytes) -> None:
    """Refuse a new header that drops a recipient of the current one.

    Re-wrapping only adds stanzas (:func:`vault.age.rewrap_header`). A header
    without the owner's stanza would lock everyone but the new recipients out
    of the item, so it is refused. The server cannot check the MAC (it has no
    file key); the old header is kept for that reason too.
    """
    with store.open(current_key) as blob:
        current = blob.read(MAX_HEADER_SIZE + 1)
    if _drops_stanzas(current, new_header):
        raise HeaderDropsStanzasError(
            "the new header leaves out recipients of the current one",
            hint="re-wrap the current header (vault.age.rewrap_header) to add editors",
        )


def _check_same_manifest(store: BlobStore, current_key: str, new: EncryptedManifest) -> None:
    """Refuse a new manifest that is not the current one with recipients added.

    Its header is held to :func:`_check_keeps_stanzas`'s rule, and what
    follows the header (payload nonce and encrypted manifest) must be the
    current one byte for byte: re-wrapping (:func:`vault.age.rewrap`) copies
    it, so only a different manifest differs. The server cannot check the
    new header's MAC; the old manifest blob is kept, like the old header. A
    stanza added for another file key cannot make the same bytes say
    something else either: whoever opens it fails to decrypt (the payload was
    sealed by the reporter's client under the original key).
    """
    with store.open(current_key) as blob:
        current = parse_item_manifest(blob.read(MAX_MANIFEST_SIZE + 1))
    if _drops_stanzas(current.header, new.header):
        raise ManifestDropsStanzasError(
            "the new manifest leaves out recipients of the current one",
            hint="re-wrap the current manifest (vault.age.rewrap) to add editors",
        )
    if current.body != new.body:
        raise ManifestChangedError(
            "the new manifest's encrypted payload differs from the current one: "
            "a share may add recipients, never change the manifest",
            hint="re-wrap the current manifest (vault.age.rewrap) instead of encrypting it again",
        )


def item_entries(session: Session, item: Item, *, types: Sequence[str] = ()) -> list[LogEntry]:
    """The log entries that name ``item`` (of ``types``, if given), oldest first.

    At most the first :data:`MAX_ITEM_ENTRIES` of the item's entries are read.
    """
    found = session.scalars(
        select(LogEntry)
        .where(LogEntry.item_id == item.id)
        .order_by(LogEntry.idx)
        .limit(MAX_ITEM_ENTRIES)
    ).all()
    if not types:
        return list(found)
    wanted = set(types)
    kept = []
    for entry in found:
        event = canonical.loads(entry.data)
        if isinstance(event, dict) and event.get("type") in wanted:
            kept.append(entry)
    return kept


def item_history(
    session: Session, account: Account, *, depth: int = 0, limit: int, after: str | None = None
) -> Sequence[str]:
    """Ids of every item the account ever had in the session's layer and the next, deleted ones too.

    Sorted; up to ``limit`` after ``after``. A session's view of the log
    (``evault log show``) keeps to these items.
    """
    query = select(ItemSide.item_id).where(
        ItemSide.account_id == account.id, ItemSide.layer.in_((depth, depth + 1))
    )
    if after is not None:
        query = query.where(ItemSide.item_id > after)
    return session.scalars(query.order_by(ItemSide.item_id).limit(limit)).all()
