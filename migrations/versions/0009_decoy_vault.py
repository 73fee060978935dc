"""The decoy vault: the duress side's card, decoy items and uploads, an index of item entries.

- ``accounts.duress_card``: the whole card of the identity a duress
  passphrase opens, shown to a session under duress as the account's card.
- ``items.layer``, ``upload_sessions.layer``: 0 for a real item, 1 for one
  of the decoy vault, the only kind a session under duress sees (2 for the
  decoys such a session adds); ``upload_sessions.depth``: 1 for an upload a
  session under duress opened; ``upload_sessions.client_state``: the
  client's sealed record for resuming an upload, kept with the session
  instead of on the reporter's laptop.
- ``item_sides``: one row per item ever committed, kept after deletion, so
  each side is shown the history of its own items only.
- ``switches.view_handle``: the web check-in handle a session under duress
  set, so that the page takes its phrases as check-ins under duress.
- ``log_entries.item_id``: the ``item`` field of each entry that names one,
  indexed, filled here from the entries already logged.

Existing items are all real (layer 0). Downgrading drops the columns
and the table; decoy items then look like real ones to an older server, so
the downgrade deletes them first (their ciphertext stays for the sweep).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    op.add_column("accounts", sa.Column("duress_card", sa.LargeBinary(), nullable=True))
    zero = sa.text("0")
    op.add_column(
        "items", sa.Column("layer", sa.SmallInteger(), nullable=False, server_default=zero)
    )
    for name in ("layer", "depth"):
        op.add_column(
            "upload_sessions",
            sa.Column(name, sa.SmallInteger(), nullable=False, server_default=zero),
        )
    op.add_column("upload_sessions", sa.Column("client_state", sa.LargeBinary(), nullable=True))
    op.add_column("switches", sa.Column("view_handle", sa.String(64), nullable=True))
    op.create_index("ix_switches_view_handle", "switches", ["view_handle"], unique=True)
    op.add_column("log_entries", sa.Column("item_id", sa.String(32), nullable=True))
    op.create_index("ix_log_entries_item_id", "log_entries", ["item_id"])
    op.create_table(
        "item_sides",
        sa.Column("item_id", sa.String(32), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(32),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
    )
    op.create_index("ix_item_sides_account_id", "item_sides", ["account_id"])
    _fill()


def _fill() -> None:
    """Index the logged entries by item; record the side (real) of every item ever uploaded."""
    bind = op.get_bind()
    entries = sa.table(
        "log_entries",
        sa.column("idx", sa.BigInteger),
        sa.column("data", sa.LargeBinary),
        sa.column("item_id", sa.String),
    )
    sides = sa.table(
        "item_sides",
        sa.column("item_id", sa.String),
        sa.column("account_id", sa.String),
        sa.column("layer", sa.SmallInteger),
    )
    accounts = {row[0] for row in bind.execute(sa.text("SELECT id FROM accounts"))}
    seen: set[str] = set()
    last = -1
    while True:
        rows = bind.execute(
            sa.select(entries.c.idx, entries.c.data)
            .where(entries.c.idx > last)
            .order_by(entries.c.idx)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        for idx, data in rows:
            last = idx
            try:
                event = json.loads(bytes(data))
            except ValueError:
                continue
            item = event.get("item") if isinstance(event, dict) else None
            if not isinstance(item, str) or len(item) > 32:
                continue
            bind.execute(entries.update().where(entries.c.idx == idx).values(item_id=item))
            account = event.get("account")
            if event.get("type") == "item.uploaded" and item not in seen and account in accounts:
                seen.add(item)
                bind.execute(sides.insert().values(item_id=item, account_id=account, layer=0))


def downgrade() -> None:
    bind = op.get_bind()
    decoys = "SELECT id FROM items WHERE layer > 0"
    for table in ("item_shares", "staged_release_items"):
        bind.execute(sa.text(f"DELETE FROM {table} WHERE item_id IN ({decoys})"))  # noqa: S608
    bind.execute(sa.text("DELETE FROM items WHERE layer > 0"))
    op.drop_index("ix_item_sides_account_id", table_name="item_sides")
    op.drop_table("item_sides")
    op.drop_index("ix_switches_view_handle", table_name="switches")
    op.drop_column("switches", "view_handle")
    op.drop_index("ix_log_entries_item_id", table_name="log_entries")
    op.drop_column("log_entries", "item_id")
    for name in ("client_state", "depth", "layer"):
        op.drop_column("upload_sessions", name)
    op.drop_column("items", "layer")
    op.drop_column("accounts", "duress_card")
