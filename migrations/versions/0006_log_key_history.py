"""The log's key history, so that its signing key can be rotated.

- ``log_keys``: every log key (its C2SP verifier key, public), the tree
  sizes it signs (``first_size`` to ``last_size``, no last size for the
  current key), and for a retired key the transition checkpoint that it and
  its successor both signed. See :mod:`server.models.log_key`.

The key file is not in the database, so this revision cannot name the key
of an existing log: the table starts empty, and the first append or
``evault-server keys rotate`` records the key file's key as the log's first
key (from size 0), under the log's write lock. Until then ``GET
/api/v1/log/keys`` shows the key file's key alone. Downgrading drops the
history: after a rotation, clients that have not re-pinned the new key yet
can then no longer follow the handover.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "log_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("first_size", sa.BigInteger(), nullable=False),
        sa.Column("last_size", sa.BigInteger(), nullable=True),
        sa.Column("transition", sa.Text(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.CheckConstraint("first_size >= 0", name=op.f("ck_log_keys_first_size_not_negative")),
        sa.CheckConstraint(
            "last_size IS NULL OR last_size >= first_size",
            name=op.f("ck_log_keys_last_size_after_first"),
        ),
        sa.CheckConstraint(
            "(last_size IS NULL AND transition IS NULL) "
            "OR (last_size IS NOT NULL AND transition IS NOT NULL)",
            name=op.f("ck_log_keys_retired_with_transition"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_keys")),
        sa.UniqueConstraint("key", name=op.f("uq_log_keys_key")),
    )


def downgrade() -> None:
    op.drop_table("log_keys")
