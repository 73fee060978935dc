"""Share commitments: which shares were made for a vault when its switch was armed.

- ``custodian_shares.commitment``: the SHA-256 commitment to the share
  (:func:`vault.shares.share_commitment`), sent by the reporter's client at
  arming. At release only a share with one of the vault's commitments is
  taken, so a trustee cannot fill the server's allowance with made-up shares
  of the set. Switches armed before this revision keep a null commitment
  and take any share of their set, as before.

``custodian_shares`` is referred to by no table: the column is added with
plain ``ALTER TABLE … ADD COLUMN`` and dropped with ``DROP COLUMN``.
Downgrading drops the commitments: those switches then take any share of
their set again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-17
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("custodian_shares", sa.Column("commitment", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("custodian_shares", "commitment")
