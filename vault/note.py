"""Signed notes, checkpoints and offline receipts of the audit log.

Three C2SP formats, parsed strictly and serialised byte for byte:

- signed-note.md ("Format", "Signatures", "Verifier keys"): text signed by
  Ed25519 keys (signature type 0x01); :func:`sign_note`, :func:`open_note`.
- tlog-checkpoint.md ("Note text"): the log's signed tree head, origin, tree
  size and root hash; :class:`Checkpoint`, :func:`sign_checkpoint`,
  :func:`open_checkpoint`.
- tlog-proof.md ("Format", "Verifying a tlog proof"): a checkpoint, a leaf
  index and its inclusion proof, the receipt every write returns;
  :class:`Receipt`, :func:`verify_receipt`.

Choices where the specifications leave room:

- A note may carry at most :data:`MAX_SIGNATURES` (100) signature lines, as in
  golang.org/x/mod; C2SP requires accepting at least 16.
- Every base64 field must be canonical, so each signature and hash has exactly
  one spelling and serialising a parsed value gives back its input byte for byte.
- A signature from a trusted key that does not verify rejects the whole note
  (the spec's SHOULD); signatures from unknown keys are ignored unchecked.
- A checkpoint root hash must be a 32-byte SHA-256 value and extension lines
  must be non-empty; more lenient parsers accept other lengths.
- :func:`open_checkpoint` pins the origin line: to ``origin`` if given, else to
  the verifier key's name (the spec's SHOULD for logs).
- A receipt's ``extra`` line is written only for non-empty extra data, so
  ``extra`` followed by nothing is rejected; extra data is not authenticated.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from vault._note_keys import (
    CONTROL,
    SIGNATURE_PREFIX,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    b64decode,
    b64encode,
    check_key_name,
    encode_text,
)
from vault.errors import NoteError, ProofError, SignatureError
from vault.merkle import HASH_SIZE, leaf_hash, verify_inclusion

__all__ = [
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "TLOG_PROOF_HEADER",
    "Checkpoint",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "Receipt",
    "VerifiedNote",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
    "verifier_fingerprint",
    "verify_receipt",
]

MAX_SIGNATURES = 100
MAX_NOTE_SIZE = 64 * 1024
"""Largest signed note or receipt accepted, checked before anything is decoded."""
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
# An inclusion proof in a tree of fewer than 2**64 leaves has at most 64 hashes.
_MAX_PROOF_HASHES = 64
_UINT64_LIMIT = 1 << 64
# ASCII digits only: int() would also take "+1", " 1", "1_0" and other scripts' digits.
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


def _parse_uint64(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) >= _UINT64_LIMIT:
        raise NoteError(f"malformed {what}: not a decimal number below 2^64 without leading zeros")
    return int(text)


def _parse_hash(text: str, what: str) -> bytes:
    value = b64decode(text)
    if value is None or len(value) != HASH_SIZE:
        raise NoteError(f"malformed {what}: not the canonical base64 of a {HASH_SIZE}-byte hash")
    return value


def _check_line(line: str, what: str) -> None:
    """A line of note text: non-empty, no newline or other control character."""
    if not line:
        raise NoteError(f"malformed {what}: empty")
    if "\n" in line or CONTROL.search(line):
        raise NoteError(f"malformed {what}: contains a control character")


# signed-note ---------------------------------------------------------------


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError("malformed note: a line after the blank line is not a signature")
    name, sep, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not sep:
        raise NoteError("malformed note: signature line without a signature")
    try:
        check_key_name(name)
    except NoteError as exc:
        raise NoteError(f"malformed note: {exc}") from None
    blob = b64decode(encoded)
    if blob is None or len(blob) < 5:
        raise NoteError("malformed note: signature is not canonical base64 of key ID and bytes")
    return NoteSignature(name=name, key_id=int.from_bytes(blob[:4], "big"), signature=blob[4:])


@dataclass(frozen=True, kw_only=True)
class Note:
    """A signed note as written, its signatures not yet verified.

    Do not act on ``text`` before :func:`open_note` has verified it.
    """

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        encode_text(self.text)
        if not self.signatures:
            raise NoteError("malformed note: no signatures")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")

    @classmethod
    def parse(cls, data: bytes) -> Note:
        """Parse a signed note without verifying anything.

        Raises:
            NoteError: the bytes are not a well-formed signed note.
        """
        if len(data) > MAX_NOTE_SIZE:
            raise NoteError(f"malformed note: larger than {MAX_NOTE_SIZE} bytes")
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("malformed note: not valid utf-8") from None
        if CONTROL.search(message):
            raise NoteError("malformed note: contains a control character")
        # The text may hold blank lines; the signatures follow the last one.
        split = message.rfind("\n\n")
        if split < 0:
            raise NoteError("malformed note: no blank line before the signatures")
        text, block = message[: split + 1], message[split + 2 :]
        if not block:
            raise NoteError("malformed note: no signatures")
        if not block.endswith("\n"):
            raise NoteError("malformed note: does not end with a newline")
        lines = block[:-1].split("\n")
        # Counted before any signature is decoded or verified, to bound the work.
        if len(lines) > MAX_SIGNATURES:
            raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
        return cls(text=text, signatures=tuple(_parse_signature_line(line) for line in lines))

    def marshal(self) -> bytes:
        """The note as bytes: text, blank line, signature lines."""
        lines = "".join(signature.line() for signature in self.signatures)
        return (self.text + "\n" + lines).encode("utf-8")


@dataclass(frozen=True, kw_only=True)
class VerifiedNote:
    """Note text whose signatures verified, and the trusted keys that signed it."""

    text: str
    verified_by: tuple[NoteVerifier, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(verifier.name for verifier in self.verified_by)


def sign_note(text: str, signers: Iterable[NoteSigner]) -> bytes:
    """Sign ``text`` (ending in a newline) with each signer, in order.

    Raises:
        NoteError: invalid text, no signers, or more than :data:`MAX_SIGNATURES`.
    """
    lines = [signer.sign(text) for signer in signers]
    if not lines:
        raise NoteError("cannot sign note: no signers")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"cannot sign note: more than {MAX_SIGNATURES} signers")
    return (text + "\n" + "".join(lines)).encode("utf-8")


def open_note(data: bytes, verifiers: Iterable[NoteVerifier]) -> VerifiedNote:
    """Parse a signed note and verify it against trusted keys.

    Signatures whose (name, key ID) match no trusted key are ignored. Every
    signature from a trusted key must verify, and at least one must be present.

    Raises:
        NoteError: the note is malformed, or two trusted keys share name and key ID.
        SignatureError: a trusted key's signature fails, or no trusted key signed.
    """
    note = Note.parse(data)
    known: dict[tuple[str, int], NoteVerifier] = {}
    for verifier in verifiers:
        previous = known.setdefault((verifier.name, verifier.key_id), verifier)
        if previous != verifier:
            raise NoteError(f"ambiguous trusted keys: two keys for {verifier.name} share a key ID")
    message = note.text.encode("utf-8")
    verified: list[NoteVerifier] = []
    for signature in note.signatures:
        match = known.get((signature.name, signature.key_id))
        if match is None:
            continue
        try:
            match.verify(message, signature.signature)
        except SignatureError:
            raise SignatureError(
                f"invalid signature for trusted key {signature.name}+{signature.key_id:08x}"
            ) from None
        if match not in verified:
            verified.append(match)
    if not verified:
        raise SignatureError("no verifiable signatures: the note is not signed by a trusted key")
    return VerifiedNote(text=note.text, verified_by=tuple(verified))


# tlog-checkpoint -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A log's tree head: origin, tree size, RFC 6962 root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "checkpoint origin")
        if not 0 <= self.size < _UINT64_LIMIT:
            raise NoteError("malformed checkpoint: tree size out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise NoteError(f"malformed checkpoint: root hash is not {HASH_SIZE} bytes")
        for line in self.extensions:
            _check_line(line, "checkpoint extension line")

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text (origin, size, root hash, extension lines).

        Raises:
            NoteError: the text is not a well-formed SHA-256 checkpoint.
        """
        if not text.endswith("\n"):
            raise NoteError("malformed checkpoint: does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("malformed checkpoint: fewer than three lines")
        origin, size, root, *extensions = lines
        _check_line(origin, "checkpoint origin")  # first, so errors come in line order
        return cls(
            origin=origin,
            size=_parse_uint64(size, "checkpoint tree size"),
            root_hash=_parse_hash(root, "checkpoint root hash"),
            extensions=tuple(extensions),
        )

    def marshal(self) -> str:
        """The checkpoint note text, ending in a newline."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> bytes:
    """The checkpoint as a note signed by the log key."""
    return sign_note(checkpoint.marshal(), [signer])


def open_checkpoint(data: bytes, verifier: NoteVerifier, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint from the log whose key is ``verifier``.

    Args:
        data: the signed note; cosignatures from other keys are ignored.
        verifier: the log's key.
        origin: the origin line to require; by default the key's name.

    Raises:
        NoteError: the note or the checkpoint text is malformed.
        SignatureError: the log key did not sign it.
        ProofError: the origin line is not the expected one.
    """
    checkpoint = Checkpoint.parse(open_note(data, [verifier]).text)
    expected = verifier.name if origin is None else origin
    if checkpoint.origin != expected:
        raise ProofError(
            f"checkpoint from an unexpected log: origin {checkpoint.origin!r}, "
            f"expected {expected!r}"
        )
    return checkpoint


# tlog-proof ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Receipt:
    """A C2SP tlog-proof: a signed checkpoint, a leaf index and its inclusion proof.

    ``checkpoint`` is the signed note exactly as the log wrote it; ``extra`` is
    opaque, unauthenticated data (empty when absent).
    """

    index: int
    proof: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.index < _UINT64_LIMIT:
            raise NoteError("malformed receipt: index out of range")
        if len(self.proof) > _MAX_PROOF_HASHES:
            raise NoteError("malformed receipt: inclusion proof too long")
        if any(len(node) != HASH_SIZE for node in self.proof):
            raise NoteError(f"malformed receipt: proof hash is not {HASH_SIZE} bytes")
        # Syntax only; nothing in it is trusted before verify_receipt.
        Checkpoint.parse(Note.parse(self.checkpoint).text)

    @classmethod
    def parse(cls, data: bytes) -> Receipt:
        """Parse a ``c2sp.org/tlog-proof@v1`` receipt without verifying it.

        Raises:
            NoteError: the receipt or its checkpoint is malformed.
        """
        if len(data) > MAX_NOTE_SIZE:
            raise NoteError(f"malformed receipt: larger than {MAX_NOTE_SIZE} bytes")
        # Proof lines are never empty, so the first blank line ends them.
        split = data.find(b"\n\n")
        if split < 0:
            raise NoteError("malformed receipt: no blank line before the checkpoint")
        try:
            lines = data[:split].decode("ascii").split("\n")
        except UnicodeDecodeError:
            raise NoteError("malformed receipt: header is not ascii") from None
        if lines[0] != TLOG_PROOF_HEADER:
            raise NoteError(f"malformed receipt: first line is not {TLOG_PROOF_HEADER}")
        rest = lines[1:]
        extra = b""
        if rest and rest[0].startswith("extra "):
            decoded = b64decode(rest.pop(0)[len("extra ") :])
            if not decoded:
                raise NoteError("malformed receipt: extra data is empty or not canonical base64")
            extra = decoded
        if not rest or not rest[0].startswith("index "):
            raise NoteError("malformed receipt: missing index line")
        index = _parse_uint64(rest.pop(0)[len("index ") :], "receipt index")
        if len(rest) > _MAX_PROOF_HASHES:
            raise NoteError("malformed receipt: inclusion proof too long")
        proof = tuple(_parse_hash(line, "receipt proof hash") for line in rest)
        return cls(index=index, proof=proof, checkpoint=data[split + 2 :], extra=extra)

    def marshal(self) -> bytes:
        """The receipt as bytes, ending with the signed checkpoint."""
        lines = [TLOG_PROOF_HEADER]
        if self.extra:
            lines.append("extra " + b64encode(self.extra))
        lines.append(f"index {self.index}")
        lines.extend(b64encode(node) for node in self.proof)
        return ("".join(line + "\n" for line in lines) + "\n").encode("ascii") + self.checkpoint


def verify_receipt(
    receipt: Receipt | bytes,
    leaf: bytes,
    verifier: NoteVerifier,
    *,
    leaf_is_hash: bool = False,
    origin: str | None = None,
) -> Checkpoint:
    """Check that a leaf is in the log at the receipt's index; return the checkpoint.

    Args:
        receipt: a :class:`Receipt` or its bytes.
        leaf: the logged entry, or its RFC 6962 leaf hash if ``leaf_is_hash``.
        verifier: the log's key.
        origin: the origin line to require; by default the key's name.

    Raises:
        NoteError: the receipt or its checkpoint is malformed.
        SignatureError: the checkpoint is not signed by the log key.
        ProofError: wrong origin, or the inclusion proof does not verify.
    """
    if isinstance(receipt, bytes):
        receipt = Receipt.parse(receipt)
    checkpoint = open_checkpoint(receipt.checkpoint, verifier, origin)
    # verify_inclusion also rejects a leaf hash of the wrong length and an index
    # outside the checkpoint's tree.
    hashed = leaf if leaf_is_hash else leaf_hash(leaf)
    verify_inclusion(hashed, receipt.index, checkpoint.size, receipt.proof, checkpoint.root_hash)
    return checkpoint


def verifier_fingerprint(verifier: NoteVerifier) -> str:
    """A short code of a log verifier key, for people to compare out of band.

    SHA-256 of the verifier key string (``name+keyid+key``), its first 128
    bits as eight groups of four hex digits, e.g. ``8af6 4df7 … e480``. The
    operator publishes it (``evault-server keys show``); clients and evidence
    packages show it.
    """
    digest = hashlib.sha256(str(verifier).encode("utf-8")).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))
