"""Items from the server: list, fetch and verify, share, delete.

Nothing the server sends is trusted. Before a decrypted file appears on
disk the client checks, against what it pinned:

- the manifest was signed by the item's owner (the reporter's own card, or
  the card an editor pinned for that reporter), for this item id and vault;
- the payload it received hashes to the manifest's ``payload_sha256`` and to
  the server's own metadata, the plaintext to ``plaintext_sha256``, and the
  size matches;
- the file name comes only from the signed manifest, through
  :func:`vault.manifest.safe_filename`, and lands in the chosen directory.

The output is written atomically: if any check fails, nothing appears.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from client import recipients
from client.api import ApiError
from client.audit import read_log
from client.changes import PendingChange, expect_change, parse_change
from client.contacts import Pinned, current_card, server_card, trust_on_first_use
from client.context import Client
from client.files import atomic_output, check_room
from client.logcheck import LoggedEntry
from client.state import Contact
from client.transfer import Progress
from vault import age
from vault._base64 import b64decode, b64encode
from vault.age.format import Source, parse_header
from vault.age.stream import payload_size
from vault.errors import (
    ConfigError,
    DecryptError,
    FormatError,
    ManifestError,
    ProofError,
    VaultError,
)
from vault.keys import Card
from vault.manifest import Manifest, SignedManifest, safe_filename

__all__ = [
    "Deleted",
    "Fetched",
    "Listed",
    "ManifestCache",
    "Rewrapped",
    "SignedItem",
    "check_item_id",
    "content",
    "delete_item",
    "fetch_item",
    "find_item",
    "item_metas",
    "list_items",
    "logged_entries",
    "release_recipient_on_decoy",
    "share_item",
    "signed_item",
    "with_release_recipient",
]

_MAX_MANIFEST = 256 * 1024
_MAX_HEADER = 64 * 1024
_ITEM = re.compile(r"[0-9a-f]{32}")
_ACCOUNT = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, kw_only=True)
class Listed:
    """An item with what its manifest says (``manifest`` is None if unreadable)."""

    meta: dict[str, Any]
    manifest: Manifest | None
    problem: str | None
    owner: str
    trust: str = "you"
    """Whose key checked the signature: "you", "verified", "unverified" or "unpinned"."""


@dataclass(frozen=True, kw_only=True)
class Fetched:
    """A verified, decrypted item written to ``path``."""

    path: Path
    manifest: Manifest
    signer_name: str
    newly_pinned: bool
    signer_verified: bool
    present: bool = False
    """The same file (same SHA-256) was there already: nothing was written."""
    owner: str = ""
    """The account that added the item."""


def check_item_id(item: str) -> str:
    """An item id (32 lower-case hex digits), or a clear error.

    Raises:
        ConfigError: anything else.
    """
    if not _ITEM.fullmatch(item):
        raise ConfigError(
            f"invalid item id {item!r}", hint="item ids are 32 hex digits; see `evault ls`"
        )
    return item


def _meta(client: Client, item: str) -> dict[str, Any]:
    check_item_id(item)
    try:
        answer = client.call("GET", f"/items/{item}")
    except ApiError as exc:
        if exc.status == 404:
            raise ConfigError(f"no item {item} that you may read", hint="see `evault ls`") from None
        raise
    meta = answer.get("item")
    if not isinstance(meta, dict) or meta.get("id") != item:
        raise ProofError("the server answered with another item than the one asked for")
    for key in ("sha256", "header_sha256", "owner", "vault"):
        if not isinstance(meta.get(key), str):
            raise ProofError("the server sent malformed item metadata")
    for key in ("size", "header_size"):
        if type(meta.get(key)) is not int or meta[key] <= 0:
            raise ProofError("the server sent malformed item metadata")
    if not _ACCOUNT.fullmatch(meta["owner"]) or meta["header_size"] > _MAX_HEADER:
        raise ProofError("the server sent malformed item metadata")
    if meta["owner"] == client.account and meta["vault"] != client.state.vault:
        raise ProofError("the server says your item is in another vault")
    return meta


def find_item(client: Client, item: str) -> dict[str, Any] | None:
    """The server's metadata of ``item``, or None if there is no such item this account may read.

    Raises:
        ProofError: malformed metadata.
    """
    try:
        return _meta(client, item)
    except ConfigError:
        return None


def _manifest(client: Client, meta: dict[str, Any]) -> SignedManifest:
    return _manifest_and_hash(client, meta)[0]


def _manifest_and_hash(client: Client, meta: dict[str, Any]) -> tuple[SignedManifest, str]:
    """The item's manifest fetched alone, decrypted, and the SHA-256 of its encrypted bytes."""
    data = client.authed().get_bytes(f"/items/{meta['id']}/manifest", limit=_MAX_MANIFEST)
    digest = hashlib.sha256(data).hexdigest()
    expected = meta.get("manifest_sha256")
    if isinstance(expected, str) and digest != expected:
        raise ProofError("the manifest does not match the item's metadata")
    return _open_manifest(client, data), digest


def _open_manifest(client: Client, data: bytes) -> SignedManifest:
    out = io.BytesIO()
    try:
        age.decrypt(io.BytesIO(data), out, _own_age_identities(client))
    except DecryptError as exc:
        raise ManifestError(f"cannot decrypt the item's manifest: {exc.message}") from None
    return SignedManifest.parse(out.getvalue())


def _own_age_identities(client: Client) -> list[age.Identity]:
    """The age identities that open this side's items: its own and its decoys'."""
    return [identity.age_identity for identity in client.own_identities()]


def _signer(client: Client, owner: str, *, pin: bool = True) -> tuple[Pinned | None, bool]:
    """Whose signature an item of ``owner`` must carry: mine, or a pinned contact's.

    Without ``pin``, an owner not pinned yet is checked against the server's
    card without pinning it: listing is not the moment to trust a key.
    """
    if owner == client.account:
        return None, False
    if not pin and client.state.contact_for_account(owner) is None:
        _, card = server_card(client, owner)
        contact = Contact(account=owner, card=card.to_json().decode("utf-8"))
        return Pinned(name=f"unpinned-{owner[:8]}", contact=contact, card=card), False
    return trust_on_first_use(client, owner)


def _check_signed(signed: SignedManifest, signer: bytes, meta: dict[str, Any]) -> Manifest:
    m = signed.manifest
    # Everything but the hashes can be checked before the download. (The
    # vault of one's own items is checked against the account's own.)
    return signed.verify(
        signer=signer,
        plaintext_sha256=m.plaintext_sha256,
        payload_sha256=m.payload_sha256,
        item_id=meta["id"],
        vault_id=meta["vault"],
    )


def _own_signer(client: Client, signed: SignedManifest) -> bytes:
    """The key one's own manifest must be signed with: this side's, or its decoys'."""
    named = signed.manifest.signer
    return named if named in client.own_signing_keys() else client.own_card().signing_key


def _trust(pinned: Pinned | None) -> str:
    if pinned is None:
        return "you"
    if pinned.name.startswith("unpinned-"):
        return "unpinned"
    return "verified" if pinned.contact.verified else "unverified"


def item_metas(
    client: Client, *, limit: int = 100, decoys: bool = False, manifests: bool = False
) -> Iterator[dict[str, Any]]:
    """Every item this account may read (or its decoys), as the server lists them, page by page.

    With ``manifests``, each page is asked with the items' encrypted manifests
    (``with=manifest``): each metadata then holds ``"manifest"``, base64 or
    None, still to be checked by the caller.

    Raises:
        ProofError: a malformed list, or an item listed twice.
        ApiError: the server refused; a 400 to the first page asked with
            manifests means a server older than that way of listing.
    """
    after: str | None = None
    seen: set[str] = set()
    while True:
        params: dict[str, str | int] = {"limit": limit}
        if decoys:
            params["decoys"] = 1
        if manifests:
            params["with"] = "manifest"
        if after is not None:
            params["after"] = after
        answer = client.call("GET", "/items", params=params)
        items = answer.get("items")
        if not isinstance(items, list):
            raise ProofError("the server sent a malformed item list")
        for meta in items:
            if not isinstance(meta, dict) or not _ITEM.fullmatch(str(meta.get("id"))):
                raise ProofError("the server sent a malformed item list")
            if manifests and "manifest" not in meta:
                raise ProofError("the server sent a malformed item list")
            if meta["id"] in seen:
                raise ProofError("the server listed an item twice")
            seen.add(meta["id"])
            yield meta
        nxt = answer.get("next")
        if not isinstance(nxt, str):
            return
        after = nxt


_PAGE = 1000
"""Items asked for in one page of a listing: the most a server gives."""


class _Checker:
    """What checking many manifests in a row needs once: identities, keys, signers by owner.

    Each owner's signer is looked up once per listing (as :func:`_signer`
    would for each of its items), and so is a failure to find it.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self.identities = _own_age_identities(client)
        self._own_keys = client.own_signing_keys()
        self._own_key = client.own_card().signing_key
        self._signers: dict[str, tuple[Pinned | None, bool] | VaultError] = {}

    def signer(self, owner: str) -> Pinned | None:
        found = self._signers.get(owner)
        if found is None:
            try:
                found = _signer(self._client, owner, pin=False)
            except (ProofError, FormatError, ApiError, ConfigError) as exc:
                found = exc
            self._signers[owner] = found
        if isinstance(found, VaultError):
            raise found
        return found[0]

    def own_signer(self, signed: SignedManifest) -> bytes:
        named = signed.manifest.signer
        return named if named in self._own_keys else self._own_key

    def signer_key(self, pinned: Pinned | None) -> bytes:
        """What a manifest's signature is checked against: this side's keys, or the contact's."""
        if pinned is None:
            return b"".join(sorted(self._own_keys | {self._own_key}))
        return pinned.card.signing_key

    def opened(self, meta: dict[str, Any], sealed: object) -> tuple[SignedManifest, str]:
        """The manifest the list carried for ``meta``, checked against its hash, decrypted.

        Also the SHA-256 of its encrypted bytes.
        """
        expected = meta.get("manifest_sha256")
        if sealed is None:
            if expected is not None:
                raise ProofError("the server listed a manifest it did not send")
            raise ManifestError("the item has no manifest")
        data = b64decode(sealed)
        if data is None or len(data) > _MAX_MANIFEST:
            raise ProofError("the server sent a malformed manifest")
        digest = hashlib.sha256(data).hexdigest()
        if isinstance(expected, str) and digest != expected:
            raise ProofError("the manifest does not match the item's metadata")
        out = io.BytesIO()
        try:
            age.decrypt(io.BytesIO(data), out, self.identities)
        except DecryptError as exc:
            raise ManifestError(f"cannot decrypt the item's manifest: {exc.message}") from None
        return SignedManifest.parse(out.getvalue()), digest


def _listed_metas(client: Client, *, decoys: bool) -> Iterator[dict[str, Any]]:
    """The metadata of every item, with manifests if the server lists them so.

    An older server refuses ``with=manifest`` (400): its items come without,
    and each manifest is then fetched alone.
    """
    pages = item_metas(client, limit=_PAGE, decoys=decoys, manifests=True)
    try:
        first = next(pages, None)
    except ApiError as exc:
        if exc.status != 400:
            raise
        yield from item_metas(client, limit=_PAGE, decoys=decoys)
        return
    if first is not None:
        yield first
        yield from pages


_Key = tuple[str, str, str, bytes]


class ManifestCache:
    """Manifests already decrypted and checked, kept in memory (by the session unlock).

    Each is kept under what its check depended on: the item id and vault it
    was signed for, the SHA-256 of its encrypted bytes, and the keys its
    signature was checked against. A manifest that changed has another hash,
    a contact whose key changed another key: either is checked again.
    Nothing here is ever written anywhere; it goes with the process.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._known: dict[_Key, Manifest] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._known)

    def get(self, key: _Key) -> Manifest | None:
        with self._lock:
            return self._known.get(key)

    def put(self, key: _Key, manifest: Manifest) -> None:
        with self._lock:
            if len(self._known) >= self._limit:
                self._known.clear()
            self._known[key] = manifest

    def keep_only(self, keys: Collection[_Key]) -> None:
        """Forget every manifest but those of ``keys`` (the items listed now)."""
        with self._lock:
            self._known = {k: m for k, m in self._known.items() if k in keys}


_FEW = 16
"""Manifests not yet known above which they come again with the list rather than one by one."""


def list_items(
    client: Client, *, decoys: bool = False, known: ManifestCache | None = None
) -> Iterator[Listed]:
    """Every item this account may read (or its decoys), with its manifest decrypted and checked.

    The manifests come with the list, a page of up to 1000 items in one
    request, from a server that lists them so (one request per item from an
    older one); each is checked exactly as :func:`signed_item` checks one.
    The server's log is checked first (:meth:`Client.check_log`).

    With ``known`` (the session unlock's), the manifests checked before are
    not decrypted and checked again: the list is asked without them, and
    only those not known (changed or new) are fetched and checked, one by
    one if they are few, else with the list again. The ones checked go into
    ``known``.
    """
    if known is not None and len(known) and client.logged_in:
        yield from _list_known(client, decoys=decoys, known=known)
        return
    client.check_log()
    checked: set[_Key] = set()
    checker: _Checker | None = None
    for meta in _listed_metas(client, decoys=decoys):
        if checker is None:
            # After the first page: a device without a server says so before any unlock.
            checker = _Checker(client)
        listed = dict(meta)
        carried = "manifest" in listed
        sealed = listed.pop("manifest", None)
        owner = str(listed.get("owner", ""))
        try:
            pinned = checker.signer(owner)
            if carried:
                signed, digest = checker.opened(listed, sealed)
            else:
                signed, digest = _manifest_and_hash(client, listed)
            signer = checker.own_signer(signed) if pinned is None else pinned.card.signing_key
            manifest = _check_signed(signed, signer, listed)
            if known is not None:
                key = (listed["id"], str(listed["vault"]), digest, checker.signer_key(pinned))
                known.put(key, manifest)
                checked.add(key)
            yield Listed(
                meta=listed, manifest=manifest, problem=None, owner=owner, trust=_trust(pinned)
            )
        except (ProofError, FormatError, ApiError, ConfigError) as exc:
            yield Listed(meta=listed, manifest=None, problem=exc.message, owner=owner)
    if known is not None:
        known.keep_only(checked)


def _list_known(client: Client, *, decoys: bool, known: ManifestCache) -> Iterator[Listed]:
    """:func:`list_items` with manifests checked before: the list alone, and what changed.

    The log's checkpoint is checked while the list comes (two requests, one
    wait); nothing is yielded before both are done.
    """
    with ThreadPoolExecutor(1) as pool:
        log_checked = pool.submit(client.check_log)
        try:
            metas = list(item_metas(client, limit=_PAGE, decoys=decoys))
        finally:
            log_checked.result()  # a log that fails its check says so first
    checker = _Checker(client)

    def key(meta: dict[str, Any], pinned: Pinned | None) -> _Key | None:
        digest = meta.get("manifest_sha256")
        if not isinstance(digest, str) or not isinstance(meta.get("vault"), str):
            return None
        return (meta["id"], meta["vault"], digest, checker.signer_key(pinned))

    rows: list[tuple[dict[str, Any], Pinned | None, Manifest | None] | Listed] = []
    unknown = 0
    for meta in metas:
        owner = str(meta.get("owner", ""))
        try:
            pinned = checker.signer(owner)
        except (ProofError, FormatError, ApiError, ConfigError) as exc:
            rows.append(Listed(meta=meta, manifest=None, problem=exc.message, owner=owner))
            continue
        wanted = key(meta, pinned)
        manifest = None if wanted is None else known.get(wanted)
        unknown += manifest is None
        rows.append((meta, pinned, manifest))
    if unknown > _FEW:
        # Many changed or new: the manifests again with the list, one request a page.
        known.keep_only(())
        yield from list_items(client, decoys=decoys, known=known)
        return
    checked: set[_Key] = set()
    for row in rows:
        if isinstance(row, Listed):
            yield row
            continue
        meta, pinned, manifest = row
        owner = str(meta.get("owner", ""))
        try:
            if manifest is None:
                signed, digest = _manifest_and_hash(client, meta)
                signer = checker.own_signer(signed) if pinned is None else pinned.card.signing_key
                manifest = _check_signed(signed, signer, meta)
                known.put(
                    (meta["id"], str(meta["vault"]), digest, checker.signer_key(pinned)), manifest
                )
            found = key(meta, pinned)
            if found is not None:
                checked.add(found)
            yield Listed(
                meta=meta, manifest=manifest, problem=None, owner=owner, trust=_trust(pinned)
            )
        except (ProofError, FormatError, ApiError, ConfigError) as exc:
            yield Listed(meta=meta, manifest=None, problem=exc.message, owner=owner)
    known.keep_only(checked)


class _Download:
    """The streamed age file: header and payload hashed apart, as age reads it."""

    def __init__(self, pieces: Iterator[bytes], header_size: int, limit: int) -> None:
        self._pieces = pieces
        self._limit = limit
        self._pending = b""
        self._header_size = header_size
        self._seen = 0
        self.header = hashlib.sha256()
        self.payload = hashlib.sha256()
        self.payload_size = 0

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            self._pending = next(self._pieces, b"")
            if self._seen + len(self._pending) > self._limit:
                raise ProofError("the server sent more bytes than the item holds")
        if size < 0:
            size = len(self._pending)
        data, self._pending = self._pending[:size], self._pending[size:]
        split = max(0, min(len(data), self._header_size - self._seen))
        self.header.update(data[:split])
        self.payload.update(data[split:])
        self.payload_size += len(data) - split
        self._seen += len(data)
        return data


class _HashingWriter:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._out.write(data)


def _destination(output: Path | None, manifest: Manifest) -> Path:
    name = safe_filename(manifest.filename)
    if output is None:
        return Path.cwd() / name
    if output.is_dir() and not output.is_symlink():
        return output / name
    return output


@dataclass(frozen=True, kw_only=True)
class SignedItem:
    """An item's metadata and its manifest, checked as its owner's for this item.

    ``pinned`` is the owner's pinned contact, or None for one's own item;
    ``newly_pinned`` says whether it was pinned just now (trust on first use).
    """

    meta: dict[str, Any]
    signed: SignedManifest
    manifest: Manifest
    card: Card
    pinned: Pinned | None
    newly_pinned: bool
    signer: bytes
    """The key that signed the manifest (the card's, or one's own duress twin's)."""


def signed_item(client: Client, item: str) -> SignedItem:
    """Fetch an item's metadata and manifest; check the owner's signature and the ids.

    The hashes can only be checked against the content (:func:`content`).

    Raises:
        ConfigError: no such item this account may read.
        SignatureError, ManifestError: not the owner's manifest of this item.
    """
    meta = _meta(client, item)
    pinned, newly = _signer(client, meta["owner"])
    signed = _manifest(client, meta)
    if pinned is None:
        signer = _own_signer(client, signed)
        # One's own card, or one's decoys' for a decoy: the card whose key signed.
        cards = [identity.card() for identity in client.own_identities()]
        card = next((c for c in cards if c.signing_key == signer), client.own_card())
    else:
        card = pinned.card
        signer = card.signing_key
    manifest = _check_signed(signed, signer, meta)
    return SignedItem(
        meta=meta,
        signed=signed,
        manifest=manifest,
        card=card,
        pinned=pinned,
        newly_pinned=newly,
        signer=signer,
    )


_RESUMES = 5
"""Times a download whose connection dropped asks again for the rest, before giving up."""


class _Body:
    """An item's age file as it streams in; after a dropped connection, the rest asked for.

    The rest is asked for with ``Range`` and ``If-Range`` (the entity tag of
    the first answer): a file whose header changed meanwhile (shared again)
    is refused rather than spliced. Whatever comes is hashed and checked
    against the signed manifest in the end anyway.
    """

    def __init__(self, client: Client, path: str, total: int, progress: Progress | None) -> None:
        self._client = client
        self._path = path
        self._total = total
        self._progress = progress
        self.response = client.authed().stream(path)
        self._etag = self.response.headers.get("ETag")
        self.received = 0

    def pieces(self) -> Iterator[bytes]:
        if self._progress is not None:
            self._progress.start(total=self._total, done=0, resumed=False)
        resumes = 0
        while True:
            try:
                for piece in self._client.api.iter_body(self.response):
                    self.received += len(piece)
                    if self._progress is not None:
                        self._progress.advance(len(piece))
                    yield piece
                return
            except ApiError as exc:
                if exc.status != 0 or not self._etag or resumes >= _RESUMES:
                    raise
                resumes += 1
                self._resume()

    def _resume(self) -> None:
        self.response.close()
        self.response = self._client.authed().stream(
            self._path,
            headers={"Range": f"bytes={self.received}-", "If-Range": str(self._etag)},
        )
        if self.response.status_code != 206 or not self.response.headers.get(
            "Content-Range", ""
        ).startswith(f"bytes {self.received}-"):
            raise ApiError(
                "the item changed on the server while it was being downloaded",
                hint="run the command again",
            )
        if self._progress is not None:
            self._progress.start(total=self._total, done=self.received, resumed=True)

    def close(self) -> None:
        self.response.close()


@contextlib.contextmanager
def content(
    client: Client, found: SignedItem, *, progress: Progress | None = None
) -> Iterator[_Download]:
    """The item's age file as it streams in, refused past the size its manifest allows.

    A dropped connection is resumed where it stopped (a few times);
    ``progress`` is told the size, then each piece as it arrives.
    """
    meta = found.meta
    total = meta["header_size"] + payload_size(found.manifest.size)
    body = _Body(client, f"/items/{meta['id']}/content", total, progress)
    try:
        yield _Download(body.pieces(), meta["header_size"], total)
    finally:
        body.close()


def _holds(path: Path, manifest: Manifest) -> bool:
    """Whether ``path`` is a regular file with the manifest's content (by size and SHA-256)."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != manifest.size:
            return False
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while piece := f.read(1 << 20):
                digest.update(piece)
    except OSError:
        return False
    return digest.hexdigest() == manifest.plaintext_sha256


def fetch_item(
    client: Client,
    item: str,
    *,
    output: Path | None,
    force: bool,
    keep_present: bool = False,
    written: Collection[Path] = (),
    progress: Callable[[str], Progress] | None = None,
) -> Fetched:
    """Download, decrypt and verify an item; write it under a safe name.

    With ``keep_present`` (and without ``force``), a file already there with
    the content the signed manifest names is kept, and nothing is
    downloaded. A target in ``written`` (what this command wrote already) is
    refused even with ``force``: two items of the same name do not replace
    each other. ``progress``, given the file's name as its signed manifest
    has it, gives what the download reports to (bytes of the age file as
    they arrive).

    Raises:
        ConfigError: unknown item, or the output exists (without ``force``),
            or another item was written there by this command, or its folder
            cannot take it (no room, no permission: nothing is left behind).
        SignatureError, ManifestError: a manifest that is not the owner's
            for this item, or hashes that do not match it.
        DecryptError: the ciphertext does not decrypt or authenticate.
        RewrittenLogError: the server's log is not the one this device saw
            (:meth:`Client.check_log`, first).
    """
    client.check_log()
    found = signed_item(client, item)
    meta, signed, pinned = found.meta, found.signed, found.pinned
    signer = found.signer
    target = _destination(output, found.manifest)
    name = "you" if pinned is None else pinned.name
    verified = pinned is None or pinned.contact.verified
    if target in written:
        raise ConfigError(
            f"another file called {target.name} was just written in {target.parent}",
            hint="get this one on its own, with -o and another file or folder name",
        )
    if keep_present and not force and _holds(target, found.manifest):
        return Fetched(
            path=target,
            manifest=found.manifest,
            signer_name=name,
            newly_pinned=found.newly_pinned,
            signer_verified=verified,
            present=True,
            owner=meta["owner"],
        )
    check_room(target, found.manifest.size)
    bar = None if progress is None else progress(target.name)
    with (
        content(client, found, progress=bar) as download,
        atomic_output(target, mode=0o600, overwrite=force, size=found.manifest.size) as out,
    ):
        writer = _HashingWriter(out)
        age.decrypt(download, writer, _own_age_identities(client), armored=False)  # type: ignore[arg-type]
        if download.read(1):
            raise DecryptError("trailing data after the item's payload")
        payload_sha256 = download.payload.hexdigest()
        if payload_sha256 != meta["sha256"] or download.payload_size != meta["size"]:
            raise ProofError(
                "the downloaded ciphertext is not the one the server lists for this item",
                hint="do not trust this server",
            )
        signed.verify(
            signer=signer,
            plaintext_sha256=writer.digest.hexdigest(),
            payload_sha256=payload_sha256,
            item_id=item,
            vault_id=meta["vault"],
            size=writer.size,
        )
    return Fetched(
        path=target,
        manifest=found.manifest,
        signer_name=name,
        newly_pinned=found.newly_pinned,
        signer_verified=verified,
        owner=meta["owner"],
    )


_HEADS = ("item.uploaded", "item.shared")


Logged = tuple[str, str, tuple[str, ...]]
"""Header hash, manifest hash and editors of an item, as its newest logged entry has them."""


def _latest(events: list[tuple[int, dict[str, Any]]]) -> Logged | None:
    heads = [(i, ev) for i, ev in events if ev.get("type") in _HEADS]
    if not heads:
        return None
    _, ev = max(heads, key=lambda pair: pair[0])
    editors = ev.get("editors") if ev.get("type") == "item.shared" else []
    if not isinstance(editors, list):
        editors = ["?"]  # malformed: matches nothing a server lists
    return (
        str(ev.get("header_sha256")),
        str(ev.get("manifest_sha256")),
        tuple(sorted(str(e) for e in editors)),
    )


def _listed(meta: dict[str, Any]) -> Logged:
    shared = meta.get("shared_with") or []
    editors = tuple(sorted(str(e) for e in shared)) if isinstance(shared, list) else ("?",)
    return str(meta["header_sha256"]), str(meta.get("manifest_sha256")), editors


def logged_entries(client: Client, item: str) -> list[LoggedEntry]:
    """The upload and share entries of an own ``item``, with the receipts their writes got.

    The server finds them; each is checked here against the pinned log, and
    one that names another item is left out.

    Raises:
        ProofError: a malformed answer, or a receipt that does not verify.
    """
    answer = client.call("GET", f"/items/{item}/entries")
    given = answer.get("entries")
    if not isinstance(given, list) or not all(isinstance(e, dict) for e in given):
        raise ProofError("the server sent a malformed list of the item's log entries")
    verified = [client.log.entry(raw) for raw in given]
    return [entry for entry in verified if entry.event.get("item") == item]


def _logged_state(client: Client, item: str, meta: dict[str, Any]) -> Logged:
    """The header and manifest hashes and editors of the newest logged upload or share of ``item``.

    The server names the item's upload and share entries, each with a
    receipt checked here against the pinned log. If the newest of them does
    not match the server's metadata, the whole log is read and verified to
    find the newest entry.
    """
    kept = [(entry.index, entry.event) for entry in logged_entries(client, item)]
    latest = _latest(kept)
    if latest is not None and latest == _listed(meta):
        return latest
    _, events = read_log(
        client, keep=lambda ev: ev.get("item") == item and ev.get("type") in _HEADS
    )
    found = _latest([(e.index, e.event) for e in events])
    if found is None:
        raise ProofError("the log has no upload of this item", hint="do not trust this server")
    return found


def _current_header(client: Client, meta: dict[str, Any]) -> bytes:
    size = meta["header_size"]
    response = client.authed().request(
        "GET",
        f"/items/{meta['id']}/content",
        headers={"Range": f"bytes=0-{size - 1}"},
        stream=True,
        ok=(206,),
    )
    data = b""
    try:
        for piece in client.api.iter_body(response, 65536):
            data += piece
            if len(data) > size:
                break
    finally:
        response.close()
    if len(data) != size or hashlib.sha256(data).hexdigest() != meta["header_sha256"]:
        raise ProofError("the server sent another header than the item's")
    return data


@dataclass(frozen=True, kw_only=True)
class Rewrapped:
    """An item's header (and manifest) with recipients added, made here and not yet sent."""

    item: str
    header: bytes
    sealed_manifest: bytes
    """The manifest re-wrapped too, or as it is when only the header was."""
    manifest: Manifest
    editors: tuple[str, ...]
    """The editors the item is shared with now, as the log records them."""

    def expected_entry(
        self, account: str, editors: list[str], disclosure: bytes | None = None
    ) -> dict[str, object]:
        """The ``item.shared`` entry that records this re-wrap, shared with ``editors``.

        With ``disclosure``, the entry of arming: it names the disclosure too.
        """
        entry: dict[str, object] = {
            "type": "item.shared",
            "item": self.item,
            "account": account,
            "header_sha256": hashlib.sha256(self.header).hexdigest(),
            "header_size": len(self.header),
            "editors": editors,
            "manifest_sha256": hashlib.sha256(self.sealed_manifest).hexdigest(),
            "manifest_size": len(self.sealed_manifest),
        }
        if disclosure is not None:
            entry["disclosure_sha256"] = hashlib.sha256(disclosure).hexdigest()
            entry["disclosure_size"] = len(disclosure)
        return entry


def _prepare_rewrap(
    client: Client,
    meta: dict[str, Any],
    logged: Logged,
    add: list[age.Recipient],
    *,
    manifest_too: bool = True,
) -> Rewrapped:
    """``add`` put in the item's header (and manifest), which must be the logged ones.

    Raises:
        ProofError: the server's header, manifest or editors are not the logged ones.
    """
    item = meta["id"]
    header = _current_header(client, meta)
    manifest_data = client.authed().get_bytes(f"/items/{item}/manifest", limit=_MAX_MANIFEST)
    if logged != (
        hashlib.sha256(header).hexdigest(),
        hashlib.sha256(manifest_data).hexdigest(),
        _listed(meta)[2],
    ):
        raise ProofError(
            "the server sent a header, manifest or editor list that the log does not record "
            "for this item",
            hint="do not trust this server; nothing was shared",
        )
    signed = _open_manifest(client, manifest_data)
    manifest = _check_signed(signed, _own_signer(client, signed), meta)
    identities = _own_age_identities(client)
    try:
        parsed = parse_header(Source(io.BytesIO(header)))
    except FormatError as exc:
        raise ProofError(f"the item's header is malformed: {exc.message}") from None
    return Rewrapped(
        item=item,
        header=recipients.rewrap_header(parsed, identities, add).marshal(),
        sealed_manifest=(
            recipients.rewrap(manifest_data, identities, add) if manifest_too else manifest_data
        ),
        manifest=manifest,
        editors=logged[2],
    )


def _rewrap(
    client: Client,
    meta: dict[str, Any],
    logged: Logged,
    add: list[age.Recipient],
    editors: list[str],
) -> tuple[LoggedEntry, Manifest]:
    """Add ``add`` to the item's header and manifest; share it with exactly ``editors``.

    Returns the verified ``item.shared`` entry and the item's signed manifest.
    """
    rewrapped = _prepare_rewrap(client, meta, logged, add)
    answer = client.call(
        "POST",
        f"/items/{rewrapped.item}/share",
        json={
            "header": b64encode(rewrapped.header),
            "editors": editors,
            "manifest": b64encode(rewrapped.sealed_manifest),
        },
    )
    entry = client.log.entry(answer)
    entry.expect(rewrapped.expected_entry(client.account, editors))
    return entry, rewrapped.manifest


def _own_meta(client: Client, item: str, what: str) -> dict[str, Any]:
    meta = _meta(client, item)
    if meta["owner"] != client.account:
        raise ConfigError(f"only the reporter who added an item can {what} it")
    return meta


def share_item(client: Client, item: str, name: str) -> tuple[LoggedEntry, Pinned]:
    """Add the verified contact ``name`` as a reader of ``item``: header re-wrap only.

    Raises:
        KeyChangedError: the server gives another key for the contact.
        ConfigError: the contact is unknown or unverified; not your item.
    """
    meta = _own_meta(client, item, "share")
    contact = current_card(client, name)
    # The server says which header, manifest and editors are this item's; the
    # log and the signed manifest decide. A server that handed over another
    # item's header would get that item re-wrapped for the editor, and one
    # that listed other editors would have the share replace the real ones.
    logged = _logged_state(client, item, meta)
    editors = list(logged[2])
    if contact.contact.account in editors:
        raise ConfigError(f"{item} is already shared with {name}")
    wanted = sorted({*editors, contact.contact.account})
    entry, _ = _rewrap(client, meta, logged, [contact.card.age_recipient()], wanted)
    return entry, contact


def with_release_recipient(client: Client, item: str, release: age.X25519Recipient) -> Rewrapped:
    """``item``'s header with the release recipient added, not sent yet; its manifest.

    The manifest stays as it is, never encrypted to the release recipient:
    once released, that key is public. Arming stages the header with the
    item's disclosure (:mod:`client.disclosure`) and the arm applies them
    in one transaction.

    Raises:
        ConfigError: not your item.
        ProofError: the server's header, manifest or editors are not the logged ones.
    """
    meta = _own_meta(client, item, "put in the release set")
    logged = _logged_state(client, item, meta)
    return _prepare_rewrap(client, meta, logged, [release], manifest_too=False)


def release_recipient_on_decoy(
    client: Client, item: str, release: age.X25519Recipient
) -> LoggedEntry:
    """Put the release recipient in a decoy's header now, its manifest as it is; the entry.

    A decoy is never released: this only makes its header look like those of
    the real items of an armed vault.

    Raises:
        ConfigError: not your item.
        ProofError: the server's header, manifest or editors are not the logged ones.
    """
    rewrapped = with_release_recipient(client, item, release)
    editors = list(rewrapped.editors)
    answer = client.call(
        "POST",
        f"/items/{item}/share",
        json={
            "header": b64encode(rewrapped.header),
            "editors": editors,
            "manifest": b64encode(rewrapped.sealed_manifest),
        },
    )
    entry = client.log.entry(answer)
    entry.expect(rewrapped.expected_entry(client.account, editors))
    return entry


@dataclass(frozen=True, kw_only=True)
class Deleted:
    """A deletion: done now, or pending until ``effective_at`` (the switch's cooling-off)."""

    entry: LoggedEntry
    pending: PendingChange | None


def delete_item(client: Client, item: str) -> Deleted:
    """Delete an item of mine from the server's list (the log keeps the record).

    While the dead-man switch is armed, the server only records the request
    (202): the item goes when the cooling-off delay ends, unless trustees
    cancel it.
    """
    _own_meta(client, item, "delete")
    status, answer = client.authed().answer("DELETE", f"/items/{item}", ok=(200, 202))
    entry = client.log.entry(answer)
    if status == 202:
        change = parse_change(answer.get("change"))
        expect_change(client, entry, change, kind="delete", item=item)
        return Deleted(entry=entry, pending=change)
    entry.expect({"type": "item.deleted", "item": item, "account": client.account})
    return Deleted(entry=entry, pending=None)
