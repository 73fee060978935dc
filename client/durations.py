"""Durations and times as a reporter types and reads them: ``90s``, ``12h``, ``1d12h``, "in 2d 3h".

A duration is one or more numbers each followed by a unit, largest first:
``s`` seconds, ``m`` minutes, ``h`` hours, ``d`` days, ``w`` weeks
(``2w``, ``1d12h``, ``30m``). Nothing else is accepted: no signs, spaces,
fractions or bare numbers, since a bare ``7`` could mean anything and a
check-in interval that is off by a factor of 60 releases evidence early.
"""

from __future__ import annotations

import datetime
import re

from vault.errors import ConfigError, ProofError

__all__ = ["format_duration", "parse_duration", "parse_time", "relative", "shown_time"]

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_ORDER = "wdhms"
_PART = re.compile(r"([1-9][0-9]{0,8}|0)([wdhms])")
_MAX = 100 * 365 * 86400
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def parse_duration(text: str, *, what: str = "duration") -> int:
    """Seconds in ``text`` (``90s``, ``30m``, ``12h``, ``7d``, ``2w``, ``1d12h``).

    Raises:
        ConfigError: anything else, units out of order or repeated, over 100 years.
    """
    bad = ConfigError(
        f"invalid {what} {text!r}",
        hint="use a number and a unit: 90s, 30m, 12h, 7d, 2w (or 1d12h)",
    )
    position, total, last = 0, 0, -1
    if not text:
        raise bad
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise bad
        unit = _ORDER.index(match.group(2))
        if unit <= last:
            raise bad
        last = unit
        total += int(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if total > _MAX:
        raise ConfigError(f"{what} too long: {text}")
    return total


def format_duration(seconds: int) -> str:
    """The two largest units of ``seconds``: ``3d``, ``1d 12h``, ``45m``, ``0s``."""
    if seconds < 0:
        raise ValueError("negative duration")
    parts = []
    left = seconds
    for unit in "dhms":
        size = _UNITS[unit]
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2]) or "0s"


def parse_time(value: object) -> datetime.datetime | None:
    """An ISO 8601 UTC time from the server (``2026-11-27T10:41:02Z``), or None if absent.

    Raises:
        ProofError: present but not such a time.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise ProofError("the server sent a malformed time")
    try:
        moment = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise ProofError("the server sent a malformed time") from None
    return moment.replace(tzinfo=datetime.UTC)


def relative(moment: datetime.datetime, now: datetime.datetime) -> str:
    """``in 2d 3h`` or ``5h 10m ago``."""
    seconds = int((moment - now).total_seconds())
    if seconds >= 0:
        return f"in {format_duration(seconds)}"
    return f"{format_duration(-seconds)} ago"


def shown_time(moment: datetime.datetime | None, now: datetime.datetime) -> str:
    """``2026-11-27 10:41 UTC (in 2d 3h)``, or ``-``."""
    if moment is None:
        return "-"
    return f"{moment.strftime('%Y-%m-%d %H:%M')} UTC ({relative(moment, now)})"
