"""Peer servers: their pinned keys, whether both sides confirmed, and the nonces they used."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime

__all__ = ["PEER_STATES", "Peer", "PeerNonce"]

PEER_STATES = ("pending", "active")
"""``pending``: this operator pinned the peer; ``active``: the peer showed it pinned us too."""


class Peer(Base):
    """A peer server as this server's operator pinned it.

    ``url`` is the peer's base URL (normalised, :func:`server.services.peers.normalise_url`);
    ``peer_key`` its peer key (a tlog-cosignature verifier key, type 0x04),
    which is also the ``keyid`` of its RFC 9421 signatures; ``log_key`` its
    log's verifier key (C2SP signed-note, type 0x01), for witnessing. A peer
    is ``active`` once a signed handshake showed that each side pinned the
    other's keys; until then only the handshake itself is accepted from it.
    """

    __tablename__ = "peers"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'active')", name="state"),
        CheckConstraint(
            "(state = 'pending') = (confirmed_at IS NULL)", name="confirmed_when_active"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2048), nullable=False, unique=True)
    peer_key: Mapped[str] = mapped_column(String(512), nullable=False, unique=True)
    log_key: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PeerNonce(Base):
    """A nonce of a peer's accepted request, kept until its signature expires."""

    __tablename__ = "peer_nonces"

    peer_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("peers.id", ondelete="CASCADE"), primary_key=True
    )
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
