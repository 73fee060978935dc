"""Pending changes of an armed vault: deletions, disarming, policy changes in cooling-off.

While the dead-man switch is armed, what could make evidence vanish or
delay its release (deleting an item, disarming, lengthening the interval)
takes effect only after the vault's cooling-off delay, during which the
trustees are told and may cancel it (DESIGN.md, "Dead-man switch"). The
server answers such a request with the change it recorded and the log entry
that records it; both are checked here.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from client.context import Client
from client.durations import parse_time
from client.logcheck import LoggedEntry
from vault.errors import ProofError

__all__ = ["CHANGE_KINDS", "PendingChange", "expect_change", "parse_change"]

CHANGE_KINDS = ("delete", "disarm", "policy")
_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, kw_only=True)
class PendingChange:
    """A change waiting out the cooling-off delay."""

    id: str
    kind: str
    params: dict[str, Any]
    requested_at: datetime.datetime
    effective_at: datetime.datetime
    votes: int
    votes_needed: int


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ProofError("the server sent a malformed pending change")
    return value


def parse_change(value: object) -> PendingChange:
    """A pending change as the server sends it.

    Raises:
        ProofError: malformed.
    """
    if not isinstance(value, dict):
        raise ProofError("the server sent a malformed pending change")
    change_id, kind, params = value.get("id"), value.get("kind"), value.get("params", {})
    if not isinstance(change_id, str) or not _ID.fullmatch(change_id):
        raise ProofError("the server sent a malformed pending change")
    if kind not in CHANGE_KINDS or not isinstance(params, dict):
        raise ProofError("the server sent a malformed pending change")
    requested, effective = (
        parse_time(value.get("requested_at")),
        parse_time(value.get("effective_at")),
    )
    if requested is None or effective is None:
        raise ProofError("the server sent a malformed pending change")
    return PendingChange(
        id=change_id,
        kind=str(kind),
        params=params,
        requested_at=requested,
        effective_at=effective,
        votes=_count(value.get("votes", 0)),
        votes_needed=_count(value.get("votes_needed", 0)),
    )


def expect_change(
    client: Client,
    entry: LoggedEntry,
    change: PendingChange,
    *,
    kind: str,
    item: str | None = None,
) -> None:
    """Check that ``change`` is the ``kind`` asked for and that ``entry`` logs its request.

    The entry is ``{"type": "change.requested", "vault", "change", "kind",
    "effective"}`` (Unix seconds), with ``"item"`` for a deletion.

    Raises:
        ProofError: the server recorded another change, or logged another one.
    """
    if change.kind != kind or (item is not None and change.params.get("item") != item):
        raise ProofError(
            f"the server recorded another change than the {kind} asked for",
            hint="do not trust this server",
        )
    fields: dict[str, object] = {
        "type": "change.requested",
        "vault": client.vault,
        "change": change.id,
        "kind": kind,
        "effective": int(change.effective_at.timestamp()),
    }
    if item is not None:
        fields["item"] = item
    entry.expect(fields)
