"""Migration 0008 (atomic arming, arming again) on SQLite and PostgreSQL, with a released vault.

The rows are written as a 0007 server wrote them: a released vault, its
release and its items. The upgrade numbers the release 1, gives it its
arming's recipient, commitment and log entry, and marks the release-set
items as published by it; the downgrade keeps the first release of each
vault and drops the columns.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import column, insert, select, table

from server import migrate
from server.db import make_engine
from server.models import Account, Item, Release, Switch, utcnow
from server.services.accounts import new_id
from tests.server._helpers import identity, table_columns
from vault import canonical


def test_0008_numbers_the_releases_made_before_it_and_goes_down_again(db_url: str) -> None:
    migrate.upgrade(db_url, "0007")
    assert "number" not in table_columns(db_url, "releases")
    card = identity("Ana").card()
    account, vault, now = new_id(), new_id(), utcnow()
    commitment = canonical.dumps({"count": 1, "sha256": ["ab" * 32]})
    published, kept_out = new_id(), new_id()
    item = {
        "account_id": account,
        "vault_id": vault,
        "header_key": "cd" * 32,
        "header_size": 100,
        "payload_key": "ab" * 32,
        "payload_size": 200,
        "created_at": now,
    }
    # Only the columns a 0007 server knew: an insert names no others.
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
                    state="released",
                    version=5,
                    policy=b"{}",
                    interval_s=86400,
                    grace_s=0,
                    cooling_off_s=0,
                    duress_mode="alert",
                    threshold=1,
                    shares=1,
                    release_recipient="age1example",
                    commitment=commitment,
                    failed_phrases=0,
                    armed_at=now,
                    armed_entry=7,
                    last_checkin_at=now,
                    deadline_at=now + dt.timedelta(days=1),
                    reminders_sent=0,
                    released_at=now,
                )
            )
            connection.execute(
                insert(Item.__table__),
                [
                    {**item, "id": published, "release_set": True},
                    {**item, "id": kept_out, "release_set": False},
                ],
            )
            # The releases table of 0007: the model's has more to its key.
            old_releases = table(
                "releases", column("vault_id"), column("identity"), column("report"),
                column("published_at"),
            )  # fmt: skip
            connection.execute(
                insert(old_releases).values(
                    vault_id=vault,
                    identity="AGE-SECRET-KEY-1EXAMPLE",
                    report=b'{"files":[]}',
                    published_at=now,
                )
            )
    finally:
        engine.dispose()

    migrate.upgrade(db_url, "0008")
    releases, items = Release.__table__, Item.__table__
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    releases.c.vault_id,
                    releases.c.number,
                    releases.c.identity,
                    releases.c.recipient,
                    releases.c.commitment,
                    releases.c.armed_entry,
                )
            ).all()
            marked = dict(connection.execute(select(items.c.id, items.c.released_in)).all())
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [
        (vault, 1, "AGE-SECRET-KEY-1EXAMPLE", "age1example", commitment, 7)
    ]
    assert marked == {published: 1, kept_out: None}

    migrate.downgrade(db_url, "0007")
    assert "number" not in table_columns(db_url, "releases")
    assert "released_in" not in table_columns(db_url, "items")
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            kept = connection.execute(select(releases.c.vault_id, releases.c.identity)).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in kept] == [(vault, "AGE-SECRET-KEY-1EXAMPLE")]
