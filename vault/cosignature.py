"""Witness cosignatures of checkpoints (C2SP tlog-cosignature, tlog-witness).

- tlog-cosignature.md, "Format" and "Ed25519 signed message": a cosignature
  is a note signature line by a cosigner key (signature type 0x04, a
  :class:`vault.peer_key.PeerVerifier`) whose bytes are ``key ID (4) ||
  timestamp (8, big-endian) || Ed25519 signature (64)``, the signature over
  ``cosignature/v1 LF time <timestamp> LF <checkpoint note text>``.
- tlog-witness.md, "add-checkpoint": the request body a log sends a witness
  (``old <size>`` LF, consistency proof lines, an empty line, the signed
  checkpoint); :func:`add_checkpoint_body`, :func:`parse_add_checkpoint`.

Choices where the specifications leave room:

- A cosignature whose timestamp is zero or above 2^63 - 1 is malformed; a
  verifier does not judge how recent the timestamp is (callers may).
- A cosignature line whose name and key ID match a trusted witness key but
  does not verify rejects the whole note, as for log signatures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vault._note_keys import NoteSignature, b64decode, b64encode
from vault.errors import NoteError, SignatureError
from vault.merkle import HASH_SIZE
from vault.note import Checkpoint, Note
from vault.peer_key import PeerSigner, PeerVerifier

__all__ = [
    "COSIGNATURE_HEADER",
    "MAX_PROOF_LINES",
    "AddCheckpoint",
    "Cosignature",
    "add_checkpoint_body",
    "cosign",
    "cosigned_message",
    "parse_add_checkpoint",
    "verify_cosignatures",
]

COSIGNATURE_HEADER = "cosignature/v1"
MAX_PROOF_LINES = 63
"""tlog-witness.md: a client MUST NOT send more than 63 consistency proof lines."""
_MAX_TIMESTAMP = (1 << 63) - 1
_SIGNATURE_SIZE = 64
_BLOB_SIZE = 8 + _SIGNATURE_SIZE
_MAX_BODY = 64 * 1024


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes an Ed25519 cosignature/v1 signs (tlog-cosignature.md)."""
    if not 0 < timestamp <= _MAX_TIMESTAMP:
        raise NoteError("malformed cosignature: timestamp out of range")
    header = f"{COSIGNATURE_HEADER}\ntime {timestamp}\n"
    return (header + checkpoint_text).encode("utf-8")


@dataclass(frozen=True, kw_only=True)
class Cosignature:
    """A verified cosignature: the witness key, its timestamp and its note signature line."""

    witness: PeerVerifier
    timestamp: int
    line: str


def cosign(checkpoint_text: str, signer: PeerSigner, timestamp: int) -> str:
    """The cosignature line of ``signer`` over a checkpoint's note text, ending in LF."""
    Checkpoint.parse(checkpoint_text)  # only checkpoints are cosigned
    signature = signer.sign(cosigned_message(checkpoint_text, timestamp))
    verifier = signer.verifier()
    blob = timestamp.to_bytes(8, "big") + signature
    return NoteSignature(name=verifier.name, key_id=verifier.key_id, signature=blob).line()


def verify_cosignatures(note: bytes | Note, witnesses: Iterable[PeerVerifier]) -> list[Cosignature]:
    """The valid cosignatures in a signed checkpoint from the trusted ``witnesses``.

    Lines from other keys (the log's own signature among them) are ignored;
    each witness counts once.

    Raises:
        NoteError: the note is malformed.
        SignatureError: a line from a trusted witness key does not verify.
    """
    parsed = note if isinstance(note, Note) else Note.parse(note)
    known = {(w.name, w.key_id): w for w in witnesses}
    found: dict[PeerVerifier, Cosignature] = {}
    for signature in parsed.signatures:
        witness = known.get((signature.name, signature.key_id))
        if witness is None:
            continue
        blob = signature.signature
        timestamp = int.from_bytes(blob[:8], "big") if len(blob) == _BLOB_SIZE else 0
        if not 0 < timestamp <= _MAX_TIMESTAMP:
            raise SignatureError(f"invalid cosignature by witness {witness.name}")
        try:
            witness.verify(cosigned_message(parsed.text, timestamp), blob[8:])
        except SignatureError:
            raise SignatureError(f"invalid cosignature by witness {witness.name}") from None
        found.setdefault(
            witness, Cosignature(witness=witness, timestamp=timestamp, line=signature.line())
        )
    return list(found.values())


@dataclass(frozen=True, kw_only=True)
class AddCheckpoint:
    """An add-checkpoint request: the old size, the consistency proof, the signed checkpoint."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes


def add_checkpoint_body(old_size: int, proof: Iterable[bytes], checkpoint: bytes) -> bytes:
    """The add-checkpoint request body of tlog-witness.md."""
    nodes = list(proof)
    if len(nodes) > MAX_PROOF_LINES:
        raise NoteError("consistency proof too long for add-checkpoint")
    lines = [f"old {old_size}", *(b64encode(node) for node in nodes)]
    return ("".join(line + "\n" for line in lines) + "\n").encode("ascii") + checkpoint


def parse_add_checkpoint(data: bytes) -> AddCheckpoint:
    """Parse an add-checkpoint request body, checking nothing but its syntax.

    Raises:
        NoteError: not of the form of tlog-witness.md.
    """
    if len(data) > _MAX_BODY:
        raise NoteError("malformed request: too large")
    split = data.find(b"\n\n")
    if split < 0:
        raise NoteError("malformed request: no empty line before the checkpoint")
    try:
        lines = data[:split].decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise NoteError("malformed request: the header is not ascii") from None
    first = lines[0]
    digits = first[len("old ") :]
    if not first.startswith("old ") or not digits.isdigit() or not digits.isascii():
        raise NoteError("malformed request: the first line is not `old <size>`")
    if digits != "0" and digits.startswith("0"):
        raise NoteError("malformed request: the old size has a leading zero")
    old_size = int(digits)
    if old_size >= 1 << 64:
        raise NoteError("malformed request: the old size is out of range")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise NoteError("malformed request: more than 63 consistency proof lines")
    proof = []
    for line in lines[1:]:
        node = b64decode(line, HASH_SIZE)
        if node is None:
            raise NoteError("malformed request: a proof line is not the base64 of a hash")
        proof.append(node)
    checkpoint = data[split + 2 :]
    Checkpoint.parse(Note.parse(checkpoint).text)
    return AddCheckpoint(old_size=old_size, proof=tuple(proof), checkpoint=checkpoint)
