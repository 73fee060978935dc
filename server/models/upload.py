"""A resumable upload session: what a reporter declared before sending the payload."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    LargeBinary,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime

__all__ = ["UploadSession"]


class UploadSession(Base):
    """An upload of ``size`` payload bytes by ``account_id``, for item ``item_id``.

    ``id`` is server-generated (:func:`server.storage.new_upload_id`) and is
    also the id of the staging session in the blob store. ``header`` is the
    item's age header, already parsed strictly and at most 64 KiB; it is kept
    here until the commit stores it as a blob. ``sha256``, the payload's hex
    SHA-256, is null when the client gives it only at the commit.
    ``item_id`` is the id reserved for the item (:func:`server.services.accounts.new_id`),
    so a manifest signed before the commit can name it; it is null for a
    session opened by an older server. ``layer`` is the item's
    (:attr:`~server.models.Item.layer`) and ``depth`` that of the session
    that opened it, 0 or 1 under duress: each session lists only the
    unfinished uploads of its own depth. ``client_state`` is what the client needs to resume, sealed
    to its own key (the server cannot read it). The row and the staged bytes
    go together: commit, abort and expiry remove both.
    """

    __tablename__ = "upload_sessions"
    __table_args__ = (CheckConstraint("size > 0", name="size_positive"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    item_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    header: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    layer: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("0"))
    depth: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("0"))
    client_state: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
