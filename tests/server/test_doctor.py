"""``evault-server doctor``: a good deployment passes, each broken part FAILs with a fix."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from server import migrate
from server.cli import main
from server.config import Config
from server.db import make_engine, make_sessionmaker, transaction
from server.doctor import FAIL, OK, WARN, _check_worker, run_checks
from server.keyfile import create_key_file, create_peer_key_file, load_key_file
from server.services.invites import create_invite, parse_duration


def _env(config: Config, **extra: str) -> dict[str, str]:
    env = {
        "EVAULT_DATA_DIR": str(config.data_dir),
        "EVAULT_DATABASE_URL": config.database_url,
        "EVAULT_KEY_FILE": str(config.key_file),
        "EVAULT_PUBLIC_URL": "https://vault.example.org",
        "EVAULT_RUN_WORKER": "0",
    }
    env.update(extra)
    return env


def _doctor(env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, ["doctor"], env=env, catch_exceptions=False)


def _line(result: Result, check: str) -> str:
    lines = [line for line in result.stdout.splitlines() if f" {check}:" in line]
    assert lines, result.stdout
    return lines[0]


@pytest.fixture
def good(config: Config) -> Config:
    (config.data_dir / "blobs").mkdir(mode=0o700)
    create_peer_key_file(config.peer_key_file, "test.example/log/peer")
    return config


def test_a_good_configuration_passes(good: Config) -> None:
    result = _doctor(_env(good))
    assert result.exit_code == 0, result.stdout
    assert "FAIL" not in result.stdout
    for check in (
        "key file",
        "peer key",
        "data directory",
        "database",
        "log key",
        "clock",
        "storage",
    ):
        assert _line(result, check).startswith(OK), result.stdout
    assert result.stdout.rstrip().endswith("0 failed, 0 warnings, 10 checks")


def test_nothing_secret_is_printed(good: Config) -> None:
    password = good.data_dir / "smtp-password"
    password.write_text("hunter2-very-secret")
    password.chmod(0o600)
    env = _env(good, EVAULT_SMTP_PASSWORD_FILE=str(password))
    result = _doctor(env)
    secrets = good.key_file.read_text().splitlines()[1:]
    for secret in [*secrets, "hunter2-very-secret"]:
        assert secret not in result.output


def test_a_key_file_readable_by_others_fails(good: Config) -> None:
    good.key_file.chmod(0o644)
    result = _doctor(_env(good))
    assert result.exit_code == 1
    line = _line(result, "key file")
    assert line.startswith(FAIL)
    assert f"chmod 600 {good.key_file}" in line


def test_a_missing_key_file_fails(good: Config) -> None:
    good.key_file.unlink()
    line = _line(_doctor(_env(good)), "key file")
    assert line.startswith(FAIL)
    assert "evault-server init" in line


def test_an_open_data_directory_fails(good: Config) -> None:
    good.data_dir.chmod(0o755)
    result = _doctor(_env(good))
    assert result.exit_code == 1
    assert f"chmod 700 {good.data_dir}" in _line(result, "data directory")


def test_an_unmigrated_database_fails(good: Config, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, migrate.revisions()[0])
    result = _doctor(_env(good, EVAULT_DATABASE_URL=url))
    assert result.exit_code == 1
    line = _line(result, "database")
    assert line.startswith(FAIL)
    assert "evault-server db upgrade" in line


def test_a_missing_database_fails(good: Config, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    result = _doctor(_env(good, EVAULT_DATABASE_URL=url))
    assert result.exit_code == 1
    assert _line(result, "database").startswith(FAIL)
    assert not (tmp_path / "none.db").exists()


def test_another_logs_key_fails(good: Config, tmp_path: Path) -> None:
    # Something signed with the real key, then a key file from elsewhere.
    engine = make_engine(good.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            create_invite(
                session,
                role="reporter",
                lifetime=parse_duration("1h"),
                signer=load_key_file(good.key_file).log_signer,
            )
    finally:
        engine.dispose()
    other = tmp_path / "other.key"
    create_key_file(other, "other.example/log")
    result = _doctor(_env(good, EVAULT_KEY_FILE=str(other)))
    assert result.exit_code == 1
    assert _line(result, "log key").startswith(FAIL)


def test_unwritable_storage_fails(good: Config, tmp_path: Path) -> None:
    # A file where the blob directory should be: unwritable even for root.
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    result = _doctor(_env(good, EVAULT_STORAGE_ROOT=str(blocker)))
    assert result.exit_code == 1
    line = _line(result, "storage")
    assert line.startswith(FAIL)
    assert "EVAULT_STORAGE_ROOT" in line


def test_storage_check_leaves_nothing_behind(good: Config) -> None:
    _doctor(_env(good))
    assert list((good.data_dir / "blobs").iterdir()) == []


def test_an_unreachable_smtp_port_fails(good: Config, socket_enabled: None) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now that the probe is closed.
    env = _env(good, EVAULT_SMTP_HOST="127.0.0.1", EVAULT_SMTP_PORT=str(port))
    result = _doctor(env)
    assert result.exit_code == 1
    line = _line(result, "smtp")
    assert line.startswith(FAIL)
    assert f"127.0.0.1:{port}" in line
    assert "EVAULT_SMTP_PORT" in line


def test_http_public_url_warns_unless_onion_or_loopback(good: Config) -> None:
    for url, status in [
        ("http://vault.example.org", WARN),
        ("http://abcdefghijklmnop.onion", OK),
        ("http://127.0.0.1:8080", OK),
        ("https://vault.example.org", OK),
    ]:
        line = _line(_doctor(_env(good, EVAULT_PUBLIC_URL=url)), "public URL")
        assert line.startswith(status), (url, line)


def test_run_worker_with_postgresql_warns(good: Config) -> None:
    config = Config(
        data_dir=good.data_dir,
        database_url="postgresql+psycopg://evault@127.0.0.1:1/none",
        key_file=good.key_file,
    )
    [finding] = _check_worker(config)
    assert finding.status == WARN
    assert "EVAULT_RUN_WORKER=0" in finding.message


def test_a_slow_clock_warns(good: Config) -> None:
    findings = run_checks(good, now=lambda: time.time() - 3600)
    [clock] = [finding for finding in findings if finding.check == "clock"]
    assert clock.status == WARN
    assert "NTP" in clock.message


def test_the_peer_key_file_is_checked(good: Config) -> None:
    good.peer_key_file.chmod(0o644)
    result = _doctor(_env(good))
    assert result.exit_code == 1
    assert _line(result, "peer key").startswith(FAIL)
    assert "readable by others" in _line(result, "peer key")
    good.peer_key_file.unlink()
    result = _doctor(_env(good))
    assert _line(result, "peer key").startswith(WARN)
    assert "evault-server peers key" in _line(result, "peer key")
