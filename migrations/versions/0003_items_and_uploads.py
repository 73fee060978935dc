"""Items, their shares with editors, and resumable upload sessions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "upload_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("header", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.CheckConstraint("size > 0", name=op.f("ck_upload_sessions_size_positive")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_upload_sessions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_sessions")),
    )
    op.create_index(
        op.f("ix_upload_sessions_account_id"), "upload_sessions", ["account_id"], unique=False
    )
    op.create_index(
        op.f("ix_upload_sessions_expires_at"), "upload_sessions", ["expires_at"], unique=False
    )
    op.create_table(
        "items",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("vault_id", sa.String(length=32), nullable=False),
        sa.Column("header_key", sa.String(length=64), nullable=False),
        sa.Column("header_size", sa.Integer(), nullable=False),
        sa.Column("payload_key", sa.String(length=64), nullable=False),
        sa.Column("payload_size", sa.BigInteger(), nullable=False),
        sa.Column("release_set", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.CheckConstraint("header_size > 0", name=op.f("ck_items_header_size_positive")),
        sa.CheckConstraint("payload_size > 0", name=op.f("ck_items_payload_size_positive")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_items_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
    )
    op.create_index(op.f("ix_items_account_id"), "items", ["account_id"], unique=False)
    op.create_index(op.f("ix_items_header_key"), "items", ["header_key"], unique=False)
    op.create_index(op.f("ix_items_payload_key"), "items", ["payload_key"], unique=False)
    op.create_table(
        "item_shares",
        sa.Column("item_id", sa.String(length=32), nullable=False),
        sa.Column("editor_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["editor_id"],
            ["accounts.id"],
            name=op.f("fk_item_shares_editor_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_item_shares_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", "editor_id", name=op.f("pk_item_shares")),
    )
    op.create_index(op.f("ix_item_shares_editor_id"), "item_shares", ["editor_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_item_shares_editor_id"), table_name="item_shares")
    op.drop_table("item_shares")
    op.drop_index(op.f("ix_items_payload_key"), table_name="items")
    op.drop_index(op.f("ix_items_header_key"), table_name="items")
    op.drop_index(op.f("ix_items_account_id"), table_name="items")
    op.drop_table("items")
    op.drop_index(op.f("ix_upload_sessions_expires_at"), table_name="upload_sessions")
    op.drop_index(op.f("ix_upload_sessions_account_id"), table_name="upload_sessions")
    op.drop_table("upload_sessions")
