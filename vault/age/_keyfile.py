"""Parsing recipient strings, identity strings and identity files."""

from __future__ import annotations

from vault.age._interface import Identity, Recipient
from vault.age.hybrid import HybridIdentity, HybridRecipient
from vault.age.x25519 import X25519Identity, X25519Recipient
from vault.errors import KeyFormatError

_MAX_KEY_FILE = 1024 * 1024


def parse_recipient(text: str) -> Recipient:
    """Parse an ``age1pq1…`` or ``age1…`` recipient string.

    Raises:
        KeyFormatError: unknown type or invalid encoding.
    """
    text = text.strip()
    if text.startswith("age1pq1"):
        return HybridRecipient.parse(text)
    if text.startswith("age1"):
        return X25519Recipient.parse(text)
    if text.startswith("ssh-"):
        raise KeyFormatError(
            "unsupported recipient type",
            hint="use an age1pq1… (post-quantum) or age1… (X25519) recipient",
        )
    raise KeyFormatError(
        "invalid recipient: expected an age1pq1… or age1… string",
        hint="recipients are public keys; `evault keygen` prints one",
    )


def parse_identity(text: str) -> Identity:
    """Parse an ``AGE-SECRET-KEY-PQ-1…`` or ``AGE-SECRET-KEY-1…`` string.

    Raises:
        KeyFormatError: unknown type or invalid encoding. The message never
            contains the string itself, which is secret.
    """
    text = text.strip()
    if text.startswith("AGE-SECRET-KEY-PQ-1"):
        return HybridIdentity.parse(text)
    if text.startswith("AGE-SECRET-KEY-1"):
        return X25519Identity.parse(text)
    if text.startswith("AGE-PLUGIN-"):
        raise KeyFormatError("unsupported identity: age plugins are not supported")
    raise KeyFormatError("invalid identity: expected an AGE-SECRET-KEY-… string")


def _lines(data: bytes, what: str) -> list[tuple[int, str]]:
    if len(data) > _MAX_KEY_FILE:
        raise KeyFormatError(f"{what} file too large")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFormatError(f"{what} file is not text") from None
    if text.lstrip().startswith(("age-encryption.org/", "-----BEGIN")):
        raise KeyFormatError(
            f"{what} file is encrypted",
            hint="decrypt it first; encrypted identity files are not supported",
        )
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append((number, line))
    if not out:
        raise KeyFormatError(f"no {what} found in the file")
    return out


def parse_identity_file(data: bytes) -> list[Identity]:
    """Parse an identity file: one identity a line, ``#`` comments and blank lines ignored.

    Raises:
        KeyFormatError: naming the line that is wrong, never its content.
    """
    identities = []
    for number, line in _lines(data, "identity"):
        try:
            identities.append(parse_identity(line))
        except KeyFormatError as exc:
            raise KeyFormatError(f"identity file line {number}: {exc.message}") from None
    return identities


def parse_recipient_file(data: bytes) -> list[Recipient]:
    """Parse a recipients file: one recipient a line, ``#`` comments and blank lines ignored."""
    recipients = []
    for number, line in _lines(data, "recipient"):
        try:
            recipients.append(parse_recipient(line))
        except KeyFormatError as exc:
            raise KeyFormatError(
                f"recipients file line {number}: {exc.message}", hint=exc.hint
            ) from None
    return recipients
