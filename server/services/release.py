"""Release: custodians' shares in, the release identity rebuilt, the release set published.

When a vault's grace ends the worker decrypts the server's own share with the
custodian key and hands it in like any other (:func:`contribute_server_share`);
trustees hand in theirs (:func:`submit_share`: by CLI or on the web form), and
only shares whose commitments the reporter's client sent at arming are taken.
Shares handed in are sealed to the custodian key at rest. With ``threshold``
of them, :func:`prepare_release` rebuilds the release identity, checks it
against the recipient committed at arming, and checks every item of the
release set with it: its disclosure (what the reporter chose to make public,
:mod:`vault.disclosure`) decrypts and carries the reporter's valid
signature, the payload decrypts and hashes to the signed values. The worker
then publishes (:func:`publish`) in one transaction: the conditional move to
``released``, the release row (the identity, public from now on, and the
report), the ``switch.released`` log entry and the notices.

What the release page shows is :func:`release_view`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import io
import itertools
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from server.keyfile import ServerKeys
from server.models import Account, Item, Release, SubmittedShare, Switch
from server.services import log
from server.services import switch as switches
from server.storage import BlobStore, StorageError
from vault import age, canonical
from vault.disclosure import SignedDisclosure
from vault.errors import ShareError, VaultError
from vault.keys import Card
from vault.manifest import SignedManifest
from vault.note import NoteSigner
from vault.shares import combine_shares, describe_share, normalise_share, share_commitment

__all__ = [
    "NotReleasingError",
    "Prepared",
    "PublishedFile",
    "ReleaseView",
    "ReleasedFile",
    "ShareAccepted",
    "ShareRejectedError",
    "contribute_server_share",
    "prepare_release",
    "publish",
    "published_count",
    "release_item",
    "release_url",
    "release_view",
    "submit_share",
    "under_way",
]

_MAX_MANIFEST = 64 * 1024
_MAX_MNEMONIC = 1024
MAX_SUBMITTED = 2
"""Shares kept per vault, as a multiple of the shares made: a second line of defence, for
switches armed without share commitments, where made-up shares of the set are taken."""
MAX_COMBINATIONS = 2000
"""Sets of shares tried at one release attempt; each try runs SLIP-39's PBKDF2."""


class ShareRejectedError(VaultError):
    """A share that cannot be used; the message is safe to show its custodian."""


class NotReleasingError(VaultError):
    """Shares are taken only while the vault is releasing."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShareAccepted:
    have: int
    need: int
    state: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReleasedFile:
    """One item of the release set and what the server checked about it."""

    item: str
    name: str | None
    """None when the reporter withheld it (or no disclosure could be read)."""
    media_type: str
    size: int
    plaintext_sha256: str
    ciphertext_sha256: str
    age_size: int
    header_sha256: str | None
    captured_at: str | None
    note: str | None
    """None unless the reporter chose to publish it."""
    signature: str
    committed: bool
    log_index: int | None
    receipt: str | None
    problems: list[str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReleaseView:
    """What the public release page shows."""

    vault: str
    number: int
    state: str
    published_at: dt.datetime | None
    identity: str | None
    recipient: str
    reporter_name: str
    reporter_fingerprint: str
    commitment_count: int
    armed_entry: int | None
    released_entry: int | None
    log_origin: str
    shares_have: int
    shares_need: int
    files: list[ReleasedFile]


def _seal(keys: ServerKeys, mnemonic: str) -> bytes:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(mnemonic.encode("utf-8")), out, [keys.custodian.recipient()])
    return out.getvalue()


def _open(keys: ServerKeys, data: bytes) -> str:
    out = io.BytesIO()
    age.decrypt(io.BytesIO(data), out, [keys.custodian])
    return out.getvalue().decode("utf-8")


def _server_mnemonic(session: Session, switch: Switch, keys: ServerKeys) -> str:
    shares = switches.custodian_shares_of(session, switch.vault_id)
    own = [s for s in shares if s.custodian == "server"]
    if len(own) != 1:
        raise RuntimeError("internal error: a switch without the server's share")
    return normalise_share(_open(keys, own[0].encrypted))


def _add_share(
    session: Session,
    switch: Switch,
    mnemonic: str,
    *,
    submitted_by: str,
    now: dt.datetime,
    keys: ServerKeys,
    signer: NoteSigner,
) -> bool:
    digest = hashlib.sha256(mnemonic.encode("utf-8")).digest()
    if session.get(SubmittedShare, (switch.vault_id, digest)) is not None:
        return False
    session.add(
        SubmittedShare(
            vault_id=switch.vault_id,
            digest=digest,
            sealed=_seal(keys, mnemonic),
            submitted_by=submitted_by,
            submitted_at=now,
        )
    )
    info = describe_share(mnemonic)
    event = {
        "type": "release.share",
        "vault": switch.vault_id,
        "custodian": "server" if submitted_by == "server" else "trustee",
        "share": info.index,
    }
    log.append(session, event, signer)
    switch.next_due_at = now
    session.flush()
    return True


def contribute_server_share(
    session: Session, switch: Switch, *, now: dt.datetime, keys: ServerKeys, signer: NoteSigner
) -> None:
    """Hand in the server's own share (decrypted with the custodian key)."""
    _add_share(
        session,
        switch,
        _server_mnemonic(session, switch, keys),
        submitted_by="server",
        now=now,
        keys=keys,
        signer=signer,
    )


def _have(session: Session, vault_id: str) -> int:
    return len(
        session.scalars(
            select(SubmittedShare.digest).where(SubmittedShare.vault_id == vault_id)
        ).all()
    )


def _committed(session: Session, vault_id: str, mnemonic: str) -> bool:
    """Whether ``mnemonic`` is one of the shares committed to at arming (True if none were).

    A made-up share of the right set passes every check before this one: a
    trustee learns the set's identifier and parameters from their own share.
    """
    commitments = [
        share.commitment
        for share in switches.custodian_shares_of(session, vault_id)
        if share.commitment is not None
    ]
    if not commitments:
        return True
    mine = share_commitment(mnemonic)
    found = False
    for commitment in commitments:
        # Every commitment is compared, in constant time each.
        found |= hmac.compare_digest(mine, commitment)
    return found


def submit_share(
    session: Session,
    *,
    vault_id: str,
    mnemonic: str,
    submitted_by: str,
    now: dt.datetime,
    signer: NoteSigner,
    keys: ServerKeys,
) -> ShareAccepted:
    """Take a custodian's share for a releasing vault. The caller commits.

    The share must be well-formed, of the same set as the server's own (same
    SLIP-39 identifier and parameters), and one of the shares made at arming:
    its commitment (:func:`vault.shares.share_commitment`) must be one of
    those the reporter's client sent. A switch armed before commitments
    existed has none; there any share of the set is taken, up to
    :data:`MAX_SUBMITTED` times the shares made, and whether it combines is
    found at release.

    Raises:
        NotReleasingError: the vault is not releasing (or does not exist).
        ShareRejectedError: a malformed share, one of another set, or one not
            made for this vault. Nothing is stored or logged for it.
    """
    if len(mnemonic) > _MAX_MNEMONIC:
        raise ShareRejectedError("that is too long to be a share")
    switch = switches.find_switch(session, vault_id, lock=True)
    if switch is None or switch.state not in ("releasing", "released"):
        raise NotReleasingError("this vault is not being released; shares are not taken now")
    if switch.state == "released":
        return ShareAccepted(have=_have(session, vault_id), need=switch.threshold, state="released")
    words = normalise_share(mnemonic)
    try:
        info = describe_share(words)
    except ShareError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        raise ShareRejectedError(f"{exc.message}{hint}") from None
    own = describe_share(_server_mnemonic(session, switch, keys))
    same_set = (
        info.identifier == own.identifier
        and info.extendable == own.extendable
        and info.iteration_exponent == own.iteration_exponent
        and info.secret_length == own.secret_length
        and info.group_threshold == own.group_threshold
        and info.group_count == own.group_count
        and info.member_threshold == own.member_threshold
    )
    if not same_set or not _committed(session, vault_id, words):
        # One answer whatever is wrong, so that neither the set's identifier nor its
        # parameters can be guessed one refusal at a time.
        raise ShareRejectedError("this share does not belong to the release key of this vault")
    if _have(session, vault_id) >= MAX_SUBMITTED * switch.shares:
        raise ShareRejectedError(
            "too many shares were handed in for this vault; the operator must look at them"
        )
    _add_share(session, switch, words, submitted_by=submitted_by, now=now, keys=keys, signer=signer)
    return ShareAccepted(have=_have(session, vault_id), need=switch.threshold, state=switch.state)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Prepared:
    """A release ready to publish: the identity and the per-file report."""

    identity: age.X25519Identity = dataclasses.field(repr=False)
    files: list[dict[str, Any]]
    version: int


def _recover(
    own: str, others: list[str], threshold: int, recipient: str
) -> age.X25519Identity | None:
    """The release identity from the server's own share ``own`` and ``threshold - 1`` others.

    A forged or damaged share among good ones: the sets are tried in turn,
    always with the server's own share (which it trusts), at most
    :data:`MAX_COMBINATIONS` of them.
    """
    needed = max(threshold - 1, 0)
    for tried, subset in enumerate(itertools.combinations(others, needed)):
        if tried >= MAX_COMBINATIONS:
            break
        try:
            secret = combine_shares([own, *subset])
        except ShareError:
            continue
        if len(secret) != 32:
            continue
        identity = age.X25519Identity(secret)
        if str(identity.recipient()) == recipient:
            return identity
    return None


class _Chained(io.RawIOBase):
    """The header bytes, then a blob: an age file read without copying it."""

    def __init__(self, head: bytes, tail: BinaryIO) -> None:
        self._head = memoryview(head)
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._tail.read(len(view))
        view[: len(data)] = data
        return len(data)


class _Hasher(io.RawIOBase):
    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.size += view.nbytes
        return view.nbytes


def _read_blob(store: BlobStore, key: str, limit: int) -> bytes:
    with store.open(key) as blob:
        data = blob.read(limit + 1)
    if len(data) > limit:
        raise StorageError("a stored blob is larger than expected")
    return data


def _open_blob(store: BlobStore, key: str, identity: age.X25519Identity) -> bytes:
    sealed = _read_blob(store, key, _MAX_MANIFEST)
    plain = io.BytesIO()
    age.decrypt(io.BytesIO(sealed), plain, [identity])
    return plain.getvalue()


def _check_item(
    store: BlobStore, item: Item, identity: age.X25519Identity, card: Card
) -> dict[str, Any]:
    """Decrypt and check one release-set item; never raises for a bad item.

    What the page may show comes from the item's disclosure, the reporter's
    signed choice (:mod:`vault.disclosure`): a name, a capture time or a
    note withheld there is ``null`` in the report. An item put in the release
    set before disclosures existed has its manifest encrypted to the release
    key instead; its name, type and capture time are shown as they always
    were, and its note never, since the reporter never chose to publish it.
    """
    entry: dict[str, Any] = {
        "item": item.id,
        "name": None,
        "media_type": "application/octet-stream",
        "size": 0,
        "plaintext_sha256": "",
        "ciphertext_sha256": item.payload_key,
        "header_sha256": item.header_key,
        "age_size": item.header_size + item.payload_size,
        "captured_at": None,
        "note": None,
        "signature": "invalid",
        "log_index": item.log_index,
        "problems": [],
    }
    problems: list[str] = entry["problems"]
    disclosed: SignedDisclosure | None = None
    signed: SignedManifest | None = None
    if item.disclosure_key is not None:
        try:
            disclosed = SignedDisclosure.parse(_open_blob(store, item.disclosure_key, identity))
        except (VaultError, StorageError, OSError) as exc:
            problems.append(f"the disclosure cannot be read with the release key: {exc}")
    elif item.manifest_key is not None:
        try:
            signed = SignedManifest.parse(_open_blob(store, item.manifest_key, identity))
        except (VaultError, StorageError, OSError) as exc:
            problems.append(f"the manifest cannot be read with the release key: {exc}")
    else:
        problems.append("the item has no disclosure or manifest")
    hasher = _Hasher()
    try:
        header = _read_blob(store, item.header_key, item.header_size)
        with store.open(item.payload_key) as payload:
            age.decrypt(
                cast("BinaryIO", _Chained(header, payload)), cast("BinaryIO", hasher), [identity]
            )
    except (VaultError, StorageError, OSError) as exc:
        problems.append(f"the item cannot be decrypted with the release key: {exc}")
        hasher = None  # type: ignore[assignment]
    if disclosed is not None:
        d = disclosed.disclosure
        entry.update(
            media_type=d.media_type,
            size=d.size,
            plaintext_sha256=d.plaintext_sha256,
        )
        if hasher is not None:
            try:
                disclosed.verify(
                    signer=card.signing_key,
                    payload_sha256=item.payload_key,
                    item_id=item.id,
                    vault_id=item.vault_id,
                    plaintext_sha256=hasher.digest.hexdigest(),
                    size=hasher.size,
                )
                entry["signature"] = "valid"
                # Words only a valid signature vouches for reach the public page.
                entry.update(name=d.filename, captured_at=d.captured_at, note=d.note)
            except VaultError as exc:
                problems.append(str(exc.message))
    elif signed is not None:
        m = signed.manifest
        # The note stays out: nobody chose to publish it.
        entry.update(
            name=m.filename,
            media_type=m.media_type,
            size=m.size,
            plaintext_sha256=m.plaintext_sha256,
            captured_at=m.captured_at,
        )
        if hasher is not None:
            try:
                signed.verify(
                    signer=card.signing_key,
                    plaintext_sha256=hasher.digest.hexdigest(),
                    payload_sha256=item.payload_key,
                    item_id=item.id,
                    vault_id=item.vault_id,
                    size=hasher.size,
                )
                entry["signature"] = "valid"
            except VaultError as exc:
                problems.append(str(exc.message))
    elif hasher is not None:
        entry.update(size=hasher.size, plaintext_sha256=hasher.digest.hexdigest())
    return entry


def prepare_release(
    session: Session, switch: Switch, *, store: BlobStore, keys: ServerKeys
) -> Prepared | None:
    """Rebuild the release identity and check the release set; None while shares are missing.

    Reads only; ends with the session's transaction rolled back, so the long
    part holds no lock.
    """
    version = switch.version
    vault_id = switch.vault_id
    threshold = switch.threshold
    recipient = switch.release_recipient
    commitment = canonical.loads(switch.commitment)
    sealed = list(
        session.scalars(select(SubmittedShare.sealed).where(SubmittedShare.vault_id == vault_id))
    )
    own = _server_mnemonic(session, switch, keys)
    others = sorted({normalise_share(_open(keys, data)) for data in sealed} - {own})
    identity = _recover(own, others, threshold, recipient) if len(others) >= threshold - 1 else None
    if identity is None:
        session.rollback()
        return None
    account = session.get(Account, switch.account_id)
    if account is None:
        raise RuntimeError("internal error: a switch without its account")
    card = Card.from_json(account.card)
    committed = set(commitment.get("sha256", [])) if isinstance(commitment, dict) else set()
    items = list(
        session.scalars(
            select(Item)
            # Only the real items: the decoy vault's are never released.
            .where(Item.vault_id == vault_id, Item.release_set.is_(True), Item.layer == 0)
            .order_by(Item.created_at, Item.id)
        )
    )
    session.rollback()
    files = []
    for item in items:
        entry = _check_item(store, item, identity, card)
        entry["committed"] = item.payload_key in committed
        files.append(entry)
    return Prepared(identity=identity, files=files, version=version)


def publish(
    session: Session,
    switch: Switch,
    prepared: Prepared,
    *,
    now: dt.datetime,
    signer: NoteSigner,
    base_url: str,
) -> bool:
    """Move ``releasing → released`` once; False if another worker did it first."""
    moved = cast(
        "CursorResult[Any]",
        session.execute(
            update(Switch)
            .where(
                Switch.vault_id == switch.vault_id,
                Switch.state == "releasing",
                Switch.version == prepared.version,
            )
            .values(
                state="released",
                version=Switch.version + 1,
                released_at=now,
                # Nothing more is due, but the notices of a duress view.
                next_due_at=switches.view_next_due(switch),
            )
        ),
    )
    if moved.rowcount != 1:
        session.rollback()
        return False
    for entry in prepared.files:
        entry["receipt"] = None
    report = {"files": prepared.files}
    encoded = canonical.dumps(report)
    event = {
        "type": "switch.released",
        "vault": switch.vault_id,
        "recipient": switch.release_recipient,
        "files": len(prepared.files),
        "report_sha256": hashlib.sha256(encoded).hexdigest(),
    }
    appended = log.append(session, event, signer)
    # Each file's receipt: its upload entry in the checkpoint signed with the release.
    for entry in prepared.files:
        index = entry.get("log_index")
        if isinstance(index, int):
            entry["receipt"] = (
                log.receipt(session, index, appended.checkpoint).marshal().decode("utf-8")
            )
    number = published_count(session, switch.vault_id) + 1
    session.add(
        Release(
            vault_id=switch.vault_id,
            number=number,
            identity=str(prepared.identity),
            report=canonical.dumps({**report, "released_entry": appended.entry.idx}),
            published_at=now,
            recipient=switch.release_recipient,
            commitment=switch.commitment,
            armed_entry=switch.armed_entry,
        )
    )
    released = [entry["item"] for entry in prepared.files]
    if released:
        session.execute(update(Item).where(Item.id.in_(released)).values(released_in=number))
    session.refresh(switch)
    url = release_url(base_url, switch.vault_id, number)
    for audience in ("publish", "alert"):
        switches.notify(
            session,
            switch,
            audience=audience,
            event="switch.released",
            subject="Evidence Vault: a reporter's files are released",
            text=(
                f"The reporter of vault {switch.vault_id} stopped checking in, and their "
                f"evidence has been released: {len(prepared.files)} file(s) at {url} , with "
                "the key to decrypt them and the audit-log proofs."
            ),
            now=now,
            extra={"url": url, "files": len(prepared.files)},
            # After a duress event the reporter's own mailbox keeps the story it was shown.
            spare_own=switch.duress_view is not None,
        )
    return True


def release_url(base_url: str, vault_id: str, number: int) -> str:
    """The public page of a vault's release ``number``: its first at ``/release/<vault>``."""
    page = f"{base_url}/release/{vault_id}"
    return page if number == 1 else f"{page}/{number}"


def published_count(session: Session, vault_id: str) -> int:
    """How many releases of ``vault_id`` were published (they are numbered 1 to this)."""
    count = session.scalar(
        select(func.count()).select_from(Release).where(Release.vault_id == vault_id)
    )
    return int(count or 0)


def published_record(session: Session, vault_id: str, number: int) -> dict[str, Any] | None:
    """A published release as it was recorded, for anyone to check against the log; or None.

    ``report`` is the stored report itself: its ``files``, with every
    ``receipt`` set to null, hash (canonical JSON ``{"files": …}``) to the
    ``report_sha256`` of the release's ``switch.released`` log entry.
    """
    release = session.get(Release, (vault_id, number)) if number >= 1 else None
    if release is None:
        return None
    return {
        "vault": vault_id,
        "number": number,
        "published_at": int(release.published_at.timestamp()),
        "recipient": release.recipient,
        "identity": release.identity,
        "armed_entry": release.armed_entry,
        "report": canonical.loads(release.report),
    }


def release_view(
    session: Session, vault_id: str, number: int = 1, *, log_origin: str = ""
) -> ReleaseView | None:
    """The content of the public page of release ``number`` of a vault, or None.

    A published release is shown as it was published, whatever the vault
    did since (armed again, released again). The release after the last
    published one is shown while it is under way (``releasing``). Nothing
    else has a page.
    """
    switch = switches.find_switch(session, vault_id)
    if switch is None or number < 1:
        return None
    account = session.get(Account, switch.account_id)
    if account is None:
        return None
    card = Card.from_json(account.card)
    release = session.get(Release, (vault_id, number))
    if release is not None:
        commitment = canonical.loads(release.commitment)
        report = canonical.loads(release.report)
        files: list[ReleasedFile] = []
        released_entry = None
        if isinstance(report, dict):
            released_entry = report.get("released_entry")
            for entry in report.get("files", []):
                files.append(ReleasedFile(**{"header_sha256": None, **entry}))
        # The shares handed in are kept until the vault is armed again.
        latest = switch.state == "released" and number == published_count(session, vault_id)
        return ReleaseView(
            vault=vault_id,
            number=number,
            state="released",
            published_at=release.published_at,
            identity=release.identity,
            recipient=release.recipient,
            reporter_name=card.name,
            reporter_fingerprint=card.fingerprint(),
            commitment_count=_count(commitment),
            armed_entry=release.armed_entry,
            released_entry=released_entry if isinstance(released_entry, int) else None,
            log_origin=log_origin,
            shares_have=_have(session, vault_id) if latest else 0,
            shares_need=switch.threshold if latest else 0,
            files=files,
        )
    if switch.state != "releasing" or number != published_count(session, vault_id) + 1:
        return None
    return ReleaseView(
        vault=vault_id,
        number=number,
        state="releasing",
        published_at=None,
        identity=None,
        recipient=switch.release_recipient,
        reporter_name=card.name,
        reporter_fingerprint=card.fingerprint(),
        commitment_count=_count(canonical.loads(switch.commitment)),
        armed_entry=switch.armed_entry,
        released_entry=None,
        log_origin=log_origin,
        shares_have=_have(session, vault_id),
        shares_need=switch.threshold,
        files=[],
    )


def under_way(session: Session, vault_id: str, *, log_origin: str = "") -> ReleaseView | None:
    """The vault's release under way (``releasing``), or None."""
    return release_view(
        session, vault_id, published_count(session, vault_id) + 1, log_origin=log_origin
    )


def _count(commitment: object) -> int:
    return int(commitment.get("count", 0)) if isinstance(commitment, dict) else 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class PublishedFile:
    """A released item's age file as published: which header, which payload."""

    item: str
    header_key: str
    header_size: int
    payload_key: str
    payload_size: int


def release_item(
    session: Session, vault_id: str, item_id: str, number: int = 1
) -> PublishedFile | None:
    """A file of release ``number`` of ``vault_id`` (None unless that release published it).

    The header is the one the release checked and published: sharing the
    item later changes the item's header, never what its release published.
    """
    release = session.get(Release, (vault_id, number))
    item = session.get(Item, item_id)
    if release is None or item is None or item.vault_id != vault_id:
        return None
    report = canonical.loads(release.report)
    files = report.get("files", []) if isinstance(report, dict) else []
    entry = next((f for f in files if isinstance(f, dict) and f.get("item") == item_id), None)
    if entry is None:
        return None
    header_key = entry.get("header_sha256")
    if not isinstance(header_key, str):
        # Released before the report named the header: the item's own, unchanged since.
        return PublishedFile(
            item=item.id,
            header_key=item.header_key,
            header_size=item.header_size,
            payload_key=item.payload_key,
            payload_size=item.payload_size,
        )
    age_size = entry.get("age_size")
    header_size = age_size - item.payload_size if isinstance(age_size, int) else -1
    if header_size <= 0:
        return None
    return PublishedFile(
        item=item.id,
        header_key=header_key,
        header_size=header_size,
        payload_key=item.payload_key,
        payload_size=item.payload_size,
    )


def iter_age_file(
    store: BlobStore, item: Item | PublishedFile, block: int = 1 << 20
) -> Iterator[bytes]:
    """An age file (the item's header, or the header a release published; then the payload)."""
    yield _read_blob(store, item.header_key, item.header_size)
    with store.open(item.payload_key) as payload:
        while True:
            data = payload.read(block)
            if not data:
                return
            yield data
