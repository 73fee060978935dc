"""An account: a person's public card and the role an invite (or the operator) gave them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime

__all__ = ["ACCOUNT_ROLES", "Account"]

ACCOUNT_ROLES = ("operator", "reporter", "editor")
"""Roles an account can hold."""


class Account(Base):
    """A registered person, known by a server-generated id and their Ed25519 key.

    ``card`` holds the card's canonical JSON exactly as uploaded (it was
    parsed strictly, so it is the one encoding of the card); ``signing_key``
    is its Ed25519 public key, unique across accounts. ``duress_key`` is the
    public key of the identity a duress passphrase opens (a reporter's), if
    registered: a login or check-in signed with it is under duress.
    ``duress_card`` is that identity's whole card (canonical JSON, as
    uploaded), when the client sent it: a session under duress is shown it
    as the account's card, so the decoy vault's card is the one its keys
    match. A reporter gets a ``vault_id`` at registration; other roles have none.
    """

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("role IN ('operator', 'reporter', 'editor')", name="role"),
        CheckConstraint(
            "(role = 'reporter') = (vault_id IS NOT NULL)", name="vault_only_for_reporters"
        ),
        # An index, not a constraint: SQLite adds it without copying the table.
        Index("ix_accounts_duress_key", "duress_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    card: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    signing_key: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    duress_key: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    duress_card: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    vault_id: Mapped[str | None] = mapped_column(String(32), nullable=True, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
