"""Atomic arming: item headers staged for an arming, applied with it.

- ``staged_release_items``: an item re-wrapped on the reporter's device for
  a release recipient, waiting for ``POST /switch/arm`` to apply it with the
  switch in one transaction (:class:`server.models.StagedReleaseItem`).

Downgrading drops the staged rows: an arming under way must be started again.

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "staged_release_items",
        sa.Column("vault_id", sa.String(length=32), nullable=False),
        sa.Column("item_id", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=False),
        sa.Column("header", sa.LargeBinary(), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=True),
        sa.Column("staged_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_staged_release_items_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("vault_id", "item_id", name=op.f("pk_staged_release_items")),
    )


def downgrade() -> None:
    op.drop_table("staged_release_items")
