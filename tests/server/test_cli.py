"""``evault-server`` commands, run in-process: init, keys show, invite create, db."""

from __future__ import annotations

import logging
import stat
import threading
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import inspect, select

from client.account import parse_invite_link
from server import migrate
from server.cli import main
from server.db import make_engine
from server.httpd import make_http_server
from server.models import Invite, LogEntry
from server.services.invites import code_hash
from vault import canonical
from vault.note import NoteVerifier


def _env(tmp_path: Path, db_url: str | None = None) -> dict[str, str]:
    env = {"EVAULT_DATA_DIR": str(tmp_path / "data")}
    if db_url is not None:
        env["EVAULT_DATABASE_URL"] = db_url
    return env


def _run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _ok(env: dict[str, str], *args: str) -> str:
    result = _run(env, *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _fails(env: dict[str, str], *args: str) -> str:
    result = _run(env, *args)
    assert result.exit_code != 0
    assert "Traceback" not in result.stderr
    return result.stderr


def test_init_creates_a_private_directory_and_key_file(tmp_path: Path) -> None:
    env = _env(tmp_path)
    out = _ok(env, "init", "--origin", "vault.example/log")
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    key_file = data / "server.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "PRIVATE+KEY+vault.example/log+" in key_file.read_text()
    assert "AGE-SECRET-KEY-1" in key_file.read_text()
    assert "PRIVATE" not in out
    assert "AGE-SECRET" not in out
    assert (data / "vault.db").is_file()

    before = key_file.read_bytes()
    error = _fails(env, "init")
    assert error.startswith("evault-server: error: key file ")
    assert "refusing to overwrite" in error
    assert key_file.read_bytes() == before


def test_init_refuses_a_shared_data_directory(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir(mode=0o755)
    (tmp_path / "data").chmod(0o755)
    error = _fails(_env(tmp_path), "init")
    assert "accessible by others" in error
    assert not (tmp_path / "data" / "server.key").exists()


def test_keys_show_prints_a_verifier_key(tmp_path: Path) -> None:
    env = _env(tmp_path)
    _ok(env, "init", "--origin", "vault.example/log")
    out = _ok(env, "keys", "show")
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    verifier = NoteVerifier.parse(lines["log key"])
    assert verifier.name == "vault.example/log"
    assert len(lines["fingerprint"].split()) == 8
    assert lines["custodian recipient"].startswith("age1")
    (tmp_path / "data" / "server.key").chmod(0o644)
    assert "readable by others" in _fails(env, "keys", "show")


def test_keys_show_without_init(tmp_path: Path) -> None:
    error = _fails(_env(tmp_path), "keys", "show")
    assert error.startswith("evault-server: error: cannot open key file")
    assert "evault-server: hint: run `evault-server init`" in error


def test_invite_create_stores_only_the_hash(db_url: str, tmp_path: Path) -> None:
    env = _env(tmp_path, db_url)
    _ok(env, "init")
    out = _ok(env, "invite", "create", "--role", "editor", "--expires", "2h")
    code = out.splitlines()[-1]
    assert len(code) >= 26
    # The same code in a link for the app, with the server's address and log key.
    link = out.splitlines()[0].split(": ", 1)[1]
    invite = parse_invite_link(link)
    assert invite.code == code
    assert invite.log_key == _ok(env, "keys", "show").splitlines()[0].split(": ", 1)[1]

    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            (invite,) = connection.execute(select(Invite)).all()
            (entry,) = connection.execute(select(LogEntry)).all()
    finally:
        engine.dispose()
    assert invite.code_hash == code_hash(code)
    assert invite.role == "editor"
    assert invite.used_at is None
    assert (invite.expires_at - invite.created_at).total_seconds() == 7200
    event = canonical.loads(entry.data)
    assert event["type"] == "invite.created"
    assert event["invite"] == invite.id
    assert code.encode() not in entry.data
    assert code_hash(code) not in entry.data
    assert code_hash(code).hex().encode() not in entry.data


@pytest.mark.parametrize(
    "args",
    [
        ["invite", "create", "--role", "operator"],
        ["invite", "create", "--role", "reporter", "--expires", "91d"],
        ["invite", "create", "--role", "reporter", "--expires", "1y"],
    ],
)
def test_invite_create_rejects_bad_options(tmp_path: Path, args: list[str]) -> None:
    env = _env(tmp_path)
    _ok(env, "init")
    result = _run(env, *args)
    assert result.exit_code in (1, 2)
    assert "Traceback" not in result.stderr


def test_db_downgrade_and_upgrade(tmp_path: Path) -> None:
    env = _env(tmp_path)
    _ok(env, "init")
    url = f"sqlite:///{tmp_path / 'data' / 'vault.db'}"
    assert "--yes" in _fails(env, "db", "downgrade", "base")
    assert "log_entries" in _tables(url)
    _ok(env, "db", "downgrade", "base", "--yes")
    assert _tables(url) == set()
    _ok(env, "db", "upgrade")
    assert "log_entries" in _tables(url)
    assert "cannot downgrade" in _fails(env, "db", "downgrade", "nonexistent", "--yes")


def test_a_second_key_file_cannot_take_over_a_log(tmp_path: Path) -> None:
    env = _env(tmp_path)
    _ok(env, "init", "--origin", "vault.example/log")
    _ok(env, "invite", "create", "--role", "reporter")  # the log now has a checkpoint
    other = dict(env, EVAULT_KEY_FILE=str(tmp_path / "data" / "other.key"))
    stderr = _fails(other, "init", "--origin", "evil.example/log")
    assert "does not belong to this database's log" in stderr
    assert not (tmp_path / "data" / "other.key").exists()
    # A key file swapped in by hand is refused when it would sign.
    (tmp_path / "data" / "server.key").rename(tmp_path / "data" / "old.key")
    _ok(dict(env, EVAULT_DATA_DIR=str(tmp_path / "fresh")), "init", "--origin", "x.example/log")
    (tmp_path / "fresh" / "server.key").rename(tmp_path / "data" / "server.key")
    assert "does not belong" in _fails(env, "invite", "create", "--role", "editor")


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_revisions_are_listed() -> None:
    assert migrate.revisions()[0] == "0001"


@pytest.mark.integration
def test_run_logs_no_client_address(
    app: Flask, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_http_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="evault.access"):
            response = requests.get(
                f"http://127.0.0.1:{server.port}/healthz?token=secret", timeout=10
            )
    finally:
        server.close()
        thread.join(timeout=10)
    assert response.status_code == 200
    assert response.headers["Server"] == "evault-server"
    assert "GET /healthz 200" in caplog.text
    assert "127.0.0.1" not in caplog.text
    assert "secret" not in caplog.text


def test_peers_commands_refuse_bad_input_in_one_line(tmp_path: Path) -> None:
    env = _env(tmp_path) | {"EVAULT_PUBLIC_URL": "https://a.example"}
    _ok(env, "init", "--origin", "a.example/log")
    peer_file = tmp_path / "data" / "peer.key"
    assert stat.S_IMODE(peer_file.stat().st_mode) == 0o600
    shown = _ok(env, "peers", "key")
    lines = dict(line.split(": ", 1) for line in shown.splitlines())
    assert lines["url"] == "https://a.example"
    assert lines["peer key"].startswith("a.example/log/peer+")
    assert "PRIVATE" not in shown
    other = "b.example/log/peer+00000000+BG56HN0psLeP0Tr0xVmP7/TvKpcWbjym8uT7/M2AUFvx"
    log_key = lines["log key"]
    error = _fails(env, "peers", "add", "https://b.example", "--key", other, "--log-key", log_key)
    assert error.startswith("evault-server: error: invalid peer key: ")
    error = _fails(env, "peers", "add", "ftp://b.example", "--key", other, "--log-key", log_key)
    assert error.startswith("evault-server: error: invalid server URL ")
    error = _fails(
        env, "peers", "add", "https://a.example", "--key", lines["peer key"], "--log-key", log_key
    )
    assert "this server itself" in error
    assert _fails(env, "peers", "remove", "https://b.example").startswith(
        "evault-server: error: no peer https://b.example is pinned"
    )
    assert _ok(env, "peers", "list") == "no peers\n"
