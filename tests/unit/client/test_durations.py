"""Durations as a reporter types them, and times as the server sends them."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.durations import format_duration, parse_duration, parse_time, relative, shown_time
from vault.errors import ConfigError, ProofError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        ("1d12h", 129600),
        ("1w2d3h4m5s", 7 * 86400 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        ("0s", 0),
    ],
)
def test_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "7",
        "7 d",
        " 7d",
        "7d ",
        "+7d",
        "-7d",
        "7D",
        "1.5h",
        "07d",
        "7_0d",
        "12h1d",
        "1d1d",
        "1y",
        "d",
        "٧d",
        "6000w",
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10 * 365 * 86400))
def test_formatting_keeps_the_two_largest_units(seconds: int) -> None:
    text = format_duration(seconds)
    parts = text.split(" ")
    assert 1 <= len(parts) <= 2
    parsed = parse_duration("".join(parts))
    assert parsed <= seconds
    largest = parse_duration(parts[0])
    assert seconds - parsed < largest or seconds == parsed


def test_format_examples() -> None:
    assert format_duration(0) == "0s"
    assert format_duration(259200) == "3d"
    assert format_duration(129600) == "1d 12h"
    assert format_duration(3 * 86400 + 60) == "3d 1m"
    assert format_duration(2700) == "45m"


def test_server_times() -> None:
    moment = parse_time("2026-11-27T10:41:02Z")
    assert moment == datetime.datetime(2026, 11, 27, 10, 41, 2, tzinfo=datetime.UTC)
    assert parse_time(None) is None
    for bad in ("2026-11-27 10:41:02", "2026-11-27T10:41:02+00:00", "2026-13-27T10:41:02Z", 5):
        with pytest.raises(ProofError):
            parse_time(bad)


def test_relative_times() -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    later = now + datetime.timedelta(days=2, hours=3, minutes=5)
    assert relative(later, now) == "in 2d 3h"
    assert relative(now - datetime.timedelta(hours=5), now) == "5h ago"
    assert shown_time(later, now) == "2026-01-03 03:05 UTC (in 2d 3h)"
    assert shown_time(None, now) == "-"
