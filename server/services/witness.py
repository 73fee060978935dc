"""This server as a witness of its peers' logs (C2SP tlog-witness, "add-checkpoint").

:func:`add_checkpoint` takes a request body, checks it in the order of
tlog-witness.md and, only when the checkpoint is consistent with the last
one this server cosigned for that log, cosigns it (tlog-cosignature,
Ed25519 cosignature/v1, with the peer key) and records it. The logs it
witnesses are those of its ``active`` peers, each known by the origin of
its pinned log key.

The check of the old size and the update of the record are atomic: the
witnessed log's row is read ``FOR UPDATE`` on PostgreSQL, and on SQLite
after taking the database write lock, as the audit log does.

A checkpoint validly signed by the log that does not extend what this
server cosigned (same size and another root, a failed consistency proof,
or a smaller tree) is refused and recorded as ``witness.refused`` in this
server's audit log: the log key signed it, so it is evidence of a fork.
Successful cosignatures are not logged there, or two servers witnessing
each other would never stop appending.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.db import is_sqlite
from server.models import LogHead, Peer, WitnessedLog
from server.ratelimit import Bucket, RateLimiter
from server.services import log
from vault._base64 import b64encode
from vault.cosignature import cosign, parse_add_checkpoint
from vault.errors import FormatError, NoteError, ProofError, SignatureError
from vault.merkle import EMPTY_ROOT, verify_consistency
from vault.note import Checkpoint, Note, NoteSigner, NoteVerifier, open_note
from vault.peer_key import PeerSigner

__all__ = ["Outcome", "add_checkpoint", "origin_sha256", "refusal_limiter", "witnessed_checkpoint"]

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """The answer to an add-checkpoint request: status, body and content type."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def refusal_limiter() -> RateLimiter:
    """How fast refused checkpoints are written to the audit log: per log, then overall."""
    return RateLimiter(
        per_key=Bucket(burst=10, per_second=1 / 6), overall=Bucket(burst=100, per_second=20)
    )


def origin_sha256(origin: str) -> str:
    """The origin hash of tlog-witness.md's monitoring path: lower-case hex SHA-256."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def _log_key(session: Session, origin: str, own: str) -> NoteVerifier | None:
    """The pinned log key of the one active peer whose log has this origin.

    None when no peer's log has it, or it is ambiguous: this server's own
    origin, or that of two peers (a witness keeps one state per origin).
    """
    if origin == own:
        return None
    found = [
        verifier
        for verifier in (
            NoteVerifier.parse(row.log_key)
            for row in session.scalars(select(Peer).where(Peer.state == "active"))
        )
        if verifier.name == origin
    ]
    return found[0] if len(found) == 1 else None


def _lock(session: Session, origin: str) -> WitnessedLog | None:
    if is_sqlite(session):
        # SQLite's write lock now, so no other request reads the row until this one commits.
        session.execute(update(LogHead).where(LogHead.id == 1).values(size=LogHead.size))
    return session.scalars(
        select(WitnessedLog).where(WitnessedLog.origin == origin).with_for_update()
    ).one_or_none()


def _error(status: int, message: str) -> Outcome:
    return Outcome(status=status, body=message + "\n")


def add_checkpoint(
    session: Session,
    body: bytes,
    *,
    witness: PeerSigner,
    log_signer: NoteSigner,
    limiter: RateLimiter,
    now: dt.datetime,
) -> Outcome:
    """Check, cosign and record a checkpoint; commits the session.

    Statuses as tlog-witness.md: 400 malformed or an old size above the
    checkpoint's, 403 not validly signed by the log's pinned key, 404 not a
    log this server witnesses, 409 another old size than the one recorded
    (the body is the recorded size), 422 not consistent, 200 the cosignature.
    """
    try:
        return _add_checkpoint(
            session, body, witness=witness, log_signer=log_signer, limiter=limiter, now=now
        )
    finally:
        if session.in_transaction():
            session.rollback()  # a refusal: let go of the write lock at once


def _add_checkpoint(
    session: Session,
    body: bytes,
    *,
    witness: PeerSigner,
    log_signer: NoteSigner,
    limiter: RateLimiter,
    now: dt.datetime,
) -> Outcome:
    try:
        request = parse_add_checkpoint(body)
        checkpoint = Checkpoint.parse(Note.parse(request.checkpoint).text)
    except NoteError as exc:
        return _error(400, exc.message)
    verifier = _log_key(session, checkpoint.origin, log_signer.name)
    if verifier is None:
        return _error(
            404, "unknown log: this server witnesses the logs of its active peers, by origin"
        )
    try:
        open_note(request.checkpoint, [verifier])
    except (SignatureError, NoteError):
        return _error(403, "the checkpoint is not signed by the log's pinned key")
    old, size = request.old_size, checkpoint.size
    row = _lock(session, checkpoint.origin)
    recorded = 0 if row is None else row.size
    if old > size:
        if old == recorded:
            return _refused(session, log_signer, limiter, "rollback", checkpoint, row)
        return _error(400, "the old size is above the checkpoint's size")
    if old != recorded:
        session.rollback()
        return Outcome(status=409, body=f"{recorded}\n", content_type="text/x.tlog.size")
    if size == 0 and checkpoint.root_hash != EMPTY_ROOT:
        return _error(422, "a checkpoint of size zero must have the empty tree's root")
    if old == 0:
        if request.proof:
            return _error(422, "a consistency proof from size zero must be empty")
    elif row is None:
        raise AssertionError("internal error: a recorded size without a row")
    elif old == size:
        if checkpoint.root_hash != row.root_hash:
            return _refused(session, log_signer, limiter, "fork", checkpoint, row)
        if request.proof:
            return _error(422, "a consistency proof between trees of one size must be empty")
    else:
        try:
            verify_consistency(old, size, row.root_hash, checkpoint.root_hash, list(request.proof))
        except (ProofError, FormatError):
            return _refused(session, log_signer, limiter, "inconsistent", checkpoint, row)
    line = cosign(checkpoint.marshal(), witness, int(now.timestamp()))
    note = request.checkpoint.decode("utf-8") + line
    if row is None:
        session.add(
            WitnessedLog(
                origin=checkpoint.origin,
                origin_sha256=origin_sha256(checkpoint.origin),
                log_key=str(verifier),
                size=size,
                root_hash=checkpoint.root_hash,
                note=note,
                updated_at=now,
            )
        )
    else:
        row.size, row.root_hash, row.note, row.updated_at = size, checkpoint.root_hash, note, now
        row.log_key = str(verifier)
    try:
        session.commit()
    except IntegrityError:
        # Another request recorded this log's first checkpoint at the same moment.
        session.rollback()
        row = session.scalars(
            select(WitnessedLog).where(WitnessedLog.origin == checkpoint.origin)
        ).one()
        return Outcome(status=409, body=f"{row.size}\n", content_type="text/x.tlog.size")
    return Outcome(status=200, body=line)


def _refused(
    session: Session,
    log_signer: NoteSigner,
    limiter: RateLimiter,
    reason: str,
    checkpoint: Checkpoint,
    row: WitnessedLog | None,
) -> Outcome:
    """Refuse a checkpoint the log signed that does not extend the cosigned one; log it."""
    cosigned = 0 if row is None else row.size
    cosigned_root = EMPTY_ROOT if row is None else row.root_hash
    session.rollback()
    _log.warning(
        "witness: refused a checkpoint of %s (%s): %d entries, cosigned %d",
        checkpoint.origin,
        reason,
        checkpoint.size,
        cosigned,
    )
    if not limiter.acquire(f"witness:{checkpoint.origin}", overall_too=True):
        event = {
            "type": "witness.refused",
            "origin": checkpoint.origin,
            "reason": reason,
            "size": checkpoint.size,
            "root": b64encode(checkpoint.root_hash),
            "cosigned_size": cosigned,
            "cosigned_root": b64encode(cosigned_root),
        }
        log.append(session, event, log_signer)
        session.commit()
    if reason == "rollback":
        return _error(400, "the checkpoint is older than the one this witness cosigned")
    return _error(
        422, f"the checkpoint is not consistent with the one this witness cosigned ({reason})"
    )


def witnessed_checkpoint(session: Session, origin_hash: str) -> str | None:
    """The latest checkpoint this server cosigned for the log of that origin hash, or ``None``."""
    return session.scalars(
        select(WitnessedLog.note).where(WitnessedLog.origin_sha256 == origin_hash)
    ).one_or_none()
