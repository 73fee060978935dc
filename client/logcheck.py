"""Checking the server's audit log from the client (DESIGN.md, "Audit log").

The client pins the log's verifier key at registration and remembers the
newest checkpoint it verified. Every checkpoint it meets later (the latest
one, or the one inside a receipt) must be signed by the pinned key and be
consistent with the remembered one, by an RFC 9162 consistency proof the
server must supply. A log that was rewritten, forked or rolled back fails
here, and the user is told plainly.

Receipts (C2SP tlog-proof) come with the exact bytes of the entry they
prove; :meth:`LogCheck.entry` verifies the inclusion proof and then checks
the receipt's checkpoint like any other.

When the server rotates its log key (docs/protocol.md, "Log key rotation"),
a checkpoint comes signed by a key this device does not know. The client
then reads the server's key history (``GET /log/keys``) and follows it from
the pinned key (:mod:`client.handover`): each transition checkpoint must be
signed by both keys, must not be older than the newest checkpoint verified
and must extend it, and must end with the rotation entry naming exactly
those keys. Only then is the new key pinned; the old one stays as a retired
key, valid for the tree sizes it signed, so receipts it signed still verify.
Anything else is refused like a rewritten log, and nothing is re-pinned.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from client.api import Api, ApiError
from client.handover import (
    Listed,
    history_error,
    key_history,
    match_history,
    rotation_entry,
    server_b64,
)
from client.state import LogPin, RetiredKey
from vault import canonical
from vault.cosignature import Cosignature, verify_cosignatures
from vault.errors import FormatError, ProofError, SignatureError, VaultError
from vault.log_keys import (
    Handover,
    KeyChain,
    LogKey,
    open_with_keys,
    signed_by_unknown_key,
    verify_transition,
)
from vault.merkle import leaf_hash, verify_consistency, verify_inclusion
from vault.note import Checkpoint, Note, NoteVerifier, Receipt
from vault.peer_key import PeerVerifier

__all__ = [
    "LOG_SIZE_HEADER",
    "LogCheck",
    "LoggedEntry",
    "RewrittenLogError",
    "UnwitnessedLogError",
    "witness_wait",
]

LOG_SIZE_HEADER = "Evault-Log-Size"
"""Sent with a write: the size of the newest checkpoint verified, to be proved extended."""

_MAX_CHECKPOINT = 64 * 1024
_DO_NOT_TRUST = (
    "nothing was re-pinned; do not trust this server, keep this device's state.json as "
    "evidence and tell your editor or the operator's auditors"
)


class RewrittenLogError(ProofError):
    """The server's log does not extend what this device saw before."""


class UnwitnessedLogError(ProofError):
    """The server's log is not cosigned by enough of the witnesses this device pinned."""


def witness_wait() -> float:
    """Seconds to wait for the witnesses to cosign the newest checkpoint (``EVAULT_WITNESS_WAIT``).

    Servers ask their witnesses in the background, every 10 seconds by
    default, so a checkpoint a minute old is normally cosigned.
    """
    text = os.environ.get("EVAULT_WITNESS_WAIT", "")
    if text.isdigit() and int(text) <= 3600:
        return float(text)
    return 30.0


def _rewritten(detail: str) -> RewrittenLogError:
    return RewrittenLogError(
        f"the server's audit log was rewritten or forked: {detail}",
        hint="do not trust this server; keep this device's state.json as evidence "
        "and tell your editor or the operator's auditors",
    )


def _not_pinned(detail: str = "", *, key: str = "the log key this device pinned") -> SignatureError:
    return SignatureError(
        f"the server's checkpoint is not signed by {key}" + detail,
        hint="this may not be the server you meant, or its key was replaced; do not trust it",
    )


def _bad_handover(exc: VaultError) -> ProofError:
    kind = SignatureError if isinstance(exc, SignatureError) else ProofError
    return kind(
        f"the server's handover from the log key this device pinned does not verify: {exc.message}",
        hint=_DO_NOT_TRUST,
    )


@dataclass(frozen=True, kw_only=True)
class LoggedEntry:
    """A verified log entry: its index, exact bytes, decoded event and receipt."""

    index: int
    data: bytes
    event: dict[str, Any]
    receipt: bytes
    checkpoint: Checkpoint

    def expect(self, fields: dict[str, object]) -> None:
        """Check that the entry records exactly ``fields`` (and the server's ``time``).

        Raises:
            ProofError: a field differs, is missing or is extra.
        """
        extra = set(self.event) - set(fields) - {"time"}
        wrong = [key for key, value in fields.items() if self.event.get(key) != value]
        if wrong or extra or not isinstance(self.event.get("time"), int):
            what = (wrong or sorted(extra) or ["time"])[0]
            raise ProofError(
                f"the server logged something other than this change ({what})",
                hint="do not trust this server",
            )


@dataclass(frozen=True)
class _Given:
    """A consistency proof sent with a write's answer, not verified yet."""

    old: int
    new: int
    proof: tuple[bytes, ...]


def _given(value: object) -> _Given | None:
    """The ``consistency`` of an answer (absent from servers that do not send it).

    Raises:
        ProofError: malformed.
    """
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"old", "new", "proof"}
        or not all(type(value[k]) is int for k in ("old", "new"))
        or not isinstance(value["proof"], list)
    ):
        raise ProofError("the server sent a malformed consistency proof")
    proof = tuple(server_b64(node, "consistency proof") for node in value["proof"])
    return _Given(old=value["old"], new=value["new"], proof=proof)


class LogCheck:
    """The pinned log key, the keys it replaced, and the newest checkpoint verified so far.

    ``follow_rotations``: follow the server's key history when a checkpoint
    is signed by a key this device does not know (a registered device);
    without it such a checkpoint is refused at once (a registration, which
    has just pinned the key the server shows).
    """

    def __init__(
        self,
        api: Api,
        key: str,
        checkpoint: str | None,
        retired: Sequence[RetiredKey] = (),
        *,
        follow_rotations: bool = False,
        witnesses: Sequence[str] = (),
        quorum: int = 1,
    ) -> None:
        self._api = api
        self._follow = follow_rotations
        try:
            self.witnesses = tuple(PeerVerifier.parse(w) for w in witnesses)
        except FormatError:
            raise VaultError("a pinned witness key in state.json is damaged") from None
        self.quorum = quorum
        self.cosigned: list[Cosignature] = []
        """The pinned witnesses' cosignatures on the newest checkpoint witnessed by this command."""
        self.cosigned_note: bytes | None = None
        """That checkpoint, with the cosignatures."""
        self.key_words = "the log key this device pinned"
        """How messages name the key checkpoints must be signed by."""
        # Files added side by side verify their receipts on their own threads.
        self._lock = threading.RLock()
        self._history: list[Listed] | None = None
        try:
            self.verifier = NoteVerifier.parse(key)
            self._retired = [
                LogKey(
                    verifier=NoteVerifier.parse(r.key),
                    first_size=r.first_size,
                    last_size=r.last_size,
                )
                for r in retired
            ]
        except FormatError:
            raise VaultError("the pinned log key in state.json is damaged") from None
        self.retired = tuple(retired)
        self.followed: list[Handover] = []
        """The handovers followed (and pinned) by this command, to tell the user."""
        self.note: bytes | None = None
        self.latest: Checkpoint | None = None
        if checkpoint is not None:
            note = checkpoint.encode("utf-8")
            self.latest, _ = open_with_keys(note, self.keys(), self.verifier.name)
            self.note = note

    def keys(self) -> list[LogKey]:
        """The retired keys and the pinned one, each with the tree sizes it signs."""
        first = self._retired[-1].last_size if self._retired else 0
        return [*self._retired, LogKey(verifier=self.verifier, first_size=first or 0)]

    def pin(self) -> LogPin:
        """What to remember in the state file: keys and the newest checkpoint."""
        return LogPin(
            key=str(self.verifier),
            checkpoint=self.checkpoint_text(),
            retired=self.retired,
            witnesses=tuple(str(w) for w in self.witnesses),
            quorum=self.quorum,
        )

    # -- checkpoints -----------------------------------------------------------

    def _proof(self, old: int, new: int) -> list[bytes]:
        answer = self._api.json("GET", "/log/proof/consistency", params={"old": old, "new": new})
        proof = answer.get("proof")
        if not isinstance(proof, list):
            raise ProofError("the server sent a malformed consistency proof")
        return [server_b64(node, "consistency proof") for node in proof]

    def _consistent(
        self, older: Checkpoint, newer: Checkpoint, given: _Given | None = None
    ) -> None:
        """Check that ``newer`` extends ``older``, by ``given`` if it is the proof between
        their sizes (one the server sent with a write), else by one asked for now."""
        if older.size == 0:
            return
        if older.size == newer.size:
            if older.root_hash != newer.root_hash:
                raise _rewritten(f"two different trees of {older.size} entries")
            return
        try:
            if given is not None and (given.old, given.new) == (older.size, newer.size):
                proof = list(given.proof)
            else:
                proof = self._proof(older.size, newer.size)
            verify_consistency(older.size, newer.size, older.root_hash, newer.root_hash, proof)
        except ApiError as exc:
            if exc.status == 0 or exc.status >= 500:
                raise  # the network or the server failed: not evidence of a rewrite
            raise _rewritten(f"no consistency proof from {older.size} to {newer.size}") from exc
        except ProofError as exc:
            raise _rewritten(
                f"the tree of {newer.size} entries does not extend the one of {older.size}"
            ) from exc

    def _open(self, note: bytes) -> Checkpoint:
        """Verify a checkpoint's signature, following a key handover if there is one.

        Raises:
            NoteError: malformed.
            SignatureError: not signed by the pinned key (or a retired one, for
                the sizes it signed), and no valid handover leads to its key.
            ProofError, RewrittenLogError: a handover that does not verify.
        """
        keys = self.keys()
        known = {(k.verifier.name, k.verifier.key_id) for k in keys}
        signed = {(s.name, s.key_id) for s in Note.parse(note).signatures}
        if not known & signed:
            if not self._follow:
                raise _not_pinned(key=self.key_words)
            self._follow_history(note, required=True)
        elif self._follow and signed_by_unknown_key(note, [k.verifier for k in keys]):
            # Signed by the pinned key and another of its name: a transition.
            self._follow_history(note, required=False)
        try:
            checkpoint, _ = open_with_keys(note, self.keys(), self.verifier.name)
        except SignatureError as exc:
            raise _not_pinned(f": {exc.message}", key=self.key_words) from None
        return checkpoint

    @contextlib.contextmanager
    def held(self) -> Iterator[int | None]:
        """Hold the checks for a write and its receipt; the size of the newest checkpoint.

        A write that sends this size (``Evault-Log-Size``) is answered with the
        consistency proof from it, which :meth:`entry` then uses instead of
        asking for one: while held, no other thread moves the newest checkpoint.
        """
        with self._lock:
            yield None if self.latest is None else self.latest.size

    def advance(self, note: bytes, given: _Given | None = None) -> Checkpoint:
        """Verify a signed checkpoint and its consistency with the newest one seen.

        A newer checkpoint becomes the newest; an older one must be a prefix.
        ``given`` is a consistency proof the server sent along, used if it is
        the one needed.

        Raises:
            SignatureError, ProofError: not signed by the pinned key.
            RewrittenLogError: not consistent with what this device saw.
        """
        with self._lock:
            checkpoint = self._open(note)
            if self.latest is None:
                self.latest, self.note = checkpoint, note
                return checkpoint
            if checkpoint.size >= self.latest.size:
                self._consistent(self.latest, checkpoint, given)
                self.latest, self.note = checkpoint, note
            else:
                self._consistent(checkpoint, self.latest)
            return checkpoint

    def refresh(self) -> Checkpoint:
        """Fetch the server's latest checkpoint and :meth:`advance` to it.

        The same bytes as the newest checkpoint verified need no second check
        of the log's signature: one request, no proof to fetch. With pinned
        witnesses, the newest checkpoint verified must also be cosigned by at
        least ``quorum`` of them (:meth:`witnessed`), whatever the bytes.

        Raises:
            SignatureError, ProofError: not signed by the pinned key.
            RewrittenLogError: not consistent with what this device saw, or
                older than it (a rolled-back log).
            UnwitnessedLogError: not cosigned by enough pinned witnesses.
        """
        with self._lock:
            note = self._api.get_bytes("/log/checkpoint", limit=_MAX_CHECKPOINT)
            if self.latest is not None and self.note == note:
                checkpoint = self.latest
            else:
                before = self.latest
                checkpoint = self.advance(note)
                if before is not None and checkpoint.size < before.size:
                    # Consistent, but older: a server hiding its newest entries.
                    raise _rewritten(
                        f"its latest checkpoint ({checkpoint.size} entries) is older than one "
                        f"this device verified ({before.size} entries): the log was rolled back"
                    )
            if self.witnesses:
                self.witnessed(note, wait=witness_wait())
            return checkpoint

    def cosignatures(self, note: bytes) -> list[Cosignature]:
        """The valid cosignatures of pinned witnesses on a signed checkpoint.

        Raises:
            UnwitnessedLogError: a line under a pinned witness's name and key ID does not verify.
        """
        try:
            return verify_cosignatures(note, self.witnesses)
        except (SignatureError, FormatError) as exc:
            raise UnwitnessedLogError(
                f"the server's checkpoint carries a forged cosignature: {exc.message}",
                hint="do not trust this server; keep this device's state.json as evidence",
            ) from None

    def witnessed(self, note: bytes, *, wait: float) -> list[Cosignature]:
        """Require the newest verified tree to be cosigned by ``quorum`` pinned witnesses.

        ``note`` is the checkpoint just fetched. If it lacks cosignatures, the
        newest checkpoint with enough of them is fetched (``?cosignatures=``)
        until it covers the newest tree this device verified, for up to
        ``wait`` seconds; every checkpoint met is checked for consistency.

        Raises:
            UnwitnessedLogError: no such checkpoint in time: the server may be
                showing this device a history its witnesses have not seen.
            RewrittenLogError: a cosigned checkpoint not consistent with this device's view.
        """
        if self.latest is None:
            raise AssertionError("internal error: nothing verified to witness")
        target = self.latest.size
        deadline = time.monotonic() + wait
        best = (0, 0)
        asked = False
        while True:
            found = self.cosignatures(note)
            size = Checkpoint.parse(Note.parse(note).text).size
            if len(found) >= self.quorum and size >= target:
                self.cosigned, self.cosigned_note = found, note
                return found
            best = max(best, (size, len(found)) if found else best)
            # The newest cosigned checkpoint is always asked for once, then until the deadline.
            if asked:
                if time.monotonic() >= deadline:
                    raise self._unwitnessed(target, best)
                time.sleep(1.0)
            asked = True
            try:
                note = self._api.get_bytes(
                    "/log/checkpoint",
                    params={"cosignatures": self.quorum},
                    limit=_MAX_CHECKPOINT,
                )
            except ApiError as exc:
                if exc.status != 404:
                    raise
                continue
            self.advance(note)

    def _unwitnessed(self, target: int, best: tuple[int, int]) -> UnwitnessedLogError:
        seen = (
            f"the newest cosigned checkpoint has {best[0]} entries ({best[1]} of them)"
            if best[1]
            else "no checkpoint carries their cosignatures"
        )
        return UnwitnessedLogError(
            f"the server's log of {target} entries is not cosigned by {self.quorum} of the "
            f"{len(self.witnesses)} witnesses this device pinned; {seen}",
            hint="the server may be showing this device a history its witnesses have not seen "
            "(a split view): do not trust it. Try again in a minute; if it persists, keep "
            "state.json as evidence and tell your editor or the operator's auditors",
        )

    def entry(self, answer: dict[str, Any]) -> LoggedEntry:
        """Verify the ``entry`` and ``receipt`` of an API answer.

        Raises:
            ProofError: a missing or malformed receipt, a failed inclusion
                proof, a checkpoint not signed by the pinned key or not
                consistent with what this device saw.
        """
        data = server_b64(answer.get("entry"), "log entry")
        text = answer.get("receipt")
        if not isinstance(text, str):
            raise ProofError("the server sent no receipt for this change")
        receipt_bytes = text.encode("utf-8")
        checkpoint = self._verify_receipt(receipt_bytes, data, _given(answer.get("consistency")))
        try:
            event = canonical.loads(data)
        except FormatError:
            raise ProofError("the logged entry is not canonical JSON") from None
        if not isinstance(event, dict):
            raise ProofError("the logged entry is not an object")
        return LoggedEntry(
            index=Receipt.parse(receipt_bytes).index,
            data=data,
            event=event,
            receipt=receipt_bytes,
            checkpoint=checkpoint,
        )

    def _verify_receipt(
        self, receipt_bytes: bytes, data: bytes, given: _Given | None = None
    ) -> Checkpoint:
        with self._lock:
            try:
                receipt = Receipt.parse(receipt_bytes)
                checkpoint = self._open(receipt.checkpoint)
            except FormatError as exc:
                raise ProofError(f"the server sent a malformed receipt: {exc.message}") from None
            try:
                verify_inclusion(
                    leaf_hash(data),
                    receipt.index,
                    checkpoint.size,
                    receipt.proof,
                    checkpoint.root_hash,
                )
            except ProofError as exc:
                raise ProofError(
                    f"the server's receipt does not prove the change was logged: {exc.message}",
                    hint="do not trust this server",
                ) from None
            self.advance(receipt.checkpoint, given)
            return checkpoint

    def verify_kept(self, receipt: bytes, data: bytes) -> Checkpoint:
        """Verify a receipt this device kept, perhaps signed by a key since retired.

        Its checkpoint must be consistent with the newest one verified.

        Raises:
            ProofError: as :meth:`entry`.
        """
        return self._verify_receipt(receipt, data)

    def checkpoint_text(self) -> str | None:
        """The newest verified checkpoint, to remember in the state file."""
        return None if self.note is None else self.note.decode("utf-8")

    # -- key rotations -----------------------------------------------------------

    def _listed(self, *, required: bool) -> list[Listed] | None:
        if self._history is None:
            try:
                self._history = key_history(self._api)
            except ApiError as exc:
                if not required:
                    return None
                if exc.status == 0 or exc.status >= 500:
                    raise
                raise _not_pinned(
                    ", and the server shows no key history", key=self.key_words
                ) from None
        return self._history

    def _handover(self, old: Listed, new: Listed) -> Handover:
        """Verify one handover of the server's key history, with its rotation entry."""
        if old.transition is None or old.last_size is None or new.first_size != old.last_size:
            raise ProofError("the server's key history is not a chain of handovers")
        entry, proof = rotation_entry(self._api, old.last_size)
        handover = verify_transition(old.transition, old.key, new.key, entry=entry, inclusion=proof)
        if handover.size != old.last_size:
            raise ProofError("the transition checkpoint is not of the size the key history says")
        return handover

    def _follow_history(self, note: bytes, *, required: bool) -> None:
        """Follow the server's key history from the pinned key; pin its last key.

        Without ``required`` (the checkpoint verified under the pinned key),
        a history that shows no handover from the pinned key leaves it pinned.

        Raises:
            SignatureError, ProofError, RewrittenLogError: see :meth:`_open`.
        """
        history = self._listed(required=required)
        if history is None:
            return
        pinned = next((i for i, row in enumerate(history) if row.key == self.verifier), None)
        if pinned is None or pinned == len(history) - 1:
            if required:
                raise _not_pinned(
                    ", and the server shows no handover from it to another key", key=self.key_words
                )
            return
        # The range a retired key signed starts where this device trusted it from, never
        # where the server says: a made-up first size would shrink it or corrupt the state.
        older, first = self.latest, self.keys()[-1].first_size
        handovers: list[Handover] = []
        retired: list[RetiredKey] = []
        for old, new in itertools.pairwise(history[pinned:]):
            try:
                handover = self._handover(old, new)
            except (ProofError, FormatError) as exc:
                raise _bad_handover(exc) from None
            if older is not None:
                if handover.size < older.size:
                    raise _rewritten(
                        f"the log key was handed over at {handover.size} entries, before the "
                        f"{older.size} entries this device verified"
                    )
                self._consistent(older, handover.checkpoint)
            retired.append(
                RetiredKey(
                    key=str(old.key),
                    first_size=first,
                    last_size=handover.size,
                    transition=handover.note.decode("utf-8"),
                )
            )
            first, older = handover.size, handover.checkpoint
            handovers.append(handover)
        keys = [
            *self._retired,
            *(
                LogKey(
                    verifier=NoteVerifier.parse(r.key),
                    first_size=r.first_size,
                    last_size=r.last_size,
                )
                for r in retired
            ),
            LogKey(verifier=handovers[-1].new, first_size=first),
        ]
        try:
            open_with_keys(note, keys, self.verifier.name)
        except VaultError as exc:
            raise _not_pinned(
                f", nor by the key the server handed over to: {exc.message}", key=self.key_words
            ) from None
        # Everything verified: pin the new key, keep the old ones as retired.
        self._retired = keys[:-1]
        self.retired = (*self.retired, *retired)
        self.verifier = handovers[-1].new
        self.latest, self.note = handovers[-1].checkpoint, handovers[-1].note
        self.followed.extend(handovers)

    def check_history(
        self, checkpoint: Checkpoint, rotations: Sequence[tuple[int, bytes, bytes]]
    ) -> int:
        """Check the server's key history against the whole log, read entry by entry.

        Args:
            checkpoint: the verified checkpoint the log was read up to.
            rotations: the ``log.key_rotated`` entries met while reading, as
                (index, entry bytes, root hash of the tree ending with it).

        Every handover up to ``checkpoint`` must be one of these entries, with
        its transition checkpoint signed by both keys and of that tree's root;
        there must be no other rotation entry; the chain must start at size 0,
        end with the pinned key and include every key this device retired.
        Returns the number of rotations.

        Raises:
            ProofError: the history and the log do not agree.
        """
        if not rotations and not self._retired:
            return 0
        history = self._listed(required=True)
        if history is None:
            raise AssertionError("internal error: a required key history is missing")
        try:
            return match_history(history, checkpoint, rotations, self.verifier, self._retired)
        except (ProofError, FormatError) as exc:
            raise history_error(exc.message) from None

    def package_chain(self, receipts: Sequence[bytes]) -> KeyChain | None:
        """The key chain an evidence package of ``receipts`` needs, or ``None``.

        ``None`` when the pinned key signed every receipt's checkpoint. Else
        the handovers from the oldest retired key that signed one, with
        consistency proofs from each such checkpoint to the transition that
        retired its key and between transitions, fetched and verified now.

        Raises:
            ProofError: a receipt, handover or proof does not verify.
        """
        keys = self.keys()
        origin = self.verifier.name
        retired_sizes: list[tuple[int, int]] = []
        for receipt in receipts:
            checkpoint, key = open_with_keys(Receipt.parse(receipt).checkpoint, keys, origin)
            if key.last_size is not None:
                retired_sizes.append((checkpoint.size, key.last_size))
        if not retired_sizes:
            return None
        oldest = min(last for _, last in retired_sizes)
        start = next(i for i, key in enumerate(self._retired) if key.last_size == oldest)
        handovers = []
        for i in range(start, len(self._retired)):
            old, new = self._retired[i].verifier, keys[i + 1].verifier
            size = self.retired[i].last_size
            entry, proof = rotation_entry(self._api, size)
            note = self.retired[i].transition.encode("utf-8")
            handovers.append(verify_transition(note, old, new, entry=entry, inclusion=proof))
        pairs = {(a.size, b.size) for a, b in itertools.pairwise(handovers)}
        pairs |= {(size, last) for size, last in retired_sizes if size < last}
        links = {(old, new): self._proof(old, new) for old, new in sorted(pairs)}
        return KeyChain(handovers[0].old, handovers, links)
