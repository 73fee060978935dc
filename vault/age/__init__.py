"""age v1 file encryption (C2SP age.md), streaming, with the hybrid post-quantum type.

Every item the vault stores is an age v1 file, so editors and the public can
always fall back to the standard ``age`` tool. The public surface::

    encrypt(src, dst, recipients, *, armor=False)
    decrypt(src, dst, identities)
    rewrap(src, dst, identity, add_recipients)

``src`` and ``dst`` are binary file objects; neither is closed. Recipients and
identities: :class:`HybridRecipient`/:class:`HybridIdentity` (ML-KEM-768 +
X25519, the default), :class:`X25519Recipient`/:class:`X25519Identity` and
:class:`ScryptRecipient`/:class:`ScryptIdentity` (passphrase).
"""

from __future__ import annotations

from vault.age._file import (
    decrypt,
    encrypt,
    new_header,
    rewrap,
    rewrap_header,
    unwrap_file_key,
)
from vault.age._interface import Identity, Recipient
from vault.age._keyfile import (
    parse_identity,
    parse_identity_file,
    parse_recipient,
    parse_recipient_file,
)
from vault.age.format import Header, Stanza
from vault.age.hybrid import HybridIdentity, HybridRecipient
from vault.age.scrypt import ScryptIdentity, ScryptRecipient
from vault.age.x25519 import X25519Identity, X25519Recipient
from vault.errors import (
    ArmorError,
    DecryptError,
    EncryptError,
    HeaderError,
    HMACError,
    KeyFormatError,
    NoIdentityMatchError,
    PayloadError,
)

__all__ = [
    "ArmorError",
    "DecryptError",
    "EncryptError",
    "HMACError",
    "Header",
    "HeaderError",
    "HybridIdentity",
    "HybridRecipient",
    "Identity",
    "KeyFormatError",
    "NoIdentityMatchError",
    "PayloadError",
    "Recipient",
    "ScryptIdentity",
    "ScryptRecipient",
    "Stanza",
    "X25519Identity",
    "X25519Recipient",
    "decrypt",
    "encrypt",
    "new_header",
    "parse_identity",
    "parse_identity_file",
    "parse_recipient",
    "parse_recipient_file",
    "rewrap",
    "rewrap_header",
    "unwrap_file_key",
]
