"""Canonical JSON: one value, one encoding."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault import canonical
from vault.errors import FormatError

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-canonical.MAX_SAFE_INTEGER, canonical.MAX_SAFE_INTEGER)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(VALUES)
def test_round_trip(value: Any) -> None:
    data = canonical.dumps(value)
    assert canonical.loads(data) == value
    assert canonical.dumps(canonical.loads(data)) == data


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1,"a":2}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":1.0}',
        b'{"a":1e3}',
        b'{"b":1,"a":2}',
        b'{"a": 1}',
        b'{"a":"\\u00e9"}',
        b'{"a":"\\ud800"}',
        b"\xff\xfe",
        b'{"a":9007199254740992}',
        b"1" * 5000,
        b'{"a":' + b"9" * 100000 + b"}",
        b"[" * 50 + b"]" * 50,
        b"",
    ],
)
def test_non_canonical_or_ambiguous_input_is_refused(data: bytes) -> None:
    with pytest.raises(FormatError):
        canonical.loads(data)


@pytest.mark.parametrize("value", [1.5, {1: "a"}, 2**60, b"bytes", "\ud800"])
def test_unencodable_values_are_refused(value: Any) -> None:
    with pytest.raises(FormatError):
        canonical.dumps(value)
