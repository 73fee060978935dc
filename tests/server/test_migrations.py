"""Migrations on SQLite and PostgreSQL: every revision up and down, models equal head."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from server import migrate
from server.db import make_engine
from server.models import Base, LogHead


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_every_revision_up_and_down(db_url: str) -> None:
    revisions = migrate.revisions()
    assert revisions[-1] == migrate.head()
    for revision in revisions:
        migrate.upgrade(db_url, revision)
    assert _tables(db_url) == set(Base.metadata.tables)
    for _ in reversed(revisions):
        migrate.downgrade(db_url, "-1")
    assert _tables(db_url) == set()
    migrate.upgrade(db_url)
    assert _tables(db_url) == set(Base.metadata.tables)


def test_models_equal_the_head_migration(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            head = connection.execute(select(LogHead.id, LogHead.size)).all()
    finally:
        engine.dispose()
    assert diff == []
    assert head == [(1, 0)]
