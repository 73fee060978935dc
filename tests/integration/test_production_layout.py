"""The production layout run locally, through the whole demo scenario.

PostgreSQL (a fresh database), an S3-compatible blob store (moto's server on
loopback), ``gunicorn server.wsgi:app`` with two threaded workers, and two
separate ``evault-server worker`` processes, as README.md's production notes
describe; mail goes to an SMTP server on loopback (aiosmtpd). The real
``evault`` command then plays the demo: a reporter and an editor with
verified fingerprints, uploads (one of several MiB, stored in parts), a
share the editor pulls, an evidence package verified offline, and the
dead-man switch armed, checked in once and missed, until the released files,
downloaded from the release page's links, decrypt with the Debian ``age``
tool to the original bytes. The two workers must release the vault once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from sqlalchemy import select

from server.db import make_engine, make_sessionmaker, transaction
from server.models import LogEntry
from tests.server import conftest as server_conftest
from vault import canonical

from .client_env import BIN, EVAULT_SERVER, Person, ServerProcess, enroll, payload, pin
from .switch_env import (
    CONTACTS,
    Mailbox,
    expect_notices,
    free_port,
    quick_switches,
    released_files,
)

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

# A fresh PostgreSQL database, dropped afterwards.
pg_url, databases = server_conftest.pg_url, server_conftest.databases

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = BIN / "gunicorn"
MiB = 1024 * 1024
STARTUP = 30
"""Seconds gunicorn and the workers may take to start."""

T = TypeVar("T")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill the process group it leads (gunicorn's workers too)."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    # Anything left in the group (a gunicorn worker whose master died) goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class ProductionLayout(ServerProcess):
    """``evault-server init`` and ``db upgrade``, then gunicorn and two worker processes."""

    WORKERS = 2

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        public_url = f"http://127.0.0.1:{self.port}"
        super().__init__(root, env | {"EVAULT_PUBLIC_URL": public_url})
        upgraded = self.cli("db", "upgrade")
        assert upgraded.returncode == 0, str(upgraded)
        assert "database at head" in upgraded.out
        self.public_url = public_url
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _spawn(self, name: str, argv: list[str]) -> None:
        with (self.root / f"{name}.log").open("wb") as out:
            self.procs[name] = subprocess.Popen(
                argv,
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)}" for name in self.procs)

    def start(self) -> None:
        try:
            self._spawn(
                "gunicorn",
                [
                    str(GUNICORN),
                    "--workers",
                    "2",
                    "--worker-class",
                    "gthread",
                    "--threads",
                    "4",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--log-level",
                    "error",
                    "--graceful-timeout",
                    "5",
                    "server.wsgi:app",
                ],
            )
            for n in range(self.WORKERS):
                self._spawn(f"worker-{n}", [str(EVAULT_SERVER), "worker", "--interval", "1"])
            deadline = time.monotonic() + STARTUP
            while time.monotonic() < deadline:
                dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
                assert not dead, f"{dead} exited:\n{self.logs()}"
                workers_up = all(
                    "worker running" in self.log(f"worker-{n}") for n in range(self.WORKERS)
                )
                if workers_up and self._healthy():
                    self.url = self.public_url
                    return
                time.sleep(0.1)
            raise AssertionError(f"the production layout did not start:\n{self.logs()}")
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.public_url}/healthz", timeout=2).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            # Not up yet, or too slow to answer on a loaded machine: asked again until STARTUP.
            return False

    def stop(self) -> None:
        procs, self.procs = list(self.procs.values()), {}
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            _stop(proc)

    @property
    def running(self) -> bool:
        return bool(self.procs) and all(proc.poll() is None for proc in self.procs.values())

    def events(self) -> list[dict[str, Any]]:
        """Every audit log entry, decoded, read from PostgreSQL."""
        engine = make_engine(self.database_url)
        try:
            with transaction(make_sessionmaker(engine)) as session:
                rows = list(session.scalars(select(LogEntry.data).order_by(LogEntry.idx)))
        finally:
            engine.dispose()
        events = []
        for row in rows:
            event = canonical.loads(row)
            assert isinstance(event, dict)
            events.append(event)
        return events


AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def test_the_demo_on_gunicorn_postgresql_and_s3(
    tmp_path: Path,
    pg_url: str,
    s3_endpoint: str,
    bucket: str,
    mailbox: tuple[Mailbox, int],
) -> None:
    box, smtp_port = mailbox
    env = (
        AWS_TEST_ENV
        | {
            "EVAULT_DATABASE_URL": pg_url,
            "EVAULT_STORAGE": "s3",
            "EVAULT_S3_BUCKET": bucket,
            "EVAULT_S3_ENDPOINT": s3_endpoint,
        }
        | quick_switches(smtp_port, worker=False)
    )
    with ProductionLayout.started(tmp_path / "server", env) as server:
        assert isinstance(server, ProductionLayout)
        ana, tom = enroll(server, tmp_path, [("ana", "reporter"), ("tom", "editor")])
        pin(ana, tom)

        # Uploads, one in several parts of the S3 store.
        originals = {
            "footage.mp4": payload(6 * MiB + 12345, seed=1),
            "ledger.pdf": payload(300_000, seed=2),
            "call-log.csv": b"time,caller,callee\n" + payload(5_000, seed=3),
        }
        for name, data in originals.items():
            (tmp_path / name).write_bytes(data)
        listed = ana.add(*(tmp_path / name for name in originals))
        added = {name: a["item"] for name, a in zip(originals, listed, strict=True)}

        # A share the editor pulls: the same bytes.
        ana.ok("share", added["footage.mp4"], "--with", "tom")
        desk = tmp_path / "desk"
        desk.mkdir()
        tom.ok("pull", added["footage.mp4"], "-o", desk)
        assert (desk / "footage.mp4").read_bytes() == originals["footage.mp4"]

        # An evidence package, verified offline by someone who trusts only keys.
        package = tmp_path / "package"
        ana.ok("export", added["ledger.pdf"], "-o", package)
        identity_file = tmp_path / "ana.key"
        identity_file.write_text(f"{ana.identity().age_identity}\n")
        identity_file.chmod(0o600)
        court = Person(tmp_path / "court", "court", "public")
        verdict = court.ok(
            "verify",
            package,
            "--log-key",
            server.log_key,
            "--card",
            ana.card_path,
            "-i",
            identity_file,
        )
        assert "VERDICT: the package is intact and consistent." in verdict.out

        # The switch: armed, one check-in, then silence.
        ana.ok(
            "switch",
            "set",
            "--every",
            "8s",
            "--grace",
            "2s",
            "--remind-before",
            "4s",
            *CONTACTS,
        )
        ana.ok("checkin")
        vault = ana.json("switch", "status")["vault"]

        expect_notices(box, f"{server.url}/release/{vault}")

        # The release page's links, decrypted with the Debian age tool.
        recovered = released_files(server.url, vault, tmp_path, originals)
        assert sorted(recovered) == sorted(originals.values())

        verified = ana.run("log", "verify", "--full")
        assert verified.returncode == 0, str(verified)
        assert ana.json("switch", "status")["state"] == "released"

        # Two workers swept the same database: one release, logged once.
        assert server.running, server.logs()
        released = [
            e for e in server.events() if e["type"] == "switch.released" and e["vault"] == vault
        ]
        assert len(released) == 1, released
        assert "Traceback" not in server.logs(), server.logs()
