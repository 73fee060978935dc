"""The hash of one perfect subtree of the audit log's Merkle tree."""

from __future__ import annotations

from sqlalchemy import BigInteger, LargeBinary, SmallInteger
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base

__all__ = ["LogSubtree"]


class LogSubtree(Base):
    """Subtree ``(level, idx)`` covers leaves ``[idx << level, (idx + 1) << level)``.

    Level 0 holds the leaf hashes. Rows are written once and never change.
    """

    __tablename__ = "log_subtrees"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
