"""A login challenge: a single-use nonce, stored only as its SHA-256 hash."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime

__all__ = ["LoginChallenge"]


class LoginChallenge(Base):
    """A nonce handed out for ``account_id``, usable once before ``expires_at``.

    ``account_id`` is empty for a challenge asked for an unknown key or id:
    such a challenge looks the same to the caller and can never be used.
    """

    __tablename__ = "login_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nonce_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    account_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True
    )
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
