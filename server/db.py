"""Database engines and sessions: SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with foreign keys enforced and a busy timeout, set on
every new connection; PostgreSQL is reached through psycopg 3
(``postgresql+psycopg://…``). Sessions never expire objects on commit, so a
value read inside a transaction can still be used after it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session, sessionmaker

from vault.errors import ConfigError

__all__ = ["is_sqlite", "make_engine", "make_sessionmaker", "transaction"]

_BUSY_TIMEOUT_MS = 10_000


def is_sqlite(bind: Engine | Session) -> bool:
    """Whether the database behind an engine or session is SQLite."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


# SQLite errors after which a connection is useless even once the cause is
# gone: a connection opened while the files were read-only stays read-only.
_SQLITE_BROKEN = (
    "attempt to write a readonly database",
    "disk i/o error",
    "unable to open database file",
)


def _sqlite_broken(context: ExceptionContext) -> None:
    """Throw away the pool's connections after an error that sticks to them."""
    error = context.original_exception
    if isinstance(error, sqlite3.OperationalError) and str(error).lower().startswith(
        _SQLITE_BROKEN
    ):
        context.is_disconnect = True


def make_engine(url: str) -> Engine:
    """An engine for ``url``: ``sqlite:///PATH`` or ``postgresql+psycopg://…``.

    Raises:
        ConfigError: another kind of database URL.
    """
    if url.startswith("sqlite:///"):
        # The pool hands a connection to one thread at a time.
        engine = create_engine(url, connect_args={"check_same_thread": False}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "handle_error", _sqlite_broken)
        return engine
    if url.startswith("postgresql+psycopg://"):
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    raise ConfigError("unsupported database URL: want sqlite:///PATH or postgresql+psycopg://…")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine`` that keep their objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose transaction commits at the end of the block, or rolls back."""
    with factory() as session, session.begin():
        yield session
