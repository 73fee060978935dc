"""The dead-man switch: one row per armed vault, its shares, changes, check-ins and outbox.

DESIGN.md, "Dead-man switch". A vault's switch moves
``armed → overdue → releasing → released`` (or back to ``disarmed``); each
move is one conditional ``UPDATE … WHERE state = … AND version = …`` plus
the outbox rows and log entry it causes, in one transaction, so two workers
or a crash never move a vault twice or lose a notice.

``next_due_at`` is the next moment the worker has something to do for the
vault (a reminder, the deadline, the end of grace, a release to finish); it
is null when nothing is scheduled. The sweep reads due vaults through its
index, so its cost grows with vaults due, not vaults held.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime

__all__ = [
    "CHANGE_KINDS",
    "CHANGE_STATES",
    "DURESS_MODES",
    "OUTBOX_CHANNELS",
    "SWITCH_STATES",
    "ChangeVote",
    "CheckinNonce",
    "CustodianShare",
    "NoticeLink",
    "OutboxMessage",
    "PendingChange",
    "Release",
    "StagedReleaseItem",
    "SubmittedShare",
    "Switch",
]

SWITCH_STATES = ("disarmed", "armed", "overdue", "releasing", "released")
DURESS_MODES = ("alert", "release", "both")
CHANGE_KINDS = ("delete", "disarm", "policy")
CHANGE_STATES = ("pending", "applied", "cancelled", "void")
OUTBOX_CHANNELS = ("email", "webhook")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Switch(Base):
    """A vault's switch: its policy (canonical JSON), its state and its schedule.

    ``policy`` is the canonical JSON the reporter set (interval, grace,
    reminders, duress mode, cooling-off, contacts); the numbers the sweep
    needs are copied into columns. ``release_recipient`` is the age
    recipient of the release identity, ``commitment`` the canonical JSON of
    the insurance commitment logged at arming. ``phrase_hash`` and
    ``duress_phrase_hash`` are Argon2id hashes for the web check-in page;
    ``failed_phrases`` counts the page's refusals in a row since the last
    accepted check-in, and ``phrase_failed_at`` is the time of the last
    failure the trustees were alerted to (it paces those alerts).
    ``duress_view`` is what a session under duress is shown instead of the
    truth (canonical JSON), null when no duress check-in happened;
    ``view_handle`` is the web check-in handle a session under duress set (its
    phrases' hashes are in the view), so that the page takes them as
    check-ins under duress.
    """

    __tablename__ = "switches"
    __table_args__ = (
        CheckConstraint(_in("state", SWITCH_STATES), name="state"),
        # An index, not a constraint: SQLite adds it without copying the table.
        Index("ix_switches_view_handle", "view_handle", unique=True),
        CheckConstraint(_in("duress_mode", DURESS_MODES), name="duress_mode"),
        CheckConstraint("threshold >= 1 AND threshold <= shares", name="threshold"),
        CheckConstraint("interval_s > 0 AND grace_s >= 0 AND cooling_off_s >= 0", name="times"),
        Index("ix_switches_next_due_at", "next_due_at"),
    )

    vault_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    policy: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    interval_s: Mapped[int] = mapped_column(Integer, nullable=False)
    grace_s: Mapped[int] = mapped_column(Integer, nullable=False)
    cooling_off_s: Mapped[int] = mapped_column(Integer, nullable=False)
    duress_mode: Mapped[str] = mapped_column(String(16), nullable=False)
    threshold: Mapped[int] = mapped_column(Integer, nullable=False)
    shares: Mapped[int] = mapped_column(Integer, nullable=False)
    release_recipient: Mapped[str] = mapped_column(String(128), nullable=False)
    commitment: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    handle: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    phrase_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    duress_phrase_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    failed_phrases: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    phrase_failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    armed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    armed_entry: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_checkin_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    deadline_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    reminders_sent: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duress_view: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    view_handle: Mapped[str | None] = mapped_column(String(64), nullable=True)
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CustodianShare(Base):
    """One SLIP-39 share of the release secret, as an age file for its custodian.

    ``custodian`` is ``server`` or the trustee's account id. Only that
    custodian can open ``encrypted``. ``commitment`` is the share's
    commitment (:func:`vault.shares.share_commitment`), made by the
    reporter's client at arming, so that at release only shares made for the
    vault are taken; null for switches armed before commitments existed.
    """

    __tablename__ = "custodian_shares"

    vault_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("switches.vault_id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    custodian: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    encrypted: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    commitment: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class StagedReleaseItem(Base):
    """An item re-wrapped for a release recipient, waiting for the arm that applies it.

    Arming re-wraps every item of the release set on the reporter's device.
    The new headers, with each item's encrypted disclosure, are staged here
    first and change nothing yet; ``POST /switch/arm`` applies them with the switch in one
    transaction, so an arming that is refused, or never sent, leaves every
    item as it was. Rows of another ``recipient`` (an arming given up) are
    replaced by the next staging, and all of a vault's go when it is armed.
    """

    __tablename__ = "staged_release_items"

    vault_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    item_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    recipient: Mapped[str] = mapped_column(String(128), nullable=False)
    header: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    disclosure: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    staged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class SubmittedShare(Base):
    """A share handed in for a release, sealed to the server's custodian key.

    ``digest`` is the SHA-256 of the normalised mnemonic, so the same share
    handed in twice is kept once.
    """

    __tablename__ = "submitted_shares"

    vault_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("switches.vault_id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    submitted_by: Mapped[str] = mapped_column(String(32), nullable=False)
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class PendingChange(Base):
    """A change waiting out the cooling-off delay; ``params`` is canonical JSON.

    ``duress`` marks a change asked for in a session under duress: it looks
    pending like any other and is voided, never applied, when its time comes.
    """

    __tablename__ = "pending_changes"
    __table_args__ = (
        CheckConstraint(_in("kind", CHANGE_KINDS), name="kind"),
        CheckConstraint(_in("state", CHANGE_STATES), name="state"),
        Index("ix_pending_changes_due", "state", "effective_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    vault_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("switches.vault_id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    params: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    duress: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    effective_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    settled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ChangeVote(Base):
    """A trustee's vote to cancel a pending change."""

    __tablename__ = "change_votes"

    change_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("pending_changes.id", ondelete="CASCADE"), primary_key=True
    )
    trustee_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    voted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class CheckinNonce(Base):
    """A signed check-in's nonce, kept while its time is acceptable, so it cannot be replayed."""

    __tablename__ = "checkin_nonces"

    vault_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class OutboxMessage(Base):
    """A notice to send: written in the transaction of the change it announces.

    Sent by :mod:`server.services.outbox`: claimed with a lease, sent, marked
    sent; retried with backoff on failure. ``id`` is the delivery id receivers
    use to drop a repeat (a crash between sending and marking).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_in("channel", OUTBOX_CHANNELS), name="channel"),
        Index("ix_outbox_due", "sent_at", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    vault_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    target: Mapped[str] = mapped_column(Text, nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    recipient: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The age recipient the details are encrypted to; None: they are behind a link."""


class NoticeLink(Base):
    """A link that shows a notice's details: only the SHA-256 of its token is kept.

    Made when a notice without an age recipient is sent (each attempt makes
    its own), so the token itself is never stored; it stops working at
    ``expires_at``, and goes with its message.
    """

    __tablename__ = "notice_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class Release(Base):
    """A published release: the release identity (public from now on) and its report.

    A vault is released at most once per arming, and may be armed again
    afterwards with a fresh release identity and release set, so its
    releases are numbered from 1. Each keeps what its page shows as it was
    at publication: ``recipient``, ``commitment`` (canonical JSON of the
    insurance commitment) and ``armed_entry`` (the ``switch.armed`` log
    index) of the arming it released. ``report`` is canonical JSON: one
    entry per release-set item with what the server checked (see
    :mod:`server.services.release`).
    """

    __tablename__ = "releases"

    vault_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("switches.vault_id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity: Mapped[str] = mapped_column(String(128), nullable=False)
    report: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    recipient: Mapped[str] = mapped_column(String(128), nullable=False)
    commitment: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    armed_entry: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
