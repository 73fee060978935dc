"""A database that goes away, or goes read-only, and comes back.

Every answer in the meantime is the JSON error shape with the security
headers and a ``Retry-After`` the client waits on; ``/healthz`` tells the
truth (a database that reads but cannot be written is not healthy); and once
the database is back the same process serves again without a restart.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, text

from server import migrate
from server.app import SECURITY_HEADERS, create_app
from server.config import Config
from server.keyfile import create_key_file

from .conftest import ORIGIN, PG_ADMIN_URL

# The module, not the blueprint of the same name that server.api exports.
health = importlib.import_module("server.api.health")


def _unavailable(response: object) -> None:
    assert response.status_code == 503  # type: ignore[attr-defined]
    assert response.mimetype == "application/json"  # type: ignore[attr-defined]
    assert response.json["error"] == "unavailable"  # type: ignore[attr-defined]
    assert int(response.headers["Retry-After"]) > 0  # type: ignore[attr-defined]
    for name in SECURITY_HEADERS:
        assert name in response.headers  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _no_health_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every health check here must ask the database.
    monkeypatch.setattr(health, "CACHE_SECONDS", 0.0)


def _app(tmp_path: Path, database_url: str) -> Flask:
    data = tmp_path / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    config = Config(data_dir=data, database_url=database_url, key_file=data / "server.key")
    if not config.key_file.exists():
        create_key_file(config.key_file, ORIGIN)
    app = create_app(config)
    app.config["TESTING"] = True
    return app


@contextlib.contextmanager
def _read_only(folder: Path, view: Path) -> Iterator[tuple[Callable[[], None], Callable[[], None]]]:
    """``view`` shows ``folder``; yields (make read-only, make writable again).

    As root, file modes bind nobody: ``view`` is then a bind mount, remounted
    read-only and back. Otherwise the files' modes change.
    """
    if os.geteuid() == 0:
        view.mkdir()
        subprocess.run(["mount", "--bind", str(folder), str(view)], check=True)

        def ro() -> None:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)

        def rw() -> None:
            subprocess.run(["mount", "-o", "remount,rw,bind", str(view)], check=True)

        try:
            yield ro, rw
        finally:
            subprocess.run(["umount", str(view)], check=True)
    else:
        view.symlink_to(folder)

        def chmod(mode: int) -> None:
            for path in folder.iterdir():
                path.chmod(mode)
            folder.chmod(mode | 0o100)

        yield (lambda: chmod(0o444)), (lambda: chmod(0o644))


def test_sqlite_serves_again_once_its_files_are_writable(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    view = tmp_path / "view"
    with _read_only(folder, view) as (ro, rw):
        url = f"sqlite:///{view / 'vault.db'}"
        migrate.upgrade(url)
        app = _app(tmp_path, url)
        client = app.test_client()
        try:
            assert client.get("/healthz").status_code == 200
            # Files in use cannot be remounted read-only: the pool lets go first,
            # then opens its connections again while the files are read-only.
            app.extensions["evault"].engine.dispose()
            ro()
            _unavailable(client.get("/healthz"))
            _unavailable(client.post("/api/v1/auth/challenge", json={"account": "0" * 32}))
            rw()
            assert client.get("/healthz").status_code == 200
            written = client.post("/api/v1/auth/challenge", json={"account": "0" * 32})
            assert written.status_code != 503, written.json
            assert written.status_code < 500
        finally:
            app.extensions["evault"].engine.dispose()


@pytest.fixture
def pg_database(socket_enabled: None) -> Iterator[str]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"evault_faults_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield str(
            create_engine(PG_ADMIN_URL).url.set(database=name).render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _kill_connections(admin_url: str, database: str) -> int:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            ).scalar_one()
    finally:
        admin.dispose()
    return int(killed)


@pytest.mark.integration
def test_postgresql_connections_killed_under_a_request(pg_database: str, tmp_path: Path) -> None:
    """Connections killed while a request runs: its answer stands, the next ones are served."""
    migrate.upgrade(pg_database)
    app = _app(tmp_path, pg_database)
    database = create_engine(pg_database).url.database
    assert database is not None
    killed: list[int] = []

    @app.after_request
    def kill(response: object) -> object:
        # After the view answered, before the request's session is closed.
        killed.append(_kill_connections(PG_ADMIN_URL, database))
        return response

    client = app.test_client()
    try:
        answered = client.get("/healthz")
        assert killed
        assert killed[0] >= 1
        assert answered.status_code == 200, answered.data
        for name in SECURITY_HEADERS:
            assert name in answered.headers
        app.after_request_funcs[None].remove(kill)
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/v1/log/key").status_code == 200
    finally:
        app.extensions["evault"].engine.dispose()


@pytest.mark.integration
def test_postgresql_gone_answers_503_then_serves(pg_database: str, tmp_path: Path) -> None:
    """A database that does not answer is a 503 with Retry-After, for pages and the API alike."""
    migrate.upgrade(pg_database)
    url = create_engine(pg_database).url
    closed = url.set(port=1).render_as_string(hide_password=False)  # nothing listens there
    app = _app(tmp_path, closed)
    try:
        client = app.test_client()
        _unavailable(client.get("/healthz"))
        _unavailable(client.get("/api/v1/log/checkpoint"))
        _unavailable(client.post("/api/v1/auth/challenge", json={"account": "0" * 32}))
    finally:
        app.extensions["evault"].engine.dispose()


def test_health_checks_in_a_flood_take_no_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "CACHE_SECONDS", 60.0)
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    migrate.upgrade(url)
    app = _app(tmp_path, url)
    statements: list[str] = []
    engine = app.extensions["evault"].engine
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        client = app.test_client()
        assert client.get("/healthz").status_code == 200
        asked = len(statements)
        assert any(s.lstrip().upper().startswith("UPDATE") for s in statements)
        for _ in range(20):
            assert client.get("/healthz").status_code == 200
        assert len(statements) == asked
    finally:
        engine.dispose()
