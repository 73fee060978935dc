"""Every file of the C2SP/CCTV age testkit is one test case (see its FORMAT.md).

The outcome category must match exactly, and the SHA-256 of the plaintext
released must match for successes and, partial, for payload failures.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import VECTORS_DIR
from vault import age
from vault.age.format import Source, parse_header
from vault.errors import DecryptError

TESTKIT = VECTORS_DIR / "age"
_NOT_VECTORS = {"FORMAT.md", "LICENSE", ".gitattributes"}
_KNOWN_KEYS = {
    "expect",
    "payload",
    "file key",
    "identity",
    "passphrase",
    "armored",
    "compressed",
    "comment",
}
CATEGORIES = {
    age.HeaderError: "header failure",
    age.NoIdentityMatchError: "no match",
    age.HMACError: "HMAC failure",
    age.PayloadError: "payload failure",
    age.ArmorError: "armor failure",
}


@dataclass
class Vector:
    name: str
    expect: str
    payload: str | None
    identities: list[str] = field(default_factory=list)
    passphrases: list[str] = field(default_factory=list)
    armored: bool = False
    body: bytes = b""


def load(path: Path) -> Vector:
    raw = path.read_bytes()
    preamble, body = raw.split(b"\n\n", 1)
    meta: dict[str, str] = {}
    vector = Vector(name=path.name, expect="", payload=None)
    for line in preamble.decode("utf-8").split("\n"):
        key, value = line.split(": ", 1)
        assert key in _KNOWN_KEYS, f"{path.name}: unknown preamble key {key!r}"
        if key == "identity":
            vector.identities.append(value)
        elif key == "passphrase":
            vector.passphrases.append(value)
        else:
            meta[key] = value
    vector.expect = meta["expect"]
    vector.payload = meta.get("payload")
    vector.armored = meta.get("armored") == "yes"
    vector.body = zlib.decompress(body) if meta.get("compressed") == "zlib" else body
    return vector


def _names() -> list[str]:
    if not TESTKIT.is_dir():
        return []
    return sorted(p.name for p in TESTKIT.iterdir() if p.name not in _NOT_VECTORS)


NAMES = _names()


def test_the_whole_testkit_is_present() -> None:
    assert len(NAMES) == 143, f"expected the 143 testkit files under {TESTKIT}"


def _run(vector: Vector) -> tuple[str, bytes, DecryptError | None]:
    identities: list[age.Identity] = [age.parse_identity(i) for i in vector.identities]
    identities += [age.ScryptIdentity(p) for p in vector.passphrases]
    out = io.BytesIO()
    try:
        age.decrypt(io.BytesIO(vector.body), out, identities, armored=vector.armored)
    except DecryptError as exc:
        return CATEGORIES[type(exc)], out.getvalue(), exc
    return "success", out.getvalue(), None


@pytest.mark.parametrize("name", NAMES)
def test_vector(name: str) -> None:
    vector = load(TESTKIT / name)
    outcome, plaintext, error = _run(vector)
    assert outcome == vector.expect, f"{name}: got {outcome} ({error}), expected {vector.expect}"
    if vector.expect in ("success", "payload failure"):
        assert hashlib.sha256(plaintext).hexdigest() == vector.payload
    else:
        assert plaintext == b""
    if error is not None:
        # A message a person can act on, never an empty or internal one.
        assert str(error)
        assert "Traceback" not in str(error)


def _parseable() -> list[str]:
    """Binary vectors whose header is valid: all but header and armor ones."""
    out = []
    for name in NAMES:
        head = (TESTKIT / name).read_bytes().split(b"\n\n", 1)[0]
        if b"expect: header failure" not in head and b"armored: yes" not in head:
            out.append(name)
    return out


@pytest.mark.parametrize("name", _parseable())
def test_header_round_trip(name: str) -> None:
    """A header that parses is written back byte for byte."""
    vector = load(TESTKIT / name)
    data = vector.body
    source = Source(io.BytesIO(data))
    header = parse_header(source)
    marshalled = header.marshal()
    assert data.startswith(marshalled)
    assert data[len(marshalled) :] == source.read(len(data))


@pytest.mark.parametrize("name", NAMES)
def test_vector_with_armor_detection(name: str) -> None:
    """As the CLI runs it: armor detected from the first bytes, not told.

    Outcomes are the same, except that an armored input that does not start
    with a dash line (after whitespace) is read as a malformed binary header.
    """
    vector = load(TESTKIT / name)
    identities: list[age.Identity] = [age.parse_identity(i) for i in vector.identities]
    identities += [age.ScryptIdentity(p) for p in vector.passphrases]
    out = io.BytesIO()
    try:
        age.decrypt(io.BytesIO(vector.body), out, identities)
        outcome = "success"
    except DecryptError as exc:
        outcome = CATEGORIES[type(exc)]
    expected = vector.expect
    if vector.armored and not vector.body.lstrip(b" \t\r\n").startswith(b"-----"):
        expected = "header failure"
    assert outcome == expected
    if expected in ("success", "payload failure"):
        assert hashlib.sha256(out.getvalue()).hexdigest() == vector.payload
