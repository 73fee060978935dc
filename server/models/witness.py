"""Witnessing: what this server cosigned for peers' logs, and peers cosigned for its own."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime

__all__ = ["LogCosignature", "WitnessedLog"]


class WitnessedLog(Base):
    """As a witness: the latest checkpoint this server cosigned for a peer's log.

    One row per log origin (tlog-witness.md: "the witness is only required to
    keep track of the latest checkpoint it observed and verified"). ``note``
    is the checkpoint as the log signed it followed by this server's
    cosignature line, which ``GET /api/v1/witness/<origin hash>/checkpoint``
    serves to monitors. A row is only ever moved forward, under a row lock.
    """

    __tablename__ = "witnessed_logs"
    __table_args__ = (CheckConstraint("size >= 0", name="size_not_negative"),)

    origin: Mapped[str] = mapped_column(String(512), primary_key=True)
    origin_sha256: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    log_key: Mapped[str] = mapped_column(Text, nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class LogCosignature(Base):
    """As a log: a peer witness's cosignature line on this log's checkpoint of ``size`` leaves.

    ``witness_key`` is the witness's cosigner key (its peer key, type 0x04).
    The newest ``size`` per witness is the old size of the next submission.
    """

    __tablename__ = "log_cosignatures"
    __table_args__ = (Index("ix_log_cosignatures_witness_key_size", "witness_key", "size"),)

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    line: Mapped[str] = mapped_column(Text, nullable=False)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
