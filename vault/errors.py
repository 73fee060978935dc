"""The one exception tree of the vault.

Every error the core library raises on bad input is a :class:`VaultError`. Each
carries a message a person can act on and an optional ``hint``. Families:

- :class:`FormatError`: something could not be parsed (a key string, a file).
- :class:`DecryptError`: an age file could not be decrypted. Its subclasses
  follow the outcome categories of the age testkit so that a low-level parse
  error is never masked by a later check.
- :class:`EncryptError`: the inputs to an encryption are unusable together.
- :class:`ProofError` (with :class:`SignatureError`): a signature, checkpoint or
  Merkle proof that does not verify.
- :class:`KeystoreError`: the passphrase-protected key file; :class:`ShareError`:
  release shares; :class:`ServerError`, :class:`ConfigError`: the HTTP client and
  local configuration.
"""

from __future__ import annotations

__all__ = [
    "ArmorError",
    "ConfigError",
    "DecryptError",
    "EncryptError",
    "FormatError",
    "HMACError",
    "HeaderError",
    "KeyFormatError",
    "KeystoreCorruptError",
    "KeystoreError",
    "ManifestError",
    "NoIdentityMatchError",
    "NoteError",
    "PayloadError",
    "ProofError",
    "ServerError",
    "ShareError",
    "SignatureError",
    "VaultError",
    "WrongPassphraseError",
]


class VaultError(Exception):
    """Root of every error the vault raises on bad input or a failed check."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class FormatError(VaultError):
    """Input that does not follow its format."""


class KeyFormatError(FormatError):
    """A recipient or identity string that is not a valid encoding."""


class EncryptError(VaultError):
    """Recipients or options that cannot be used to encrypt a file."""


class ConfigError(VaultError):
    """A setting or a local file that is missing or unusable."""


class ManifestError(FormatError):
    """An item manifest that is malformed or does not match its item."""


class NoteError(FormatError):
    """A signed note, checkpoint or proof whose text breaks its format."""


class ProofError(VaultError):
    """A signature, checkpoint or Merkle proof that does not verify."""


class SignatureError(ProofError):
    """A signature that does not verify, or one from an unexpected key."""


class KeystoreError(VaultError):
    """The local keystore cannot be opened or written."""


class WrongPassphraseError(KeystoreError):
    """No slot of the keystore opens with the passphrase given."""


class KeystoreCorruptError(KeystoreError):
    """The keystore file is truncated, altered or not a keystore."""


class ShareError(VaultError):
    """Release shares that are malformed, mixed up, duplicated or too few."""


class ServerError(VaultError):
    """The server refused a request or answered something unexpected."""


class DecryptError(VaultError):
    """An age file that cannot be decrypted."""


class HeaderError(DecryptError):
    """The age header is malformed or breaks a rule of the format.

    The 16-byte payload nonce is read together with the header, so a missing or
    short nonce is a header error too.
    """


class NoIdentityMatchError(DecryptError):
    """The header is well formed, but none of the identities unwraps the file key."""


class HMACError(DecryptError):
    """The file key was unwrapped, but the header MAC does not verify."""


class PayloadError(DecryptError):
    """The payload is truncated, altered or followed by extra data.

    Plaintext released before this error came from chunks that did
    authenticate; nothing after the first bad chunk is released.
    """


class ArmorError(DecryptError):
    """The ASCII armor around an age file is not strict PEM."""
