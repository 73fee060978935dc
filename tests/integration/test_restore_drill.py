"""``deploy/backup.sh`` then ``deploy/restore-drill.sh`` on a real server's data directory.

A server with a reporter and a few items is backed up while it runs; the
drill restores the backup into a scratch directory and passes. A backup
with one blob removed (and its tar and manifest rewritten, as a careless or
hostile copy would be) fails the drill.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from .client_env import BIN, Person, ServerProcess, enroll, payload

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
TIMEOUT = 120
PG_ADMIN_URL = os.environ.get(
    "EVAULT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    root = tmp_path_factory.mktemp("drill")
    with ServerProcess.started(root / "server") as server:
        [reporter] = enroll(server, root, [("rita", "reporter")])
        _add_items(reporter, root)
        backup = root / "backup"
        result = _script("backup.sh", server.env, str(backup))
        assert result.returncode == 0, result.stderr
        yield server, backup


def _add_items(reporter: Person, root: Path) -> None:
    files = []
    for index, size in enumerate([0, 1000, 200_000]):
        path = root / f"evidence-{index}.bin"
        path.write_bytes(payload(size, seed=index))
        files.append(path)
    assert len(reporter.add(*files)) == 3


def _script(name: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full_env = env | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}
    return subprocess.run(
        [str(DEPLOY / name), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_backup_holds_the_database_blobs_key_and_manifest(
    backed_up: tuple[ServerProcess, Path],
) -> None:
    _, backup = backed_up
    names = sorted(path.name for path in backup.iterdir())
    assert names == [
        "MANIFEST.sha256",
        "backup.info",
        "blobs.tar",
        "database.sqlite",
        "peer.key",
        "server.key",
    ]
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    assert stat.S_IMODE((backup / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((backup / "peer.key").stat().st_mode) == 0o600
    manifest = (backup / "MANIFEST.sha256").read_text().splitlines()
    assert len(manifest) == 5
    for line in manifest:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((backup / name).read_bytes()).hexdigest() == digest


def test_backup_prints_no_secret(backed_up: tuple[ServerProcess, Path], tmp_path: Path) -> None:
    server, _ = backed_up
    result = _script("backup.sh", server.env, str(tmp_path / "again"))
    assert result.returncode == 0, result.stderr
    for secret in server.key_file.read_text().splitlines()[1:]:
        assert secret not in result.stdout + result.stderr
    assert "offline and encrypted" in result.stdout


def test_backup_refuses_an_existing_destination(
    backed_up: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    server, _ = backed_up
    result = _script("backup.sh", server.env, str(tmp_path))
    assert result.returncode == 1
    assert "exists" in result.stderr


def test_the_drill_passes(backed_up: tuple[ServerProcess, Path]) -> None:
    server, backup = backed_up
    result = _script("restore-drill.sh", _drill_env(server), str(backup))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "drill: ok" in result.stdout
    assert "checkpoint of size" in result.stdout
    assert "3 items, 9 blobs checked" in result.stdout
    for secret in server.key_file.read_text().splitlines()[1:]:
        assert secret not in result.stdout + result.stderr


def _drill_env(server: ServerProcess) -> dict[str, str]:
    # The operator's environment points at the live server; the drill must not touch it.
    return server.env | {"EVAULT_SMTP_HOST": "192.0.2.1"}


def _copy_without_a_blob(backup: Path, target: Path, database: str = "database.sqlite") -> str:
    target.mkdir(mode=0o700)
    for name in (database, "server.key", "backup.info"):
        (target / name).write_bytes((backup / name).read_bytes())
    (target / "server.key").chmod(0o600)
    removed = ""
    with (
        tarfile.open(backup / "blobs.tar") as source,
        tarfile.open(target / "blobs.tar", "w") as copy,
    ):
        for member in source.getmembers():
            if member.isfile() and not removed:
                removed = Path(member.name).name
                continue
            data = source.extractfile(member) if member.isfile() else None
            copy.addfile(member, io.BytesIO(data.read()) if data else None)
    lines = []
    for name in sorted(path.name for path in target.iterdir()):
        digest = hashlib.sha256((target / name).read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}\n")
    (target / "MANIFEST.sha256").write_text("".join(lines))
    assert removed
    return removed


def test_the_drill_fails_without_a_blob(
    backed_up: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    server, backup = backed_up
    removed = _copy_without_a_blob(backup, tmp_path / "broken")
    result = _script("restore-drill.sh", _drill_env(server), str(tmp_path / "broken"))
    assert result.returncode == 1, result.stdout
    assert f"blob {removed} is missing" in result.stderr
    assert "drill: ok" not in result.stdout


def test_the_drill_fails_when_a_file_does_not_match_the_manifest(
    backed_up: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    server, backup = backed_up
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in backup.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    with (broken / "blobs.tar").open("r+b") as handle:
        handle.seek(1024)
        handle.write(b"\xff")
    result = _script("restore-drill.sh", _drill_env(server), str(broken))
    assert result.returncode == 1
    assert "do not match their manifest" in result.stderr


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    admin = create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    name = f"evault_drilltest_{os.urandom(6).hex()}"
    try:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except OperationalError as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL unreachable: {type(exc.orig).__name__}")
            pytest.skip(f"PostgreSQL unreachable: {type(exc.orig).__name__}")
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def test_the_drill_on_postgresql(pg_database: str, tmp_path: Path) -> None:
    admin = make_url(PG_ADMIN_URL).set(drivername="postgresql").render_as_string(False)
    with ServerProcess.started(tmp_path / "server", {"EVAULT_DATABASE_URL": pg_database}) as server:
        [reporter] = enroll(server, tmp_path, [("rita", "reporter")])
        _add_items(reporter, tmp_path)
        backup = tmp_path / "backup"
        made = _script("backup.sh", server.env, str(backup))
        assert made.returncode == 0, made.stderr
        assert "database.pgdump" in sorted(path.name for path in backup.iterdir())
        drilled = _script(
            "restore-drill.sh", server.env | {"EVAULT_DRILL_PG_URL": admin}, str(backup)
        )
        assert drilled.returncode == 0, drilled.stdout + drilled.stderr
        assert "3 items, 9 blobs checked" in drilled.stdout
        broken = tmp_path / "broken"
        removed = _copy_without_a_blob(backup, broken, database="database.pgdump")
        failed = _script(
            "restore-drill.sh", server.env | {"EVAULT_DRILL_PG_URL": admin}, str(broken)
        )
        assert failed.returncode == 1, failed.stdout
        assert f"blob {removed} is missing" in failed.stderr


def test_backups_while_blobs_come_and_go(
    backed_up: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    """New blobs landing and deleted items' blobs going while ``backup.sh`` reads the blobs.

    Each backup ends well, holds every blob that stayed, and passes the drill.
    """
    server, _ = backed_up
    blobs = server.data_dir / "blobs" / "blobs"
    kept = sorted(str(p.relative_to(blobs.parent)) for p in blobs.rglob("*") if p.is_file())
    stop = threading.Event()
    churned = [0]

    def churn() -> None:
        # What commits and deletions do to the tree: new fan-out folders and
        # files appear (written, then renamed into place), others go.
        while not stop.is_set():
            n = churned[0]
            digest = hashlib.sha256(str(n).encode()).hexdigest()
            folder = blobs / f"z{digest[:1]}"
            folder.mkdir(exist_ok=True)
            staged = folder / f".{digest}"
            staged.write_bytes(digest.encode() * 64)
            staged.rename(folder / digest)
            if n % 2:
                old = hashlib.sha256(str(n - 1).encode()).hexdigest()
                (blobs / f"z{old[:1]}" / old).unlink()
            churned[0] = n + 1

    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    try:
        for run in range(3):
            backup = tmp_path / f"backup-{run}"
            result = _script("backup.sh", server.env, str(backup))
            assert result.returncode == 0, result.stderr
            assert "error" not in result.stderr
            assert (backup / "MANIFEST.sha256").is_file()
            with tarfile.open(backup / "blobs.tar") as tar:
                names = set(tar.getnames())
            assert set(kept) <= names
            assert not {p.name for p in backup.iterdir()} - {
                "MANIFEST.sha256",
                "backup.info",
                "blobs.tar",
                "database.sqlite",
                "peer.key",
                "server.key",
            }
    finally:
        stop.set()
        worker.join(timeout=10)
    assert churned[0] > 10  # the tree did change during the backups
    drill = _script("restore-drill.sh", _drill_env(server), str(tmp_path / "backup-2"))
    assert drill.returncode == 0, drill.stdout + drill.stderr
    for folder in blobs.glob("z*"):
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
