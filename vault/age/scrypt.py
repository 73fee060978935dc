"""The scrypt passphrase recipient type (age.md, "The scrypt recipient type")."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from vault.age import _b64
from vault.age._crypto import FILE_KEY_SIZE, open_file_key, seal_file_key
from vault.age.format import Stanza
from vault.errors import EncryptError, HeaderError

__all__ = [
    "DEFAULT_WORK_FACTOR",
    "MAX_WORK_FACTOR",
    "ScryptIdentity",
    "ScryptRecipient",
    "check_stanza",
]

STANZA_TYPE = "scrypt"
_SALT_LABEL = b"age-encryption.org/v1/scrypt"
_SALT_SIZE = 16
DEFAULT_WORK_FACTOR = 18
"""log2 of N when encrypting, as the age tool uses (about a second)."""
MAX_WORK_FACTOR = 22
"""Highest log2 N accepted when decrypting, refused before scrypt runs."""
_WORK_FACTOR = re.compile(r"[1-9][0-9]*")


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    data = passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)
    if not data:
        raise EncryptError("empty passphrase")
    return data


def _wrap_key(passphrase: bytes, salt: bytes, work_factor: int) -> bytes:
    # scrypt needs 128 * r * N bytes: 4 GiB at the cap of N = 2^22.
    kdf = Scrypt(salt=_SALT_LABEL + salt, length=32, n=1 << work_factor, r=8, p=1)
    try:
        return kdf.derive(passphrase)
    except MemoryError:
        need = 128 * 8 * (1 << work_factor) // 2**20
        raise HeaderError(
            f"not enough memory for the file's scrypt work factor 2^{work_factor}",
            hint=f"opening it needs about {need} MiB of free memory",
        ) from None


class ScryptRecipient:
    """Encrypts to a passphrase. It must be the only recipient of a file."""

    def __init__(self, passphrase: str | bytes, work_factor: int = DEFAULT_WORK_FACTOR) -> None:
        if not 1 <= work_factor <= MAX_WORK_FACTOR:
            raise EncryptError(f"scrypt work factor must be between 1 and {MAX_WORK_FACTOR}")
        self._passphrase = _passphrase_bytes(passphrase)
        self._work_factor = work_factor
        # A label no other recipient has, so that it cannot share a file.
        self._label = os.urandom(16).hex()

    def __repr__(self) -> str:
        return f"ScryptRecipient(work_factor={self._work_factor})"

    def labels(self) -> frozenset[str]:
        return frozenset({self._label})

    def wrap(self, file_key: bytes) -> list[Stanza]:
        salt = os.urandom(_SALT_SIZE)
        body = seal_file_key(_wrap_key(self._passphrase, salt, self._work_factor), file_key)
        args = (_b64.encode(salt).decode("ascii"), str(self._work_factor))
        return [Stanza(type=STANZA_TYPE, args=args, body=body)]


class ScryptIdentity:
    """Decrypts files encrypted to a passphrase."""

    def __init__(self, passphrase: str | bytes, *, max_work_factor: int = MAX_WORK_FACTOR) -> None:
        self._passphrase = _passphrase_bytes(passphrase)
        self._max_work_factor = max_work_factor

    def __repr__(self) -> str:
        return "ScryptIdentity(…)"

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            salt, work_factor = check_stanza(stanza, stanzas, self._max_work_factor)
            return open_file_key(_wrap_key(self._passphrase, salt, work_factor), stanza.body)
        return None


def check_stanza(
    stanza: Stanza, stanzas: Sequence[Stanza], max_work_factor: int = MAX_WORK_FACTOR
) -> tuple[bytes, int]:
    """Check an scrypt stanza before any passphrase is asked for or scrypt runs.

    Returns the salt and the work factor.

    Raises:
        HeaderError: the stanza breaks a rule of the format or asks for more
            work than ``max_work_factor``.
    """
    if len(stanzas) != 1:
        raise HeaderError("invalid header: an scrypt stanza must be the only stanza")
    if len(stanza.args) != 2:
        raise HeaderError("invalid scrypt stanza: wrong number of arguments")
    salt = _b64.decode(stanza.args[0].encode("ascii"))
    if salt is None or len(salt) != _SALT_SIZE:
        raise HeaderError("invalid scrypt stanza: invalid salt")
    if not _WORK_FACTOR.fullmatch(stanza.args[1]):
        raise HeaderError("invalid scrypt stanza: invalid work factor")
    # Compare the length first: int() of a huge string is itself costly.
    if len(stanza.args[1]) > 3 or int(stanza.args[1]) > max_work_factor:
        raise HeaderError(
            "scrypt work factor too large",
            hint=f"files above 2^{max_work_factor} are refused: they could "
            "take minutes and gigabytes to open",
        )
    # Checked before decrypting to avoid a partitioning oracle.
    if len(stanza.body) != FILE_KEY_SIZE + 16:
        raise HeaderError("invalid scrypt stanza: invalid body length")
    return salt, int(stanza.args[1])
