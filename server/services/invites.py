"""Operator invites: one-time codes whose SHA-256 hash alone is stored.

The code is shown once, to the operator who made it; the database and the
audit log never hold it, so neither a dump nor the public log lets anyone
register with it. The code carries 160 bits from the CSPRNG, so its hash
cannot be reversed by guessing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import secrets

from sqlalchemy.orm import Session

from server.models import INVITE_ROLES, Invite, utcnow
from server.services import log
from vault.errors import ConfigError
from vault.note import NoteSigner

__all__ = ["CreatedInvite", "code_hash", "code_matches", "create_invite", "parse_duration"]

_DURATION = re.compile(r"([1-9][0-9]{0,4})([mhd])")
_UNITS = {"m": 60, "h": 3600, "d": 86400}
MAX_LIFETIME = dt.timedelta(days=90)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CreatedInvite:
    """A new invite and its one-time code (shown once, never stored)."""

    invite: Invite
    code: str = dataclasses.field(repr=False)
    log_index: int


def parse_duration(text: str) -> dt.timedelta:
    """Parse ``30m``, ``72h`` or ``7d``, at most 90 days.

    Raises:
        ConfigError: not such a duration.
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ConfigError(f"invalid duration {text!r}: want a number and m, h or d, like 72h")
    value = dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    if value > MAX_LIFETIME:
        raise ConfigError("invalid duration: an invite lives at most 90 days")
    return value


def code_hash(code: str) -> bytes:
    """The SHA-256 of an invite code, as stored."""
    return hashlib.sha256(code.encode("utf-8")).digest()


def code_matches(invite: Invite, code: str) -> bool:
    """Whether ``code`` is the invite's code, compared in constant time."""
    return hmac.compare_digest(invite.code_hash, code_hash(code))


def create_invite(
    session: Session, *, role: str, lifetime: dt.timedelta, signer: NoteSigner
) -> CreatedInvite:
    """Create an invite in the caller's transaction and log it (without the code).

    Raises:
        ConfigError: an unknown role.
    """
    if role not in INVITE_ROLES:
        raise ConfigError(f"invalid role {role!r}: want one of {', '.join(INVITE_ROLES)}")
    code = secrets.token_urlsafe(20)
    now = utcnow()
    invite = Invite(code_hash=code_hash(code), role=role, created_at=now, expires_at=now + lifetime)
    session.add(invite)
    session.flush()
    appended = log.append(
        session,
        {
            "type": "invite.created",
            "invite": invite.id,
            "role": role,
            "expires": int(invite.expires_at.timestamp()),
        },
        signer,
    )
    return CreatedInvite(invite=invite, code=code, log_index=appended.entry.idx)
