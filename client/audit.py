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
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from client.api import Api
from client.context import Client
from client.logcheck import LogCheck
from vault import canonical
from vault.errors import FormatError, ProofError
from vault.log_keys import ROTATION_EVENT
from vault.merkle import leaf_hash, node_hash, verify_inclusion
from vault.note import Checkpoint, Receipt

__all__ = [
    "MOVES",
    "Event",
    "OwnView",
    "concerning_me",
    "own_view",
    "read_log",
    "receipt_for",
]

_ITEM = re.compile(r"[0-9a-f]{32}")


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


class LogReader(Protocol):
    """What reading the log needs: a registered :class:`Client` or an outsider's observer."""

    @property
    def api(self) -> Api: ...

    @property
    def log(self) -> LogCheck: ...


def read_log(
    client: LogReader, *, keep: Callable[[dict[str, Any]], bool] | None = None
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


MOVES = ("switch.overdue", "switch.releasing", "release.share", "switch.released")
"""The switch's own moves, which a side shown a switch of its own does not show after it began."""


@dataclass(frozen=True, kw_only=True)
class OwnView:
    """This side of a reporter's vault: the items it ever held, and the switch moves it shows.

    ``moves_until`` is the log index from which the switch's own moves
    (:data:`MOVES`) are not this side's, or None.
    """

    items: frozenset[str]
    moves_until: int | None

    def shows(self, event: Event) -> bool:
        """Whether ``event`` (kept by :func:`concerning_me`) belongs to this side's story."""
        return not (
            self.moves_until is not None
            and event.index >= self.moves_until
            and event.event.get("type") in MOVES
        )


def own_view(client: Client) -> OwnView:
    """This side's items, deleted ones too, and the moves it shows, as the server says.

    Raises:
        ProofError: a malformed answer.
    """
    found: set[str] = set()
    after: str | None = None
    moves_until = None
    while True:
        params: dict[str, str | int] = {"limit": 1000}
        if after is not None:
            params["after"] = after
        answer = client.call("GET", "/items/history", params=params)
        items, nxt, until = answer.get("items"), answer.get("next"), answer.get("moves_until")
        if not isinstance(items, list) or not all(
            isinstance(i, str) and _ITEM.fullmatch(i) for i in items
        ):
            raise ProofError("the server sent a malformed item history")
        if until is not None and (type(until) is not int or until < 0):
            raise ProofError("the server sent a malformed item history")
        if after is None:
            moves_until = until
        found.update(items)
        if not isinstance(nxt, str) or nxt in (after, None):
            return OwnView(items=frozenset(found), moves_until=moves_until)
        after = nxt


def concerning_me(
    client: Client, own_items: frozenset[str] | None = None
) -> Callable[[dict[str, Any]], bool]:
    """A filter for :func:`read_log`: events about this account, its vault or its items.

    It remembers the items it has seen uploaded to the vault or shared with
    the account, so it must see the events in log order. Given ``own_items``
    (a reporter's, :func:`own_view`), an event that names an item of
    the vault outside them is left out: it belongs to the other side of the
    vault, which this side does not show.
    """
    account = client.account
    vault = client.state.vault
    items: set[str] = set()

    def other_side(ev: dict[str, Any]) -> bool:
        if own_items is None:
            return False
        named = [ev.get("item"), *(ev.get("items") or [])]
        return any(isinstance(i, str) and i in items and i not in own_items for i in named)

    def keep(ev: dict[str, Any]) -> bool:
        item = ev.get("item")
        editors = ev.get("editors")
        if ev.get("type") == "item.uploaded" and vault is not None and ev.get("vault") == vault:
            items.add(str(item))
        if isinstance(editors, list) and account in editors and isinstance(item, str):
            items.add(item)
        if other_side(ev):
            return False
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
