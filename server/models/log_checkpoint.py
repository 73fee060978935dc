"""A signed checkpoint of the audit log (C2SP tlog-checkpoint as a signed note)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, LargeBinary, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime

__all__ = ["LogCheckpoint"]


class LogCheckpoint(Base):
    """The tree head for ``size`` leaves: its root and the note the log key signed."""

    __tablename__ = "log_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
