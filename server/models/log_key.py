"""The audit log's signing keys, oldest first: the key history that survives a rotation."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime

__all__ = ["LogKey"]

_RETIRED_WITH_TRANSITION = (
    "(last_size IS NULL AND transition IS NULL) "
    "OR (last_size IS NOT NULL AND transition IS NOT NULL)"
)


class LogKey(Base):
    """One log key and the tree sizes it signs, ``first_size`` to ``last_size``.

    ``key`` is the C2SP note verifier key (public only; the private key lives
    in the key file). The current key has no ``last_size``; a retired key's
    ``transition`` is the checkpoint of ``last_size`` entries that it and its
    successor both signed, whose last entry is the ``log.key_rotated`` event.
    """

    __tablename__ = "log_keys"
    __table_args__ = (
        CheckConstraint("first_size >= 0", name="first_size_not_negative"),
        CheckConstraint(
            "last_size IS NULL OR last_size >= first_size", name="last_size_after_first"
        ),
        CheckConstraint(_RETIRED_WITH_TRANSITION, name="retired_with_transition"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    first_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    transition: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
