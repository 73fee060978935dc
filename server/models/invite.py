"""An operator's invite: a one-time code, stored only as its SHA-256 hash."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime

__all__ = ["INVITE_ROLES", "Invite"]

INVITE_ROLES = ("reporter", "editor")
"""Roles an invite can grant; operators are made on the command line, not invited."""


class Invite(Base):
    """An invite to register an account with ``role`` before ``expires_at``."""

    __tablename__ = "invites"
    __table_args__ = (CheckConstraint("role IN ('reporter', 'editor')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
