"""A server's peer key: Ed25519, written as a C2SP cosignature verifier key.

One Ed25519 key per server authenticates its requests to peer servers
(RFC 9421 HTTP message signatures, docs/protocol.md §14) and, as a witness,
cosigns peers' checkpoints (C2SP tlog-cosignature). Its public form is the
vkey of tlog-cosignature.md, "Format": ``<name>+<hex key ID>+<base64(0x04 ||
public key)>`` with the key ID ``SHA-256(name || 0x0A || 0x04 || key)[:4]``.
The private form follows the log key's: ``PRIVATE+KEY+<name>+<hex key
ID>+<base64(0x04 || seed)>``.

Both uses sign with the same key because their messages cannot be mistaken
for each other: an RFC 9421 signature base starts with ``"`` (a quoted
component name) and ends with its ``"@signature-params"`` line, while a
cosigned message starts with ``cosignature/v1\\n``. The key is never the log
key, whose signatures (type 0x01) cover checkpoint text of any form.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from vault._base64 import b64decode, b64encode
from vault._note_keys import check_key_name
from vault.errors import NoteError, SignatureError

__all__ = ["COSIGNATURE_TYPE", "PeerSigner", "PeerVerifier", "peer_fingerprint"]

COSIGNATURE_TYPE = 0x04
"""The signature type byte of an Ed25519 cosignature/v1 key."""
_KEY_SIZE = 32
_SIGNATURE_SIZE = 64
_SKEY_PREFIX = "PRIVATE+KEY+"
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")
_MAX_TEXT = 512


def _key_id(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([COSIGNATURE_TYPE]) + public_key)
    return int.from_bytes(digest.digest()[:4], "big")


def _split(text: str, what: str) -> tuple[str, int, bytes]:
    if len(text) > _MAX_TEXT:
        raise NoteError(f"malformed {what}: too long")
    # The base64 part may itself contain '+', so only the first two separate.
    name, sep1, rest = text.partition("+")
    hex_id, sep2, encoded = rest.partition("+")
    if not (sep1 and sep2):
        raise NoteError(f"malformed {what}: expected name+keyid+key")
    check_key_name(name)
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise NoteError(f"malformed {what}: key ID is not 8 lower-case hex digits")
    material = b64decode(encoded, 1 + _KEY_SIZE)
    if material is None:
        raise NoteError(f"malformed {what}: key is not canonical base64 of 33 bytes")
    if material[0] != COSIGNATURE_TYPE:
        raise NoteError(f"malformed {what}: signature type {material[0]:#04x}, want 0x04")
    return name, int(hex_id, 16), material[1:]


@dataclass(frozen=True, kw_only=True)
class PeerVerifier:
    """A peer server's public key with its name; the key ID is always computed."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.public_key) != _KEY_SIZE:
            raise NoteError("invalid peer key: wrong key length")
        object.__setattr__(self, "key_id", _key_id(self.name, self.public_key))

    @classmethod
    def parse(cls, vkey: str) -> PeerVerifier:
        """Parse ``name+hexkeyid+base64(0x04 || key)``.

        Raises:
            NoteError: malformed, another signature type, or a key ID that does not match.
        """
        name, claimed, public_key = _split(vkey, "peer key")
        verifier = cls(name=name, public_key=public_key)
        if verifier.key_id != claimed:
            raise NoteError("malformed peer key: key ID does not match the key")
        return verifier

    def __str__(self) -> str:
        material = b64encode(bytes([COSIGNATURE_TYPE]) + self.public_key)
        return f"{self.name}+{self.key_id:08x}+{material}"

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check an Ed25519 signature by this key over ``message``.

        Raises:
            SignatureError: the signature does not verify.
        """
        if len(signature) != _SIGNATURE_SIZE:
            raise SignatureError(f"invalid signature by {self.name}+{self.key_id:08x}")
        try:
            VerifyKey(self.public_key).verify(message, signature)
        except BadSignatureError:
            raise SignatureError(f"invalid signature by {self.name}+{self.key_id:08x}") from None


class PeerSigner:
    """A server's private peer key with its name."""

    def __init__(self, *, name: str, seed: bytes) -> None:
        check_key_name(name)
        if len(seed) != _KEY_SIZE:
            raise NoteError("invalid peer signing key: wrong seed length")
        self._seed = seed
        self._signing_key = SigningKey(seed)
        self._verifier = PeerVerifier(name=name, public_key=bytes(self._signing_key.verify_key))

    @classmethod
    def generate(cls, name: str) -> PeerSigner:
        """A new key from the operating system's CSPRNG."""
        return cls(name=name, seed=os.urandom(_KEY_SIZE))

    @classmethod
    def parse_skey(cls, skey: str) -> PeerSigner:
        """Parse ``PRIVATE+KEY+name+hexkeyid+base64(0x04 || seed)``.

        Raises:
            NoteError: malformed, or a key ID that does not match the derived public key.
        """
        if not skey.startswith(_SKEY_PREFIX):
            raise NoteError("malformed peer signing key: missing PRIVATE+KEY+ prefix")
        name, claimed, seed = _split(skey[len(_SKEY_PREFIX) :], "peer signing key")
        signer = cls(name=name, seed=seed)
        if signer.verifier().key_id != claimed:
            raise NoteError("malformed peer signing key: key ID does not match the key")
        return signer

    def skey(self) -> str:
        """The private key string; handle it like the key itself."""
        material = b64encode(bytes([COSIGNATURE_TYPE]) + self._seed)
        return f"{_SKEY_PREFIX}{self._verifier.name}+{self._verifier.key_id:08x}+{material}"

    def verifier(self) -> PeerVerifier:
        return self._verifier

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._signing_key.sign(message).signature

    def __repr__(self) -> str:
        # Never show the seed, not even in a traceback.
        return f"PeerSigner(verifier={str(self._verifier)!r})"


def peer_fingerprint(peer_key: PeerVerifier, log_key: str) -> str:
    """A short code over a server's peer key and log key, for operators to compare out of band.

    SHA-256 of ``<peer key> LF <log key> LF`` (both verifier key strings), its
    first 128 bits as eight groups of four hex digits, like
    :func:`vault.note.verifier_fingerprint` for a log key alone.
    """
    data = f"{peer_key}\n{log_key}\n".encode()
    digest = hashlib.sha256(data).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))
