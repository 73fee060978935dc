"""Canonical JSON: the one byte encoding of a value that signatures cover.

Sorted keys, no insignificant whitespace, UTF-8, no floats (they have no
single spelling) and integers small enough for every JSON reader (|n| < 2^53).
Parsing is strict: invalid UTF-8, duplicate keys, NaN or Infinity, floats and
any input that is not already in canonical form are refused, so one value has
exactly one accepted encoding.
"""

from __future__ import annotations

import json
from typing import Any

from vault.errors import FormatError

__all__ = ["MAX_SAFE_INTEGER", "dumps", "loads"]

MAX_SAFE_INTEGER = 2**53 - 1
_MAX_DEPTH = 16


def _check(value: Any, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise FormatError("invalid canonical JSON: nested too deeply")
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise FormatError("invalid canonical JSON: integer out of range")
        return
    if isinstance(value, list):
        for item in value:
            _check(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FormatError("invalid canonical JSON: object keys must be strings")
            _check(item, depth + 1)
        return
    raise FormatError(f"invalid canonical JSON: unsupported type {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """Encode ``value`` canonically.

    Raises:
        FormatError: a float, a non-string key, an integer out of range, a
            string that is not valid Unicode, or an unsupported type.
    """
    _check(value)
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (UnicodeEncodeError, ValueError) as exc:
        raise FormatError("invalid canonical JSON: string is not valid Unicode") from exc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise FormatError(f"invalid JSON: duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise FormatError(f"invalid JSON: {name} is not allowed")


def _no_float(text: str) -> Any:
    raise FormatError("invalid JSON: numbers must be integers")


def _small_int(text: str) -> int:
    # Checked before int(): huge digit strings are slow to convert, and
    # Python refuses those past 4300 digits with a bare ValueError.
    if len(text.lstrip("-")) > 16:
        raise FormatError("invalid JSON: integer out of range")
    return int(text)


def loads(data: bytes) -> Any:
    """Decode canonical JSON, refusing anything that is not exactly canonical.

    Raises:
        FormatError: invalid UTF-8 or JSON, duplicate keys, NaN, floats, or a
            value whose canonical encoding differs from ``data``.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("invalid JSON: not UTF-8") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_no_float,
            parse_int=_small_int,
        )
    except RecursionError:
        raise FormatError("invalid JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON: {exc.msg} at position {exc.pos}") from None
    if dumps(value) != data:
        raise FormatError("invalid JSON: not in canonical form (sorted keys, no spaces)")
    return value
