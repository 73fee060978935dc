"""The header: serialising a parsed header reproduces it byte for byte."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.age import Header, Stanza
from vault.age.format import MAX_LINE_LENGTH, Source, parse_header
from vault.errors import HeaderError

ARGUMENT = st.text(alphabet=[chr(c) for c in range(0x21, 0x7F)], min_size=1, max_size=20)
STANZA = st.builds(
    Stanza,
    type=ARGUMENT,
    args=st.lists(ARGUMENT, max_size=4).map(tuple),
    # Bodies around multiples of 48 bytes end exactly on a 64-column line.
    body=st.one_of(st.binary(max_size=200), st.sampled_from([b"", bytes(48), bytes(96)])),
)


@settings(max_examples=200)
@given(stanzas=st.lists(STANZA, min_size=1, max_size=5), mac=st.binary(min_size=32, max_size=32))
def test_parse_then_marshal_is_the_identity(stanzas: list[Stanza], mac: bytes) -> None:
    data = Header(stanzas=tuple(stanzas), mac=mac).marshal()
    source = Source(io.BytesIO(data + b"payload"))
    parsed = parse_header(source)
    assert parsed.marshal() == data
    assert parsed.stanzas == tuple(stanzas)
    assert source.read(100) == b"payload"


def test_body_of_exactly_48_bytes_ends_with_an_empty_line() -> None:
    data = Stanza(type="t", args=(), body=bytes(48)).marshal()
    assert data.endswith(b"A" * 64 + b"\n\n")


@pytest.mark.parametrize(
    "header",
    [
        b"age-encryption.org/v1\n--- " + b"A" * 43 + b"\n",  # no stanzas
        b"age-encryption.org/v1\n->  X\n\n--- " + b"A" * 43 + b"\n",  # empty argument
        b"age-encryption.org/v1\n-> X \n\n--- " + b"A" * 43 + b"\n",  # trailing space
        b"age-encryption.org/v1\n-> X\nAAA=\n--- " + b"A" * 43 + b"\n",  # padding
        b"age-encryption.org/v1\n-> X\n\n--- " + b"A" * 42 + b"\n",  # short MAC
        b"age-encryption.org/v1\n-> X\n\n---" + b"A" * 43 + b"\n",  # no space
        b"age-encryption.org/v1\n-> X\n\n",  # no MAC line
        b"age-encryption.org/v1\n-> " + b"x" * MAX_LINE_LENGTH + b"\n",  # line too long
        b"age-encryption.org/v1\r\n-> X\n\n--- " + b"A" * 43 + b"\n",  # CRLF
    ],
)
def test_malformed_headers(header: bytes) -> None:
    with pytest.raises(HeaderError):
        parse_header(Source(io.BytesIO(header)))
