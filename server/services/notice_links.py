"""Private links to a notice's details, for recipients without an age key.

DESIGN.md, "Reminders and alerts". A notice whose contact carries no age
recipient says nothing in its e-mail or webhook but a link,
``<base>/notice/<token>``. The token is 32 random bytes (43 base64url
characters); only its SHA-256 is stored, in a :class:`NoticeLink` made when
the notice is sent, so neither the database nor a backup of it gives a
working link. A link stops working :data:`LINK_LIFETIME` after it was sent.
Each attempt to send a notice makes its own link: a repeat after a crash
leaves both copies working.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from server.db import transaction
from server.models import NoticeLink, OutboxMessage

__all__ = ["LINK_LIFETIME", "TOKEN_PATTERN", "find", "mint", "purge_expired", "token_hash"]

LINK_LIFETIME = dt.timedelta(days=14)
"""How long a notice's link shows its details."""
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
"""A link token: 32 random bytes in unpadded base64url."""


def token_hash(token: str) -> str:
    """The hex SHA-256 of a token, as stored."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def mint(sessions: sessionmaker[Session], message_id: str, now: dt.datetime) -> str:
    """Make a link token for the message ``message_id``, store its hash, and return it."""
    token = secrets.token_urlsafe(32)
    with transaction(sessions) as session:
        session.add(
            NoticeLink(
                token_hash=token_hash(token),
                message_id=message_id,
                created_at=now,
                expires_at=now + LINK_LIFETIME,
            )
        )
    return token


def find(session: Session, token: str, now: dt.datetime) -> OutboxMessage | None:
    """The message a token shows, or None: malformed, unknown or expired alike."""
    if not TOKEN_PATTERN.fullmatch(token):
        return None
    wanted = token_hash(token)
    link = session.get(NoticeLink, wanted)
    # The row is found by the hash, which tells a guesser nothing of the token;
    # the comparison is constant-time all the same.
    if link is None or not hmac.compare_digest(link.token_hash, wanted):
        return None
    if now >= link.expires_at:
        return None
    return session.scalars(
        select(OutboxMessage).where(OutboxMessage.id == link.message_id)
    ).one_or_none()


def purge_expired(session: Session, now: dt.datetime) -> int:
    """Delete the links that no longer work; how many."""
    expired = NoticeLink.expires_at <= now
    # Looked for first: on SQLite a DELETE takes the write lock even when it
    # matches nothing, and the worker calls this on every sweep.
    if session.scalar(select(NoticeLink.token_hash).where(expired).limit(1)) is None:
        return 0
    result = session.execute(delete(NoticeLink).where(expired))
    return int(getattr(result, "rowcount", 0) or 0)
