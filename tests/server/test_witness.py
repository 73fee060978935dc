"""This server as a witness (tlog-witness add-checkpoint) on SQLite and PostgreSQL.

A peer's log is built here in memory and its checkpoints signed with the
peer's log key; the server under test must cosign exactly the consistent
ones, answer every other case with the specification's status, and record
forks in its own audit log.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from server import migrate
from server.config import Config
from server.db import make_engine, make_sessionmaker, transaction
from server.keyfile import load_key_file, load_peer_key_file
from server.models import LogCheckpoint, LogCosignature, LogEntry, Peer
from server.services import cosigning
from server.services import log as log_service
from server.services.witness import origin_sha256
from tests.server.test_peers import OTHER_ID, _pin
from vault import merkle
from vault.cosignature import add_checkpoint_body, cosign, verify_cosignatures
from vault.merkle import MemoryHashStore, consistency_proof, leaf_hash, root
from vault.note import Checkpoint, Note, NoteSigner, sign_checkpoint
from vault.peer_key import PeerSigner

ADD = "/api/v1/witness/add-checkpoint"
LOG = NoteSigner.from_seed("other.example/log", b"\x0a" * 32)
ORIGIN = LOG.name


class Log:
    """The peer's log: leaves in memory, checkpoints signed by its key."""

    def __init__(self, tag: str = "") -> None:
        self.store = MemoryHashStore()
        self.tag = tag

    def grow(self, count: int) -> Log:
        for _ in range(count):
            self.store.append(leaf_hash(f"{self.tag}{len(self.store)}".encode()))
        return self

    def checkpoint(self, size: int | None = None) -> bytes:
        size = len(self.store) if size is None else size
        head = merkle.EMPTY_ROOT if size == 0 else root(self.store, size)
        return sign_checkpoint(Checkpoint(origin=ORIGIN, size=size, root_hash=head), LOG)

    def body(self, old: int, size: int | None = None) -> bytes:
        size = len(self.store) if size is None else size
        proof = consistency_proof(self.store, old, size) if 0 < old < size else []
        return add_checkpoint_body(old, proof, self.checkpoint(size))


def _add(client: FlaskClient, body: bytes):  # type: ignore[no-untyped-def]
    return client.post(ADD, data=body, headers={"Content-Type": "text/plain"})


def _refusals(app: Flask) -> list[dict[str, object]]:
    with transaction(app.extensions["evault"].sessions) as session:
        rows = session.scalars(select(LogEntry.data).order_by(LogEntry.idx)).all()
    events = [json.loads(row) for row in rows]
    return [event for event in events if event["type"] == "witness.refused"]


@pytest.fixture
def witness(app: Flask, config: Config) -> FlaskClient:
    _pin(app, config, active=True)
    return app.test_client()


def test_cosigns_a_consistent_log_and_records_it(
    app: Flask, config: Config, witness: FlaskClient
) -> None:
    log = Log().grow(5)
    first = _add(witness, log.body(0))
    assert first.status_code == 200, first.text
    own = load_peer_key_file(config.peer_key_file).verifier()
    note = log.checkpoint() + first.data
    [cosig] = verify_cosignatures(note, [own])
    assert abs(cosig.timestamp - dt.datetime.now(dt.UTC).timestamp()) < 60
    assert first.data.decode() == cosig.line
    log.grow(6)
    second = _add(witness, log.body(5))
    assert second.status_code == 200, second.text
    assert verify_cosignatures(log.checkpoint() + second.data, [own])
    # The same checkpoint again is cosigned again; the monitoring path serves the latest.
    again = _add(witness, log.body(11))
    assert again.status_code == 200
    served = witness.get(f"/api/v1/witness/{origin_sha256(ORIGIN)}/checkpoint")
    assert served.status_code == 200
    assert served.data == log.checkpoint() + again.data
    assert witness.get(f"/api/v1/witness/{'0' * 64}/checkpoint").status_code == 404
    # A proof between trees of one size is malformed, not a fork.
    same = _add(witness, add_checkpoint_body(11, [b"\x02" * 32], log.checkpoint()))
    assert same.status_code == 422
    assert _refusals(app) == []


def test_a_wrong_old_size_gets_the_recorded_one(witness: FlaskClient) -> None:
    log = Log().grow(4)
    assert _add(witness, log.body(0)).status_code == 200
    log.grow(3)
    stale = _add(witness, log.body(2))
    assert stale.status_code == 409
    assert stale.headers["Content-Type"] == "text/x.tlog.size"
    assert stale.data == b"4\n"
    fresh = _add(witness, log.body(0))
    assert (fresh.status_code, fresh.data) == (409, b"4\n")
    assert _add(witness, log.body(4)).status_code == 200


def test_a_fork_is_refused_and_logged(app: Flask, witness: FlaskClient) -> None:
    honest, forked = Log().grow(6), Log("fork").grow(6)
    assert _add(witness, honest.body(0)).status_code == 200
    same_size = _add(witness, forked.body(6))
    assert same_size.status_code == 422, same_size.text
    forked.grow(4)
    longer = _add(witness, forked.body(6))
    assert longer.status_code == 422, longer.text
    # Its own proof from a smaller tree of its own does not help either.
    rollback = _add(witness, add_checkpoint_body(6, [], honest.checkpoint(3)))
    assert rollback.status_code == 400
    refusals = _refusals(app)
    assert [(r["reason"], r["size"], r["cosigned_size"]) for r in refusals] == [
        ("fork", 6, 6),
        ("inconsistent", 10, 6),
        ("rollback", 3, 6),
    ]
    assert {r["origin"] for r in refusals} == {ORIGIN}
    # The honest log goes on being cosigned.
    honest.grow(1)
    assert _add(witness, honest.body(6)).status_code == 200


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("unsigned", 403),
        ("bad_signature", 403),
        ("unknown_origin", 404),
        ("old_above_size", 400),
        ("proof_from_zero", 422),
        ("empty_tree_root", 422),
        ("malformed", 400),
        ("leading_zero", 400),
        ("too_many_proof_lines", 400),
    ],
)
def test_the_specification_statuses(witness: FlaskClient, case: str, status: int) -> None:
    log = Log().grow(3)
    good = log.checkpoint()
    text, _, signature = good.decode().rpartition("\n\n")
    bodies = {
        "unsigned": add_checkpoint_body(
            0, [], sign_checkpoint(Checkpoint.parse(text + "\n"), NoteSigner.generate(ORIGIN))
        ),
        "bad_signature": add_checkpoint_body(
            0, [], (text.replace("\n3\n", "\n2\n") + "\n\n" + signature).encode()
        ),
        "unknown_origin": add_checkpoint_body(
            0,
            [],
            sign_checkpoint(
                Checkpoint(origin="else.example/log", size=1, root_hash=b"\x01" * 32),
                NoteSigner.generate("else.example/log"),
            ),
        ),
        "old_above_size": add_checkpoint_body(5, [], good),
        "proof_from_zero": add_checkpoint_body(0, [b"\x02" * 32], good),
        "empty_tree_root": add_checkpoint_body(
            0, [], sign_checkpoint(Checkpoint(origin=ORIGIN, size=0, root_hash=b"\x03" * 32), LOG)
        ),
        "malformed": b"old 0\n" + good,
        "leading_zero": b"old 00\n\n" + good,
        "too_many_proof_lines": b"old 1\n"
        + b"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n" * 64
        + b"\n"
        + good,
    }
    answer = _add(witness, bodies[case])
    assert answer.status_code == status, answer.text


def test_only_active_peers_are_witnessed(app: Flask, config: Config) -> None:
    _pin(app, config, active=False)
    answer = _add(app.test_client(), Log().grow(2).body(0))
    assert answer.status_code == 404
    assert OTHER_ID.log_key.startswith(ORIGIN + "+")


def test_the_checkpoint_carries_the_cosignatures_it_has(app: Flask, client: FlaskClient) -> None:
    signer = load_key_file(app.extensions["evault"].config.key_file).log_signer
    witnesses = [PeerSigner(name=f"w{i}.example/peer", seed=bytes([i]) * 32) for i in (1, 2)]
    with transaction(app.extensions["evault"].sessions) as session:
        for i in range(3):
            log_service.append(session, {"type": "test.event", "n": i}, signer)
    assert client.get("/api/v1/log/checkpoint?cosignatures=1").status_code == 404
    with transaction(app.extensions["evault"].sessions) as session:
        for size, count in ((2, 2), (3, 1)):
            row = session.get(LogCheckpoint, size)
            assert row is not None
            text = Checkpoint.parse(row.note.rpartition("\n\n")[0] + "\n").marshal()
            for witness in witnesses[:count]:
                session.add(
                    LogCosignature(
                        size=size,
                        witness_key=str(witness.verifier()),
                        line=cosign(text, witness, 1900000000),
                        timestamp=1900000000,
                        created_at=dt.datetime.now(dt.UTC),
                    )
                )
    keys = [w.verifier() for w in witnesses]
    latest = client.get("/api/v1/log/checkpoint")
    assert _size_of(latest.data) == 3
    assert [c.witness for c in verify_cosignatures(latest.data, keys)] == keys[:1]
    two = client.get("/api/v1/log/checkpoint?cosignatures=2")
    assert _size_of(two.data) == 2
    assert len(verify_cosignatures(two.data, keys)) == 2
    assert client.get("/api/v1/log/checkpoint?cosignatures=3").status_code == 404
    assert client.get("/api/v1/log/checkpoint?cosignatures=x").status_code == 400


def _size_of(note: bytes) -> int:
    return Checkpoint.parse(Note.parse(note).text).size


def test_a_log_submits_to_its_witness_and_recovers_from_a_lost_record(
    app: Flask, config: Config, witness: FlaskClient, live_url: str, tmp_path: Path
) -> None:
    """The log side in process: a second database is the peer's log, the live app its witness."""
    url = f"sqlite:///{tmp_path / 'other.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    own = load_peer_key_file(config.peer_key_file).verifier()
    try:
        with transaction(sessions) as session:
            session.add(
                Peer(
                    url=live_url,
                    peer_key=str(own),
                    log_key=str(load_key_file(config.key_file).log_verifier),
                    state="active",
                    created_at=dt.datetime.now(dt.UTC),
                    confirmed_at=dt.datetime.now(dt.UTC),
                )
            )
            for n in range(4):
                log_service.append(session, {"type": "test.event", "n": n}, LOG)
        first = cosigning.submit(sessions, now=dt.datetime.now(dt.UTC))
        assert (first.asked, first.cosigned, first.messages) == (1, 1, [])
        # Nothing new: nothing is sent.
        assert cosigning.submit(sessions, now=dt.datetime.now(dt.UTC)).asked == 0
        with transaction(sessions) as session:
            latest = log_service.latest_checkpoint(session)
            assert latest is not None
            note = cosigning.cosigned_note(session, latest).encode()
            assert [c.witness for c in verify_cosignatures(note, [own])] == [own]
            # The log forgets what was cosigned (a restored backup) and grows.
            session.execute(delete(LogCosignature))
            log_service.append(session, {"type": "test.event", "n": 4}, LOG)
        again = cosigning.submit(sessions, now=dt.datetime.now(dt.UTC))
        # Asked from 0, told 4 (409), asked again from 4 with a proof.
        assert (again.asked, again.cosigned, again.refused, again.messages) == (1, 1, 0, [])
        with transaction(sessions) as session:
            rows = session.scalars(select(LogCosignature)).all()
            assert [(r.size, r.witness_key) for r in rows] == [(5, str(own))]
        served = witness.get(f"/api/v1/witness/{origin_sha256(ORIGIN)}/checkpoint")
        assert _size_of(served.data) == 5
    finally:
        engine.dispose()
