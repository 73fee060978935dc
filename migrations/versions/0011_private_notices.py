"""Notices that give nothing away: details encrypted to the recipient or behind a link.

- ``outbox.recipient``: the age recipient a notice's details are encrypted
  to when its contact carries one; null for a notice whose details are
  shown at a link.
- ``notice_links``: one row per link sent, keyed by the SHA-256 of its
  token (the token itself is never stored), with its message and expiry.

Existing messages get no recipient: any still unsent go out with a link.
Downgrading drops the table and the column; links already sent stop working.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("outbox", sa.Column("recipient", sa.Text(), nullable=True))
    op.create_table(
        "notice_links",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["outbox.id"],
            name=op.f("fk_notice_links_message_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_notice_links")),
    )
    op.create_index(op.f("ix_notice_links_message_id"), "notice_links", ["message_id"])
    op.create_index(op.f("ix_notice_links_expires_at"), "notice_links", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notice_links_expires_at"), table_name="notice_links")
    op.drop_index(op.f("ix_notice_links_message_id"), table_name="notice_links")
    op.drop_table("notice_links")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("recipient")
