"""Reading the whole audit log: ``log verify --full``, ``log show``, receipts for export.

The client fetches every entry up to the latest checkpoint it verified,
recomputes the RFC 6962 root from the entries' bytes and compares it with
the checkpoint's: then every entry it shows is one the server signed and
can never take back. Only then does it pick out the events about this
account, its vault and its items. If the log holds key rotations (or this
device retired a key), the server's key history must match them
(:meth:`client.logcheck.LogCheck.check_history`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from client.context import Client
from vault import canonical
from vault.errors import FormatError, ProofError
from vault.log_keys import ROTATION_EVENT
from vault.merkle import leaf_hash, node_hash, verify_inclusion
from vault.note import Checkpoint, Receipt

__all__ = ["Event", "concerning_me", "read_log", "receipt_for"]


@dataclass(frozen=True, kw_only=True)
class Event:
    """One verified log entry."""

    index: int
    data: bytes
    event: dict[str, Any]


class _Root:
    """The RFC 6962 root of leaves added one by one, in O(log n) memory.

    The stack holds the perfect subtrees of the leaves so far, largest
    first; the root folds them from the right, which is how RFC 6962
    splits a tree at the largest power of two below its size.
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []

    def add(self, leaf: bytes) -> None:
        size, value = 1, leaf
        while self._stack and self._stack[-1][0] == size:
            left_size, left = self._stack.pop()
            size, value = left_size + size, node_hash(left, value)
        self._stack.append((size, value))

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()
        value = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            value = node_hash(left, value)
        return value


def read_log(
    client: Client, *, keep: Callable[[dict[str, Any]], bool] | None = None
) -> tuple[Checkpoint, list[Event]]:
    """Every entry of the log, checked against the latest verified checkpoint.

    Only the events ``keep`` accepts are returned (all without it); every
    entry is hashed into the root all the same, so memory grows with what
    is kept, not with the log.

    Raises:
        ProofError: an entry's bytes do not hash to the signed root, or the
            log's key rotations do not match the server's key history.
        RewrittenLogError: the checkpoint is not consistent with the last seen.
    """
    checkpoint = client.log.refresh()
    events: list[Event] = []
    rotations: list[tuple[int, bytes, bytes]] = []
    tree = _Root()
    start = 0
    while start < checkpoint.size:
        answer = client.api.json(
            "GET", "/log/entries", params={"start": start, "end": checkpoint.size}
        )
        page = answer.get("entries")
        if not isinstance(page, list) or not page:
            raise ProofError("the server sent a malformed page of log entries")
        for raw in page:
            if not isinstance(raw, dict) or raw.get("index") != start:
                raise ProofError("the server sent log entries out of order")
            try:
                data = base64.b64decode(str(raw.get("data")), validate=True)
            except (binascii.Error, ValueError):
                raise ProofError("the server sent a malformed log entry") from None
            try:
                event = canonical.loads(data)
            except FormatError:
                event = None
            tree.add(leaf_hash(data))
            value = event if isinstance(event, dict) else {}
            if value.get("type") == ROTATION_EVENT:
                rotations.append((start, data, tree.root()))
            if keep is None or keep(value):
                events.append(Event(index=start, data=data, event=value))
            start += 1
            if start > checkpoint.size:
                raise ProofError("the server sent more log entries than its checkpoint holds")
    if tree.root() != checkpoint.root_hash:
        raise ProofError(
            f"the log's {checkpoint.size} entries do not hash to its signed root",
            hint="the server altered entries after signing them; do not trust it",
        )
    client.log.check_history(checkpoint, rotations)
    return checkpoint, events


def concerning_me(client: Client) -> Callable[[dict[str, Any]], bool]:
    """A filter for :func:`read_log`: events about this account, its vault or its items.

    It remembers the items it has seen uploaded to the vault or shared with
    the account, so it must see the events in log order.
    """
    account = client.account
    vault = client.state.vault
    items: set[str] = set()

    def keep(ev: dict[str, Any]) -> bool:
        item = ev.get("item")
        editors = ev.get("editors")
        if ev.get("type") == "item.uploaded" and vault is not None and ev.get("vault") == vault:
            items.add(str(item))
        if isinstance(editors, list) and account in editors and isinstance(item, str):
            items.add(item)
        return (
            ev.get("account") == account
            or (vault is not None and ev.get("vault") == vault)
            or (isinstance(item, str) and item in items)
        )

    return keep


def receipt_for(client: Client, checkpoint: Checkpoint, note: bytes, event: Event) -> bytes:
    """A tlog-proof of ``event`` against the verified ``checkpoint`` (signed ``note``)."""
    answer = client.api.json(
        "GET", "/log/proof/inclusion", params={"index": event.index, "size": checkpoint.size}
    )
    proof_text = answer.get("proof")
    if not isinstance(proof_text, list):
        raise ProofError("the server sent a malformed inclusion proof")
    try:
        proof = [base64.b64decode(str(p), validate=True) for p in proof_text]
    except (binascii.Error, ValueError):
        raise ProofError("the server sent a malformed inclusion proof") from None
    verify_inclusion(
        leaf_hash(event.data), event.index, checkpoint.size, proof, checkpoint.root_hash
    )
    return Receipt(index=event.index, proof=tuple(proof), checkpoint=note).marshal()
