"""The dead-man switch: policy, arming, check-ins, duress and cooling-off (DESIGN.md).

A reporter arms their vault with a policy and the release identity's
shares, one per custodian; from then on every check-in moves the deadline,
and the worker (:mod:`server.worker`) moves a vault that misses it through
``overdue`` to ``releasing`` and ``released``.

Duress. A check-in signed with the account's duress key, or made with the
duress phrase, answers exactly as a real one (same status, body, log event
type, and the same Argon2id and signature work, so the same time) and moves
the deadline the reporter sees; underneath, the policy's duress mode takes
effect: ``alert`` tells the trustees quietly, ``release`` starts the
release now, ``both`` does both. In a session under duress (a login with the
duress key) deletes, disarming and policy changes are answered as pending
like real ones and logged alike, but are marked and voided when due.

Cooling-off. Deleting an item of an armed vault, disarming, and policy
changes that weaken the switch (a longer interval, grace or cooling-off, a
changed duress mode, a removed contact) wait ``cooling_off`` seconds as a
:class:`~server.models.PendingChange`; trustees are told at once and enough
of them (the threshold, at most their number) can cancel it.

Every function works inside the caller's transaction and takes the time
from its ``now`` argument (the app's :mod:`server.clock`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, cast

import argon2
from sqlalchemy import CursorResult, delete, func, or_, select, update
from sqlalchemy.orm import Session

from server._fifo import FifoGate
from server.db import is_sqlite
from server.models import (
    Account,
    ChangeVote,
    CheckinNonce,
    CustodianShare,
    Item,
    LogHead,
    PendingChange,
    Release,
    StagedReleaseItem,
    SubmittedShare,
    Switch,
)
from server.services import items as item_service
from server.services import log, outbox
from server.storage import BlobStore
from vault import age, canonical
from vault.errors import FormatError, ServerError, SignatureError, VaultError
from vault.keys import Card, check_display_name, verify_signature
from vault.note import NoteSigner
from vault.protocol import CHECKIN_CONTEXT, CheckinStatement
from vault.shares import COMMITMENT_SIZE

__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_COOLING_OFF",
    "MAX_SHARES",
    "AlreadyArmedError",
    "Armed",
    "ChangeNotFoundError",
    "ChangeRequested",
    "CheckedIn",
    "CheckinRefusedError",
    "NotArmedError",
    "NotCustodianError",
    "Policy",
    "PolicyError",
    "PublishedError",
    "StagedItem",
    "SwitchError",
    "add_release_items",
    "apply_policy",
    "arm",
    "cancel_vote",
    "check_arm",
    "checkin_signed",
    "checkin_with_phrase",
    "commitment_of",
    "custodian_shares_of",
    "disarm",
    "find_switch",
    "keep_secrets",
    "missed",
    "notify",
    "pending_changes",
    "remind",
    "reporter_named",
    "request_delete",
    "reschedule",
    "set_phrases",
    "set_policy",
    "show_under_duress",
    "shown_state",
    "stage_release_items",
    "status_json",
    "trustee_vaults",
    "trustees_of",
    "view_deadline",
    "view_next_due",
    "view_notices",
    "view_since",
    "votes_needed",
]

_log = logging.getLogger(__name__)

DEFAULT_COOLING_OFF = 72 * 3600
"""Seconds a weakening change waits (72 hours) unless the policy says otherwise."""
MIN_INTERVAL = 3600
"""Shortest check-in interval unless the operator allows less (``EVAULT_MIN_INTERVAL``)."""
MAX_DURATION = 10 * 366 * 86400
MAX_REMINDERS = 8
MAX_CONTACTS = 16
MAX_SHARES = 16
MAX_SHARE_FILE = 4096
MAX_PHRASE = 1024
CHECKIN_WINDOW = dt.timedelta(minutes=5)
"""How far a signed check-in's time may be from the server's."""
MAX_HASHING = 4
"""Web check-ins whose phrases are checked at once in a process (each Argon2id run takes 64 MiB);
the others wait their turn in arrival order, however long, and are never turned away."""
_HASHING = FifoGate(MAX_HASHING)
PHRASE_ALERT = 3
"""Failed web check-ins in a row after which the trustees are first alerted."""
PHRASE_ALERT_EVERY = dt.timedelta(hours=6)
"""While web check-ins keep failing, the trustees are alerted again at most this often."""
_MAX_FAILURES = 2**31 - 1
ACTIVE_STATES = ("armed", "overdue", "releasing")

_HANDLE = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")
_EMAIL = re.compile(r"[^@\s<>\"',;]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")
_URL = re.compile(r"https?://[^\s/?#@]+(/[^\s#]*)?")
_CONTACT_EXTRAS = frozenset({"age", "name"})
"""What a contact may carry besides its address: the age recipient its notices are
encrypted to, and the name the reporter is known by to that recipient."""
_MAX_RECIPIENT = 4096
_HASHER = argon2.PasswordHasher(time_cost=3, memory_cost=65536, parallelism=2)
# Verified against when a handle is unknown, so that costs the same time: the
# hash of a random phrase nobody kept, with _HASHER's parameters (a test checks
# them). A constant, so no process pays for an Argon2id hash when it starts.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=2$uawO1P9rDm9d0mFbO12aKQ"
    "$s3MzERS4SfGAC8MfoFfXR8Xhy3WWcTsjTnE/5r92y38"
)


class SwitchError(VaultError):
    """A switch request that cannot be done; the message is safe to show."""


class PolicyError(SwitchError):
    """A policy, share set or phrase that is malformed or out of bounds."""


class AlreadyArmedError(SwitchError):
    """The vault is armed already."""


class NotArmedError(SwitchError):
    """The vault has no armed switch."""


class ChangeNotFoundError(SwitchError):
    """No such pending change."""


class NotCustodianError(SwitchError):
    """The account is not a custodian of the vault."""


class PublishedError(SwitchError):
    """An item of a release under way or published: it stays."""


class CheckinRefusedError(SwitchError):
    """A check-in was not accepted; the message never says why."""

    def __init__(self) -> None:
        super().__init__("check-in not accepted")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy:
    """What the reporter set: times in seconds and three lists of contacts."""

    interval: int
    grace: int
    reminders: tuple[int, ...]
    duress: str
    cooling_off: int
    remind: tuple[Mapping[str, str], ...]
    alert: tuple[Mapping[str, str], ...]
    publish: tuple[Mapping[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "alert": [dict(c) for c in self.alert],
            "cooling_off": self.cooling_off,
            "duress": self.duress,
            "grace": self.grace,
            "interval": self.interval,
            "publish": [dict(c) for c in self.publish],
            "remind": [dict(c) for c in self.remind],
            "reminders": list(self.reminders),
        }

    def encode(self) -> bytes:
        return canonical.dumps(self.to_json())

    def digest(self) -> str:
        """What the log records of a policy: SHA-256 (hex) of its canonical JSON without secrets."""
        return hashlib.sha256(canonical.dumps(self.public_json())).hexdigest()

    def public_json(self) -> dict[str, Any]:
        """The policy without webhook secrets, for answers and status."""
        value = self.to_json()
        for name in ("alert", "publish", "remind"):
            value[name] = [{k: v for k, v in c.items() if k != "secret"} for c in value[name]]
        return value

    @classmethod
    def parse(cls, value: object, *, min_interval: int = MIN_INTERVAL) -> Policy:
        """Check a policy sent by a client.

        Raises:
            PolicyError: anything malformed or out of bounds, said plainly.
        """
        if not isinstance(value, dict):
            raise PolicyError("'policy' must be an object")
        fields = {"interval", "grace", "reminders", "duress", "cooling_off"}
        lists = {"remind", "alert", "publish"}
        unknown = sorted(set(value) - fields - lists)
        if unknown:
            raise PolicyError(f"unknown policy field {unknown[0]!r}")
        interval = _seconds(value.get("interval"), "interval", minimum=min_interval)
        grace = _seconds(value.get("grace", 0), "grace")
        cooling_off = _seconds(value.get("cooling_off", DEFAULT_COOLING_OFF), "cooling_off")
        reminders = value.get("reminders", [])
        if not isinstance(reminders, list) or len(reminders) > MAX_REMINDERS:
            raise PolicyError(f"'reminders' must be a list of at most {MAX_REMINDERS} durations")
        offsets = sorted({_seconds(r, "reminders", minimum=1) for r in reminders}, reverse=True)
        if any(r >= interval for r in offsets):
            raise PolicyError("a reminder must come less than one interval before the deadline")
        duress = value.get("duress", "alert")
        if duress not in ("alert", "release", "both"):
            raise PolicyError("'duress' must be alert, release or both")
        contacts = {name: _contacts(value.get(name, []), name) for name in sorted(lists)}
        return cls(
            interval=interval,
            grace=grace,
            reminders=tuple(offsets),
            duress=duress,
            cooling_off=cooling_off,
            remind=contacts["remind"],
            alert=contacts["alert"],
            publish=contacts["publish"],
        )

    @classmethod
    def decode(cls, data: bytes) -> Policy:
        return cls.parse(canonical.loads(data), min_interval=1)

    def weakened_by(self, new: Policy) -> bool:
        """Whether ``new`` makes the switch slower or quieter, and so must cool off."""
        if (
            new.interval > self.interval
            or new.grace > self.grace
            or new.cooling_off > self.cooling_off
            or new.duress != self.duress
        ):
            return True
        for name in ("remind", "alert", "publish"):
            old_set = {canonical.dumps(dict(c)) for c in getattr(self, name)}
            new_set = {canonical.dumps(dict(c)) for c in getattr(new, name)}
            if not old_set <= new_set:
                return True
        # Trustees' alerts tell of a duress check-in: a new address there
        # (a coercer's own) waits, and the trustees already listed are told.
        if {canonical.dumps(dict(c)) for c in self.alert} != {
            canonical.dumps(dict(c)) for c in new.alert
        }:
            return True
        return set(self.reminders) - set(new.reminders) != set()


def _seconds(value: object, name: str, *, minimum: int = 0) -> int:
    if type(value) is not int or not minimum <= value <= MAX_DURATION:
        raise PolicyError(
            f"'{name}' must be a whole number of seconds from {minimum} to {MAX_DURATION}"
        )
    return value


def _contacts(value: object, name: str) -> tuple[Mapping[str, str], ...]:
    if not isinstance(value, list) or len(value) > MAX_CONTACTS:
        raise PolicyError(f"'{name}' must be a list of at most {MAX_CONTACTS} contacts")
    result: list[dict[str, str]] = []
    for contact in value:
        if not isinstance(contact, dict):
            raise PolicyError(f"'{name}': a contact is {{'email'}} or {{'webhook', 'secret'}}")
        keys = set(contact) - _CONTACT_EXTRAS
        if keys == {"email"}:
            email = contact["email"]
            if not isinstance(email, str) or not _EMAIL.fullmatch(email):
                raise PolicyError(f"'{name}' holds an invalid email address")
            entry = {"email": email}
        elif keys == {"webhook", "secret"}:
            url, secret = contact["webhook"], contact["secret"]
            if not isinstance(url, str) or len(url) > 2048 or not _URL.fullmatch(url):
                raise PolicyError(f"'{name}' holds an invalid webhook address")
            if not isinstance(secret, str) or not 16 <= len(secret) <= 256:
                raise PolicyError(f"'{name}': a webhook secret has 16 to 256 characters")
            entry = {"secret": secret, "webhook": url}
        else:
            raise PolicyError(f"'{name}': a contact is {{'email'}} or {{'webhook', 'secret'}}")
        entry.update(_contact_extras(contact, name))
        result.append(entry)
    keys_seen = [canonical.dumps(c) for c in result]
    if len(set(keys_seen)) != len(keys_seen):
        raise PolicyError(f"'{name}' names a contact twice")
    return tuple(result)


def _contact_extras(contact: Mapping[str, object], name: str) -> dict[str, str]:
    """A contact's age recipient (its notices are encrypted to it) and reporter's name."""
    extras: dict[str, str] = {}
    recipient = contact.get("age")
    if recipient is not None:
        if not isinstance(recipient, str) or len(recipient) > _MAX_RECIPIENT:
            raise PolicyError(f"'{name}' holds an invalid age recipient")
        try:
            extras["age"] = str(age.parse_recipient(recipient))
        except VaultError:
            raise PolicyError(f"'{name}' holds an invalid age recipient") from None
    shown = contact.get("name")
    if shown is not None:
        try:
            extras["name"] = check_display_name(shown) if isinstance(shown, str) else ""
        except FormatError as exc:
            raise PolicyError(f"'{name}': the reporter's name: {exc.message}") from None
        if not extras["name"]:
            raise PolicyError(f"'{name}': the reporter's name must be text")
    return extras


@dataclasses.dataclass(frozen=True, kw_only=True)
class Armed:
    """An armed switch, its commitment, its ``switch.armed`` entry and the items re-wrapped."""

    switch: Switch
    commitment: dict[str, Any]
    appended: log.Appended
    items: tuple[tuple[str, log.Appended], ...] = ()
    """Each staged item applied by the arm, with its ``item.shared`` entry."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class StagedItem:
    """An item as the reporter's device re-wrapped it for a release recipient.

    ``header`` is the item's header with the release recipient added;
    ``disclosure`` the item's encrypted disclosure (:mod:`vault.disclosure`).
    """

    item: str
    header: bytes
    disclosure: item_service.EncryptedManifest


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckedIn:
    """A check-in that was accepted (or, under duress, seemed to be)."""

    deadline: dt.datetime
    appended: log.Appended


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChangeRequested:
    """A change: applied now (``change`` is None) or pending until ``change.effective_at``."""

    change: PendingChange | None
    appended: log.Appended


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_lock(session: Session) -> None:
    """On SQLite, take the database write lock now, so what is read next is what is written on.

    PostgreSQL locks rows with ``FOR UPDATE`` instead; SQLite ignores that
    clause, and a read followed by a write would otherwise overwrite what a
    worker committed in between.
    """
    if is_sqlite(session):
        session.execute(update(LogHead).where(LogHead.id == 1).values(size=LogHead.size))


def find_switch(session: Session, vault_id: str, *, lock: bool = False) -> Switch | None:
    """The vault's switch; with ``lock``, locked for the rest of the transaction."""
    query = select(Switch).where(Switch.vault_id == vault_id)
    if lock:
        write_lock(session)
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def _policy(switch: Switch) -> Policy:
    return Policy.decode(switch.policy)


def commitment_of(session: Session, vault_id: str, *, layer: int = 0) -> dict[str, Any]:
    """The insurance commitment: how many items are in the release set, and their payload hashes.

    ``layer`` 0 is the real release set; 1 is the decoy vault's, shown to a
    session under duress.
    """
    hashes = sorted(
        session.scalars(
            select(Item.payload_key).where(
                Item.vault_id == vault_id, Item.release_set.is_(True), Item.layer == layer
            )
        )
    )
    return {"count": len(hashes), "sha256": hashes}


def trustees_of(session: Session, vault_id: str) -> list[str]:
    """Account ids of the vault's trustees (custodians other than the server)."""
    rows = session.scalars(
        select(CustodianShare.custodian)
        .where(CustodianShare.vault_id == vault_id, CustodianShare.custodian != "server")
        .order_by(CustodianShare.position)
    )
    return list(rows)


def custodian_shares_of(session: Session, vault_id: str) -> list[CustodianShare]:
    return list(
        session.scalars(
            select(CustodianShare)
            .where(CustodianShare.vault_id == vault_id)
            .order_by(CustodianShare.position)
        )
    )


def votes_needed(switch: Switch, trustees: int) -> int:
    """Trustee votes that cancel a pending change: the threshold, at most their number."""
    return max(1, min(switch.threshold, trustees)) if trustees else 0


def reschedule(switch: Switch, now: dt.datetime) -> None:
    """Set ``next_due_at``: the next moment the worker has something to do for ``switch``."""
    if switch.state == "armed":
        due = switch.deadline_at
        offsets = _policy(switch).reminders
        if switch.reminders_sent < len(offsets):
            due = min(
                due, switch.deadline_at - dt.timedelta(seconds=offsets[switch.reminders_sent])
            )
        switch.next_due_at = due
    elif switch.state == "overdue":
        switch.next_due_at = switch.deadline_at + dt.timedelta(seconds=switch.grace_s)
    elif switch.state == "releasing":
        # Set to now by a new share; otherwise waits for one.
        switch.next_due_at = None
    else:
        switch.next_due_at = None
    shown = view_next_due(switch)
    if shown is not None and (switch.next_due_at is None or shown < switch.next_due_at):
        switch.next_due_at = shown


def _contacts_of(policy: Policy, audience: str) -> tuple[Mapping[str, str], ...]:
    return cast("tuple[Mapping[str, str], ...]", getattr(policy, audience))


_PLACEHOLDER = re.compile(r"\{([Rr])eporter\}")


def _card_name(session: Session, vault_id: str) -> str | None:
    """The display name on the card of the vault's reporter, as the server has it."""
    card = session.scalar(select(Account.card).where(Account.vault_id == vault_id))
    if card is None:
        return None
    # Read from the stored JSON (checked at registration) rather than parsed
    # as a Card: parsing a post-quantum key takes milliseconds, and a duress
    # check-in, which sends an alert, must take the time a real one takes.
    try:
        value = canonical.loads(card)
    except FormatError:
        return None
    name = value.get("name") if isinstance(value, dict) else None
    return name if isinstance(name, str) else None


def reporter_named(
    contact: Mapping[str, str], *, card_name: str | None, vault_id: str
) -> tuple[str, str | None, bool]:
    """How a notice to ``contact`` names the reporter: the words, the name, whether verified.

    The name is the one the reporter's client gave for this contact (the
    display name on the reporter's card, which a trustee verified when they
    exchanged cards). It counts as verified when it is the name on the card
    the server holds for the reporter; any other name, or none, says
    "unverified" plainly.
    """
    name = contact.get("name")
    if name is None:
        return f"the reporter of vault {vault_id[:8]} (name unverified)", None, False
    if name == card_name:
        return name, name, True
    return f"{name} (unverified: not the name on their card)", name, False


def notify(
    session: Session,
    switch: Switch,
    *,
    audience: str,
    event: str,
    subject: str,
    text: str,
    now: dt.datetime,
    extra: Mapping[str, Any] | None = None,
    spare_own: bool = False,
) -> int:
    """Queue one notice per contact of ``audience`` (remind, alert or publish); return how many.

    ``subject`` and ``text`` are the details, which never travel in the
    clear (:mod:`server.notify`). In ``text``, ``{reporter}`` (``{Reporter}``
    at the start of a sentence) stands for the reporter as each contact
    knows them (:func:`reporter_named`).

    With ``spare_own`` a contact that is also on the reporter's own reminder
    list is left out: a coercer who reads the reporter's mailbox must not
    find what the notice says (a duress alert, a deadline the coercer was
    not shown).
    """
    policy = _policy(switch)
    own = {_address(c) for c in _contacts_of(policy, "remind")}
    card_name = _card_name(session, switch.vault_id) if _PLACEHOLDER.search(text) else None
    count = 0
    for contact in _contacts_of(policy, audience):
        if spare_own and _address(contact) in own:
            continue
        shown, name, verified = reporter_named(
            contact, card_name=card_name, vault_id=switch.vault_id
        )

        def fill(match: re.Match[str], shown: str = shown) -> str:
            return shown[:1].upper() + shown[1:] if match.group(1) == "R" else shown

        details = _PLACEHOLDER.sub(fill, text)
        recipient = contact.get("age")
        if "email" in contact:
            outbox.enqueue(
                session,
                vault_id=switch.vault_id,
                event=event,
                channel="email",
                target=contact["email"],
                subject=subject,
                body=details,
                now=now,
                recipient=recipient,
            )
        else:
            message = outbox.enqueue(
                session,
                vault_id=switch.vault_id,
                event=event,
                channel="webhook",
                target=canonical.dumps(
                    {"secret": contact["secret"], "url": contact["webhook"]}
                ).decode("utf-8"),
                subject=subject,
                body="",
                now=now,
                recipient=recipient,
            )
            body = {
                "event": event,
                "vault": switch.vault_id,
                "time": int(now.timestamp()),
                "delivery": message.id,
                "subject": subject,
                "text": details,
                "reporter": {"name": name, "verified": verified},
                **(extra or {}),
            }
            message.body = canonical.dumps(body).decode("utf-8")
        count += 1
    return count


def _address(contact: Mapping[str, str]) -> str:
    """Where a contact's notices go, whatever else it carries."""
    return contact.get("email") or contact.get("webhook") or ""


def _hash_phrase(phrase: str | None, what: str) -> str | None:
    if phrase is None:
        return None
    if not 8 <= len(phrase) <= MAX_PHRASE:
        raise PolicyError(f"the {what} must have 8 to {MAX_PHRASE} characters")
    return _HASHER.hash(phrase)


def _check_phrases(handle: str | None, phrase: str | None, duress_phrase: str | None) -> None:
    if handle is not None and not _HANDLE.fullmatch(handle):
        raise PolicyError("a handle has 3 to 64 characters: a-z, 0-9 and '-'")
    if (handle is None) != (phrase is None):
        raise PolicyError("a handle and a check-in phrase go together")
    if duress_phrase is not None and phrase is None:
        raise PolicyError("a duress phrase needs a check-in phrase")
    for text, what in ((phrase, "check-in phrase"), (duress_phrase, "duress phrase")):
        if text is not None and not 8 <= len(text) <= MAX_PHRASE:
            raise PolicyError(f"the {what} must have 8 to {MAX_PHRASE} characters")
    if duress_phrase is not None and hmac.compare_digest(
        duress_phrase.encode("utf-8"), (phrase or "").encode("utf-8")
    ):
        raise PolicyError("the duress phrase must differ from the check-in phrase")


def _check_recipient(recipient: str) -> None:
    try:
        parsed = age.parse_recipient(recipient)
    except FormatError:
        raise PolicyError("'release_recipient' is not an age recipient") from None
    if not isinstance(parsed, age.X25519Recipient):
        raise PolicyError("'release_recipient' must be an X25519 age recipient (age1…)")


def _check_armable(switch: Switch | None) -> None:
    """Refuse unless the vault was never armed, was disarmed, or was released.

    A released vault may be armed again, with a fresh release identity and
    release set: what was published stays published, on its own page.
    """
    if switch is not None and switch.state in ACTIVE_STATES:
        raise AlreadyArmedError("the switch is armed already; change it with a policy update")


def _check_unpublished(session: Session, items: Sequence[str], field: str) -> None:
    """Refuse items a release published: they are public, and their headers stay as released."""
    if not items:
        return
    published = session.scalars(
        select(Item.id).where(Item.id.in_(list(items)), Item.released_in.is_not(None)).limit(1)
    ).first()
    if published is not None:
        raise PolicyError(
            f"{field!r} names item {published}, which an earlier release published: "
            "it stays public and joins no new release set"
        )


def stage_release_items(
    session: Session,
    store: BlobStore,
    *,
    account: Account,
    recipient: str,
    items: Sequence[StagedItem],
    now: dt.datetime,
    duress: bool = False,
) -> int:
    """Stage items re-wrapped for ``recipient``, for the arm that will apply them; how many.

    Each must be the account's item, not published yet, with a header that
    keeps every recipient of the current one
    (:func:`server.services.items.check_release_wrap`). Nothing is applied
    or logged: :func:`arm` does that, in its own transaction. Rows staged for
    another recipient (an arming given up) are dropped.

    Raises:
        PolicyError: a malformed recipient, an item twice, an item refused.
        AlreadyArmedError: the vault is armed already.
    """
    vault_id = account.vault_id
    if vault_id is None:
        raise RuntimeError("internal error: arming an account without a vault")
    _refuse_under_duress(duress)
    _check_recipient(recipient)
    ids = [staged.item for staged in items]
    if len(set(ids)) != len(ids):
        raise PolicyError("'items' names an item twice")
    _check_armable(find_switch(session, vault_id, lock=True))
    _check_unpublished(session, ids, "items")
    for staged in items:
        try:
            item_service.check_release_wrap(
                session, store, account=account, item_id=staged.item, header=staged.header
            )
        except ServerError as exc:
            raise PolicyError(f"item {staged.item}: {exc.message}") from None
    session.execute(
        delete(StagedReleaseItem).where(
            StagedReleaseItem.vault_id == vault_id,
            (StagedReleaseItem.recipient != recipient) | StagedReleaseItem.item_id.in_(ids),
        )
    )
    session.add_all(
        StagedReleaseItem(
            vault_id=vault_id,
            item_id=staged.item,
            recipient=recipient,
            header=staged.header,
            disclosure=staged.disclosure.data,
            staged_at=now,
        )
        for staged in items
    )
    session.flush()
    return len(items)


def _apply_staged(
    session: Session,
    store: BlobStore | None,
    *,
    account: Account,
    recipient: str,
    release_items: Sequence[str],
    signer: NoteSigner,
) -> tuple[tuple[str, log.Appended], ...]:
    """Apply the items staged for ``recipient`` (each logged ``item.shared``); drop them all.

    Raises:
        PolicyError: an item changed since it was staged (a share meanwhile).
    """
    vault_id = account.vault_id
    rows = {
        row.item_id: row
        for row in session.scalars(
            select(StagedReleaseItem).where(
                StagedReleaseItem.vault_id == vault_id,
                StagedReleaseItem.recipient == recipient,
            )
        )
    }
    applied = []
    for item_id in release_items:
        row = rows.get(item_id)
        if row is None:
            continue  # re-wrapped already, by a client that did not stage it
        if store is None:
            raise RuntimeError("internal error: staged items to apply without a blob store")
        try:
            appended = item_service.release_wrap(
                session,
                store,
                account=account,
                item_id=item_id,
                header=row.header,
                disclosure=item_service.parse_item_manifest(row.disclosure),
                signer=signer,
            )
        except (ServerError, FormatError) as exc:
            raise PolicyError(
                f"item {item_id} changed since it was re-wrapped for arming ({exc.message}); "
                "arm again"
            ) from None
        applied.append((item_id, appended))
    session.execute(delete(StagedReleaseItem).where(StagedReleaseItem.vault_id == vault_id))
    return tuple(applied)


def _refuse_under_duress(duress: bool) -> None:
    """A session under duress never arms the real switch (its policy, contacts, phrases).

    It is answered as a switch armed already would be: arming is where a
    coercer could put their own address on the alerts, or their own
    trustees in the way of the release.

    Raises:
        AlreadyArmedError: under duress.
    """
    if duress:
        raise AlreadyArmedError("the switch is armed already; change it with a policy update")


def check_arm(
    session: Session,
    *,
    account: Account,
    recipient: str,
    threshold: int,
    shares: Sequence[tuple[str, bytes, bytes]],
    release_items: Sequence[str],
    handle: str | None,
    phrase: str | None,
    duress_phrase: str | None,
    lock: bool = True,
    duress: bool = False,
) -> Switch | None:
    """Every check :func:`arm` makes, and nothing else: the vault's switch row, if it has one.

    This is the dry run of ``POST /switch/arm``: a client calls it before it
    re-wraps a single item, so that whatever the server would refuse (a
    policy out of bounds, a bad trustee or threshold, a switch armed
    already, …) is refused while nothing has changed. :func:`arm` runs the
    very same checks first, so the two cannot disagree. With ``lock`` the
    switch row is locked for the rest of the transaction (as :func:`arm`
    needs); without it nothing is locked or written.

    Raises:
        PolicyError, AlreadyArmedError.
    """
    vault_id = account.vault_id
    if vault_id is None:
        raise RuntimeError("internal error: arming an account without a vault")
    _refuse_under_duress(duress)
    _check_recipient(recipient)
    if not 1 <= len(shares) <= MAX_SHARES:
        raise PolicyError(f"give 1 to {MAX_SHARES} shares")
    if not 1 <= threshold <= len(shares):
        raise PolicyError("the threshold must be from 1 to the number of shares")
    custodians = [custodian for custodian, _, _ in shares]
    if custodians.count("server") != 1:
        raise PolicyError("the server must hold exactly one share")
    if len(set(custodians)) != len(custodians):
        raise PolicyError("a custodian may hold only one share")
    trustees = [c for c in custodians if c != "server"]
    if trustees:
        found = set(
            session.scalars(
                select(Account.id).where(
                    Account.id.in_(trustees),
                    Account.role == "editor",
                    Account.disabled_at.is_(None),
                )
            )
        )
        missing = [t for t in trustees if t not in found]
        if missing:
            raise PolicyError(f"trustee {missing[0]} is not an editor of this server")
    for _, data, _ in shares:
        if not 0 < len(data) <= MAX_SHARE_FILE or not data.startswith(b"age-encryption.org/v1\n"):
            raise PolicyError("each share must be an age file of at most 4 KiB")
    commitments = [commitment for _, _, commitment in shares]
    if any(len(commitment) != COMMITMENT_SIZE for commitment in commitments):
        raise PolicyError(f"each share's 'commitment' must be {COMMITMENT_SIZE} bytes")
    if len(set(commitments)) != len(commitments):
        raise PolicyError("two shares have the same 'commitment'")
    _check_phrases(handle, phrase, duress_phrase)
    if len(set(release_items)) != len(release_items):
        raise PolicyError("'release_items' names an item twice")
    existing = find_switch(session, vault_id, lock=lock)
    _check_armable(existing)
    if handle is not None:
        taken = session.scalar(
            select(Switch.vault_id).where(Switch.handle == handle, Switch.vault_id != vault_id)
        )
        if taken is not None:
            raise PolicyError("that handle is taken; choose another")
    if release_items:
        owned = set(
            session.scalars(
                select(Item.id).where(
                    Item.id.in_(list(release_items)), Item.vault_id == vault_id, Item.layer == 0
                )
            )
        )
        if len(owned) != len(release_items):
            raise PolicyError("'release_items' names an item that is not in this vault")
        _check_unpublished(session, release_items, "release_items")
    return existing


def arm(
    session: Session,
    *,
    account: Account,
    policy: Policy,
    recipient: str,
    threshold: int,
    shares: Sequence[tuple[str, bytes, bytes]],
    release_items: Sequence[str],
    handle: str | None,
    phrase: str | None,
    duress_phrase: str | None,
    now: dt.datetime,
    signer: NoteSigner,
    store: BlobStore | None = None,
    duress: bool = False,
) -> Armed:
    """Arm the account's vault; log ``switch.armed`` with the insurance commitment.

    ``shares`` are ``(custodian, age file, commitment)`` in position order:
    ``server`` or an editor's account id, the share sealed to it, and the
    share's commitment (:func:`vault.shares.share_commitment`), distinct
    within the vault; a vault armed again gets the new set's commitments.
    ``release_items`` are the account's items: those staged for ``recipient``
    (:func:`stage_release_items`) are re-wrapped now, in this transaction,
    each logged ``item.shared`` like a share; the others must include
    ``recipient`` already.

    Raises:
        PolicyError, AlreadyArmedError.
    """
    existing = check_arm(
        session,
        account=account,
        recipient=recipient,
        threshold=threshold,
        shares=shares,
        release_items=release_items,
        handle=handle,
        phrase=phrase,
        duress_phrase=duress_phrase,
        duress=duress,
    )
    vault_id = account.vault_id
    if vault_id is None:
        raise RuntimeError("internal error: arming an account without a vault")
    applied = _apply_staged(
        session,
        store,
        account=account,
        recipient=recipient,
        release_items=release_items,
        signer=signer,
    )
    if existing is not None:
        # A vault disarmed or released before: the old arming's shares, the
        # shares handed in for its release and its changes go (a change still
        # pending would otherwise apply to the new arming). Its switch row
        # stays, with its published releases; it starts afresh below.
        session.execute(delete(CustodianShare).where(CustodianShare.vault_id == vault_id))
        session.execute(delete(SubmittedShare).where(SubmittedShare.vault_id == vault_id))
        session.execute(delete(PendingChange).where(PendingChange.vault_id == vault_id))
        session.flush()
    session.execute(
        update(Item).where(Item.vault_id == vault_id, Item.layer == 0).values(release_set=False)
    )
    if release_items:
        session.execute(
            update(Item).where(Item.id.in_(list(release_items))).values(release_set=True)
        )
    # The decoy vault's items are its release set, as every item is the real one's:
    # a session under duress is shown them so. They are never released.
    session.execute(
        update(Item).where(Item.vault_id == vault_id, Item.layer > 0).values(release_set=True)
    )
    commitment = commitment_of(session, vault_id)
    fresh: dict[str, Any] = {
        "account_id": account.id,
        "state": "armed",
        "version": 0 if existing is None else existing.version + 1,
        "policy": policy.encode(),
        "interval_s": policy.interval,
        "grace_s": policy.grace,
        "cooling_off_s": policy.cooling_off,
        "duress_mode": policy.duress,
        "threshold": threshold,
        "shares": len(shares),
        "release_recipient": recipient,
        "commitment": canonical.dumps(commitment),
        "handle": handle,
        "phrase_hash": _hash_phrase(phrase, "check-in phrase"),
        "duress_phrase_hash": _hash_phrase(duress_phrase, "duress phrase"),
        "failed_phrases": 0,
        "phrase_failed_at": None,
        "armed_at": now,
        "armed_entry": None,
        "last_checkin_at": now,
        "deadline_at": now + dt.timedelta(seconds=policy.interval),
        "reminders_sent": 0,
        "duress_view": None,
        "released_at": None,
    }
    if existing is None:
        switch = Switch(vault_id=vault_id, **fresh)
        session.add(switch)
    else:
        switch = existing
        for name, value in fresh.items():
            setattr(switch, name, value)
    reschedule(switch, now)
    # No ORM relationship orders the writes: the switch row goes first.
    session.flush()
    for position, (custodian, data, share_commitment) in enumerate(shares):
        session.add(
            CustodianShare(
                vault_id=vault_id,
                position=position,
                custodian=custodian,
                encrypted=data,
                commitment=share_commitment,
            )
        )
    event = {
        "type": "switch.armed",
        "vault": vault_id,
        "account": account.id,
        "recipient": recipient,
        "threshold": threshold,
        "shares": len(shares),
        "commitment": commitment,
        "policy_sha256": policy.digest(),
    }
    appended = log.append(session, event, signer)
    switch.armed_entry = appended.entry.idx
    session.flush()
    return Armed(switch=switch, commitment=commitment, appended=appended, items=applied)


def add_release_items(
    session: Session,
    *,
    account: Account,
    items: Sequence[str],
    signer: NoteSigner,
    depth: int = 0,
) -> tuple[dict[str, Any], log.Appended]:
    """Put owned items (already re-wrapped) in the release set; log the new commitment.

    A session under duress (``depth`` 1) works on the decoy vault's set.
    """
    switch = _armed(session, account, duress=depth > 0)
    if not items or len(set(items)) != len(items) or len(items) > 10_000:
        raise PolicyError("'items' must list distinct item ids")
    owned = set(
        session.scalars(
            select(Item.id).where(
                Item.id.in_(list(items)), Item.vault_id == switch.vault_id, Item.layer == depth
            )
        )
    )
    if len(owned) != len(items):
        raise PolicyError("'items' names an item that is not in this vault")
    _check_unpublished(session, items, "items")
    session.execute(update(Item).where(Item.id.in_(list(items))).values(release_set=True))
    commitment = commitment_of(session, switch.vault_id, layer=depth)
    event = {
        "type": "switch.extended",
        "vault": switch.vault_id,
        "items": sorted(items),
        "commitment": commitment,
    }
    return commitment, log.append(session, event, signer)


def _armed(
    session: Session, account: Account, *, lock: bool = True, duress: bool = False
) -> Switch:
    if account.vault_id is None:
        raise NotArmedError("this account has no vault")
    switch = find_switch(session, account.vault_id, lock=lock)
    if switch is None or shown_state(switch, duress=duress) not in ACTIVE_STATES:
        raise NotArmedError("the switch is not armed")
    return switch


def _view(switch: Switch) -> dict[str, Any]:
    view = canonical.loads(switch.duress_view) if switch.duress_view else {}
    return view if isinstance(view, dict) else {}


def shown_state(switch: Switch, *, duress: bool) -> str:
    """The switch's state as a session sees it: the truth, or what a duress session was shown.

    After a duress event the duress session goes on seeing the vault armed
    (a released vault too), or disarmed once a disarm it asked for came due;
    without one it sees the truth, as a real session does.
    """
    if not duress or switch.duress_view is None:
        return switch.state
    state = _view(switch).get("state", "armed")
    return state if state in ("armed", "overdue", "disarmed") else "armed"


def _keep_view(session: Session, switch: Switch) -> None:
    """Freeze what a duress session is shown before the truth moves on underneath.

    Besides what ``GET /switch`` shows (:data:`_VIEW_SHOWN`), the view counts
    the reminders sent for its deadline (``reminders``) and whether its
    missed check-in was told (``missed``): the reporter's own contacts are
    told about the deadline the coercer saw, never the real one
    (:func:`view_notices`). ``since`` is the log's size when the view began:
    the switch's own later moves (overdue, releasing, released) are not the
    view's, and a session under duress does not show them (:func:`view_since`).
    """
    view = _view(switch)
    if "since" not in view:
        head = session.get(LogHead, 1)
        view["since"] = 0 if head is None else head.size
    view.setdefault("deadline", iso(switch.deadline_at))
    view.setdefault("last_checkin", iso(switch.last_checkin_at))
    view.setdefault("state", "armed")
    view.setdefault("reminders", switch.reminders_sent)
    view.setdefault("missed", switch.state != "armed")
    switch.duress_view = canonical.dumps(view)


_VIEW_SHOWN = ("deadline", "last_checkin", "state", "policy", "handle")
"""The parts of a duress view that ``GET /switch`` shows in place of the truth."""


def view_since(switch: Switch) -> int | None:
    """The log size when the duress view began, or None without one (see :func:`_keep_view`)."""
    since = _view(switch).get("since") if switch.duress_view is not None else None
    return since if type(since) is int else None


def view_deadline(switch: Switch) -> dt.datetime | None:
    """The deadline a duress session was shown, while its view is armed; else None."""
    view = _view(switch)
    if switch.duress_view is None or view.get("state", "armed") != "armed":
        return None
    return _parse_iso(view.get("deadline"))


def _parse_iso(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _view_policy(switch: Switch) -> Policy:
    """The policy a duress session was shown (its interval, reminders), else the real one."""
    shown = _view(switch).get("policy")
    if isinstance(shown, dict):
        try:
            return Policy.parse({**_policy(switch).to_json(), **shown}, min_interval=1)
        except PolicyError:
            pass
    return _policy(switch)


def view_next_due(switch: Switch) -> dt.datetime | None:
    """When the view's next reminder or missed check-in is due, if it has one."""
    deadline = view_deadline(switch)
    if deadline is None:
        return None
    view = _view(switch)
    offsets = _view_policy(switch).reminders
    sent = view.get("reminders", 0)
    if type(sent) is int and sent < len(offsets):
        return deadline - dt.timedelta(seconds=offsets[sent])
    return None if view.get("missed") else deadline


def view_notices(session: Session, switch: Switch, *, now: dt.datetime, base_url: str) -> bool:
    """Send the reporter's own contacts the reminders and missed check-in of the duress view.

    After a duress check-in the coercer was shown a deadline; the reporter's
    mailbox must agree with it. Returns whether anything was sent.
    """
    deadline = view_deadline(switch)
    if deadline is None:
        return False
    view = _view(switch)
    offsets = _view_policy(switch).reminders
    due = sum(1 for offset in offsets if now >= deadline - dt.timedelta(seconds=offset))
    sent = False
    if due > view.get("reminders", 0) and now < deadline:
        view["reminders"] = due
        remind(session, switch, deadline=deadline, now=now, base_url=base_url)
        sent = True
    if now >= deadline and not view.get("missed"):
        view["missed"] = True
        view["reminders"] = len(offsets)
        view["state"] = "overdue"
        release_at = deadline + dt.timedelta(seconds=_view_policy(switch).grace)
        missed(session, switch, release_at=release_at, now=now)
        sent = True
    switch.duress_view = canonical.dumps(view)
    return sent


def remind(
    session: Session, switch: Switch, *, deadline: dt.datetime, now: dt.datetime, base_url: str
) -> None:
    """Tell the reporter's own contacts that a check-in is due before ``deadline``."""
    notify(
        session,
        switch,
        audience="remind",
        event="switch.reminder",
        subject="Evidence Vault: check in soon",
        text=(
            "Your next check-in is due before "
            f"{iso(deadline)}. Run `evault checkin` or use the "
            f"check-in page: {base_url}/checkin"
        ),
        now=now,
        extra={"deadline": iso(deadline)},
    )


def missed(session: Session, switch: Switch, *, release_at: dt.datetime, now: dt.datetime) -> None:
    """Tell the reporter's own contacts that a check-in was missed."""
    notify(
        session,
        switch,
        audience="remind",
        event="switch.overdue",
        subject="Evidence Vault: you missed a check-in",
        text=(
            "You missed a check-in. Check in before "
            f"{iso(release_at)} or the release set is published."
        ),
        now=now,
        extra={"release_at": iso(release_at)},
    )


def show_under_duress(
    session: Session,
    switch: Switch,
    *,
    now: dt.datetime,
    state: str | None = None,
    policy: Mapping[str, Any] | None = None,
) -> None:
    """Show a session under duress a change as done, leaving the real switch as it is.

    ``state`` "disarmed" shows a disarm; ``policy`` a policy, with the
    deadline moved as :func:`apply_policy` would move a real one.
    """
    _keep_view(session, switch)
    view = _view(switch)
    if state is not None:
        view["state"] = state
    if policy is not None:
        view["policy"] = dict(policy)
        interval = policy.get("interval")
        if type(interval) is int and view.get("state") == "armed":
            last = dt.datetime.fromisoformat(str(view["last_checkin"]).replace("Z", "+00:00"))
            view["deadline"] = iso(max(now, last + dt.timedelta(seconds=interval)))
    switch.duress_view = canonical.dumps(view)


def _duress_effect(session: Session, switch: Switch, *, now: dt.datetime, how: str) -> None:
    """What a duress check-in sets off underneath an ordinary answer."""
    mode = switch.duress_mode
    if mode in ("alert", "both"):
        notify(
            session,
            switch,
            audience="alert",
            event="switch.duress",
            subject="Evidence Vault: a check-in under duress",
            text=(
                f"{{Reporter}} checked in with their duress "
                f"{how} at {iso(now)}. They may be detained or coerced. Do not reply to "
                "them through channels others may watch. Their real deadline stays "
                f"{iso(switch.deadline_at)}: the duress check-in did not move it."
            ),
            now=now,
            spare_own=True,
        )
    if mode in ("release", "both") and switch.state in ("armed", "overdue"):
        # The duress session goes on seeing the deadline it was shown.
        _keep_view(session, switch)
        # Release starts at the next sweep: grace is skipped, the deadline is now.
        switch.deadline_at = now
        switch.grace_s = 0
        switch.next_due_at = now


def _record_checkin(
    session: Session,
    switch: Switch,
    *,
    duress: bool,
    how: str,
    now: dt.datetime,
    signer: NoteSigner,
) -> CheckedIn:
    interval = dt.timedelta(seconds=switch.interval_s)
    view = _view(switch)
    shown = view.get("policy")
    if duress and isinstance(shown, dict) and type(shown.get("interval")) is int:
        # The interval a duress session was shown as set.
        interval = dt.timedelta(seconds=shown["interval"])
    shown_deadline = now + interval
    if duress:
        _keep_view(session, switch)
        view = _view(switch)
        view.update(
            deadline=iso(shown_deadline),
            last_checkin=iso(now),
            state="armed",
            reminders=0,
            missed=False,
        )
        switch.duress_view = canonical.dumps(view)
        _duress_effect(session, switch, now=now, how=how)
        reschedule(switch, now)
    elif switch.state in ("armed", "overdue"):
        switch.version += 1
        switch.last_checkin_at = now
        switch.deadline_at = shown_deadline
        switch.reminders_sent = 0
        switch.duress_view = None
        switch.view_handle = None
        if switch.state == "overdue":
            switch.state = "armed"
            notify(
                session,
                switch,
                audience="alert",
                event="switch.recovered",
                subject="Evidence Vault: the reporter checked in again",
                text=f"{{Reporter}} checked in at {iso(now)}.",
                now=now,
            )
        # The grace a duress "release" set to 0 comes back with a real check-in.
        switch.grace_s = _policy(switch).grace
        reschedule(switch, now)
    # Too late in "releasing": the check-in is logged and answered alike and changes
    # nothing, so the release it cannot stop is not held up either.
    event = {"type": "switch.checkin", "vault": switch.vault_id}
    appended = log.append(session, event, signer)
    return CheckedIn(deadline=shown_deadline, appended=appended)


def checkin_signed(
    session: Session,
    *,
    statement: bytes,
    signature: bytes,
    origin: str,
    now: dt.datetime,
    signer: NoteSigner,
) -> CheckedIn:
    """Accept a signed check-in statement (real or duress key); refuse replays and stale times.

    Raises:
        CheckinRefusedError: for every reason, alike.
    """
    try:
        parsed = CheckinStatement.parse(statement)
    except FormatError:
        raise CheckinRefusedError from None
    switch = find_switch(session, parsed.vault, lock=True)
    account = None if switch is None else session.get(Account, switch.account_id)
    keys = [b"\x00" * 32, b"\x00" * 32]
    if account is not None:
        keys = [account.signing_key, account.duress_key or b"\x00" * 32]
    # Both keys are always tried, so the time does not tell which one signed.
    verdicts = []
    for key in keys:
        try:
            verify_signature(key, CHECKIN_CONTEXT, statement, signature)
            verdicts.append(True)
        except (SignatureError, FormatError):
            verdicts.append(False)
    real, duress = verdicts
    if account is not None and account.duress_key is None:
        duress = False
    fresh = abs(parsed.time - int(now.timestamp())) <= CHECKIN_WINDOW.total_seconds()
    if (
        switch is None
        or account is None
        or account.disabled_at is not None
        or not _answers_checkins(switch, duress=duress and not real)
        or not (real or duress)
        or not fresh
        or parsed.origin != origin
    ):
        raise CheckinRefusedError
    session.execute(delete(CheckinNonce).where(CheckinNonce.expires_at <= now))
    seen = session.get(CheckinNonce, (switch.vault_id, parsed.nonce))
    if seen is not None:
        raise CheckinRefusedError
    session.add(
        CheckinNonce(
            vault_id=switch.vault_id, nonce=parsed.nonce, expires_at=now + 2 * CHECKIN_WINDOW
        )
    )
    if switch.state == "releasing" and not duress:
        # Too late to stop; the check-in is still recorded and answered alike.
        pass
    return _record_checkin(session, switch, duress=duress, how="key", now=now, signer=signer)


def _answers_checkins(switch: Switch, *, duress: bool) -> bool:
    """Whether a check-in is taken: a switch that is active as the one checking in sees it.

    A session under duress is shown a released vault as armed, and a disarm
    it asked for as done (:func:`shown_state`), so a duress check-in is
    answered as a real one would be on that switch.
    """
    return shown_state(switch, duress=duress) in ACTIVE_STATES


def _verify_phrase(stored: str | None, phrase: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, phrase) and stored is not None
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False


def checkin_with_phrase(
    session: Session, *, handle: str, phrase: str, now: dt.datetime, signer: NoteSigner
) -> CheckedIn:
    """The web check-in: a handle and a phrase (or the duress phrase).

    Both stored hashes are always checked (a stand-in for an unknown handle),
    so the duress phrase takes the same time as the real one, and an unknown
    handle as a known one. Every attempt is judged: nothing here refuses an
    attempt because of earlier failures. The server cannot tell the reporter
    from a guesser before it has checked the phrase, so any budget that turned
    attempts away unchecked would let a guesser who knows the handle keep the
    reporter out. Guessing is slowed instead by the hashing itself: at most
    :data:`MAX_HASHING` checks run at once in a process and the others wait
    in arrival order (:class:`~server._fifo.FifoGate`), so an attempt waits
    only for those sent before it, and all attempts together get no more
    than the server's Argon2id throughput (SECURITY.md, section 3.2, gives
    the figures). Failures in a row alert the trustees after
    :data:`PHRASE_ALERT`, then at most every :data:`PHRASE_ALERT_EVERY` with
    the count. The hashes are checked before the switch is locked; the caller
    commits on refusal too.

    Raises:
        CheckinRefusedError: for every reason, alike.
    """
    phrase = phrase[:MAX_PHRASE]
    found = None
    if _HANDLE.fullmatch(handle):
        found = session.execute(
            select(
                Switch.vault_id,
                Switch.handle,
                Switch.phrase_hash,
                Switch.duress_phrase_hash,
                Switch.view_handle,
                Switch.duress_view,
            ).where(or_(Switch.handle == handle, Switch.view_handle == handle))
        ).one_or_none()
    hashes = _phrase_hashes(found, handle)
    # End the read: hashing takes a while and holds no lock.
    session.rollback()
    with _HASHING:
        # Always four checks (stand-ins where a hash is missing): the real and
        # duress phrases, and those a session under duress set, so that no
        # handle takes longer than another.
        real, duress, *shown = (_verify_phrase(stored, phrase) for stored in hashes)
    duress = duress or any(shown)
    if found is None:
        raise CheckinRefusedError
    switch = find_switch(session, found.vault_id, lock=True)
    if (
        switch is None
        or _phrase_hashes(switch, handle) != hashes
        or not _answers_checkins(switch, duress=duress and not real)
    ):
        raise CheckinRefusedError
    if not (real or duress):
        _count_failure(session, switch, now=now)
        raise CheckinRefusedError
    switch.failed_phrases = 0
    return _record_checkin(session, switch, duress=duress, how="phrase", now=now, signer=signer)


def _phrase_hashes(found: Any, handle: str) -> tuple[str | None, ...]:
    """The hashes a web check-in with ``handle`` is checked against, in a fixed order.

    The real and duress phrases' when ``handle`` is the switch's own; those a
    session under duress set (in its view) when it is that session's handle.
    """
    if found is None:
        return (None, None, None, None)
    own = found.handle == handle
    view: dict[str, Any] = {}
    if found.view_handle == handle and found.duress_view:
        loaded = canonical.loads(found.duress_view)
        view = loaded if isinstance(loaded, dict) else {}
    return (
        found.phrase_hash if own else None,
        found.duress_phrase_hash if own else None,
        _str_or_none(view.get("phrase_hash")),
        _str_or_none(view.get("duress_phrase_hash")),
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _count_failure(session: Session, switch: Switch, *, now: dt.datetime) -> None:
    """Count a failed web check-in and alert the trustees when one is due.

    The first alert comes at :data:`PHRASE_ALERT` failures in a row; while
    they go on, another comes at most every :data:`PHRASE_ALERT_EVERY`, with
    the count, so a guesser who keeps trying cannot flood the trustees'
    mailboxes. ``phrase_failed_at`` is the time of the last failure they were
    told of; an accepted check-in resets the count but not that time.
    """
    switch.failed_phrases = min(switch.failed_phrases + 1, _MAX_FAILURES)
    if switch.failed_phrases < PHRASE_ALERT or (
        switch.phrase_failed_at is not None and now - switch.phrase_failed_at < PHRASE_ALERT_EVERY
    ):
        return
    switch.phrase_failed_at = now
    hours = int(PHRASE_ALERT_EVERY.total_seconds()) // 3600
    notify(
        session,
        switch,
        audience="alert",
        event="switch.phrase_failures",
        subject="Evidence Vault: repeated failed check-ins",
        text=(
            f"{switch.failed_phrases} web check-ins in a row for {{reporter}} on the "
            f"check-in page failed (the last at {iso(now)}). Someone may be guessing the phrase. "
            f"While failures go on you are told again at most every {hours} hours."
        ),
        now=now,
        extra={"failures": switch.failed_phrases},
    )


def set_phrases(
    session: Session,
    *,
    account: Account,
    handle: str,
    phrase: str,
    duress_phrase: str | None,
    duress_session: bool,
) -> str:
    """Set the web check-in handle and phrases of an armed vault."""
    switch = _armed(session, account, duress=duress_session)
    _check_phrases(handle, phrase, duress_phrase)
    taken = session.scalar(
        select(Switch.vault_id).where(
            or_(Switch.handle == handle, Switch.view_handle == handle),
            Switch.vault_id != switch.vault_id,
        )
    )
    if taken is not None:
        raise PolicyError("that handle is taken; choose another")
    if duress_session:
        # Done as the coercer sees it: the handle is shown, and the page takes
        # these phrases, as check-ins under duress. The real ones stay.
        _keep_view(session, switch)
        view = _view(switch)
        view.update(
            handle=handle,
            phrase_hash=_hash_phrase(phrase, "check-in phrase"),
            duress_phrase_hash=_hash_phrase(duress_phrase, "duress phrase"),
        )
        switch.duress_view = canonical.dumps(view)
        switch.view_handle = handle
        return handle
    switch.handle = handle
    switch.phrase_hash = _hash_phrase(phrase, "check-in phrase")
    switch.duress_phrase_hash = _hash_phrase(duress_phrase, "duress phrase")
    switch.failed_phrases = 0
    return handle


def _request_change(
    session: Session,
    switch: Switch,
    *,
    kind: str,
    params: dict[str, Any],
    duress: bool,
    now: dt.datetime,
    signer: NoteSigner,
) -> ChangeRequested:
    change = PendingChange(
        id=secrets.token_hex(16),
        vault_id=switch.vault_id,
        kind=kind,
        params=canonical.dumps(params),
        state="pending",
        duress=duress,
        requested_at=now,
        effective_at=now + dt.timedelta(seconds=switch.cooling_off_s),
    )
    session.add(change)
    event = {
        "type": "change.requested",
        "vault": switch.vault_id,
        "change": change.id,
        "kind": kind,
        "effective": int(change.effective_at.timestamp()),
    }
    if kind == "delete":
        event["item"] = params["item"]
    appended = log.append(session, event, signer)
    what = {
        "delete": f"delete item {params.get('item')}",
        "disarm": "disarm the switch",
        "policy": "change the switch's policy",
    }[kind]
    notify(
        session,
        switch,
        audience="alert",
        event="change.requested",
        subject="Evidence Vault: a change waits for cooling-off",
        text=(
            f"{{Reporter}} asked to {what}. It takes effect at "
            f"{iso(change.effective_at)} unless trustees cancel it (change {change.id}: "
            f"evault trustee cancel {switch.vault_id} {change.id})."
        ),
        now=now,
        extra={"change": change.id, "kind": kind, "effective": iso(change.effective_at)},
    )
    if duress:
        _duress_effect(session, switch, now=now, how="session")
    session.flush()
    return ChangeRequested(change=change, appended=appended)


def keep_secrets(session: Session, account: Account, value: object) -> object:
    """``value`` with each webhook sent without its secret given the one it has now.

    ``GET /switch`` never shows webhook secrets, so a client changing other
    settings sends ``{"webhook": url}``: that means "unchanged". A webhook
    the vault does not have yet still needs a secret.
    """
    if not isinstance(value, dict) or account.vault_id is None:
        return value
    switch = find_switch(session, account.vault_id)
    if switch is None:
        return value
    current = _policy(switch)
    result = dict(value)
    for name in ("remind", "alert", "publish"):
        known = {c["webhook"]: c["secret"] for c in getattr(current, name) if "webhook" in c}
        contacts = result.get(name)
        if not isinstance(contacts, list):
            continue
        result[name] = [
            {**c, "secret": known[c["webhook"]]}
            if isinstance(c, dict)
            and "webhook" in c
            and set(c) - _CONTACT_EXTRAS == {"webhook"}
            and isinstance(c["webhook"], str)
            and c["webhook"] in known
            else c
            for c in contacts
        ]
    return result


def set_policy(
    session: Session,
    *,
    account: Account,
    policy: Policy,
    duress: bool,
    now: dt.datetime,
    signer: NoteSigner,
) -> ChangeRequested:
    """Change an armed vault's policy: at once if it only tightens, else after cooling-off."""
    switch = _armed(session, account, duress=duress)
    # Under duress a change is weaker or tighter than the policy that session was shown.
    current = _view_policy(switch) if duress else _policy(switch)
    if duress and not current.weakened_by(policy):
        # Answered and logged as applied, like a real tightening, and not
        # applied: a coercer could otherwise add their own address to the
        # alerts. The duress session is shown the policy it asked for.
        _keep_view(session, switch)
        view = _view(switch)
        view["policy"] = policy.public_json()
        # The deadline moves as a real tightening would move it.
        shown_last = dt.datetime.fromisoformat(str(view["last_checkin"]).replace("Z", "+00:00"))
        # As apply_policy does: from the last check-in, never before now.
        view["deadline"] = iso(max(now, shown_last + dt.timedelta(seconds=policy.interval)))
        switch.duress_view = canonical.dumps(view)
        _duress_effect(session, switch, now=now, how="session")
        event = {
            "type": "switch.policy",
            "vault": switch.vault_id,
            "policy_sha256": policy.digest(),
        }
        return ChangeRequested(change=None, appended=log.append(session, event, signer))
    if duress or current.weakened_by(policy):
        return _request_change(
            session,
            switch,
            kind="policy",
            params={"policy": policy.to_json()},
            duress=duress,
            now=now,
            signer=signer,
        )
    apply_policy(switch, policy, now)
    event = {
        "type": "switch.policy",
        "vault": switch.vault_id,
        "policy_sha256": _policy(switch).digest(),
    }
    return ChangeRequested(change=None, appended=log.append(session, event, signer))


def apply_policy(switch: Switch, policy: Policy, now: dt.datetime) -> None:
    switch.policy = policy.encode()
    switch.interval_s = policy.interval
    switch.grace_s = policy.grace
    switch.cooling_off_s = policy.cooling_off
    switch.duress_mode = policy.duress
    if switch.state == "armed":
        switch.deadline_at = max(
            now, switch.last_checkin_at + dt.timedelta(seconds=policy.interval)
        )
        switch.reminders_sent = 0
    switch.version += 1
    reschedule(switch, now)


def disarm(
    session: Session, *, account: Account, duress: bool, now: dt.datetime, signer: NoteSigner
) -> ChangeRequested:
    """Ask to disarm: always after cooling-off."""
    switch = _armed(session, account, duress=duress)
    return _request_change(
        session, switch, kind="disarm", params={}, duress=duress, now=now, signer=signer
    )


def request_delete(
    session: Session,
    *,
    account: Account,
    item: Item,
    duress: bool,
    now: dt.datetime,
    signer: NoteSigner,
) -> ChangeRequested | None:
    """A delete that must cool off, or None when it may happen now.

    Deletes in an armed vault cool off. A session under duress sees only
    the decoy vault: its deletes follow the same rules on the switch it was
    shown, and take effect on the decoy items as a real one would.
    """
    if item.released_in is not None and not duress:
        # Under duress it is answered like any delete in an armed vault, and voided.
        raise PublishedError("this item was released; published evidence cannot be deleted")
    if account.vault_id is None:
        return None
    switch = find_switch(session, account.vault_id, lock=True)
    if switch is None or shown_state(switch, duress=duress) not in ACTIVE_STATES:
        return None
    return _request_change(
        session,
        switch,
        kind="delete",
        params={"item": item.id},
        duress=duress,
        now=now,
        signer=signer,
    )


def pending_changes(session: Session, vault_id: str) -> list[PendingChange]:
    return list(
        session.scalars(
            select(PendingChange)
            .where(PendingChange.vault_id == vault_id, PendingChange.state == "pending")
            .order_by(PendingChange.requested_at, PendingChange.id)
        )
    )


def _votes(session: Session, change_ids: Sequence[str]) -> dict[str, int]:
    if not change_ids:
        return {}
    rows = session.execute(
        select(ChangeVote.change_id, func.count())
        .where(ChangeVote.change_id.in_(list(change_ids)))
        .group_by(ChangeVote.change_id)
    ).all()
    return {change_id: int(count) for change_id, count in rows}


def _change_json(change: PendingChange, votes: int, needed: int) -> dict[str, Any]:
    params = canonical.loads(change.params)
    if isinstance(params, dict) and "policy" in params:
        # Trustees see pending changes too: never the reporter's webhook secrets.
        params["policy"] = Policy.parse(params["policy"], min_interval=1).public_json()
    return {
        "id": change.id,
        "kind": change.kind,
        "params": params,
        "requested_at": iso(change.requested_at),
        "effective_at": iso(change.effective_at),
        "votes": votes,
        "votes_needed": needed,
    }


def changes_json(session: Session, switch: Switch, *, duress: bool = False) -> list[dict[str, Any]]:
    """The vault's pending changes; a session under duress is shown only those asked under duress.

    The real side's pending changes (a deletion of a real item, a real
    policy change) are not the decoy vault's story.
    """
    changes = pending_changes(session, switch.vault_id)
    if duress:
        changes = [c for c in changes if c.duress]
    votes = _votes(session, [c.id for c in changes])
    needed = votes_needed(switch, len(trustees_of(session, switch.vault_id)))
    return [_change_json(c, votes.get(c.id, 0), needed) for c in changes]


def change_json(session: Session, switch: Switch, change: PendingChange) -> dict[str, Any]:
    needed = votes_needed(switch, len(trustees_of(session, switch.vault_id)))
    return _change_json(change, _votes(session, [change.id]).get(change.id, 0), needed)


def _releases_json(session: Session, vault_id: str) -> list[dict[str, Any]]:
    """The vault's published releases, oldest first: number and time of each."""
    rows = session.execute(
        select(Release.number, Release.published_at)
        .where(Release.vault_id == vault_id)
        .order_by(Release.number)
    ).all()
    return [{"number": number, "published_at": iso(when)} for number, when in rows]


def status_json(session: Session, account: Account, *, duress: bool) -> dict[str, Any]:
    """``GET /switch``: the switch as its reporter sees it (under duress, as shown)."""
    if account.vault_id is None:
        return {"state": "disarmed"}
    switch = find_switch(session, account.vault_id)
    if switch is None:
        return {"state": "disarmed"}
    shares = custodian_shares_of(session, switch.vault_id)
    # A session under duress sees the decoy vault's release set (layer 1).
    layer = 1 if duress else 0
    release_items = sorted(
        session.scalars(
            select(Item.id).where(
                Item.vault_id == switch.vault_id,
                Item.release_set.is_(True),
                Item.layer == layer,
            )
        )
    )
    result: dict[str, Any] = {
        "vault": switch.vault_id,
        "state": switch.state,
        "policy": _policy(switch).public_json(),
        "threshold": switch.threshold,
        "custodians": [{"position": s.position, "custodian": s.custodian} for s in shares],
        "release_recipient": switch.release_recipient,
        "commitment": commitment_of(session, switch.vault_id, layer=1)
        if duress
        else canonical.loads(switch.commitment),
        "release_items": release_items,
        "armed_at": iso(switch.armed_at),
        "last_checkin": iso(switch.last_checkin_at),
        "deadline": iso(switch.deadline_at),
        "release_at": iso(switch.deadline_at + dt.timedelta(seconds=switch.grace_s)),
        "handle": switch.handle,
        "pending": changes_json(session, switch, duress=duress),
        "releases": _releases_json(session, switch.vault_id),
    }
    if duress:
        # A duress session sees what a real one would have: its own changes
        # pending, and the deadline its last check-in promised.
        if switch.duress_view is not None:
            view = _view(switch)
            if view:
                result.update({k: view[k] for k in _VIEW_SHOWN if k in view})
                if "deadline" in view:
                    result["release_at"] = iso(
                        dt.datetime.fromisoformat(str(view["deadline"]).replace("Z", "+00:00"))
                        + dt.timedelta(seconds=_policy(switch).grace)
                    )
        # What the truth became after a duress event is hidden; without one, the
        # duress session sees what a real one does (an overdue vault is overdue).
        result["state"] = shown_state(switch, duress=True)
        if switch.duress_view is not None and switch.state == "released":
            # This arming's release is hidden with it; earlier ones were seen before.
            result["releases"] = result["releases"][:-1]
    return result


def trustee_vaults(session: Session, trustee: Account) -> list[dict[str, Any]]:
    """The vaults ``trustee`` holds a share of, for ``GET /trustee/vaults``."""
    rows = session.execute(
        select(CustodianShare, Switch)
        .join(Switch, Switch.vault_id == CustodianShare.vault_id)
        .where(CustodianShare.custodian == trustee.id)
        .order_by(Switch.vault_id)
    ).all()
    return [
        {
            "vault": switch.vault_id,
            "owner": switch.account_id,
            "state": switch.state,
            "position": share.position,
            "threshold": switch.threshold,
            "shares": switch.shares,
            "deadline": iso(switch.deadline_at),
            "pending": changes_json(session, switch),
        }
        for share, switch in rows
    ]


def trustee_share(session: Session, trustee: Account, vault_id: str) -> CustodianShare:
    share = session.scalars(
        select(CustodianShare).where(
            CustodianShare.vault_id == vault_id, CustodianShare.custodian == trustee.id
        )
    ).one_or_none()
    if share is None:
        raise NotCustodianError("you hold no share of that vault")
    return share


def cancel_vote(
    session: Session,
    *,
    trustee: Account,
    vault_id: str,
    change_id: str,
    now: dt.datetime,
    signer: NoteSigner,
) -> tuple[PendingChange, int, int]:
    """A trustee's vote to cancel a pending change; cancelled once enough have voted."""
    trustee_share(session, trustee, vault_id)
    switch = find_switch(session, vault_id, lock=True)
    change = session.get(PendingChange, change_id)
    if switch is None or change is None or change.vault_id != vault_id:
        raise ChangeNotFoundError("no such change")
    needed = votes_needed(switch, len(trustees_of(session, vault_id)))
    if change.state != "pending":
        votes = _votes(session, [change.id]).get(change.id, 0)
        return change, votes, needed
    if session.get(ChangeVote, (change.id, trustee.id)) is None:
        session.add(ChangeVote(change_id=change.id, trustee_id=trustee.id, voted_at=now))
        session.flush()
    votes = _votes(session, [change.id]).get(change.id, 0)
    if votes >= needed:
        settled = cast(
            "CursorResult[Any]",
            session.execute(
                update(PendingChange)
                .where(PendingChange.id == change.id, PendingChange.state == "pending")
                .values(state="cancelled", settled_at=now)
            ),
        )
        if settled.rowcount == 1:
            log.append(
                session,
                {"type": "change.cancelled", "vault": vault_id, "change": change.id},
                signer,
            )
            session.refresh(change)
    return change, votes, needed


def card_of(account: Account) -> Card:
    return Card.from_json(account.card)
