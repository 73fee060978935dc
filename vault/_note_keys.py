"""Ed25519 note keys and signature lines (signed-note.md, "Signatures", "Verifier keys").

A verifier key (*vkey*) is ``<name>+<hex key ID>+<base64(0x01 || public key)>``.
The private form (*skey*) follows golang.org/x/mod's convention, which C2SP does
not define: ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from vault._base64 import b64decode, b64encode
from vault.errors import NoteError, SignatureError

__all__ = [
    "CONTROL",
    "SIGNATURE_PREFIX",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "b64decode",
    "b64encode",
    "check_key_name",
    "encode_text",
    "key_id",
]

SIGNATURE_PREFIX = "\u2014 "  # em dash, space

ED25519_TYPE = 0x01
_KEY_SIZE = 32
_SIGNATURE_SIZE = 64
_SKEY_PREFIX = "PRIVATE+KEY+"
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")
# The control characters a note must not contain: all below U+0020 but newline.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


def check_key_name(name: str) -> None:
    """Check a key name: non-empty, no Unicode spaces, no ``+``, no control characters.

    Raises:
        NoteError: the name breaks one of these rules.
    """
    if not name:
        raise NoteError("invalid key name: empty")
    if "+" in name:
        raise NoteError("invalid key name: contains '+'")
    # str.isspace covers the Unicode White_Space characters (as Go's unicode.IsSpace
    # does); control characters would make the name unusable in a note.
    if any(ch.isspace() or ch < "\x20" for ch in name):
        raise NoteError("invalid key name: contains a space or control character")


def encode_text(text: str) -> bytes:
    """Check note text and return its UTF-8 bytes.

    The text must end in a newline and hold no control character but newline.

    Raises:
        NoteError: the text breaks one of these rules or is not encodable.
    """
    if not text.endswith("\n"):
        raise NoteError("malformed note text: does not end with a newline")
    if CONTROL.search(text):
        raise NoteError("malformed note text: contains a control character")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("malformed note text: not encodable as utf-8") from None


def key_id(name: str, public_key: bytes) -> int:
    """The Ed25519 key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + public_key)
    return int.from_bytes(digest.digest()[:4], "big")


def _split_key(text: str, what: str) -> tuple[str, int, bytes]:
    """Split ``name+hexid+base64(0x01 || key)`` and check each part."""
    # The base64 part may itself contain '+', so only the first two separate.
    name, sep1, rest = text.partition("+")
    hex_id, sep2, encoded = rest.partition("+")
    if not (sep1 and sep2):
        raise NoteError(f"malformed {what}: expected name+keyid+key")
    check_key_name(name)
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise NoteError(f"malformed {what}: key ID is not 8 lower-case hex digits")
    material = b64decode(encoded)
    if material is None:
        raise NoteError(f"malformed {what}: key is not canonical base64")
    if len(material) != 1 + _KEY_SIZE:
        raise NoteError(f"malformed {what}: wrong key length")
    if material[0] != ED25519_TYPE:
        raise NoteError(f"malformed {what}: unsupported signature type {material[0]:#04x}")
    return name, int(hex_id, 16), material[1:]


@dataclass(frozen=True, kw_only=True)
class NoteSignature:
    """One signature line: key name, 32-bit key ID and the signature bytes."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not 0 <= self.key_id < 1 << 32:
            raise NoteError("invalid note signature: key ID out of range")
        if not self.signature:
            raise NoteError("invalid note signature: empty signature")

    def line(self) -> str:
        """The signature line ``— <name> <base64(key ID || signature)>\\n``."""
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {b64encode(blob)}\n"


@dataclass(frozen=True, kw_only=True)
class NoteVerifier:
    """A trusted Ed25519 note key: name, key ID and public key.

    The key ID is always computed from the name and key, never taken on trust.
    """

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.public_key) != _KEY_SIZE:
            raise NoteError("invalid note verifier key: wrong key length")
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key string ``name+hexkeyid+base64(0x01 || key)``.

        Raises:
            NoteError: malformed, an unsupported type, or a key ID that does not match.
        """
        name, claimed_id, public_key = _split_key(vkey, "verifier key")
        verifier = cls(name=name, public_key=public_key)
        if verifier.key_id != claimed_id:
            raise NoteError("malformed verifier key: key ID does not match the key")
        return verifier

    def __str__(self) -> str:
        material = b64encode(bytes([ED25519_TYPE]) + self.public_key)
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


class NoteSigner:
    """An Ed25519 note signing key with its name."""

    def __init__(self, *, name: str, seed: bytes) -> None:
        check_key_name(name)
        if len(seed) != _KEY_SIZE:
            raise NoteError("invalid note signing key: wrong seed length")
        self._name = name
        self._seed = seed
        self._signing_key = SigningKey(seed)
        self._verifier = NoteVerifier(name=name, public_key=bytes(self._signing_key.verify_key))

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> NoteSigner:
        """A signer from a 32-byte Ed25519 seed (RFC 8032 private key)."""
        return cls(name=name, seed=seed)

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """A new signer from the operating system's CSPRNG."""
        return cls(name=name, seed=os.urandom(_KEY_SIZE))

    @classmethod
    def parse_skey(cls, skey: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+name+hexkeyid+base64(0x01 || seed)``.

        Raises:
            NoteError: malformed, or a key ID that does not match the derived public key.
        """
        if not skey.startswith(_SKEY_PREFIX):
            raise NoteError("malformed signing key: missing PRIVATE+KEY+ prefix")
        name, claimed_id, seed = _split_key(skey[len(_SKEY_PREFIX) :], "signing key")
        signer = cls(name=name, seed=seed)
        if signer.key_id != claimed_id:
            raise NoteError("malformed signing key: key ID does not match the key")
        return signer

    def skey(self) -> str:
        """The private key string; handle it like the key itself."""
        material = b64encode(bytes([ED25519_TYPE]) + self._seed)
        return f"{_SKEY_PREFIX}{self._name}+{self.key_id:08x}+{material}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._verifier.key_id

    @property
    def public_key(self) -> bytes:
        return self._verifier.public_key

    def verifier(self) -> NoteVerifier:
        return self._verifier

    def sign(self, text: str) -> str:
        """Sign note text; return the signature line ``— <name> <base64>\\n``.

        Raises:
            NoteError: ``text`` is not valid note text.
        """
        signature = self._signing_key.sign(encode_text(text)).signature
        return NoteSignature(name=self._name, key_id=self.key_id, signature=signature).line()

    def __repr__(self) -> str:
        # Never show the seed, not even in a traceback.
        return f"NoteSigner(verifier={str(self._verifier)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoteSigner) and other._verifier == self._verifier

    def __hash__(self) -> int:
        return hash(self._verifier)
