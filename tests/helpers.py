"""Helpers shared by the test modules: age in memory."""

from __future__ import annotations

import io
from collections.abc import Sequence

from vault import age


def encrypt_bytes(
    plaintext: bytes, recipients: Sequence[age.Recipient], *, armor: bool = False
) -> bytes:
    """``vault.age.encrypt`` from bytes to bytes."""
    out = io.BytesIO()
    age.encrypt(io.BytesIO(plaintext), out, recipients, armor=armor)
    return out.getvalue()


def decrypt_bytes(ciphertext: bytes, identities: Sequence[age.Identity]) -> bytes:
    """``vault.age.decrypt`` from bytes to bytes."""
    out = io.BytesIO()
    age.decrypt(io.BytesIO(ciphertext), out, identities)
    return out.getvalue()
