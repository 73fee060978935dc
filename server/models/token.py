"""A bearer token, stored only as its SHA-256 hash."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime

__all__ = ["Token"]


class Token(Base):
    """A login's bearer token for ``account_id``, valid until expiry or revocation.

    The token itself is shown once, in the login response; a database dump
    holds only hashes of 256-bit random strings, which nobody can turn back
    into tokens. ``duress`` marks a login signed with the duress key: its
    session's deletes and switch changes look done and change nothing.
    """

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duress: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
