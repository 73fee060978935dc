"""Encrypted manifests of items, item ids reserved at upload, digests given at commit.

- ``upload_sessions.item_id``: the id the item will get, reserved when the
  upload opens so the client can sign a manifest naming it before the commit.
  Sessions opened by an older server have none (their item gets a new id).
- ``upload_sessions.sha256`` may be null: a client that encrypts while it
  uploads knows the payload's hash only at the commit.
- ``items.manifest_key`` and ``items.manifest_size``: the item's encrypted
  manifest blob, both null (an item without one) or both set.

On SQLite ``items`` is never copied: with foreign keys on, the ``DROP TABLE``
of a batch copy would cascade into ``item_shares`` and unshare every item. Its
columns are added with plain ``ALTER TABLE … ADD COLUMN`` (the check rides on
the new column) and dropped with ``DROP COLUMN``. ``upload_sessions``, which
no table refers to, is copied in batch mode to make ``sha256`` nullable.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_MANIFEST_CHECK = (
    "(manifest_key IS NULL AND manifest_size IS NULL) "
    "OR (manifest_key IS NOT NULL AND manifest_size > 0)"
)


def upgrade() -> None:
    with op.batch_alter_table("upload_sessions") as batch:
        batch.add_column(sa.Column("item_id", sa.String(length=32), nullable=True))
        batch.alter_column("sha256", existing_type=sa.String(length=64), nullable=True)
    op.add_column("items", sa.Column("manifest_key", sa.String(length=64), nullable=True))
    op.add_column(
        "items",
        sa.Column(
            "manifest_size",
            sa.Integer(),
            sa.CheckConstraint(_MANIFEST_CHECK, name=op.f("ck_items_manifest_key_with_size")),
            nullable=True,
        ),
    )
    op.create_index(op.f("ix_items_manifest_key"), "items", ["manifest_key"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_items_manifest_key"), table_name="items")
    # The size first: its check names the key, and SQLite refuses to drop a
    # column that a check of another column mentions. On PostgreSQL the check
    # goes with the column.
    op.drop_column("items", "manifest_size")
    op.drop_column("items", "manifest_key")
    # A session without a digest cannot be committed by the older server; its
    # staged bytes, with no row left, go with the next staging sweep.
    op.execute(sa.text("DELETE FROM upload_sessions WHERE sha256 IS NULL"))
    with op.batch_alter_table("upload_sessions") as batch:
        batch.alter_column("sha256", existing_type=sa.String(length=64), nullable=False)
        batch.drop_column("item_id")
