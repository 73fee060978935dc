"""The X25519 recipient type (age.md, "The X25519 recipient type")."""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from vault.age import _b64, _bech32
from vault.age._crypto import FILE_KEY_SIZE, hkdf_sha256, open_file_key, seal_file_key
from vault.age.format import Stanza
from vault.errors import HeaderError, KeyFormatError

__all__ = ["X25519Identity", "X25519Recipient"]

STANZA_TYPE = "X25519"
_INFO = b"age-encryption.org/v1/X25519"
_RECIPIENT_HRP = "age"
_IDENTITY_HRP = "age-secret-key-"
_KEY_SIZE = 32


def _exchange(private: X25519PrivateKey, public: bytes) -> bytes | None:
    """X25519 shared secret, or ``None`` for the all-zero result of a low-order point."""
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:
        # cryptography refuses an all-zero shared secret; the format says abort.
        return None
    return None if hmac.compare_digest(shared, bytes(32)) else shared


class X25519Recipient:
    """An ``age1…`` public key."""

    def __init__(self, public_key: bytes) -> None:
        if len(public_key) != _KEY_SIZE:
            raise KeyFormatError("invalid X25519 recipient: wrong key length")
        self._public = public_key

    @classmethod
    def parse(cls, text: str) -> X25519Recipient:
        """Parse an ``age1…`` string.

        Raises:
            KeyFormatError: not a valid X25519 recipient.
        """
        if text != text.lower():
            raise KeyFormatError("invalid X25519 recipient: must be lower case")
        hrp, data = _bech32.decode(text)
        if hrp != _RECIPIENT_HRP:
            raise KeyFormatError(f"invalid X25519 recipient: unexpected type {hrp!r}")
        return cls(data)

    @property
    def public_key(self) -> bytes:
        return self._public

    def __str__(self) -> str:
        return _bech32.encode(_RECIPIENT_HRP, self._public)

    def __repr__(self) -> str:
        return f"X25519Recipient({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Recipient) and other._public == self._public

    def __hash__(self) -> int:
        return hash(self._public)

    def labels(self) -> frozenset[str]:
        return frozenset()

    def wrap(self, file_key: bytes) -> list[Stanza]:
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        shared = _exchange(ephemeral, self._public)
        if shared is None:
            raise KeyFormatError("invalid X25519 recipient: low-order point")
        wrap_key = hkdf_sha256(shared, share + self._public, _INFO)
        body = seal_file_key(wrap_key, file_key)
        return [Stanza(type=STANZA_TYPE, args=(_b64.encode(share).decode("ascii"),), body=body)]


class X25519Identity:
    """An ``AGE-SECRET-KEY-1…`` secret key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != _KEY_SIZE:
            raise KeyFormatError("invalid X25519 identity: wrong key length")
        self._secret = secret
        self._private = X25519PrivateKey.from_private_bytes(secret)
        self._public = self._private.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> X25519Identity:
        """A new identity from the operating system's CSPRNG."""
        return cls(os.urandom(_KEY_SIZE))

    @classmethod
    def parse(cls, text: str) -> X25519Identity:
        """Parse an ``AGE-SECRET-KEY-1…`` string.

        Raises:
            KeyFormatError: not a valid X25519 identity.
        """
        if text != text.upper():
            raise KeyFormatError("invalid X25519 identity: must be upper case")
        hrp, data = _bech32.decode(text)
        if hrp != _IDENTITY_HRP:
            raise KeyFormatError("invalid X25519 identity: unexpected type")
        return cls(data)

    def __str__(self) -> str:
        return _bech32.encode(_IDENTITY_HRP, self._secret, upper=True)

    def __repr__(self) -> str:
        # Never show the secret, not even in a traceback.
        return f"X25519Identity(recipient={str(self.recipient())!r})"

    def recipient(self) -> X25519Recipient:
        return X25519Recipient(self._public)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            if len(stanza.args) != 1:
                raise HeaderError("invalid X25519 stanza: wrong number of arguments")
            share = _b64.decode(stanza.args[0].encode("ascii"))
            if share is None or len(share) != _KEY_SIZE:
                raise HeaderError("invalid X25519 stanza: invalid ephemeral share")
            # Checked before decrypting to avoid a partitioning oracle.
            if len(stanza.body) != FILE_KEY_SIZE + 16:
                raise HeaderError("invalid X25519 stanza: invalid body length")
            shared = _exchange(self._private, share)
            if shared is None:
                raise HeaderError("invalid X25519 stanza: low-order ephemeral share")
            wrap_key = hkdf_sha256(shared, share + self._public, _INFO)
            file_key = open_file_key(wrap_key, stanza.body)
            if file_key is not None:
                return file_key
        return None
