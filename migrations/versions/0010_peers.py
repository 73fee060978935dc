"""Peer servers and the nonces of their signed requests.

- ``peers``: each peer server this operator added, with its pinned peer key
  (the RFC 9421 ``keyid`` of its requests) and log key, ``pending`` until a
  signed handshake shows that both sides pinned each other, then ``active``.
- ``peer_nonces``: the nonce of every accepted peer request, kept until its
  signature expires, so a replay is refused by every process of the server.

Downgrading drops both tables: the peers must be added again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "peers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("peer_key", sa.String(512), nullable=False),
        sa.Column("log_key", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'active')", name="ck_peers_state"),
        sa.CheckConstraint(
            "(state = 'pending') = (confirmed_at IS NULL)",
            name="ck_peers_confirmed_when_active",
        ),
        sa.UniqueConstraint("url", name="uq_peers_url"),
        sa.UniqueConstraint("peer_key", name="uq_peers_peer_key"),
    )
    op.create_table(
        "peer_nonces",
        sa.Column(
            "peer_id",
            sa.Integer(),
            sa.ForeignKey("peers.id", ondelete="CASCADE", name="fk_peer_nonces_peer_id_peers"),
            primary_key=True,
        ),
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_peer_nonces_expires_at", "peer_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_peer_nonces_expires_at", table_name="peer_nonces")
    op.drop_table("peer_nonces")
    op.drop_table("peers")
