"""An item: an age header, a payload and an encrypted manifest, as content-addressed blobs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime

__all__ = ["Item", "ItemShare", "ItemSide"]


class Item(Base):
    """The server-side metadata of one item (DESIGN.md, "Item format"), nothing more.

    ``payload_key`` is the payload's hex SHA-256 (the ciphertext hash) and
    ``header_key`` the header's: blobs are content-addressed and may be
    shared between items, so a blob is deleted only when no row refers to it.
    ``account_id`` is the owning reporter, ``vault_id`` their vault.
    ``manifest_key`` and ``manifest_size`` name the encrypted manifest (a
    whole age file, DESIGN.md "Item format"); both are null for an item
    committed without one. ``log_index`` is the index of the item's
    ``item.uploaded`` log entry (null for items older than the column).
    ``layer`` is 0 for the vault's real items and 1 for those of its decoy
    vault, which is all a session under duress sees as its vault; never part
    of a release. A session sees the layer it works in and, as its decoys,
    the next one: a session under duress that adds decoys makes layer 2.
    ``released_in`` is the number of the vault's release that published the
    item (null while it is unpublished): a published item stays public and
    joins no later release set. ``disclosure_key`` and ``disclosure_size``
    name the item's encrypted disclosure (:mod:`vault.disclosure`), what the
    reporter chose to publish, the one blob of the item besides its header
    and payload that the release key opens; null for items outside the
    release set and for those put in it before disclosures existed.
    """

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint("payload_size > 0", name="payload_size_positive"),
        CheckConstraint("header_size > 0", name="header_size_positive"),
        CheckConstraint(
            "(manifest_key IS NULL AND manifest_size IS NULL) "
            "OR (manifest_key IS NOT NULL AND manifest_size > 0)",
            name="manifest_key_with_size",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    vault_id: Mapped[str] = mapped_column(String(32), nullable=False)
    header_key: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    header_size: Mapped[int] = mapped_column(Integer, nullable=False)
    payload_key: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    payload_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    manifest_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    manifest_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    disclosure_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    disclosure_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    release_set: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    layer: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("0"))
    log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    released_in: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class ItemShare(Base):
    """Editor ``editor_id`` may read item ``item_id`` (its header has their stanza)."""

    __tablename__ = "item_shares"

    item_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    editor_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ItemSide(Base):
    """The layer (:attr:`Item.layer`) of every item ever committed, kept after it is deleted.

    A session under duress is shown the history of its own layer's items
    only (``evault log show``), a real session that of the real ones,
    deleted items included.
    """

    __tablename__ = "item_sides"

    item_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    layer: Mapped[int] = mapped_column(SmallInteger, nullable=False)
