"""The dead-man switch: switches, custodian and submitted shares, pending changes, outbox.

- ``items.log_index``: the index of the item's ``item.uploaded`` entry.
- ``accounts.duress_key``: the public key of a reporter's duress identity.
- ``tokens.duress``: a login signed with that key.
- ``switches``, ``custodian_shares``, ``submitted_shares``, ``pending_changes``,
  ``change_votes``, ``checkin_nonces``, ``outbox``, ``releases``: see
  :mod:`server.models.switch`.

``accounts`` and ``tokens`` are never copied (see 0004): their columns are
added with plain ``ALTER TABLE … ADD COLUMN``, the uniqueness of the duress
key is a unique index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.add_column("items", sa.Column("log_index", sa.BigInteger(), nullable=True))
    op.add_column("accounts", sa.Column("duress_key", sa.LargeBinary(length=32), nullable=True))
    op.create_index("ix_accounts_duress_key", "accounts", ["duress_key"], unique=True)
    op.add_column(
        "tokens",
        sa.Column("duress", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "switches",
        sa.Column("vault_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("policy", sa.LargeBinary(), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("grace_s", sa.Integer(), nullable=False),
        sa.Column("cooling_off_s", sa.Integer(), nullable=False),
        sa.Column("duress_mode", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("shares", sa.Integer(), nullable=False),
        sa.Column("release_recipient", sa.String(length=128), nullable=False),
        sa.Column("commitment", sa.LargeBinary(), nullable=False),
        sa.Column("handle", sa.String(length=64), nullable=True),
        sa.Column("phrase_hash", sa.String(length=256), nullable=True),
        sa.Column("duress_phrase_hash", sa.String(length=256), nullable=True),
        sa.Column("failed_phrases", sa.Integer(), nullable=False),
        sa.Column("phrase_failed_at", _TIME, nullable=True),
        sa.Column("armed_at", _TIME, nullable=False),
        sa.Column("armed_entry", sa.BigInteger(), nullable=True),
        sa.Column("last_checkin_at", _TIME, nullable=False),
        sa.Column("deadline_at", _TIME, nullable=False),
        sa.Column("reminders_sent", sa.Integer(), nullable=False),
        sa.Column("next_due_at", _TIME, nullable=True),
        sa.Column("duress_view", sa.LargeBinary(), nullable=True),
        sa.Column("released_at", _TIME, nullable=True),
        sa.CheckConstraint(
            _in("state", ("disarmed", "armed", "overdue", "releasing", "released")),
            name=op.f("ck_switches_state"),
        ),
        sa.CheckConstraint(
            _in("duress_mode", ("alert", "release", "both")), name=op.f("ck_switches_duress_mode")
        ),
        sa.CheckConstraint(
            "threshold >= 1 AND threshold <= shares", name=op.f("ck_switches_threshold")
        ),
        sa.CheckConstraint(
            "interval_s > 0 AND grace_s >= 0 AND cooling_off_s >= 0",
            name=op.f("ck_switches_times"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_switches_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("vault_id", name=op.f("pk_switches")),
        sa.UniqueConstraint("account_id", name=op.f("uq_switches_account_id")),
        sa.UniqueConstraint("handle", name=op.f("uq_switches_handle")),
    )
    op.create_index("ix_switches_next_due_at", "switches", ["next_due_at"], unique=False)
    op.create_table(
        "custodian_shares",
        sa.Column("vault_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("custodian", sa.String(length=32), nullable=False),
        sa.Column("encrypted", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vault_id"],
            ["switches.vault_id"],
            name=op.f("fk_custodian_shares_vault_id_switches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("vault_id", "position", name=op.f("pk_custodian_shares")),
    )
    op.create_index(
        op.f("ix_custodian_shares_custodian"), "custodian_shares", ["custodian"], unique=False
    )
    op.create_table(
        "submitted_shares",
        sa.Column("vault_id", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("submitted_by", sa.String(length=32), nullable=False),
        sa.Column("submitted_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["vault_id"],
            ["switches.vault_id"],
            name=op.f("fk_submitted_shares_vault_id_switches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("vault_id", "digest", name=op.f("pk_submitted_shares")),
    )
    op.create_table(
        "pending_changes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("vault_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("params", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("duress", sa.Boolean(), nullable=False),
        sa.Column("requested_at", _TIME, nullable=False),
        sa.Column("effective_at", _TIME, nullable=False),
        sa.Column("settled_at", _TIME, nullable=True),
        sa.CheckConstraint(
            _in("kind", ("delete", "disarm", "policy")), name=op.f("ck_pending_changes_kind")
        ),
        sa.CheckConstraint(
            _in("state", ("pending", "applied", "cancelled", "void")),
            name=op.f("ck_pending_changes_state"),
        ),
        sa.ForeignKeyConstraint(
            ["vault_id"],
            ["switches.vault_id"],
            name=op.f("fk_pending_changes_vault_id_switches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_changes")),
    )
    op.create_index(
        "ix_pending_changes_due", "pending_changes", ["state", "effective_at"], unique=False
    )
    op.create_index(
        op.f("ix_pending_changes_vault_id"), "pending_changes", ["vault_id"], unique=False
    )
    op.create_table(
        "change_votes",
        sa.Column("change_id", sa.String(length=32), nullable=False),
        sa.Column("trustee_id", sa.String(length=32), nullable=False),
        sa.Column("voted_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["pending_changes.id"],
            name=op.f("fk_change_votes_change_id_pending_changes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["trustee_id"],
            ["accounts.id"],
            name=op.f("fk_change_votes_trustee_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("change_id", "trustee_id", name=op.f("pk_change_votes")),
    )
    op.create_table(
        "checkin_nonces",
        sa.Column("vault_id", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("vault_id", "nonce", name=op.f("pk_checkin_nonces")),
    )
    op.create_index(
        op.f("ix_checkin_nonces_expires_at"), "checkin_nonces", ["expires_at"], unique=False
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("vault_id", sa.String(length=32), nullable=True),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("next_attempt_at", _TIME, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", _TIME, nullable=True),
        sa.Column("sent_at", _TIME, nullable=True),
        sa.Column("failed_at", _TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(_in("channel", ("email", "webhook")), name=op.f("ck_outbox_channel")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_due", "outbox", ["sent_at", "next_attempt_at"], unique=False)
    op.create_index(op.f("ix_outbox_vault_id"), "outbox", ["vault_id"], unique=False)
    op.create_table(
        "releases",
        sa.Column("vault_id", sa.String(length=32), nullable=False),
        sa.Column("identity", sa.String(length=128), nullable=False),
        sa.Column("report", sa.LargeBinary(), nullable=False),
        sa.Column("published_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["vault_id"],
            ["switches.vault_id"],
            name=op.f("fk_releases_vault_id_switches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("vault_id", name=op.f("pk_releases")),
    )


def downgrade() -> None:
    op.drop_table("releases")
    op.drop_index(op.f("ix_outbox_vault_id"), table_name="outbox")
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_checkin_nonces_expires_at"), table_name="checkin_nonces")
    op.drop_table("checkin_nonces")
    op.drop_table("change_votes")
    op.drop_index(op.f("ix_pending_changes_vault_id"), table_name="pending_changes")
    op.drop_index("ix_pending_changes_due", table_name="pending_changes")
    op.drop_table("pending_changes")
    op.drop_table("submitted_shares")
    op.drop_index(op.f("ix_custodian_shares_custodian"), table_name="custodian_shares")
    op.drop_table("custodian_shares")
    op.drop_index("ix_switches_next_due_at", table_name="switches")
    op.drop_table("switches")
    op.drop_column("tokens", "duress")
    op.drop_index("ix_accounts_duress_key", table_name="accounts")
    op.drop_column("accounts", "duress_key")
    op.drop_column("items", "log_index")
