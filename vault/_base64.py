"""Standard padded base64 (RFC 4648, section 4), decoded strictly.

Python's decoder ignores set trailing bits; accepting them would let one key,
hash or signature be written several ways, so a decoded value is re-encoded
and compared. Used by every format of the core library but the age header,
which has its own unpadded variant (``vault.age._b64``).
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["b64decode", "b64encode"]

_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def b64encode(data: bytes) -> str:
    """Standard padded base64."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object, size: int | None = None) -> bytes | None:
    """Decode canonical padded base64 (of ``size`` bytes if given), or return ``None``."""
    if not isinstance(text, str) or not _B64.fullmatch(text):
        return None
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        return None
    if b64encode(data) != text or (size is not None and len(data) != size):
        return None
    return data
