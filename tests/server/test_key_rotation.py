"""Rotating the log key, on SQLite and PostgreSQL: the service, ``keys rotate``, ``/log/keys``.

The rotation appends a ``log.key_rotated`` entry whose checkpoint both keys
sign; later checkpoints are the new key's alone; the old key may not sign
again. ``keys rotate`` writes the new key file before the database commits
and renames it after, and finishes or starts over when run again after an
interruption at any step.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from server import key_rotation
from server.cli import main
from server.config import Config
from server.db import make_engine, make_sessionmaker, transaction
from server.keyfile import ServerKeys, fingerprint, load_key_file, pending_path
from server.services import log
from tests.server.test_openapi import check_response
from vault.errors import ConfigError
from vault.log_keys import (
    KeyChain,
    LogKey,
    check_rotation_entry,
    open_with_keys,
    verify_transition,
)
from vault.note import Note, NoteVerifier, open_checkpoint, verify_receipt


@pytest.fixture
def db(config: Config) -> Iterator[sessionmaker[Session]]:
    engine: Engine = make_engine(config.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _keys(config: Config) -> ServerKeys:
    return load_key_file(config.key_file)


def _append(sessions: sessionmaker[Session], config: Config, count: int) -> None:
    signer = _keys(config).log_signer
    for n in range(count):
        with transaction(sessions) as session:
            log.append(session, {"type": "test", "n": n}, signer)


def _env(config: Config) -> dict[str, str]:
    return {
        "EVAULT_DATA_DIR": str(config.data_dir),
        "EVAULT_DATABASE_URL": config.database_url,
        "EVAULT_KEY_FILE": str(config.key_file),
    }


def _cli(config: Config, *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env=_env(config), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def _lines(output: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)


def _latest_note(sessions: sessionmaker[Session]) -> bytes:
    with sessions() as session:
        latest = log.latest_checkpoint(session)
        assert latest is not None
        return latest.note.encode("utf-8")


# the service ------------------------------------------------------------------


def test_rotation_hands_over_in_one_co_signed_checkpoint(
    db: sessionmaker[Session], config: Config
) -> None:
    _append(db, config, 5)
    old = _keys(config)
    new = old.with_new_log_key()
    with transaction(db) as session:
        assert log.current_key(session) == str(old.log_verifier)  # recorded by the first append
        appended = log.rotate_key(session, old.log_signer, new.log_signer)
    assert appended.entry.idx == 5
    assert appended.checkpoint.size == 6
    note = appended.checkpoint.note.encode("utf-8")
    # One note, two signature lines of one name, both verifying.
    signatures = Note.parse(note).signatures
    assert [(s.name, s.key_id) for s in signatures] == [
        (old.origin, old.log_signer.key_id),
        (old.origin, new.log_signer.key_id),
    ]
    open_checkpoint(note, old.log_verifier)
    open_checkpoint(note, new.log_verifier)
    # The entry names exactly the two keys; it is the tree's last leaf.
    check_rotation_entry(appended.entry.data, old.log_verifier, new.log_verifier)
    with db() as session:
        proof = log.inclusion_proof(session, 5, 6)
        history = log.key_history(session)
    handover = verify_transition(
        note, old.log_verifier, new.log_verifier, entry=appended.entry.data, inclusion=proof
    )
    assert handover.index == 5
    assert [(r.key, r.first_size, r.last_size) for r in history] == [
        (str(old.log_verifier), 0, 6),
        (str(new.log_verifier), 6, None),
    ]
    assert history[0].transition == appended.checkpoint.note
    assert history[1].transition is None

    # Later checkpoints and receipts: the new key only.
    with transaction(db) as session:
        later = log.append(session, {"type": "test", "n": 99}, new.log_signer)
        receipt = log.receipt(session, 2)
    assert [s.key_id for s in Note.parse(later.checkpoint.note.encode()).signatures] == [
        new.log_signer.key_id
    ]
    verify_receipt(receipt, _entry(db, 2), new.log_verifier)
    # An old receipt still verifies with the old key, valid up to its last size.
    keys = [
        LogKey(verifier=old.log_verifier, first_size=0, last_size=6),
        LogKey(verifier=new.log_verifier, first_size=6),
    ]
    with db() as session:
        old_note = session.get(log.LogCheckpoint, 3)
        assert old_note is not None
    checkpoint, key = open_with_keys(old_note.note.encode(), keys, old.origin)
    assert (checkpoint.size, key.verifier) == (3, old.log_verifier)


def _entry(sessions: sessionmaker[Session], index: int) -> bytes:
    with sessions() as session:
        (row,) = log.entries(session, index, index + 1)
        return row.data


def test_the_retired_key_may_start_the_server_but_never_signs_again(
    db: sessionmaker[Session], config: Config
) -> None:
    _append(db, config, 2)
    old = _keys(config)
    new = old.with_new_log_key()
    with transaction(db) as session:
        log.rotate_key(session, old.log_signer, new.log_signer)
    # The transition checkpoint is the latest: both key files pass the start-up check.
    with transaction(db) as session:
        log.check_signer(session, old.log_signer)
        log.check_signer(session, new.log_signer)
    with (
        pytest.raises(ConfigError, match="retired log key") as raised,
        transaction(db) as session,
    ):
        log.append(session, {"type": "test"}, old.log_signer)
    assert raised.value.hint is not None
    assert "keys rotate --yes" in raised.value.hint
    with pytest.raises(ConfigError, match="retired log key"), transaction(db) as session:
        log.rotate_key(session, old.log_signer, old.with_new_log_key().log_signer)
    with transaction(db) as session:
        log.append(session, {"type": "test"}, new.log_signer)
    # Past the transition, the old key no longer passes the start-up check either.
    with pytest.raises(ConfigError, match="retired log key"), transaction(db) as session:
        log.check_signer(session, old.log_signer)
    # Nor does a stranger's key of the same name.
    with pytest.raises(ConfigError, match="does not belong"), transaction(db) as session:
        log.check_signer(session, old.with_new_log_key().log_signer)


def test_a_rotation_of_an_empty_log_and_two_in_a_row(
    db: sessionmaker[Session], config: Config
) -> None:
    first = _keys(config)
    second, third = first.with_new_log_key(), first.with_new_log_key()
    with transaction(db) as session:
        log.rotate_key(session, first.log_signer, second.log_signer)
    with transaction(db) as session:
        log.rotate_key(session, second.log_signer, third.log_signer)
    with db() as session:
        history = log.key_history(session)
        transitions = [r.transition for r in history]
    assert [(r.first_size, r.last_size) for r in history] == [(0, 1), (1, 2), (2, None)]
    assert transitions[2] is None
    with db() as session:
        handovers = [
            verify_transition(
                (transitions[i] or "").encode(),
                NoteVerifier.parse(history[i].key),
                NoteVerifier.parse(history[i + 1].key),
                entry=_entry(db, i),
                inclusion=log.inclusion_proof(session, i, i + 1),
            )
            for i in range(2)
        ]
        links = {(1, 2): log.consistency_proof(session, 1, 2)}
    chain = KeyChain(first.log_verifier, handovers, links)
    assert chain.current == third.log_verifier


# keys rotate -----------------------------------------------------------------


def test_keys_rotate_replaces_the_key_file_and_prints_the_new_key(
    db: sessionmaker[Session], config: Config
) -> None:
    _append(db, config, 3)
    before = _keys(config)
    refused = _cli(config, "keys", "rotate")
    assert refused.exit_code == 1
    assert "web and worker processes stopped" in refused.stderr
    assert "repeat with --yes" in refused.stderr
    assert _keys(config).log_verifier == before.log_verifier

    result = _cli(config, "keys", "rotate", "--yes")
    assert result.exit_code == 0, result.stderr
    after = _keys(config)
    lines = _lines(result.stdout)
    assert lines["log key"] == str(after.log_verifier)
    assert lines["fingerprint"] == fingerprint(after.log_verifier)
    assert str(before.log_verifier) in lines["retired log key"]
    assert "rotated the log key at log entry 3" in result.stdout
    assert "start the web and worker processes again" in result.stdout
    assert "PRIVATE" not in result.output
    # Same name and custodian key; another log key; the old private key is gone.
    assert after.origin == before.origin
    assert str(after.custodian.recipient()) == str(before.custodian.recipient())
    assert after.log_verifier != before.log_verifier
    text = config.key_file.read_text()
    assert before.log_signer.skey() not in text
    assert stat.S_IMODE(config.key_file.stat().st_mode) == 0o600
    assert not pending_path(config.key_file).exists()
    assert [p.name for p in config.key_file.parent.iterdir() if "key" in p.name] == ["server.key"]
    # keys show agrees; the worker's start-up check passes with the new file.
    assert _lines(_cli(config, "keys", "show").stdout)["log key"] == str(after.log_verifier)
    with transaction(db) as session:
        log.check_signer(session, after.log_signer)
    latest = _latest_note(db)
    open_checkpoint(latest, before.log_verifier)
    open_checkpoint(latest, after.log_verifier)


def test_keys_rotate_on_a_log_that_never_wrote(config: Config) -> None:
    before = _keys(config)
    result = _cli(config, "keys", "rotate", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "at log entry 0" in result.stdout
    assert _keys(config).log_verifier != before.log_verifier


def test_one_rotation_at_a_time(db: sessionmaker[Session], config: Config) -> None:
    """A second `keys rotate` while one runs is refused before it touches anything."""
    _append(db, config, 1)
    before = config.key_file.read_bytes()
    with key_rotation._exclusive(config.key_file):  # the first rotation, still running
        with pytest.raises(ConfigError, match="another `evault-server keys rotate` is running"):
            key_rotation.rotate(config)
        assert config.key_file.read_bytes() == before
        assert not pending_path(config.key_file).exists()
    rotated = key_rotation.rotate(config)  # once it is done, the next one runs
    assert load_key_file(config.key_file).log_verifier == rotated.new


def test_a_new_key_file_swapped_after_the_commit_is_not_installed(
    db: sessionmaker[Session], config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename installs only the key the log just committed."""
    _append(db, config, 1)
    before = config.key_file.read_bytes()
    other = _keys(config).with_new_log_key()
    real_rotate_key = log.rotate_key

    def and_swap(*args: object, **kwargs: object) -> object:
        appended = real_rotate_key(*args, **kwargs)  # type: ignore[arg-type]
        pending = pending_path(config.key_file)
        pending.unlink()
        pending.write_bytes(other.serialise())
        pending.chmod(0o600)
        return appended

    monkeypatch.setattr(log, "rotate_key", and_swap)
    with pytest.raises(ConfigError, match="holds another one"):
        key_rotation.rotate(config)
    assert config.key_file.read_bytes() == before


def test_a_failed_commit_changes_nothing(
    db: sessionmaker[Session], config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    _append(db, config, 2)
    before = config.key_file.read_bytes()

    def broken(*args: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(log, "rotate_key", broken)
    with pytest.raises(ConfigError, match="nothing changed") as raised:
        key_rotation.rotate(config)
    assert "RuntimeError" in raised.value.message
    assert "disk" not in raised.value.message
    assert config.key_file.read_bytes() == before
    assert not pending_path(config.key_file).exists()
    with db() as session:
        assert log.tree_size(session) == 2
        assert log.current_key(session) == str(load_key_file(config.key_file).log_verifier)


def test_a_crash_before_the_commit_is_started_over(
    db: sessionmaker[Session], config: Config
) -> None:
    """A new key file but no rotation in the database: the key never signed anything kept."""
    _append(db, config, 2)
    keys = _keys(config)
    stale = keys.with_new_log_key()
    pending_path(config.key_file).write_bytes(stale.serialise())
    pending_path(config.key_file).chmod(0o600)

    result = _cli(config, "keys", "rotate", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "removed the unused new key file" in result.stdout
    after = _keys(config)
    assert after.log_verifier not in (keys.log_verifier, stale.log_verifier)
    assert not pending_path(config.key_file).exists()


def test_a_foreign_new_key_file_is_left_alone(db: sessionmaker[Session], config: Config) -> None:
    _append(db, config, 1)
    before = config.key_file.read_bytes()
    foreign = ServerKeys.generate(_keys(config).origin)  # another custodian key
    pending = pending_path(config.key_file)
    pending.write_bytes(foreign.serialise())
    pending.chmod(0o600)
    result = _cli(config, "keys", "rotate", "--yes")
    assert result.exit_code == 1
    assert "is not a new key file of" in result.stderr
    assert pending.read_bytes() == foreign.serialise()
    assert config.key_file.read_bytes() == before
    with db() as session:
        assert log.tree_size(session) == 1


def test_a_crash_before_the_rename_is_finished_by_running_it_again(
    db: sessionmaker[Session], config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    _append(db, config, 4)
    old = _keys(config)

    def no_rename(path: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(key_rotation, "install_pending", no_rename)
    result = _cli(config, "keys", "rotate", "--yes")
    assert result.exit_code == 1
    pending = pending_path(config.key_file)
    assert f"mv {pending} {config.key_file}" in result.stderr
    assert "the log now uses the new key" in result.stderr
    staged = load_key_file(pending)
    assert stat.S_IMODE(pending.stat().st_mode) == 0o600
    with db() as session:
        assert log.current_key(session) == str(staged.log_verifier)
    # The server still starts with the old key file, and refuses to sign with it.
    with transaction(db) as session:
        log.check_signer(session, old.log_signer)
    with pytest.raises(ConfigError, match="retired log key"), transaction(db) as session:
        log.append(session, {"type": "test"}, old.log_signer)

    monkeypatch.undo()
    finished = _cli(config, "keys", "rotate", "--yes")
    assert finished.exit_code == 0, finished.stderr
    assert "finished the interrupted rotation" in finished.stdout
    assert "rotated the log key at log entry 4" in finished.stdout
    assert _keys(config).log_verifier == staged.log_verifier
    assert not pending.exists()
    with transaction(db) as session:
        log.append(session, {"type": "test"}, staged.log_signer)
        assert len(log.key_history(session)) == 2


def test_a_retired_key_file_without_its_successor_is_refused(
    db: sessionmaker[Session], config: Config
) -> None:
    old_file = config.key_file.read_bytes()
    assert _cli(config, "keys", "rotate", "--yes").exit_code == 0
    config.key_file.write_bytes(old_file)  # a restored backup from before the rotation
    result = _cli(config, "keys", "rotate", "--yes")
    assert result.exit_code == 1
    assert "does not hold the log's current key" in result.stderr
    assert fingerprint(_keys_current(db)) in result.stderr


def _keys_current(sessions: sessionmaker[Session]) -> NoteVerifier:
    with sessions() as session:
        current = log.current_key(session)
    assert current is not None
    return NoteVerifier.parse(current)


# GET /log/keys -------------------------------------------------------------------


def test_log_keys_lists_the_history(
    client: FlaskClient, db: sessionmaker[Session], config: Config
) -> None:
    first = _keys(config).log_verifier
    # No append yet: the key file's key alone.
    response = client.get("/api/v1/log/keys")
    check_response("/api/v1/log/keys", "get", response)
    assert response.json == {
        "keys": [
            {
                "key": str(first),
                "fingerprint": fingerprint(first),
                "first_size": 0,
                "last_size": None,
                "transition": None,
            }
        ]
    }
    _append(db, config, 3)
    assert client.get("/api/v1/log/keys").json == response.json
    assert _cli(config, "keys", "rotate", "--yes").exit_code == 0
    second = _keys(config).log_verifier
    response = client.get("/api/v1/log/keys")
    check_response("/api/v1/log/keys", "get", response)
    keys = response.json["keys"]
    assert [(k["key"], k["first_size"], k["last_size"]) for k in keys] == [
        (str(first), 0, 4),
        (str(second), 4, None),
    ]
    assert [k["fingerprint"] for k in keys] == [fingerprint(first), fingerprint(second)]
    assert keys[0]["transition"] == client.get("/api/v1/log/checkpoint").text
    assert keys[1]["transition"] is None
    bad = client.get("/api/v1/log/keys?x=1")
    assert bad.status_code == 400
    check_response("/api/v1/log/keys", "get", bad)
