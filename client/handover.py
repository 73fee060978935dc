"""The server's log key history as the client reads it (``GET /log/keys``), parsed strictly.

Nothing here is trusted: :class:`client.logcheck.LogCheck` verifies each
handover (:func:`vault.log_keys.verify_transition`) from the key this device
pinned before it pins another. See docs/protocol.md, "Log key rotation".
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from client.api import Api, ApiError
from vault.errors import FormatError, ProofError
from vault.log_keys import MAX_HANDOVERS, LogKey, check_rotation_entry, check_transition
from vault.note import Checkpoint, NoteVerifier

__all__ = [
    "Listed",
    "history_error",
    "key_history",
    "match_history",
    "rotation_entry",
    "server_b64",
]

_MAX_NOTE = 64 * 1024
_MAX_SIZE = 1 << 63


@dataclass(frozen=True, kw_only=True)
class Listed:
    """One key of the server's history, as the server lists it (unverified)."""

    key: NoteVerifier
    first_size: int
    last_size: int | None
    transition: bytes | None


def _malformed(what: str) -> ProofError:
    return ProofError(
        f"the server sent a malformed log key history: {what}", hint="do not trust this server"
    )


def history_error(detail: str) -> ProofError:
    """The log's key history and its entries disagree."""
    return ProofError(
        f"the server's log key history does not match its log: {detail}",
        hint="do not trust this server; keep this device's state.json as evidence",
    )


def _size(value: object) -> int:
    if type(value) is not int or not 0 <= value < _MAX_SIZE:
        raise _malformed("a tree size is not a non-negative integer")
    return value


def _row(raw: object) -> Listed:
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
        raise _malformed("a key is not an object with a key")
    try:
        key = NoteVerifier.parse(raw["key"])
    except FormatError as exc:
        raise _malformed(exc.message) from None
    transition = raw.get("transition")
    if transition is not None and (not isinstance(transition, str) or len(transition) > _MAX_NOTE):
        raise _malformed("a transition checkpoint is not text")
    last = raw.get("last_size")
    return Listed(
        key=key,
        first_size=_size(raw.get("first_size")),
        last_size=None if last is None else _size(last),
        transition=None if transition is None else transition.encode("utf-8"),
    )


def key_history(api: Api) -> list[Listed]:
    """The server's log keys, oldest first.

    Raises:
        ApiError: the server has no key history or could not be reached.
        ProofError: the answer is malformed.
    """
    answer = api.json("GET", "/log/keys")
    rows = answer.get("keys")
    if not isinstance(rows, list) or not 0 < len(rows) <= MAX_HANDOVERS + 1:
        raise _malformed("no list of keys")
    listed = [_row(raw) for raw in rows]
    if len({row.key for row in listed}) != len(listed):
        raise _malformed("a key is listed twice")
    return listed


def server_b64(text: object, what: str) -> bytes:
    """Base64 ``text`` from a server's answer, strictly; ``what`` names it in the error."""
    if not isinstance(text, str):
        raise ProofError(f"the server sent a malformed {what}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError(f"the server sent a malformed {what}") from None


def rotation_entry(api: Api, size: int) -> tuple[bytes, list[bytes]]:
    """The last entry of the tree of ``size`` entries and its inclusion proof in that tree.

    Raises:
        ApiError: the network or the server failed.
        ProofError: the server does not show the entry, or sends it malformed.
    """
    index = size - 1
    try:
        page = api.json("GET", "/log/entries", params={"start": index, "end": size})
        answer = api.json("GET", "/log/proof/inclusion", params={"index": index, "size": size})
    except ApiError as exc:
        if exc.status == 0 or exc.status >= 500:
            raise
        raise ProofError(f"the server does not show the rotation entry {index}") from None
    entries = page.get("entries")
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        raise ProofError(f"the server does not show the rotation entry {index}")
    if entries[0].get("index") != index:
        raise ProofError("the server sent another entry than the rotation entry")
    proof = answer.get("proof")
    if not isinstance(proof, list):
        raise ProofError("the server sent a malformed inclusion proof")
    return server_b64(entries[0].get("data"), "log entry"), [
        server_b64(node, "inclusion proof") for node in proof
    ]


def match_history(
    history: Sequence[Listed],
    checkpoint: Checkpoint,
    rotations: Sequence[tuple[int, bytes, bytes]],
    pinned: NoteVerifier,
    retired: Sequence[LogKey],
) -> int:
    """Check a key history against the rotation entries of the whole log; their number.

    Args:
        history: the server's key history.
        checkpoint: the verified checkpoint the log was read up to.
        rotations: the ``log.key_rotated`` entries of the log up to it, as
            (index, entry bytes, root hash of the tree that ends with it).
        pinned: the key this device pinned.
        retired: the keys this device retired.

    Raises:
        ProofError, FormatError: they disagree; the message says where.
    """
    found = {index: (data, root) for index, data, root in rotations}
    if history[0].first_size != 0:
        raise ProofError("its first key does not sign from the start of the log")
    seen: set[int] = set()
    last = history[0]
    for old, new in itertools.pairwise(history):
        if old.last_size is None or old.last_size > checkpoint.size:
            break
        if old.transition is None or new.first_size != old.last_size:
            raise ProofError("it is not a chain of handovers")
        transition = check_transition(old.transition, old.key, new.key)
        rotation = found.get(transition.size - 1)
        if transition.size != old.last_size or rotation is None:
            raise ProofError(f"no rotation entry at index {transition.size - 1}")
        check_rotation_entry(rotation[0], old.key, new.key)
        if rotation[1] != transition.root_hash:
            raise ProofError(
                f"the transition checkpoint of {transition.size} entries is not the log's tree"
            )
        seen.add(transition.size - 1)
        last = new
    if set(found) != seen:
        raise ProofError(f"entry {min(set(found) - seen)} rotates the key outside of it")
    if last.key != pinned:
        raise ProofError("it does not end with the key this device pinned")
    listed = {(row.key, row.last_size) for row in history}
    if any((key.verifier, key.last_size) not in listed for key in retired):
        raise ProofError("it leaves out a key this device retired")
    return len(seen)
