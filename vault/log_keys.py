"""Log key rotation: the rotation entry, transition checkpoints and key chains.

See docs/protocol.md, "Log key rotation". A log replaces its signing key by
appending one entry, the **rotation entry** (canonical JSON)::

    {"new_key":VKEY,"old_key":VKEY,"time":T,"type":"log.key_rotated"}

and signing the checkpoint of the tree that ends with it, the **transition
checkpoint**, with both keys: one C2SP signed note, two signature lines with
the same key name (the origin) and different key IDs (signed-note.md,
"Signatures": verifiers ignore signatures of keys they do not know, so the
note verifies under either key). The old key signs checkpoints of sizes up
to the transition's, the new one from the transition's on.

- :func:`verify_transition` checks one handover: both signatures, and the
  rotation entry naming exactly the two keys as the tree's last leaf.
- :func:`open_with_keys` verifies a checkpoint against several keys of one
  log, each valid for a range of tree sizes (:class:`LogKey`).
- :class:`KeyChain` is the chain an evidence package carries
  (``log-keys.json``): the handovers from a first key to the current one,
  and consistency proofs ("links") that bind every checkpoint a retired key
  signed to the transition checkpoint that retired it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vault import canonical
from vault._base64 import b64decode, b64encode
from vault.errors import FormatError, ProofError, SignatureError
from vault.merkle import HASH_SIZE, leaf_hash, verify_consistency, verify_inclusion
from vault.note import Checkpoint, Note, NoteVerifier, Receipt, open_note

__all__ = [
    "MAX_HANDOVERS",
    "ROTATION_EVENT",
    "Handover",
    "KeyChain",
    "LogKey",
    "check_rotation_entry",
    "check_transition",
    "open_with_keys",
    "rotation_event",
    "signed_by_unknown_key",
    "verify_transition",
]

ROTATION_EVENT = "log.key_rotated"
"""The ``type`` of the rotation entry."""
MAX_HANDOVERS = 64
"""Most rotations a chain may hold; a log rotates its key rarely."""
_CHAIN_VERSION = 1
_MAX_LINKS = 4096
_MAX_PROOF = 64
_SIZE_LIMIT = 1 << 53  # canonical JSON integers


def rotation_event(old: NoteVerifier, new: NoteVerifier) -> dict[str, object]:
    """The rotation entry's fields, without the ``time`` the log adds."""
    return {"type": ROTATION_EVENT, "old_key": str(old), "new_key": str(new)}


@dataclass(frozen=True, kw_only=True)
class LogKey:
    """A key of the log and the tree sizes it signs: ``first_size`` to ``last_size``.

    ``last_size`` is ``None`` for the current key. A key's last size is its
    successor's first: the transition checkpoint of that size carries both.
    """

    verifier: NoteVerifier
    first_size: int
    last_size: int | None = None

    def covers(self, size: int) -> bool:
        """Whether this key may sign a checkpoint of ``size`` entries."""
        return self.first_size <= size and (self.last_size is None or size <= self.last_size)


def _key_ids(note: bytes) -> set[tuple[str, int]]:
    return {(s.name, s.key_id) for s in Note.parse(note).signatures}


def signed_by_unknown_key(note: bytes, keys: Sequence[NoteVerifier]) -> bool:
    """Whether ``note`` carries a signature line of the keys' name from another key.

    Such a line on a checkpoint of our log is how a transition checkpoint
    looks to a client that knows only the old key.

    Raises:
        NoteError: the note is malformed.
    """
    names = {key.name for key in keys}
    known = {(key.name, key.key_id) for key in keys}
    return any(name in names and (name, key_id) not in known for name, key_id in _key_ids(note))


def open_with_keys(note: bytes, keys: Sequence[LogKey], origin: str) -> tuple[Checkpoint, LogKey]:
    """Verify a checkpoint signed by one of a log's keys, valid for its tree size.

    Returns the checkpoint and the newest of ``keys`` that signed it for its
    size (the current key, if it signed).

    Raises:
        NoteError: the note or the checkpoint text is malformed.
        SignatureError: no key signed it, a signature of a key fails, or it is
            signed only by keys not valid for its size (a retired key after
            its retirement, or a new key before its first size).
        ProofError: the origin line is not ``origin``.
    """
    verified = open_note(note, [key.verifier for key in keys])
    checkpoint = Checkpoint.parse(verified.text)
    if checkpoint.origin != origin:
        raise ProofError(
            f"checkpoint from an unexpected log: origin {checkpoint.origin!r}, expected {origin!r}"
        )
    for key in reversed(keys):
        if key.verifier in verified.verified_by and key.covers(checkpoint.size):
            return checkpoint, key
    raise SignatureError(
        f"the checkpoint of {checkpoint.size} entries is signed only by a log key that "
        "did not sign trees of that size: a retired key after it was replaced, or a key "
        "before it took over"
    )


def check_transition(note: bytes, old: NoteVerifier, new: NoteVerifier) -> Checkpoint:
    """Check the signatures of a transition checkpoint from ``old`` to ``new``.

    Both keys must sign it, under the same name, which is its origin line.

    Raises:
        NoteError: the note or the checkpoint text is malformed.
        SignatureError: it is not signed by both keys.
        ProofError: the keys have different names, are one key, or the origin
            line is not their name.
    """
    if old.name != new.name:
        raise ProofError("a log key was handed over to a key of another log (another name)")
    if old == new:
        raise ProofError("a log key was handed over to itself")
    verified = open_note(note, [old, new])
    if set(verified.verified_by) != {old, new}:
        missing = "old" if old not in verified.verified_by else "new"
        raise SignatureError(
            f"the transition checkpoint is not signed by both log keys: the {missing} key's "
            "signature is missing"
        )
    checkpoint = Checkpoint.parse(verified.text)
    if checkpoint.origin != old.name:
        raise ProofError(
            f"transition checkpoint of another log: origin {checkpoint.origin!r}, "
            f"expected {old.name!r}"
        )
    if checkpoint.size == 0:
        raise ProofError("the transition checkpoint is of an empty tree")
    return checkpoint


def check_rotation_entry(data: bytes, old: NoteVerifier, new: NoteVerifier) -> None:
    """Check that ``data`` is the rotation entry from ``old`` to ``new``, and nothing else.

    Raises:
        ProofError: another entry, or one naming other keys or other fields.
    """
    try:
        event = canonical.loads(data)
    except FormatError:
        raise ProofError("the rotation entry is not canonical JSON") from None
    if not isinstance(event, dict) or event.get("type") != ROTATION_EVENT:
        raise ProofError(f"the last entry of the transition tree is not a {ROTATION_EVENT} entry")
    if set(event) != {"type", "old_key", "new_key", "time"} or type(event["time"]) is not int:
        raise ProofError("the rotation entry has unexpected or missing fields")
    if event["old_key"] != str(old) or event["new_key"] != str(new):
        raise ProofError("the rotation entry names other keys than the transition checkpoint")


@dataclass(frozen=True, kw_only=True)
class Handover:
    """A verified rotation: the keys, the transition checkpoint and the rotation entry."""

    old: NoteVerifier
    new: NoteVerifier
    note: bytes
    checkpoint: Checkpoint
    entry: bytes
    inclusion: tuple[bytes, ...]

    @property
    def size(self) -> int:
        """The transition checkpoint's tree size: the old key's last, the new key's first."""
        return self.checkpoint.size

    @property
    def index(self) -> int:
        """The rotation entry's leaf index (the transition tree's last leaf)."""
        return self.checkpoint.size - 1


def verify_transition(
    note: bytes,
    old: NoteVerifier,
    new: NoteVerifier,
    *,
    entry: bytes,
    inclusion: Sequence[bytes],
) -> Handover:
    """Verify a handover from ``old`` to ``new``.

    The transition checkpoint must be signed by both keys (:func:`check_transition`),
    and its tree must end with the rotation entry ``entry`` naming exactly
    these keys, shown by the inclusion proof of its last leaf.

    Raises:
        NoteError: the note is malformed.
        SignatureError: not signed by both keys.
        ProofError: the rotation entry is wrong or not the tree's last leaf.
    """
    checkpoint = check_transition(note, old, new)
    check_rotation_entry(entry, old, new)
    try:
        verify_inclusion(
            leaf_hash(entry), checkpoint.size - 1, checkpoint.size, inclusion, checkpoint.root_hash
        )
    except ProofError as exc:
        raise ProofError(
            f"the rotation entry is not the last entry of the transition tree: {exc.message}"
        ) from None
    return Handover(
        old=old,
        new=new,
        note=note,
        checkpoint=checkpoint,
        entry=entry,
        inclusion=tuple(inclusion),
    )


Links = Mapping[tuple[int, int], Sequence[bytes]]


class KeyChain:
    """A log's keys from ``first`` to the current one, with the proofs that link them.

    ``links`` maps ``(old size, new size)`` to an RFC 9162 consistency proof.
    Consecutive transition checkpoints must be linked; a checkpoint of size
    ``s`` that a retired key signed is accepted only with a link from ``s``
    to the transition that retired the key (or if it is that transition's
    tree). So every checkpoint a retired key signed is bound by hashes to a
    tree the current key vouched for: a stolen retired key cannot sign a
    tree of its own.

    Raises (constructor):
        ProofError, SignatureError, NoteError: a handover or a link between
            transitions does not verify, or the handovers do not follow on.
    """

    def __init__(
        self, first: NoteVerifier, handovers: Sequence[Handover] = (), links: Links | None = None
    ) -> None:
        if len(handovers) > MAX_HANDOVERS:
            raise FormatError(f"a key chain of more than {MAX_HANDOVERS} rotations")
        self.first = first
        self.handovers = tuple(handovers)
        self.links = {pair: tuple(proof) for pair, proof in (links or {}).items()}
        self.used: set[tuple[int, int]] = set()
        keys: list[LogKey] = []
        current, start = first, 0
        previous: Checkpoint | None = None
        for handover in self.handovers:
            if handover.old != current:
                raise ProofError("the key chain is broken: a handover starts from another key")
            # Verified again here: a Handover may have been built by hand.
            verify_transition(
                handover.note,
                handover.old,
                handover.new,
                entry=handover.entry,
                inclusion=handover.inclusion,
            )
            if previous is not None:
                if handover.size <= previous.size:
                    raise ProofError("the key chain is out of order: transitions must grow")
                self._link(previous, handover.checkpoint, "two transition checkpoints")
            keys.append(LogKey(verifier=current, first_size=start, last_size=handover.size))
            current, start, previous = handover.new, handover.size, handover.checkpoint
        keys.append(LogKey(verifier=current, first_size=start))
        self.keys = tuple(keys)

    @property
    def current(self) -> NoteVerifier:
        return self.keys[-1].verifier

    def _link(self, older: Checkpoint, newer: Checkpoint, what: str) -> None:
        if older.size == newer.size:
            if older.root_hash != newer.root_hash:
                raise ProofError(f"the log forked: {what} of {older.size} entries differ")
            return
        pair = (older.size, newer.size)
        proof = self.links.get(pair)
        if proof is None:
            raise ProofError(
                f"no consistency proof links {what}: from {older.size} to {newer.size} entries"
            )
        try:
            verify_consistency(older.size, newer.size, older.root_hash, newer.root_hash, proof)
        except ProofError as exc:
            raise ProofError(
                f"the tree of {newer.size} entries does not extend the one of {older.size} "
                f"({what}): {exc.message}"
            ) from None
        self.used.add(pair)

    def open(self, note: bytes) -> tuple[Checkpoint, LogKey]:
        """Verify a checkpoint of this log, signed by a key of the chain valid for its size.

        A checkpoint signed only by a retired key must be linked to the
        transition that retired it.

        Raises:
            NoteError, SignatureError, ProofError: as :func:`open_with_keys`,
                or the checkpoint is not linked to its key's transition.
        """
        checkpoint, key = open_with_keys(note, self.keys, self.first.name)
        if key.last_size is not None:
            handover = next(h for h in self.handovers if h.size == key.last_size)
            self._link(checkpoint, handover.checkpoint, "a retired key's checkpoint")
        return checkpoint, key

    def verify_receipt(self, receipt: Receipt, leaf: bytes) -> tuple[Checkpoint, LogKey]:
        """Verify a receipt (C2SP tlog-proof) of ``leaf`` against the chain.

        Raises:
            NoteError, SignatureError, ProofError: as :meth:`open`, or the
                inclusion proof does not verify.
        """
        checkpoint, key = self.open(receipt.checkpoint)
        verify_inclusion(
            leaf_hash(leaf), receipt.index, checkpoint.size, receipt.proof, checkpoint.root_hash
        )
        return checkpoint, key

    # log-keys.json ------------------------------------------------------------

    def to_json(self) -> bytes:
        """The chain as canonical JSON (the evidence package's ``log-keys.json``)."""
        return canonical.dumps(
            {
                "v": _CHAIN_VERSION,
                "handovers": [
                    {
                        "old_key": str(h.old),
                        "new_key": str(h.new),
                        "checkpoint": h.note.decode("utf-8"),
                        "entry": b64encode(h.entry),
                        "inclusion": [b64encode(node) for node in h.inclusion],
                    }
                    for h in self.handovers
                ],
                "links": [
                    {"old": old, "new": new, "proof": [b64encode(node) for node in proof]}
                    for (old, new), proof in sorted(self.links.items())
                ],
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> KeyChain:
        """Parse and verify ``log-keys.json``.

        Raises:
            FormatError: not a key chain in the documented format.
            SignatureError, ProofError: a handover or link does not verify.
        """
        try:
            value = canonical.loads(data)
        except FormatError as exc:
            raise FormatError(f"malformed key chain: {exc.message}") from None
        if not isinstance(value, dict) or set(value) != {"v", "handovers", "links"}:
            raise FormatError("malformed key chain: unexpected or missing fields")
        if type(value["v"]) is not int or value["v"] != _CHAIN_VERSION:
            raise FormatError("unsupported key chain version", hint="update evault")
        raw_handovers, raw_links = value["handovers"], value["links"]
        if not isinstance(raw_handovers, list) or not 0 < len(raw_handovers) <= MAX_HANDOVERS:
            raise FormatError(f"malformed key chain: 1 to {MAX_HANDOVERS} handovers expected")
        if not isinstance(raw_links, list) or len(raw_links) > _MAX_LINKS:
            raise FormatError("malformed key chain: links must be a short list")
        handovers = [_parse_handover(raw) for raw in raw_handovers]
        links: dict[tuple[int, int], list[bytes]] = {}
        for raw in raw_links:
            if not isinstance(raw, dict) or set(raw) != {"old", "new", "proof"}:
                raise FormatError("malformed key chain: a link needs old, new and proof")
            old, new = _size(raw["old"]), _size(raw["new"])
            if not 0 < old < new or (old, new) in links:
                raise FormatError("malformed key chain: links must be distinct, from 1 upwards")
            links[(old, new)] = _hashes(raw["proof"], "link proof")
        if list(links) != sorted(links):
            raise FormatError("malformed key chain: links are not in order")
        return cls(handovers[0].old, handovers, links)


def _size(value: object) -> int:
    if type(value) is not int or not 0 <= value < _SIZE_LIMIT:
        raise FormatError("malformed key chain: a tree size is not a non-negative integer")
    return value


def _hashes(value: object, what: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > _MAX_PROOF:
        raise FormatError(f"malformed key chain: {what} is not a list of at most {_MAX_PROOF}")
    hashes = []
    for text in value:
        node = b64decode(text, HASH_SIZE)
        if node is None:
            raise FormatError(f"malformed key chain: {what} holds a malformed hash")
        hashes.append(node)
    return hashes


def _verifier(value: object, what: str) -> NoteVerifier:
    if not isinstance(value, str):
        raise FormatError(f"malformed key chain: {what} is not a verifier key")
    try:
        return NoteVerifier.parse(value)
    except FormatError as exc:
        raise FormatError(f"malformed key chain: {what}: {exc.message}") from None


def _parse_handover(raw: object) -> Handover:
    fields = {"old_key", "new_key", "checkpoint", "entry", "inclusion"}
    if not isinstance(raw, dict) or set(raw) != fields:
        raise FormatError("malformed key chain: a handover has unexpected or missing fields")
    old, new = _verifier(raw["old_key"], "old_key"), _verifier(raw["new_key"], "new_key")
    note, entry = raw["checkpoint"], b64decode(raw["entry"])
    if not isinstance(note, str) or entry is None:
        raise FormatError("malformed key chain: a handover's checkpoint or entry is malformed")
    return verify_transition(
        note.encode("utf-8"),
        old,
        new,
        entry=entry,
        inclusion=_hashes(raw["inclusion"], "inclusion proof"),
    )
