"""Reading the whole audit log: ``log verify --full``, ``log show``, receipts for export.

The client fetches every entry up to the latest checkpoint it verified,
recomputes the RFC 6962 root from the entries' bytes and compares it with
the checkpoint's: then every entry it shows is one the server signed and
can never take back. Only then does it pick out the events about this
account, its vault and its items.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from client.context import Client
from vault import canonical
from vault.errors import FormatError, ProofError
from vault.merkle import leaf_hash, root_of, verify_inclusion
from vault.note import Checkpoint, Receipt

__all__ = ["Event", "mine", "read_log", "receipt_for"]


@dataclass(frozen=True, kw_only=True)
class Event:
    """One verified log entry."""

    index: int
    data: bytes
    event: dict[str, Any]


def read_log(client: Client) -> tuple[Checkpoint, list[Event]]:
    """Every entry of the log, checked against the latest verified checkpoint.

    Raises:
        ProofError: an entry's bytes do not hash to the signed root.
        RewrittenLogError: the checkpoint is not consistent with the last seen.
    """
    checkpoint = client.log.refresh()
    events: list[Event] = []
    hashes: list[bytes] = []
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
            hashes.append(leaf_hash(data))
            events.append(
                Event(index=start, data=data, event=event if isinstance(event, dict) else {})
            )
            start += 1
    if root_of(hashes) != checkpoint.root_hash:
        raise ProofError(
            f"the log's {checkpoint.size} entries do not hash to its signed root",
            hint="the server altered entries after signing them; do not trust it",
        )
    return checkpoint, events


def mine(client: Client, events: Iterable[Event]) -> list[Event]:
    """The events about this account, its vault or its items."""
    account = client.account
    vault = client.state.vault
    items: set[str] = set()
    found = []
    for e in events:
        ev = e.event
        item = ev.get("item")
        if ev.get("type") == "item.uploaded" and vault is not None and ev.get("vault") == vault:
            items.add(str(item))
        editors = ev.get("editors")
        if (
            ev.get("account") == account
            or (vault is not None and ev.get("vault") == vault)
            or (isinstance(item, str) and item in items)
            or (isinstance(editors, list) and account in editors)
        ):
            if isinstance(item, str) and ev.get("type") == "item.shared":
                items.add(item)
            found.append(e)
    return found


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
