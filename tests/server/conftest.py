"""Fixtures of the server tests: fresh databases (SQLite and PostgreSQL), keys, apps.

Each PostgreSQL test gets a database of its own, created from the admin URL
(``EVAULT_TEST_PG_ADMIN_URL``, by default the local ``postgres`` database):
an empty one dropped afterwards, or a migrated one that the next test of the
process gets emptied (:mod:`tests.server._databases`). Where no PostgreSQL
answers, those tests skip with the reason, except in CI (``CI=true``), where
they fail.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from server.app import create_app
from server.clock import Clock
from server.config import Config
from server.db import make_engine, make_sessionmaker
from server.keyfile import ServerKeys, create_key_file

from ._databases import PG_ADMIN_URL, Databases

__all__ = ["PG_ADMIN_URL", "Databases"]

ORIGIN = "test.example/log"

DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
"""Parameters of :func:`db_kind`: every database test runs on both."""


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    made = Databases(tmp_path_factory.mktemp("databases"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def pg_url(socket_enabled: None, databases: Databases) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    url = databases.postgresql()
    try:
        yield url
    finally:
        databases.drop(url)


@pytest.fixture(params=DATABASES)
def db_kind(request: pytest.FixtureRequest) -> str:
    """Which database a test runs on: every database test runs on both (a test may
    choose one with ``@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)``)."""
    return str(request.param)


@pytest.fixture
def db_url(db_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, SQLite in a file or PostgreSQL, not yet migrated."""
    if db_kind == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'vault.db'}"


@pytest.fixture
def migrated_url(
    db_kind: str, request: pytest.FixtureRequest, tmp_path: Path, databases: Databases
) -> Iterator[str]:
    """A database migrated to the newest revision, of this test alone (see
    :mod:`tests.server._databases`: a copy of one migrated once, or on PostgreSQL one emptied)."""
    if db_kind == "sqlite":
        yield databases.migrated_sqlite(tmp_path / "vault.db")
        return
    request.getfixturevalue("socket_enabled")
    url = databases.migrated_postgresql()
    try:
        yield url
    finally:
        databases.hand_back(url)


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture(scope="session")
def server_keys() -> ServerKeys:
    return ServerKeys.generate(ORIGIN)


@pytest.fixture
def config(migrated_url: str, tmp_path: Path) -> Config:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    config = Config(
        data_dir=data_dir,
        database_url=migrated_url,
        key_file=data_dir / "server.key",
        max_content_length=4096,
    )
    create_key_file(config.key_file, ORIGIN)
    return config


@pytest.fixture
def clock() -> Clock | None:
    """The system's time; a module whose tests move time overrides this with a ManualClock."""
    return None


@pytest.fixture
def app(config: Config, clock: Clock | None) -> Iterator[Flask]:
    app = create_app(config, clock=clock)
    app.config["TESTING"] = True
    yield app
    app.extensions["evault"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def live_url(app: Flask, socket_enabled: None) -> Iterator[str]:
    """The app served by werkzeug on a free loopback port, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def light_phrase_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Web phrases hashed with light Argon2id parameters, for tests of what the check-in page
    decides rather than of what guessing costs (bench/checkin_guessing.py measures that)."""
    import argon2

    from server.services import switch

    light = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(switch, "_HASHER", light)
    # The stand-in verified for unknown handles carries its own parameters: light too.
    monkeypatch.setattr(switch, "_DUMMY_HASH", light.hash("a phrase nobody kept"))
