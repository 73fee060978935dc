"""Migration 0007 (share commitments) on SQLite and PostgreSQL, with a switch armed before it.

The rows are written as a 0006 server wrote them; the upgrade keeps them with
no commitment (such a switch takes any share of its set, as before), and the
downgrade drops the column and keeps the rows.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select

from server import migrate
from server.db import make_engine
from server.models import Account, CustodianShare, Switch, utcnow
from server.services.accounts import new_id
from tests.server._helpers import identity, table_columns
from vault import canonical


def test_0007_keeps_switches_armed_before_it_and_goes_down_again(db_url: str) -> None:
    migrate.upgrade(db_url, "0006")
    assert "commitment" not in table_columns(db_url, "custodian_shares")
    card = identity("Ana").card()
    account, vault, now = new_id(), new_id(), utcnow()
    shares = [
        {"vault_id": vault, "position": 0, "custodian": "server", "encrypted": b"age server"},
        {"vault_id": vault, "position": 1, "custodian": new_id(), "encrypted": b"age trustee"},
    ]
    # Only the columns a 0006 server knew: an insert names no others.
    engine = make_engine(db_url)
    try:
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
            connection.execute(
                insert(Switch.__table__).values(
                    vault_id=vault,
                    account_id=account,
                    state="releasing",
                    version=3,
                    policy=b"{}",
                    interval_s=86400,
                    grace_s=0,
                    cooling_off_s=0,
                    duress_mode="alert",
                    threshold=2,
                    shares=2,
                    release_recipient="age1example",
                    commitment=canonical.dumps({"count": 0, "sha256": []}),
                    failed_phrases=0,
                    armed_at=now,
                    last_checkin_at=now,
                    deadline_at=now + dt.timedelta(days=1),
                    reminders_sent=0,
                )
            )
            connection.execute(insert(CustodianShare.__table__), shares)
    finally:
        engine.dispose()

    migrate.upgrade(db_url, "0007")
    assert "commitment" in table_columns(db_url, "custodian_shares")
    table = CustodianShare.__table__
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    table.c.vault_id,
                    table.c.position,
                    table.c.custodian,
                    table.c.encrypted,
                    table.c.commitment,
                ).order_by(table.c.position)
            ).all()
            state = connection.execute(
                select(Switch.__table__.c.state).where(Switch.__table__.c.vault_id == vault)
            ).scalar_one()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [
        (s["vault_id"], s["position"], s["custodian"], s["encrypted"], None) for s in shares
    ]
    assert state == "releasing"

    migrate.downgrade(db_url, "0006")
    assert "commitment" not in table_columns(db_url, "custodian_shares")
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            kept = connection.execute(
                select(table.c.position, table.c.custodian, table.c.encrypted).order_by(
                    table.c.position
                )
            ).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in kept] == [
        (s["position"], s["custodian"], s["encrypted"]) for s in shares
    ]
