"""A trustee hands in a share with the real command, only once the audit log shows the release."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .client_env import Person, ServerProcess, enroll, pin

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]


def _state(person: Person, deadline: float, want: str) -> None:
    while time.monotonic() < deadline:
        if person.json("switch", "status")["state"] == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"the vault did not become {want}")


def test_trustee_submit_waits_for_the_logged_release(tmp_path: Path) -> None:
    env = {"EVAULT_RUN_WORKER": "1", "EVAULT_WORKER_INTERVAL": "1", "EVAULT_MIN_INTERVAL": "1"}
    with ServerProcess.started(tmp_path / "server", env) as server:
        ana, tom = enroll(server, tmp_path, [("ana", "reporter"), ("tom", "editor")])
        pin(ana, tom)
        memo = tmp_path / "memo.txt"
        memo.write_bytes(b"what the minister said\n")
        ana.add(memo)
        ana.ok(
            "switch",
            "set",
            "--every",
            "6s",
            "--grace",
            "1s",
            "--trustee",
            "tom",
            "--threshold",
            "2",
        )
        vault = ana.json("switch", "status")["vault"]
        # Armed, not releasing: the log says so, and the share stays with the trustee.
        early = tom.fails("trustee", "submit", vault, "--yes")
        assert "records no release" in early
        _state(ana, time.monotonic() + 60, "releasing")
        handed = tom.run("trustee", "submit", vault, "--yes")
        assert handed.returncode == 0, str(handed)
        assert f"records the release of vault {vault}" in handed.err
        assert "2 of the 2 needed" in handed.out
        _state(ana, time.monotonic() + 60, "released")
