"""Witnessed logs: cosigning peers' checkpoints, and keeping the cosignatures of this log's.

- ``witnessed_logs``: as a witness, the latest checkpoint this server
  cosigned for each peer's log (its origin, size, root and the cosigned
  note), the state tlog-witness.md asks a witness to keep.
- ``log_cosignatures``: as a log, each cosignature line a peer witness
  returned for one of this log's checkpoints.

Downgrading drops both: the witness forgets what it cosigned (and would
cosign a fork of a peer's log from scratch), and the log serves its
checkpoints without cosignatures until its witnesses cosign again.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "witnessed_logs",
        sa.Column("origin", sa.String(512), nullable=False),
        sa.Column("origin_sha256", sa.String(64), nullable=False),
        sa.Column("log_key", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.CheckConstraint("size >= 0", name=op.f("ck_witnessed_logs_size_not_negative")),
        sa.PrimaryKeyConstraint("origin", name=op.f("pk_witnessed_logs")),
        sa.UniqueConstraint("origin_sha256", name=op.f("uq_witnessed_logs_origin_sha256")),
    )
    op.create_table(
        "log_cosignatures",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness_key", sa.String(512), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("size", "witness_key", name=op.f("pk_log_cosignatures")),
    )
    op.create_index(
        "ix_log_cosignatures_witness_key_size", "log_cosignatures", ["witness_key", "size"]
    )


def downgrade() -> None:
    op.drop_index("ix_log_cosignatures_witness_key_size", table_name="log_cosignatures")
    op.drop_table("log_cosignatures")
    op.drop_table("witnessed_logs")
