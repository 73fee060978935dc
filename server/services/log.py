"""The audit log service: appends, signed checkpoints, proofs and receipts.

Every event is canonical JSON (ids and hashes only, never names or
contents) appended as an RFC 6962 leaf in the same database transaction as
the change it records, so a change and its log entry commit or vanish
together. Appends are serialised on the single :class:`LogHead` row: on
PostgreSQL with ``SELECT … FOR UPDATE``, on SQLite by taking the database
write lock (a no-op ``UPDATE``) before the head is read. After each append
the new tree head is signed with the log key as a C2SP tlog-checkpoint, so
a receipt (C2SP tlog-proof) can be returned at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from server.db import is_sqlite
from server.models import LogCheckpoint, LogEntry, LogHead, LogSubtree, utcnow
from server.services._log_store import SqlHashStore
from vault import canonical, merkle
from vault.errors import ConfigError, FormatError, VaultError
from vault.note import Checkpoint, NoteSigner, Receipt, open_checkpoint, sign_checkpoint

__all__ = [
    "MAX_ENTRIES_PAGE",
    "Appended",
    "SqlHashStore",
    "append",
    "consistency_proof",
    "entries",
    "inclusion_proof",
    "latest_checkpoint",
    "receipt",
    "tree_size",
]

MAX_ENTRIES_PAGE = 256
"""Most entries one read returns; clients page through larger ranges."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Appended:
    """A logged event: its entry and the checkpoint signed right after it."""

    entry: LogEntry
    checkpoint: LogCheckpoint


def _lock_head(session: Session) -> LogHead:
    if is_sqlite(session):
        # Takes SQLite's write lock now, so the head read below is the latest
        # one and no other append can interleave until this transaction ends.
        session.execute(update(LogHead).where(LogHead.id == 1).values(size=LogHead.size))
    head = session.scalars(select(LogHead).where(LogHead.id == 1).with_for_update()).one_or_none()
    if head is None:
        raise RuntimeError("internal error: the log head row is missing; run the migrations")
    return head


def append(session: Session, event: Mapping[str, Any], signer: NoteSigner) -> Appended:
    """Append ``event`` to the log inside the caller's transaction; sign the new head.

    The event gets a ``time`` field (Unix seconds) unless it has one, so the
    leaf itself commits to when it was logged.

    Raises:
        FormatError: the event cannot be encoded as canonical JSON.
    """
    now = utcnow()
    body = dict(event)
    body.setdefault("time", int(now.timestamp()))
    data = canonical.dumps(body)
    head = _lock_head(session)
    check_signer(session, signer)
    store = SqlHashStore(session)
    hashed = merkle.leaf_hash(data)
    rows = merkle.new_subtrees(store, head.size, [hashed])
    entry = LogEntry(idx=head.size, data=data, leaf_hash=hashed, created_at=now)
    session.add(entry)
    session.add_all(LogSubtree(level=level, idx=idx, hash=value) for level, idx, value in rows)
    head.size += 1
    session.flush()
    root = merkle.root(store, head.size)
    note = sign_checkpoint(
        Checkpoint(origin=signer.name, size=head.size, root_hash=root), signer
    ).decode("utf-8")
    checkpoint = LogCheckpoint(size=head.size, root_hash=root, note=note, created_at=now)
    session.add(checkpoint)
    session.flush()
    return Appended(entry=entry, checkpoint=checkpoint)


def check_signer(session: Session, signer: NoteSigner) -> None:
    """Refuse to extend a log whose latest checkpoint another key signed.

    A replaced or mixed-up key file would otherwise start signing under a new
    identity, and clients that pinned the old one would see a broken log.

    Raises:
        ConfigError: the key file does not belong to this log.
    """
    latest = latest_checkpoint(session)
    if latest is None:
        return
    try:
        open_checkpoint(latest.note.encode("utf-8"), signer.verifier(), origin=signer.name)
    except VaultError:
        raise ConfigError(
            "the server key file does not belong to this database's log",
            hint="its latest checkpoint was signed by another key; "
            "point EVAULT_KEY_FILE at the key file this log was created with",
        ) from None


def tree_size(session: Session) -> int:
    """The number of entries in the log as this transaction sees it."""
    size = session.scalar(select(LogHead.size).where(LogHead.id == 1))
    if size is None:
        raise RuntimeError("internal error: the log head row is missing; run the migrations")
    return size


def latest_checkpoint(session: Session) -> LogCheckpoint | None:
    """The most recent signed checkpoint, or ``None`` while the log is empty."""
    return session.scalars(
        select(LogCheckpoint).order_by(LogCheckpoint.size.desc()).limit(1)
    ).one_or_none()


def entries(session: Session, start: int, end: int) -> Sequence[LogEntry]:
    """Entries ``[start, end)``, at most :data:`MAX_ENTRIES_PAGE` of them."""
    end = min(end, start + MAX_ENTRIES_PAGE)
    return session.scalars(
        select(LogEntry)
        .where(and_(LogEntry.idx >= start, LogEntry.idx < end))
        .order_by(LogEntry.idx)
    ).all()


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Raises:
        FormatError: ``index`` is not below ``size``, or ``size`` exceeds the log.
    """
    return merkle.inclusion_proof(SqlHashStore(session), index, size)


def consistency_proof(session: Session, old: int, new: int) -> list[bytes]:
    """The consistency proof between the trees of ``old`` and ``new`` leaves.

    Raises:
        FormatError: ``old`` is 0 or above ``new``, or ``new`` exceeds the log.
    """
    return merkle.consistency_proof(SqlHashStore(session), old, new)


def receipt(session: Session, index: int, checkpoint: LogCheckpoint | None = None) -> Receipt:
    """The C2SP tlog-proof that entry ``index`` is in ``checkpoint`` (default: the latest).

    Raises:
        FormatError: the entry is not covered by the checkpoint.
    """
    if checkpoint is None:
        checkpoint = latest_checkpoint(session)
    if checkpoint is None:
        raise FormatError("the log is empty: no entry has a receipt")
    proof = merkle.inclusion_proof(SqlHashStore(session), index, checkpoint.size)
    return Receipt(index=index, proof=tuple(proof), checkpoint=checkpoint.note.encode("utf-8"))
