"""Migration 0009 (the decoy vault) on SQLite and PostgreSQL, with a log and items from before it.

Rows are written as a 0008 server wrote them; the upgrade indexes each entry
that names an item, records every item ever uploaded as a real one (deleted
ones too) and leaves every item real. The downgrade drops what an older
server cannot use, and with it the decoy items, which it would take for real
ones.
"""

from __future__ import annotations

from sqlalchemy import insert, inspect, select, update

from server import migrate
from server.db import make_engine
from server.models import Account, Item, ItemSide, LogEntry, utcnow
from server.services.accounts import new_id
from tests.server._helpers import identity, table_columns
from vault import canonical, merkle


def test_0009_indexes_the_log_keeps_items_real_and_goes_down_again(db_url: str) -> None:
    migrate.upgrade(db_url, "0008")
    card = identity("Ana").card()
    account, vault, now = new_id(), new_id(), utcnow()
    kept, deleted = new_id(), new_id()
    events = [
        {"type": "account.registered", "account": account, "vault": vault, "time": 1},
        {"type": "item.uploaded", "item": kept, "account": account, "vault": vault, "time": 2},
        {"type": "item.uploaded", "item": deleted, "account": account, "vault": vault, "time": 3},
        {"type": "item.downloaded", "item": kept, "account": account, "time": 4},
        {"type": "item.deleted", "item": deleted, "account": account, "time": 5},
    ]
    engine = make_engine(db_url)
    try:
        # Only the columns a 0008 server knew: an insert names no others.
        with engine.begin() as connection:
            connection.execute(
                insert(Account.__table__).values(
                    id=account,
                    role="reporter",
                    card=card.to_json(),
                    signing_key=card.signing_key,
                    vault_id=vault,
                    created_at=now,
                )
            )
            for idx, event in enumerate(events):
                data = canonical.dumps(event)
                connection.execute(
                    insert(LogEntry.__table__).values(
                        idx=idx, data=data, leaf_hash=merkle.leaf_hash(data), created_at=now
                    )
                )
            connection.execute(
                insert(Item.__table__).values(
                    id=kept,
                    account_id=account,
                    vault_id=vault,
                    header_key="a" * 64,
                    header_size=100,
                    payload_key="b" * 64,
                    payload_size=1000,
                    release_set=False,
                    created_at=now,
                )
            )
    finally:
        engine.dispose()

    migrate.upgrade(db_url, "0009")
    entries, sides, items = LogEntry.__table__, ItemSide.__table__, Item.__table__
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            indexed = connection.execute(
                select(entries.c.idx, entries.c.item_id).order_by(entries.c.idx)
            ).all()
            recorded = connection.execute(
                select(sides.c.item_id, sides.c.account_id, sides.c.layer)
            ).all()
            layers = connection.execute(select(items.c.id, items.c.layer)).all()
            # A decoy made after the upgrade, which an older server must not keep.
            connection.execute(update(items).where(items.c.id == kept).values(layer=1))
    finally:
        engine.dispose()
    assert [tuple(row) for row in indexed] == [
        (0, None),
        (1, kept),
        (2, deleted),
        (3, kept),
        (4, deleted),
    ]
    assert sorted(tuple(row) for row in recorded) == sorted(
        [(kept, account, 0), (deleted, account, 0)]
    )
    assert [tuple(row) for row in layers] == [(kept, 0)]

    migrate.downgrade(db_url, "0008")
    assert "layer" not in table_columns(db_url, "items")
    assert "item_id" not in table_columns(db_url, "log_entries")
    assert "duress_card" not in table_columns(db_url, "accounts")
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            left = connection.execute(select(Item.__table__.c.id)).all()
            logged = connection.execute(select(LogEntry.__table__.c.idx)).all()
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert left == []
    assert len(logged) == len(events)
    assert "item_sides" not in tables
