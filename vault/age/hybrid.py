"""The MLKEM768-X25519 hybrid post-quantum recipient type.

age.md, "The MLKEM768-X25519 (i.e. X-Wing) hybrid post-quantum recipient
type". The KEM, the HPKE key schedule and the AEAD come from pyca/cryptography
(``hazmat.primitives.hpke``); this module only encodes keys and stanzas.

The identity is a 32-byte seed. As in filippo.io/hpke-pq, it is expanded with
SHAKE256 to 96 bytes: the first 64 are the ML-KEM-768 seed (d || z), the last
32 the X25519 secret key. The recipient is the ML-KEM-768 encapsulation key
(1184 bytes) followed by the X25519 public key (32 bytes).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from vault.age import _b64, _bech32
from vault.age._crypto import FILE_KEY_SIZE
from vault.age.format import Stanza
from vault.errors import HeaderError, KeyFormatError

__all__ = ["HybridIdentity", "HybridRecipient"]

STANZA_TYPE = "mlkem768x25519"
_INFO = b"age-encryption.org/mlkem768x25519"
_RECIPIENT_HRP = "age1pq"
_IDENTITY_HRP = "age-secret-key-pq-"
_SEED_SIZE = 32
_MLKEM_PUBLIC_SIZE = 1184
_MLKEM_CIPHERTEXT_SIZE = 1088
_X25519_SIZE = 32
_RECIPIENT_SIZE = _MLKEM_PUBLIC_SIZE + _X25519_SIZE
_ENC_SIZE = _MLKEM_CIPHERTEXT_SIZE + _X25519_SIZE
_LABEL = "postquantum"


def _suite() -> hpke.Suite:
    return hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


class HybridRecipient:
    """An ``age1pq1…`` public key."""

    def __init__(self, public_key: bytes) -> None:
        if len(public_key) != _RECIPIENT_SIZE:
            raise KeyFormatError("invalid post-quantum recipient: wrong key length")
        try:
            self._key = hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(public_key[:_MLKEM_PUBLIC_SIZE]),
                X25519PublicKey.from_public_bytes(public_key[_MLKEM_PUBLIC_SIZE:]),
            )
        except ValueError:
            raise KeyFormatError("invalid post-quantum recipient: invalid key") from None
        self._public = public_key
        self._text: str | None = None

    @classmethod
    def parse(cls, text: str) -> HybridRecipient:
        """Parse an ``age1pq1…`` string.

        Raises:
            KeyFormatError: not a valid hybrid recipient.
        """
        if text != text.lower():
            raise KeyFormatError("invalid post-quantum recipient: must be lower case")
        hrp, data = _bech32.decode(text)
        if hrp != _RECIPIENT_HRP:
            raise KeyFormatError(f"invalid post-quantum recipient: unexpected type {hrp!r}")
        return cls(data)

    @property
    def public_key(self) -> bytes:
        return self._public

    def __str__(self) -> str:
        # Bech32 of 1,216 bytes takes milliseconds here: spelled out once.
        if self._text is None:
            self._text = _bech32.encode(_RECIPIENT_HRP, self._public)
        return self._text

    def __repr__(self) -> str:
        return f"HybridRecipient({str(self)[:24]!r}…)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HybridRecipient) and other._public == self._public

    def __hash__(self) -> int:
        return hash(self._public)

    def labels(self) -> frozenset[str]:
        return frozenset({_LABEL})

    def wrap(self, file_key: bytes) -> list[Stanza]:
        sealed = _suite().encrypt(file_key, self._key, info=_INFO)
        enc, body = sealed[:_ENC_SIZE], sealed[_ENC_SIZE:]
        return [Stanza(type=STANZA_TYPE, args=(_b64.encode(enc).decode("ascii"),), body=body)]


class HybridIdentity:
    """An ``AGE-SECRET-KEY-PQ-1…`` secret key (a 32-byte seed)."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != _SEED_SIZE:
            raise KeyFormatError("invalid post-quantum identity: wrong key length")
        expanded = hashlib.shake_256(seed).digest(96)
        self._seed = seed
        self._mlkem = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
        self._x25519 = X25519PrivateKey.from_private_bytes(expanded[64:])
        self._key = hpke.MLKEM768X25519PrivateKey(self._mlkem, self._x25519)

    @classmethod
    def generate(cls) -> HybridIdentity:
        """A new identity from the operating system's CSPRNG."""
        return cls(os.urandom(_SEED_SIZE))

    @classmethod
    def parse(cls, text: str) -> HybridIdentity:
        """Parse an ``AGE-SECRET-KEY-PQ-1…`` string.

        Raises:
            KeyFormatError: not a valid hybrid identity.
        """
        if text != text.upper():
            raise KeyFormatError("invalid post-quantum identity: must be upper case")
        hrp, data = _bech32.decode(text)
        if hrp != _IDENTITY_HRP:
            raise KeyFormatError("invalid post-quantum identity: unexpected type")
        return cls(data)

    def __str__(self) -> str:
        return _bech32.encode(_IDENTITY_HRP, self._seed, upper=True)

    def __repr__(self) -> str:
        return "HybridIdentity(…)"

    def recipient(self) -> HybridRecipient:
        return HybridRecipient(
            self._mlkem.public_key().public_bytes_raw()
            + self._x25519.public_key().public_bytes_raw()
        )

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            if len(stanza.args) != 1:
                raise HeaderError("invalid mlkem768x25519 stanza: wrong number of arguments")
            enc = _b64.decode(stanza.args[0].encode("ascii"))
            if enc is None or len(enc) != _ENC_SIZE:
                raise HeaderError("invalid mlkem768x25519 stanza: invalid encapsulated key")
            # Checked before decrypting to avoid a partitioning oracle.
            if len(stanza.body) != FILE_KEY_SIZE + 16:
                raise HeaderError("invalid mlkem768x25519 stanza: invalid body length")
            if not _x25519_share_ok(self._x25519, enc[_MLKEM_CIPHERTEXT_SIZE:]):
                raise HeaderError("invalid mlkem768x25519 stanza: low-order X25519 share")
            try:
                return _suite().decrypt(enc + stanza.body, self._key, info=_INFO)
            except (InvalidTag, ValueError):
                # A stanza for another recipient fails here like a corrupted one.
                continue
        return None


def _x25519_share_ok(private: X25519PrivateKey, share: bytes) -> bool:
    """Whether the X25519 half of ``enc`` gives a non-zero shared secret."""
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(share))
    except ValueError:
        return False
    return not hmac.compare_digest(shared, bytes(32))
