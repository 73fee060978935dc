"""The audit log service: appends, signed checkpoints, proofs and receipts.

Every event is canonical JSON (ids and hashes only, never names or
contents) appended as an RFC 6962 leaf in the same database transaction as
the change it records, so a change and its log entry commit or vanish
together. Appends are serialised on the single :class:`LogHead` row: on
PostgreSQL with ``SELECT … FOR UPDATE``, on SQLite by taking the database
write lock (a no-op ``UPDATE``) before the head is read. After each append
the new tree head is signed with the log key as a C2SP tlog-checkpoint, so
a receipt (C2SP tlog-proof) can be returned at once.

The log's keys are in ``log_keys`` (:class:`LogKey`), oldest first. Only
the current key signs appends. :func:`rotate_key` hands over to a new key:
it appends a ``log.key_rotated`` entry naming both keys and signs that
tree's checkpoint (the transition checkpoint) with both (docs/protocol.md,
"Log key rotation"). A log that never rotated has an empty history until
its first append or rotation records the key file's key, from size 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from server.db import is_sqlite
from server.models import LogCheckpoint, LogEntry, LogHead, LogKey, LogSubtree, utcnow
from server.services._log_store import SqlHashStore
from vault import canonical, merkle
from vault.errors import ConfigError, FormatError, VaultError
from vault.note import Checkpoint, NoteSigner, Receipt, open_checkpoint, sign_note

__all__ = [
    "MAX_ENTRIES_PAGE",
    "Appended",
    "SqlHashStore",
    "append",
    "check_signer",
    "consistency_proof",
    "current_key",
    "entries",
    "inclusion_proof",
    "key_history",
    "latest_checkpoint",
    "receipt",
    "rotate_key",
    "tree_size",
]

MAX_ENTRIES_PAGE = 256
"""Most entries one read returns; clients page through larger ranges."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Appended:
    """A logged event: its entry and the checkpoint signed right after it."""

    entry: LogEntry
    checkpoint: LogCheckpoint
    hashes: SqlHashStore | None = None
    """The subtree hashes the append read and wrote, for its receipt and proofs."""


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
        ConfigError: ``signer`` is not the log's current key (another log's,
            or one a rotation retired).
    """
    head = _lock_head(session)
    check_signer(session, signer)
    _current_row(session, signer)
    return _append_locked(session, head, event, [signer])


def _append_locked(
    session: Session, head: LogHead, event: Mapping[str, Any], signers: Sequence[NoteSigner]
) -> Appended:
    """Append under the head lock; the new checkpoint is signed by every one of ``signers``."""
    now = utcnow()
    body = dict(event)
    body.setdefault("time", int(now.timestamp()))
    data = canonical.dumps(body)
    store = SqlHashStore(session)
    hashed = merkle.leaf_hash(data)
    rows = merkle.new_subtrees(store, head.size, [hashed])
    store.remember(rows)
    item = body.get("item")
    entry = LogEntry(
        idx=head.size,
        data=data,
        leaf_hash=hashed,
        created_at=now,
        item_id=item if isinstance(item, str) else None,
    )
    session.add(entry)
    session.add_all(LogSubtree(level=level, idx=idx, hash=value) for level, idx, value in rows)
    head.size += 1
    session.flush()
    root = merkle.root(store, head.size)
    origin = signers[0].name
    text = Checkpoint(origin=origin, size=head.size, root_hash=root).marshal()
    note = sign_note(text, signers).decode("utf-8")
    checkpoint = LogCheckpoint(size=head.size, root_hash=root, note=note, created_at=now)
    session.add(checkpoint)
    session.flush()
    return Appended(entry=entry, checkpoint=checkpoint, hashes=store)


def check_signer(session: Session, signer: NoteSigner) -> None:
    """Refuse to extend a log whose latest checkpoint another key signed.

    A replaced or mixed-up key file would otherwise start signing under a new
    identity, and clients that pinned the old one would see a broken log.
    While a transition checkpoint is the latest, both its keys pass, so the
    server starts with the key file from before or after a rotation; but
    :func:`append` refuses to sign with the retired one.

    Raises:
        ConfigError: the key file does not belong to this log, or holds a key
            a rotation retired.
    """
    latest = latest_checkpoint(session)
    if latest is None:
        return
    try:
        open_checkpoint(latest.note.encode("utf-8"), signer.verifier(), origin=signer.name)
    except VaultError:
        text = str(signer.verifier())
        if any(row.key == text for row in key_history(session)):
            _current_row(session, signer)  # raises: a retired key
        raise ConfigError(
            "the server key file does not belong to this database's log",
            hint="its latest checkpoint was signed by another key; "
            "point EVAULT_KEY_FILE at the key file this log was created with",
        ) from None


def key_history(session: Session) -> Sequence[LogKey]:
    """The log's keys, oldest first; empty until the first append records the first key."""
    return session.scalars(select(LogKey).order_by(LogKey.first_size, LogKey.id)).all()


def current_key(session: Session) -> str | None:
    """The verifier key of the log's current key, or ``None`` while the history is empty."""
    history = key_history(session)
    return history[-1].key if history else None


def _current_row(session: Session, signer: NoteSigner) -> LogKey:
    """The history row of ``signer``, which must be the current key; call it under the lock.

    An empty history (a log older than rotations, or a new one) gets its
    first row now: ``signer``, from size 0. :func:`check_signer` has shown
    that it signed the log's latest checkpoint, and before rotations one key
    signed every checkpoint.

    Raises:
        ConfigError: ``signer`` is a retired key, or not one of this log's.
    """
    history = key_history(session)
    text = str(signer.verifier())
    if not history:
        row = LogKey(key=text, first_size=0, created_at=utcnow())
        session.add(row)
        session.flush()
        return row
    current = history[-1]
    if current.last_size is not None:
        raise RuntimeError("internal error: the log's key history has no current key")
    if current.key == text:
        return current
    for row in history:
        if row.key == text:
            raise ConfigError(
                f"the key file holds a retired log key: a key rotation replaced it at "
                f"{row.last_size} entries, and it may not sign again",
                hint="finish the rotation: run `evault-server keys rotate --yes` again, which "
                "moves the new key file into place; or restore the key file of the current key",
            )
    raise ConfigError(
        "the server key file does not belong to this database's log",
        hint="its key is not in the log's key history; "
        "point EVAULT_KEY_FILE at the key file of the log's current key",
    )


def rotate_key(session: Session, old: NoteSigner, new: NoteSigner) -> Appended:
    """Hand the log over from ``old`` to ``new`` inside the caller's transaction.

    Under the write lock: appends the ``log.key_rotated`` entry naming both
    verifier keys, signs its checkpoint (the transition checkpoint) with both
    keys, retires ``old`` at that size and records ``new`` from it. Every
    later append must be signed by ``new``.

    Raises:
        ConfigError: ``old`` is not the log's current key.
    """
    if new.name != old.name or new.verifier() == old.verifier():
        raise RuntimeError("internal error: a new log key must be another key of the same name")
    head = _lock_head(session)
    check_signer(session, old)
    retiring = _current_row(session, old)
    # Spelled out: docs/protocol.md's table of events is checked against the sources.
    event = {
        "type": "log.key_rotated",
        "old_key": str(old.verifier()),
        "new_key": str(new.verifier()),
    }
    appended = _append_locked(session, head, event, [old, new])
    retiring.last_size = appended.checkpoint.size
    retiring.transition = appended.checkpoint.note
    session.add(
        LogKey(
            key=str(new.verifier()),
            first_size=appended.checkpoint.size,
            created_at=appended.checkpoint.created_at,
        )
    )
    session.flush()
    return appended


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


def consistency_proof(
    session: Session, old: int, new: int, hashes: SqlHashStore | None = None
) -> list[bytes]:
    """The consistency proof between the trees of ``old`` and ``new`` leaves.

    ``hashes`` is a store of this transaction to read through (an append's).

    Raises:
        FormatError: ``old`` is 0 or above ``new``, or ``new`` exceeds the log.
    """
    return merkle.consistency_proof(hashes or SqlHashStore(session), old, new)


def receipt(
    session: Session,
    index: int,
    checkpoint: LogCheckpoint | None = None,
    hashes: SqlHashStore | None = None,
) -> Receipt:
    """The C2SP tlog-proof that entry ``index`` is in ``checkpoint`` (default: the latest).

    ``hashes`` is a store of this transaction to read through (an append's).

    Raises:
        FormatError: the entry is not covered by the checkpoint.
    """
    if checkpoint is None:
        checkpoint = latest_checkpoint(session)
    if checkpoint is None:
        raise FormatError("the log is empty: no entry has a receipt")
    proof = merkle.inclusion_proof(hashes or SqlHashStore(session), index, checkpoint.size)
    return Receipt(index=index, proof=tuple(proof), checkpoint=checkpoint.note.encode("utf-8"))
