"""The databases of one test process: new ones, and migrated ones used again once emptied.

Migrating takes seconds (a dozen transactions on PostgreSQL, as many fsyncs
on SQLite), so a test that wants a migrated database gets a copy of one
migrated once in the process. On PostgreSQL even the copy is dear: a new
database brings some 300 catalogue files to write and sync, and dropping one
forces a checkpoint, which waits on every other test's writes. So a migrated
PostgreSQL database goes back to the process once its test is over, and the
next test gets it emptied: its connections closed, the schema checked to be
the head's still (else it is dropped), every table truncated and the rows the
migrations wrote put back.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from server import migrate

PG_ADMIN_URL = os.environ.get(
    "EVAULT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

_SCHEMA = [
    # Tables, views and sequences, their columns, types, defaults and nullability.
    """SELECT n.nspname, c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod),
              a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
       LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
       WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
       ORDER BY 1, 2, 4""",
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)"
    " ORDER BY 1, 2",
    "SELECT schemaname, indexname, indexdef FROM pg_indexes"
    " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    "SELECT nspname FROM pg_namespace ORDER BY 1",
    "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2",
    "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1",
    "SELECT extname FROM pg_extension ORDER BY 1",
    "SELECT count(*) FROM pg_largeobject_metadata",
]
"""What a test could change in a database besides its rows: all of it must be as migrated."""


def _schema(connection: Connection) -> list[list[Any]]:
    return [[tuple(row) for row in connection.execute(text(query))] for query in _SCHEMA]


class _Head:
    """What the template migrated to the head holds: its schema and its rows."""

    def __init__(self, url: str) -> None:
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                self.schema = _schema(connection)
                self.tables = [
                    f'"{schema}"."{name}"'
                    for schema, name in connection.execute(
                        text(
                            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname"
                            " NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
                        )
                    )
                ]
                self.rows: list[tuple[str, Sequence[str], list[dict[str, Any]]]] = []
                for table in self.tables:
                    result = connection.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 — catalogue names
                    columns = list(result.keys())
                    rows = [dict(row._mapping) for row in result]
                    if rows:
                        self.rows.append((table, columns, rows))
        finally:
            engine.dispose()

    def restore(self, url: str) -> bool:
        """Empty the database at ``url`` back to the head's rows; False if its schema changed."""
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as connection:
                if _schema(connection) != self.schema:
                    return False
                connection.execute(
                    text(f"TRUNCATE {', '.join(self.tables)} RESTART IDENTITY CASCADE")
                )
                for table, columns, rows in self.rows:
                    names = ", ".join(f'"{c}"' for c in columns)
                    values = ", ".join(f":{c}" for c in columns)
                    insert = f"INSERT INTO {table} ({names}) VALUES ({values})"  # noqa: S608
                    connection.execute(text(insert), rows)
            return True
        finally:
            engine.dispose()


class Databases:
    """The databases of one test process (see the module's docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._admin: Engine | None = None
        self._head: _Head | None = None
        self._template: str | None = None
        self._free: list[str] = []
        """Migrated PostgreSQL databases emptied and ready for the next test."""
        self._sqlite_template: Path | None = None

    def _connect(self) -> Connection:
        if self._admin is None:
            self._admin = create_engine(
                PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
            )
        try:
            return self._admin.connect()
        except OperationalError as exc:
            reason = f"PostgreSQL unreachable at {make_url(PG_ADMIN_URL).render_as_string()}: "
            reason += type(exc.orig).__name__
            if os.environ.get("CI") == "true":
                pytest.fail(reason + " (CI requires PostgreSQL)")
            pytest.skip(reason + " (set EVAULT_TEST_PG_ADMIN_URL)")

    @staticmethod
    def _url(name: str) -> str:
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def postgresql(self, *, template: str | None = None) -> str:
        """The URL of a new PostgreSQL database: empty, or a copy of the database ``template``."""
        name = f"evault_test_{secrets.token_hex(6)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with self._connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        return self._url(name)

    def drop(self, url: str) -> None:
        """Drop a PostgreSQL database, whoever is still connected to it."""
        with self._connect() as connection:
            connection.execute(text(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)'))

    def migrated_postgresql(self) -> str:
        """A PostgreSQL database migrated to the head, new or emptied; hand it back when done."""
        if self._free:
            return self._url(self._free.pop())
        return self.migrated_postgresql_copy()

    def migrated_postgresql_copy(self) -> str:
        """A new PostgreSQL database migrated to the head, to drop when done."""
        if self._template is None:
            url = self.postgresql()
            migrate.upgrade(url)
            self._head = _Head(url)
            self._template = make_url(url).database
        return self.postgresql(template=self._template)

    def hand_back(self, url: str) -> None:
        """A migrated PostgreSQL database its test is done with: emptied for the next, or
        dropped if its schema is not the head's any more."""
        assert self._head is not None
        name = make_url(url).database
        assert name is not None
        with self._connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        if self._head.restore(url):
            self._free.append(name)
        else:
            self.drop(url)

    def migrated_sqlite(self, path: Path) -> str:
        """A SQLite database at ``path`` migrated to the head: a copy of this process's template."""
        if self._sqlite_template is None:
            template = self.directory / "template.db"
            migrate.upgrade(f"sqlite:///{template}")
            # Every connection is closed, so the file holds it all: no -wal to copy.
            assert not template.with_name("template.db-wal").exists()
            self._sqlite_template = template
        shutil.copyfile(self._sqlite_template, path)
        return f"sqlite:///{path}"

    def close(self) -> None:
        """Drop the template and the emptied databases."""
        if self._admin is None:
            return
        try:
            for name in [*self._free, *([self._template] if self._template else [])]:
                self.drop(self._url(name))
        finally:
            self._admin.dispose()
