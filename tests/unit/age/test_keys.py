"""Key encodings: Bech32 and the four key types, checked against age.md's examples."""

from __future__ import annotations

import pytest

from vault import age
from vault.age import _bech32
from vault.errors import KeyFormatError

# Examples from age.md.
X25519_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
X25519_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"
PQ_IDENTITY = "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
PQ_RECIPIENT_START = "age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg87pzf5zr"
PQ_RECIPIENT_END = "aeq0d3fzv49zc0k"


def test_x25519_example_from_the_spec() -> None:
    identity = age.X25519Identity.parse(X25519_IDENTITY)
    assert str(identity) == X25519_IDENTITY
    assert str(identity.recipient()) == X25519_RECIPIENT
    assert str(age.X25519Recipient.parse(X25519_RECIPIENT)) == X25519_RECIPIENT


def test_hybrid_example_from_the_spec() -> None:
    identity = age.HybridIdentity.parse(PQ_IDENTITY)
    assert str(identity) == PQ_IDENTITY
    recipient = str(identity.recipient())
    assert recipient.startswith(PQ_RECIPIENT_START)
    assert recipient.endswith(PQ_RECIPIENT_END)
    assert len(identity.recipient().public_key) == 1184 + 32
    assert str(age.HybridRecipient.parse(recipient)) == recipient


@pytest.mark.parametrize("cls", [age.X25519Identity, age.HybridIdentity])
def test_generate_parse_round_trip(
    cls: type[age.X25519Identity] | type[age.HybridIdentity],
) -> None:
    identity = cls.generate()
    again = cls.parse(str(identity))
    assert str(again) == str(identity)
    assert again.recipient() == identity.recipient()
    assert type(identity.recipient()).parse(str(identity.recipient())) == identity.recipient()


@pytest.mark.parametrize("cls", [age.X25519Identity, age.HybridIdentity])
def test_repr_never_shows_the_secret(
    cls: type[age.X25519Identity] | type[age.HybridIdentity],
) -> None:
    identity = cls.generate()
    secret = str(identity)
    assert secret[20:40] not in repr(identity)
    assert "SECRET" not in repr(identity)


def test_parse_recipient_dispatches_on_type() -> None:
    assert isinstance(age.parse_recipient(X25519_RECIPIENT), age.X25519Recipient)
    pq = str(age.HybridIdentity.generate().recipient())
    assert isinstance(age.parse_recipient(pq), age.HybridRecipient)
    assert isinstance(age.parse_identity(PQ_IDENTITY), age.HybridIdentity)
    assert isinstance(age.parse_identity(X25519_IDENTITY), age.X25519Identity)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "age1",
        X25519_RECIPIENT.upper().replace("AGE1", "age1"),  # mixed case
        X25519_RECIPIENT[:-1] + ("q" if X25519_RECIPIENT[-1] != "q" else "p"),  # checksum
        X25519_RECIPIENT[:-7] + X25519_RECIPIENT[-6:],  # one character short
        "age1" + "b" * 58,  # 'b' is not in the Bech32 alphabet
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm",
        "age1tag1qt8lw0ual6avlwmwatk888yqnmdamm7xfd0wak53ut6elz5c4swx2yqdj4e",
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX",
    ],
)
def test_bad_recipients_are_refused(text: str) -> None:
    with pytest.raises(KeyFormatError):
        age.parse_recipient(text)


def test_identity_errors_never_contain_the_secret() -> None:
    broken = X25519_IDENTITY[:-1] + "Y"
    with pytest.raises(KeyFormatError) as info:
        age.parse_identity(broken)
    assert X25519_IDENTITY[16:40] not in str(info.value)
    with pytest.raises(KeyFormatError) as info:
        age.parse_identity_file(b"# comment\n\n" + broken.encode() + b"\n")
    assert "line 3" in str(info.value)
    assert X25519_IDENTITY[16:40] not in str(info.value)


def test_identity_file_skips_comments_and_blank_lines() -> None:
    data = (
        f"# created: now\n# public key: {X25519_RECIPIENT}\n\n{X25519_IDENTITY}\r\n{PQ_IDENTITY}\n"
    )
    identities = age.parse_identity_file(data.encode())
    assert [type(i) for i in identities] == [age.X25519Identity, age.HybridIdentity]
    with pytest.raises(KeyFormatError, match="no identity found"):
        age.parse_identity_file(b"# nothing here\n")
    with pytest.raises(KeyFormatError, match="encrypted"):
        age.parse_identity_file(b"age-encryption.org/v1\n-> X25519 abc\n")


def test_bech32_is_strict() -> None:
    text = _bech32.encode("age", bytes(range(32)))
    assert _bech32.decode(text) == ("age", bytes(range(32)))
    assert _bech32.decode(text.upper()) == ("age", bytes(range(32)))
    with pytest.raises(KeyFormatError, match="mixed case"):
        _bech32.decode(text[:10] + text[10:].upper())
    with pytest.raises(KeyFormatError):
        _bech32.decode("age1")
    # Long data (no 90-character limit), as post-quantum keys need.
    long = bytes(1216)
    assert _bech32.decode(_bech32.encode("age1pq", long))[1] == long
