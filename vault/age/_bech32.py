"""Bech32 (BIP 173) without the 90-character limit, as age uses it for keys.

Strict: mixed case, a bad checksum, characters outside the alphabet or
non-zero padding bits are all refused.
"""

from __future__ import annotations

from vault.errors import KeyFormatError

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_REVERSE = {c: i for i, c in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GENERATOR[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _to_5bit(data: bytes) -> list[int]:
    acc = bits = 0
    out = []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def _from_5bit(data: list[int]) -> bytes:
    acc = bits = 0
    out = bytearray()
    for value in data:
        acc = (acc << 5) | value
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    # Leftover bits must be fewer than a byte and all zero, or two strings
    # would decode to the same key.
    if bits >= 5 or acc & ((1 << bits) - 1):
        raise KeyFormatError("invalid Bech32 padding")
    return bytes(out)


def encode(hrp: str, data: bytes, *, upper: bool = False) -> str:
    """Encode ``data`` under the human-readable part ``hrp``."""
    hrp = hrp.lower()
    values = _to_5bit(data)
    polymod = _polymod(_hrp_expand(hrp) + values + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    text = hrp + "1" + "".join(_CHARSET[v] for v in values + checksum)
    return text.upper() if upper else text


def decode(text: str) -> tuple[str, bytes]:
    """Decode a Bech32 string into its lower-case human-readable part and data.

    Raises:
        KeyFormatError: if the string is not valid Bech32.
    """
    if text.lower() != text and text.upper() != text:
        raise KeyFormatError("invalid Bech32 string: mixed case")
    if not text.isascii() or any(not 33 <= ord(c) <= 126 for c in text):
        raise KeyFormatError("invalid Bech32 string: invalid character")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise KeyFormatError("invalid Bech32 string: missing separator or checksum")
    hrp = text[:pos]
    try:
        values = [_REVERSE[c] for c in text[pos + 1 :]]
    except KeyError:
        raise KeyFormatError("invalid Bech32 string: invalid character") from None
    if _polymod(_hrp_expand(hrp) + values) != 1:
        raise KeyFormatError("invalid Bech32 checksum", hint="check the key for a typo")
    return hrp, _from_5bit(values[:-6])
