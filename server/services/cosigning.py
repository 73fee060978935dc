"""This server as a log: its active peers, as witnesses, cosign its checkpoints (§15).

:func:`submit` sends the log's latest checkpoint to every ``active`` peer
that has not cosigned it yet (tlog-witness add-checkpoint, with the
consistency proof from the size that peer last cosigned) and stores the
cosignatures that verify under the peer's pinned peer key. Only the
newest checkpoint is sent, so any number of appends between two rounds
cost one request per witness; nothing of this runs on the request path of
an upload. :class:`CosignerThread` runs rounds in the background of
``evault-server run`` and ``evault-server worker`` every
``EVAULT_WITNESS_INTERVAL`` seconds.

``GET /api/v1/log/checkpoint`` then serves the checkpoint with the stored
cosignature lines after the log's own signature (:func:`cosigned_note`).

A peer that answers 409 has cosigned another size: the round is tried once
more from that size. A witness that holds a larger tree than this log
(a database restored from a backup, or a fork) is reported in the
server's own log (the operator's), and nothing is sent to it until this
log is larger.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.db import transaction
from server.models import LogCheckpoint, LogCosignature, Peer
from server.services import log
from vault._threads import signals_to_main_thread
from vault.cosignature import add_checkpoint_body, verify_cosignatures
from vault.errors import NoteError, SignatureError
from vault.note import Note
from vault.peer_key import PeerVerifier

__all__ = [
    "ADD_CHECKPOINT_PATH",
    "CosignerThread",
    "Round",
    "checkpoint_with_cosignatures",
    "cosigned_note",
    "submit",
]

ADD_CHECKPOINT_PATH = "/api/v1/witness/add-checkpoint"
TIMEOUT = 15
"""Seconds to connect, and between bytes of a witness's answer."""
_MAX_ANSWER = 16 * 1024
_log = logging.getLogger(__name__)


@dataclasses.dataclass
class Round:
    """What one round did: witnesses asked, cosignatures stored, refusals and failures."""

    asked: int = 0
    cosigned: int = 0
    refused: int = 0
    failed: int = 0
    messages: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _Witness:
    url: str
    key: PeerVerifier
    cosigned: int


def _cosigned_size(session: Session, witness_key: str) -> int:
    size = session.scalar(
        select(func.max(LogCosignature.size)).where(LogCosignature.witness_key == witness_key)
    )
    return int(size or 0)


def _body(session: Session, old: int, checkpoint: LogCheckpoint) -> bytes:
    proof = (
        log.consistency_proof(session, old, checkpoint.size) if 0 < old < checkpoint.size else []
    )
    return add_checkpoint_body(old, proof, checkpoint.note.encode("utf-8"))


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    with requests.Session() as http:
        http.trust_env = False
        response = http.post(
            url + ADD_CHECKPOINT_PATH,
            data=body,
            headers={"Content-Type": "text/plain"},
            timeout=TIMEOUT,
            allow_redirects=False,
            stream=True,
        )
        with response:
            data = b""
            for chunk in response.iter_content(4096):
                data += chunk
                if len(data) > _MAX_ANSWER:
                    break
    return response.status_code, data[:_MAX_ANSWER]


def submit(sessions: sessionmaker[Session], *, now: dt.datetime) -> Round:
    """One round: the latest checkpoint to every active peer that has not cosigned it."""
    result = Round()
    with transaction(sessions) as session:
        latest = log.latest_checkpoint(session)
        if latest is None:
            return result
        size = latest.size
        witnesses = [
            _Witness(
                url=row.url,
                key=PeerVerifier.parse(row.peer_key),
                cosigned=_cosigned_size(session, row.peer_key),
            )
            for row in session.scalars(select(Peer).where(Peer.state == "active").order_by(Peer.id))
        ]
        witnesses = [w for w in witnesses if w.cosigned != size]
        bodies = {
            w.cosigned: _body(session, w.cosigned, latest) for w in witnesses if w.cosigned < size
        }
        note = latest.note.encode("utf-8")
    for witness in witnesses:
        if witness.cosigned > size:
            result.refused += 1
            result.messages.append(
                f"{witness.url}: cosigned {witness.cosigned} entries of this log, which has {size}"
            )
            continue
        result.asked += 1
        _ask(sessions, witness, witness.cosigned, bodies[witness.cosigned], note, size, now, result)
    for message in result.messages:
        _log.warning("witnesses: %s", message)
    return result


def _ask(
    sessions: sessionmaker[Session],
    witness: _Witness,
    old: int,
    body: bytes,
    note: bytes,
    size: int,
    now: dt.datetime,
    result: Round,
    *,
    retry: bool = True,
) -> None:
    try:
        status, data = _post(witness.url, body)
    except requests.RequestException as exc:
        result.failed += 1
        result.messages.append(f"{witness.url}: unreachable ({type(exc).__name__})")
        return
    if status == 409 and retry:
        text = data.decode("ascii", "replace").strip()
        recorded = int(text) if text.isdigit() and len(text) < 21 else -1
        if 0 <= recorded <= size and recorded != old:
            with transaction(sessions) as session:
                checkpoint = session.get(LogCheckpoint, size)
                if checkpoint is None:
                    raise RuntimeError("internal error: the submitted checkpoint vanished")
                again = _body(session, recorded, checkpoint)
            _ask(sessions, witness, recorded, again, note, size, now, result, retry=False)
            return
        result.refused += 1
        result.messages.append(
            f"{witness.url}: cosigned {text[:24]!r} entries of this log, which has {size}"
        )
        return
    if status != 200:
        reason = data.decode("utf-8", "replace").strip().splitlines()[:1]
        if status == 404:
            # Not (yet) a peer on its side: nothing to report at every round.
            _log.info("witnesses: %s does not witness this log (404)", witness.url)
        else:
            result.refused += 1
            result.messages.append(
                f"{witness.url}: refused the checkpoint of {size} entries "
                f"(HTTP {status}: {(reason or [''])[0][:200]})"
            )
        return
    try:
        found = verify_cosignatures(note + data, [witness.key])
    except (NoteError, SignatureError) as exc:
        result.failed += 1
        result.messages.append(f"{witness.url}: answered no valid cosignature ({exc.message})")
        return
    if not found:
        result.failed += 1
        result.messages.append(f"{witness.url}: answered no cosignature by its pinned peer key")
        return
    with transaction(sessions) as session:
        key = str(witness.key)
        if session.get(LogCosignature, (size, key)) is None:
            session.add(
                LogCosignature(
                    size=size,
                    witness_key=key,
                    line=found[0].line,
                    timestamp=found[0].timestamp,
                    created_at=now,
                )
            )
    result.cosigned += 1


def cosigned_note(session: Session, checkpoint: LogCheckpoint) -> str:
    """The checkpoint as the log signed it, followed by its witnesses' cosignature lines."""
    lines = session.scalars(
        select(LogCosignature.line)
        .where(LogCosignature.size == checkpoint.size)
        .order_by(LogCosignature.witness_key)
    ).all()
    room = 100 - len(Note.parse(checkpoint.note.encode("utf-8")).signatures)
    return checkpoint.note + "".join(lines[:room])


def checkpoint_with_cosignatures(session: Session, count: int) -> LogCheckpoint | None:
    """The newest checkpoint with at least ``count`` cosignatures, or ``None``."""
    size = session.scalar(
        select(LogCosignature.size)
        .group_by(LogCosignature.size)
        .having(func.count() >= count)
        .order_by(LogCosignature.size.desc())
        .limit(1)
    )
    return None if size is None else session.get(LogCheckpoint, size)


class CosignerThread:
    """Rounds of :func:`submit` every ``interval`` seconds in a daemon thread."""

    def __init__(self, sessions: sessionmaker[Session], interval: float) -> None:
        self._sessions = sessions
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cosigner", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                submit(self._sessions, now=dt.datetime.now(dt.UTC))
            except Exception as exc:  # noqa: BLE001 - one bad round must not end the thread
                _log.warning("witnesses: round failed (%s)", type(exc).__name__)
            self._stop.wait(self._interval)

    def start(self) -> None:
        with signals_to_main_thread():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
