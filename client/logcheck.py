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
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from client.api import Api, ApiError
from vault import canonical
from vault.errors import FormatError, ProofError, SignatureError, VaultError
from vault.merkle import verify_consistency
from vault.note import Checkpoint, NoteVerifier, Receipt, open_checkpoint, verify_receipt

__all__ = ["LogCheck", "LoggedEntry", "RewrittenLogError"]

_MAX_CHECKPOINT = 64 * 1024


class RewrittenLogError(ProofError):
    """The server's log does not extend what this device saw before."""


def _rewritten(detail: str) -> RewrittenLogError:
    return RewrittenLogError(
        f"the server's audit log was rewritten or forked: {detail}",
        hint="do not trust this server; keep this device's state.json as evidence "
        "and tell your editor or the operator's auditors",
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


def _b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ProofError(f"the server sent a malformed {what}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError(f"the server sent a malformed {what}") from None


class LogCheck:
    """The pinned log key and the newest checkpoint verified so far."""

    def __init__(self, api: Api, key: str, checkpoint: str | None) -> None:
        self._api = api
        try:
            self.verifier = NoteVerifier.parse(key)
        except FormatError:
            raise VaultError("the pinned log key in state.json is damaged") from None
        self.note: bytes | None = None
        self.latest: Checkpoint | None = None
        if checkpoint is not None:
            note = checkpoint.encode("utf-8")
            self.latest = open_checkpoint(note, self.verifier)
            self.note = note

    def _proof(self, old: int, new: int) -> list[bytes]:
        answer = self._api.json("GET", "/log/proof/consistency", params={"old": old, "new": new})
        proof = answer.get("proof")
        if not isinstance(proof, list):
            raise ProofError("the server sent a malformed consistency proof")
        return [_b64(node, "consistency proof") for node in proof]

    def _consistent(self, older: Checkpoint, newer: Checkpoint) -> None:
        if older.size == 0:
            return
        if older.size == newer.size:
            if older.root_hash != newer.root_hash:
                raise _rewritten(f"two different trees of {older.size} entries")
            return
        try:
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

    def advance(self, note: bytes) -> Checkpoint:
        """Verify a signed checkpoint and its consistency with the newest one seen.

        A newer checkpoint becomes the newest; an older one must be a prefix.

        Raises:
            SignatureError, ProofError: not signed by the pinned key.
            RewrittenLogError: not consistent with what this device saw.
        """
        try:
            checkpoint = open_checkpoint(note, self.verifier)
        except SignatureError:
            raise SignatureError(
                "the server's checkpoint is not signed by the log key this device pinned",
                hint="this may not be your server, or its key was replaced; do not trust it",
            ) from None
        if self.latest is None:
            self.latest, self.note = checkpoint, note
            return checkpoint
        if checkpoint.size >= self.latest.size:
            self._consistent(self.latest, checkpoint)
            self.latest, self.note = checkpoint, note
        else:
            self._consistent(checkpoint, self.latest)
        return checkpoint

    def refresh(self) -> Checkpoint:
        """Fetch the server's latest checkpoint and :meth:`advance` to it."""
        note = self._api.get_bytes("/log/checkpoint", limit=_MAX_CHECKPOINT)
        before = self.latest
        checkpoint = self.advance(note)
        if before is not None and checkpoint.size < before.size:
            # Consistent, but older: a server hiding its newest entries.
            raise _rewritten(
                f"its latest checkpoint ({checkpoint.size} entries) is older than one this "
                f"device verified ({before.size} entries): the log was rolled back"
            )
        return checkpoint

    def entry(self, answer: dict[str, Any]) -> LoggedEntry:
        """Verify the ``entry`` and ``receipt`` of an API answer.

        Raises:
            ProofError: a missing or malformed receipt, a failed inclusion
                proof, a checkpoint not signed by the pinned key or not
                consistent with what this device saw.
        """
        data = _b64(answer.get("entry"), "log entry")
        text = answer.get("receipt")
        if not isinstance(text, str):
            raise ProofError("the server sent no receipt for this change")
        receipt_bytes = text.encode("utf-8")
        try:
            receipt = Receipt.parse(receipt_bytes)
        except FormatError as exc:
            raise ProofError(f"the server sent a malformed receipt: {exc.message}") from None
        try:
            checkpoint = verify_receipt(receipt, data, self.verifier)
        except FormatError as exc:
            raise ProofError(f"the server sent a malformed receipt: {exc.message}") from None
        except ProofError as exc:
            raise ProofError(
                f"the server's receipt does not prove the change was logged: {exc.message}",
                hint="do not trust this server",
            ) from None
        self.advance(receipt.checkpoint)
        try:
            event = canonical.loads(data)
        except FormatError:
            raise ProofError("the logged entry is not canonical JSON") from None
        if not isinstance(event, dict):
            raise ProofError("the logged entry is not an object")
        return LoggedEntry(
            index=receipt.index,
            data=data,
            event=event,
            receipt=receipt_bytes,
            checkpoint=checkpoint,
        )

    def checkpoint_text(self) -> str | None:
        """The newest verified checkpoint, to remember in the state file."""
        return None if self.note is None else self.note.decode("utf-8")
