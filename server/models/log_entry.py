"""One leaf of the audit log: a canonical-JSON event at its index."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime

__all__ = ["LogEntry"]


class LogEntry(Base):
    """An event as logged: its index, exact bytes, RFC 6962 leaf hash and time.

    ``item_id`` repeats the event's ``item`` field, if it names one, so that
    an item's entries are found without reading the whole log.
    """

    __tablename__ = "log_entries"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    item_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
