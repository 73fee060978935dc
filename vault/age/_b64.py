"""Strict base64 helpers for the age header (RFC 4648 without padding).

Python's decoder accepts non-canonical input (set trailing bits, missing or
stray padding); the format requires rejecting it, so every decode is checked
against a pattern and re-encoded.
"""

from __future__ import annotations

import base64
import binascii
import re

_B64_CHARS = re.compile(rb"[A-Za-z0-9+/]*")


def encode(data: bytes) -> bytes:
    """Encode ``data`` as canonical unpadded base64."""
    return base64.b64encode(data).rstrip(b"=")


def decode(text: bytes) -> bytes | None:
    """Decode canonical unpadded base64, or return ``None`` if it is not canonical."""
    if not _B64_CHARS.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None
    if encode(data) != text:
        return None
    return data
