"""The audit log service on SQLite and PostgreSQL: appends, proofs, receipts, locking."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from server.db import transaction
from server.keyfile import ServerKeys
from server.models import LogEntry, LogSubtree
from server.services import log
from server.services._log_store import SqlHashStore
from vault import canonical, merkle
from vault.errors import FormatError, ProofError
from vault.note import open_checkpoint, verify_receipt


def _append_many(sessions: sessionmaker[Session], keys: ServerKeys, count: int) -> None:
    for i in range(count):
        with transaction(sessions) as session:
            log.append(session, {"type": "test", "n": i}, keys.log_signer)


def test_empty_log(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert log.tree_size(session) == 0
        assert log.latest_checkpoint(session) is None
        with pytest.raises(FormatError):
            log.receipt(session, 0)


def test_appends_give_verifiable_checkpoints_and_proofs(
    sessions: sessionmaker[Session], server_keys: ServerKeys
) -> None:
    verifier = server_keys.log_verifier
    leaves: list[bytes] = []
    checkpoints = []
    for i in range(13):
        with transaction(sessions) as session:
            appended = log.append(session, {"type": "test", "n": i}, server_keys.log_signer)
        assert appended.entry.idx == i
        assert canonical.loads(appended.entry.data) == {
            "type": "test",
            "n": i,
            "time": canonical.loads(appended.entry.data)["time"],
        }
        leaves.append(merkle.leaf_hash(appended.entry.data))
        checkpoint = open_checkpoint(appended.checkpoint.note.encode(), verifier)
        assert checkpoint.size == i + 1
        assert checkpoint.root_hash == merkle.root_of(leaves)
        checkpoints.append(checkpoint)

    with sessions() as session:
        assert log.tree_size(session) == 13
        for old in checkpoints:
            for index in range(old.size):
                proof = log.inclusion_proof(session, index, old.size)
                merkle.verify_inclusion(leaves[index], index, old.size, proof, old.root_hash)
            for new in checkpoints[old.size - 1 :]:
                proof = log.consistency_proof(session, old.size, new.size)
                merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
        with pytest.raises(FormatError):
            log.inclusion_proof(session, 0, 14)
        rows = log.entries(session, 3, 7)
        assert [row.idx for row in rows] == [3, 4, 5, 6]


def test_receipts_verify_offline(sessions: sessionmaker[Session], server_keys: ServerKeys) -> None:
    with transaction(sessions) as session:
        first = log.append(session, {"type": "test", "n": 0}, server_keys.log_signer)
        receipt_now = log.receipt(session, first.entry.idx, first.checkpoint)
    _append_many(sessions, server_keys, 6)
    with sessions() as session:
        later = log.receipt(session, first.entry.idx)

    verifier = server_keys.log_verifier
    assert verify_receipt(receipt_now.marshal(), first.entry.data, verifier).size == 1
    assert verify_receipt(later.marshal(), first.entry.data, verifier).size == 7
    with pytest.raises(ProofError):
        verify_receipt(later.marshal(), b'{"forged":1}', verifier)


def test_append_rolls_back_with_the_callers_transaction(
    sessions: sessionmaker[Session], server_keys: ServerKeys
) -> None:
    class Abort(Exception):
        pass

    def append_then_fail() -> None:
        with transaction(sessions) as session:
            log.append(session, {"type": "test"}, server_keys.log_signer)
            raise Abort

    with pytest.raises(Abort):
        append_then_fail()
    with sessions() as session:
        assert log.tree_size(session) == 0
        assert session.scalars(select(LogSubtree)).all() == []


def test_hash_store_reads_a_batch_in_one_or_query(
    engine: Engine, sessions: sessionmaker[Session], server_keys: ServerKeys
) -> None:
    _append_many(sessions, server_keys, 8)
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with sessions() as session:
            hashes = SqlHashStore(session).get_many([(3, 0), (0, 5), (1, 1)])
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(hashes) == 3
    (query,) = statements
    assert " OR " in query
    assert " IN " not in query.upper()
    with sessions() as session, pytest.raises(FormatError):
        SqlHashStore(session).get_many([(4, 0)])


def test_concurrent_appends_give_one_consistent_tree(
    sessions: sessionmaker[Session], server_keys: ServerKeys
) -> None:
    threads, per_thread = 6, 8
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(worker: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                with transaction(sessions) as session:
                    log.append(session, {"worker": worker, "n": n}, server_keys.log_signer)
        except BaseException as exc:  # noqa: BLE001 — reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    assert not errors, errors

    total = threads * per_thread
    with sessions() as session:
        entries = session.scalars(select(LogEntry).order_by(LogEntry.idx)).all()
        assert [entry.idx for entry in entries] == list(range(total))
        logged = {(e["worker"], e["n"]) for e in map(canonical.loads, (r.data for r in entries))}
        assert len(logged) == total
        latest = log.latest_checkpoint(session)
        assert latest is not None
        assert latest.size == total
        checkpoint = open_checkpoint(latest.note.encode(), server_keys.log_verifier)
        leaves = [merkle.leaf_hash(entry.data) for entry in entries]
        assert checkpoint.root_hash == merkle.root_of(leaves)
        for index in (0, total // 2, total - 1):
            receipt = log.receipt(session, index)
            verify_receipt(receipt.marshal(), entries[index].data, server_keys.log_verifier)
