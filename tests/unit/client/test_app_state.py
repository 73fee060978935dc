"""The local app's state: the idle lock holds, a lock takes the upload pages; old folders go."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from client import identity as identities
from client.app.state import AppState, FileTask, Job
from client.config import Paths
from client.context import Client
from vault import keystore

PASSPHRASE = "correct horse battery staple orbit"  # noqa: S105 — a test keystore


def _keystore(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    paths.ensure()
    monkeypatch.setenv("EVAULT_PASSPHRASE", PASSPHRASE)
    identities.create(
        paths.keystore, "Rana", prompt=lambda _: "", params=keystore.Argon2Params.TESTING
    )
    monkeypatch.delenv("EVAULT_PASSPHRASE")


def test_the_idle_lock_cannot_be_put_off_after_it_fell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths(tmp_path / "home")
    _keystore(paths, monkeypatch)
    state = AppState(paths, idle=0.2)
    state.unlock(PASSPHRASE)
    assert state.touch()
    time.sleep(0.3)
    # A page asked for after the idle time finds the app locked, and does not unlock it.
    assert not state.touch()
    assert not state.unlocked


def test_a_lock_takes_the_upload_pages_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths(tmp_path / "home")
    _keystore(paths, monkeypatch)
    state = AppState(paths, idle=60)
    state.unlock(PASSPHRASE)
    job = Job(
        id="j", files=[FileTask(path=tmp_path / "secret-source.pdf", name="secret-source.pdf")]
    )
    state.jobs[job.id] = job
    state.lock()
    assert job.cancelled
    assert state.jobs == {}


def test_what_an_older_version_kept_beside_the_keystore_is_overwritten_and_removed(
    tmp_path: Path,
) -> None:
    paths = Paths(tmp_path / "home")
    paths.ensure()
    receipt = paths.root / "receipts" / ("a" * 32) / "3.json"
    receipt.parent.mkdir(parents=True)
    receipt.write_text('{"item": "' + "a" * 32 + '"}')
    (paths.root / "pending").mkdir()
    (paths.root / "pending" / "u.age").write_bytes(b"sealed")
    Client(paths)
    assert sorted(p.name for p in paths.root.iterdir()) == []
