"""The outbox: notices written with the change they announce, delivered later with retries.

DESIGN.md, "Dead-man switch". :func:`enqueue` adds an :class:`OutboxMessage`
in the caller's transaction, so a notice exists exactly when its change
committed. :func:`deliver_due` then sends what is due, from any number of
workers at once:

1. **Claim**, in a short transaction of its own: due rows get a lease
   (``claimed_until``) and one more attempt. On PostgreSQL they are picked
   with ``SELECT … FOR UPDATE SKIP LOCKED``; on SQLite the transaction first
   takes the database write lock, then claims row by row with a conditional
   ``UPDATE`` whose row count says whether the claim won.
2. **Send**, outside any transaction, so no lock is held across the network.
   A message whose lease ran out before its turn is handed back unsent.
3. **Mark**, committed at once: sent, or the error and the next attempt
   after an exponential backoff (30 s doubling to at most 1 h, plus up to
   10 % jitter), or failed for good after :data:`MAX_ATTEMPTS`.

Delivery is at-least-once. A worker killed between sending and marking
leaves its claim to expire, and the message is sent again; receivers drop
the repeat by its delivery id (the row id: the email's ``Message-ID`` and
``X-Evault-Delivery``, the webhook's ``Evault-Delivery``). Logs name the
delivery id, event and channel, never a target, secret or body.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import smtplib
from collections.abc import Sequence
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, CursorResult, and_, false, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from server.clock import Clock
from server.db import is_sqlite, transaction
from server.models.switch import OUTBOX_CHANNELS, OutboxMessage
from server.notify import DeliveryError

__all__ = [
    "BASE_DELAY",
    "LEASE",
    "MAX_ATTEMPTS",
    "MAX_DELAY",
    "Sender",
    "backoff",
    "deliver_due",
    "enqueue",
    "pending_count",
]

MAX_ATTEMPTS = 12
"""Attempts before a message is marked failed (about seven hours of retries)."""
BASE_DELAY = dt.timedelta(seconds=30)
"""Wait after the first failed attempt; it doubles with each further one."""
MAX_DELAY = dt.timedelta(hours=1)
"""Longest wait between two attempts, before jitter."""
LEASE = dt.timedelta(minutes=2)
"""How long a claim keeps other workers off a message."""

_MAX_ERROR = 200
_MAX_EVENT = 64

log = logging.getLogger(__name__)


class Sender(Protocol):
    """Sends one message, raising :class:`DeliveryError` when it cannot."""

    def send(self, message: OutboxMessage, *, now: int) -> None: ...


def enqueue(
    session: Session,
    *,
    vault_id: str | None,
    event: str,
    channel: str,
    target: str,
    subject: str,
    body: str,
    now: dt.datetime,
    recipient: str | None = None,
) -> OutboxMessage:
    """Add a message to the outbox inside the caller's transaction (no commit).

    ``target`` is an email address or a webhook target's canonical JSON
    (:class:`server.notify.WebhookTarget`). ``body`` is the email text, or
    the webhook's JSON object (``docs/webhooks.md``), which names the
    delivery id: the caller may set ``body`` on the returned message, whose
    ``id`` is fixed, before the transaction commits. The message is due at
    ``now``. ``subject`` and ``body`` are the details, never sent in the
    clear: they go encrypted to ``recipient`` (an age recipient) when there
    is one, else behind a private link (:class:`server.notify.NoticeSender`).

    Raises:
        ValueError: ``channel`` is not ``email`` or ``webhook``, or ``event``
            is empty or longer than 64 characters.
    """
    if channel not in OUTBOX_CHANNELS:
        raise ValueError(f"unknown outbox channel {channel!r}")
    if not 0 < len(event) <= _MAX_EVENT:
        raise ValueError("outbox event must be 1 to 64 characters")
    message = OutboxMessage(
        id=secrets.token_hex(16),
        vault_id=vault_id,
        event=event,
        channel=channel,
        target=target,
        subject=subject,
        body=body,
        created_at=now,
        next_attempt_at=now,
        attempts=0,
        recipient=recipient,
    )
    session.add(message)
    return message


def backoff(attempts: int) -> dt.timedelta:
    """The wait after ``attempts`` failed attempts: 30 s · 2^(attempts−1), at most 1 h, + ≤10 %."""
    exponent = min(max(attempts, 1) - 1, 16)
    delay = min(BASE_DELAY * (1 << exponent), MAX_DELAY)
    # Jitter spreads the retries of messages that failed together (a mail
    # server outage) so they do not all come back in the same sweep.
    jitter = secrets.randbelow(int(delay.total_seconds()) // 10 + 1)
    return delay + dt.timedelta(seconds=jitter)


def pending_count(session: Session) -> int:
    """How many messages are neither sent nor failed for good."""
    count = session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None))
    )
    return int(count or 0)


def _claimable(now: dt.datetime) -> ColumnElement[bool]:
    return and_(
        OutboxMessage.sent_at.is_(None),
        OutboxMessage.failed_at.is_(None),
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    )


def _claim(
    sessions: sessionmaker[Session], now: dt.datetime, limit: int, lease: dt.timedelta
) -> Sequence[OutboxMessage]:
    until = now + lease
    due = _claimable(now)
    order = (OutboxMessage.next_attempt_at, OutboxMessage.id)
    with transaction(sessions) as session:
        if not is_sqlite(session):
            rows = session.scalars(
                select(OutboxMessage)
                .where(due)
                .order_by(*order)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                row.claimed_until = until
                row.attempts += 1
            return rows
        # Takes SQLite's write lock before anything is read: a transaction
        # that read first could not upgrade once another worker committed.
        session.execute(update(OutboxMessage).where(false()).values(attempts=0))
        candidates = session.scalars(
            select(OutboxMessage.id).where(due).order_by(*order).limit(limit)
        )
        claimed: list[str] = []
        for message_id in candidates.all():
            result = cast(
                "CursorResult[Any]",
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == message_id, due)
                    .values(claimed_until=until, attempts=OutboxMessage.attempts + 1)
                ),
            )
            if result.rowcount == 1:
                claimed.append(message_id)
        if not claimed:
            return []
        return session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(claimed)).order_by(*order)
        ).all()


def _ours(message: OutboxMessage) -> ColumnElement[bool]:
    # The claim's expiry identifies it: a later claim by another worker has a
    # later expiry, so a stale worker cannot overwrite what that one records.
    return and_(
        OutboxMessage.id == message.id,
        OutboxMessage.sent_at.is_(None),
        OutboxMessage.claimed_until == message.claimed_until,
    )


def _release(sessions: sessionmaker[Session], message: OutboxMessage) -> None:
    with transaction(sessions) as session:
        session.execute(
            update(OutboxMessage)
            .where(_ours(message))
            .values(claimed_until=None, attempts=OutboxMessage.attempts - 1)
        )


def _mark_sent(sessions: sessionmaker[Session], message: OutboxMessage, now: dt.datetime) -> None:
    with transaction(sessions) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id, OutboxMessage.sent_at.is_(None))
            .values(sent_at=now, claimed_until=None)
        )


def _mark_failed(
    sessions: sessionmaker[Session], message: OutboxMessage, now: dt.datetime, error: str
) -> None:
    error = error[:_MAX_ERROR]
    final = message.attempts >= MAX_ATTEMPTS
    values: dict[str, object] = {"claimed_until": None, "last_error": error}
    if final:
        values["failed_at"] = now
    else:
        values["next_attempt_at"] = now + backoff(message.attempts)
    with transaction(sessions) as session:
        session.execute(update(OutboxMessage).where(_ours(message)).values(**values))
    if final:
        log.error(
            "delivery %s (%s by %s) failed for good after %d attempts: %s",
            message.id,
            message.event,
            message.channel,
            message.attempts,
            error,
        )
    else:
        log.warning(
            "delivery %s (%s by %s) failed on attempt %d, will retry: %s",
            message.id,
            message.event,
            message.channel,
            message.attempts,
            error,
        )


def _deliver(
    sessions: sessionmaker[Session], sender: Sender, clock: Clock, message: OutboxMessage
) -> bool:
    now = clock.now()
    if message.claimed_until is None or now >= message.claimed_until:
        # Earlier messages took the whole lease; another worker may claim
        # this one now, so sending it here could send it twice.
        _release(sessions, message)
        return False
    try:
        sender.send(message, now=int(now.timestamp()))
    except DeliveryError as exc:
        error = str(exc)
    except (smtplib.SMTPException, OSError) as exc:
        # Their text can quote a URL or a server reply; the type is enough.
        # (requests' exceptions are OSErrors.)
        error = f"delivery failed ({type(exc).__name__})"
    except Exception as exc:
        # A bug in one message's sending must not stop the others.
        log.debug("delivery %s: unexpected error", message.id, exc_info=True)
        error = f"internal error ({type(exc).__name__})"
    else:
        _mark_sent(sessions, message, clock.now())
        return True
    _mark_failed(sessions, message, clock.now(), error)
    return False


def deliver_due(
    sessions: sessionmaker[Session],
    sender: Sender,
    clock: Clock,
    *,
    limit: int = 20,
    lease: dt.timedelta = LEASE,
) -> int:
    """Claim up to ``limit`` due messages, send them and record the outcome.

    Safe to run from several threads or processes at once: a claimed message
    is left alone by the others until its ``lease`` ends. Returns how many
    messages were sent.

    Raises:
        SQLAlchemyError: the database failed; claimed messages are retried
            once their lease ends.
    """
    sent = 0
    for message in _claim(sessions, clock.now(), limit, lease):
        if _deliver(sessions, sender, clock, message):
            sent += 1
    return sent
