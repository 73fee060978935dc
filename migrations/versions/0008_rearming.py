"""Atomic arming, arming again after a release, and disclosures.

- ``staged_release_items``: an item re-wrapped on the reporter's device for
  a release recipient, with its disclosure, waiting for ``POST /switch/arm``
  to apply it with the switch in one transaction
  (:class:`server.models.StagedReleaseItem`).
- ``items.disclosure_key``, ``items.disclosure_size``: the item's encrypted
  disclosure (:mod:`vault.disclosure`), what the reporter chose to publish;
  null for the items of switches armed before this revision, which the
  release reads from their manifests as before, the note left out.
- ``releases`` are numbered per vault (``number``, part of the key), and
  each keeps the ``recipient``, ``commitment`` and ``armed_entry`` of the
  arming it released, so that its page stays as it was when the vault is
  armed again. Existing releases become number 1, with their switch's values.
- ``items.released_in``: the number of the release that published the item;
  1 for the release-set items of vaults released before this revision.

``releases`` is referred to by no table, so SQLite copies it in batch mode;
``items`` is, so its column is added in place (see 0004). Downgrading drops
the staged rows (an arming under way starts again) and every release but the
first of each vault.

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
        sa.Column("disclosure", sa.LargeBinary(), nullable=False),
        sa.Column("staged_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_staged_release_items_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("vault_id", "item_id", name=op.f("pk_staged_release_items")),
    )

    op.add_column("items", sa.Column("released_in", sa.Integer(), nullable=True))
    op.add_column("items", sa.Column("disclosure_key", sa.String(length=64), nullable=True))
    op.add_column("items", sa.Column("disclosure_size", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_items_disclosure_key"), "items", ["disclosure_key"], unique=False)
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("number", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("recipient", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("commitment", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("armed_entry", sa.BigInteger(), nullable=True))
        batch.drop_constraint("pk_releases", type_="primary")
        batch.create_primary_key("pk_releases", ["vault_id", "number"])
    # Each release so far is its switch's only one: its arming's values are the switch's.
    op.execute(
        "UPDATE releases SET "
        "recipient = (SELECT switches.release_recipient FROM switches "
        "WHERE switches.vault_id = releases.vault_id), "
        "commitment = (SELECT switches.commitment FROM switches "
        "WHERE switches.vault_id = releases.vault_id), "
        "armed_entry = (SELECT switches.armed_entry FROM switches "
        "WHERE switches.vault_id = releases.vault_id)"
    )
    op.execute(
        "UPDATE items SET released_in = 1 WHERE release_set = TRUE "
        "AND vault_id IN (SELECT vault_id FROM switches WHERE state = 'released')"
    )
    with op.batch_alter_table("releases") as batch:
        batch.alter_column("number", server_default=None)
        batch.alter_column("recipient", existing_type=sa.String(length=128), nullable=False)
        batch.alter_column("commitment", existing_type=sa.LargeBinary(), nullable=False)


def downgrade() -> None:
    op.execute("DELETE FROM releases WHERE number > 1")
    with op.batch_alter_table("releases") as batch:
        batch.drop_constraint("pk_releases", type_="primary")
        batch.create_primary_key("pk_releases", ["vault_id"])
        batch.drop_column("armed_entry")
        batch.drop_column("commitment")
        batch.drop_column("recipient")
        batch.drop_column("number")
    op.drop_index(op.f("ix_items_disclosure_key"), table_name="items")
    op.drop_column("items", "disclosure_size")
    op.drop_column("items", "disclosure_key")
    op.drop_column("items", "released_in")
    op.drop_table("staged_release_items")
