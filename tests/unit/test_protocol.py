"""The login message shared by the client and the server."""

from __future__ import annotations

import pytest

from vault.errors import FormatError, SignatureError
from vault.keys import PersonalIdentity, verify_signature
from vault.protocol import LoginChallenge, parse_account_id, parse_nonce


def test_login_message_is_canonical_json() -> None:
    challenge = LoginChallenge(origin="vault.example/log", account="0f" * 16, nonce=b"\x01" * 32)
    assert challenge.message() == (
        b'{"account":"0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",'
        b'"nonce":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",'
        b'"origin":"vault.example/log","v":1}'
    )


def test_login_signature_is_bound_to_its_context() -> None:
    person = PersonalIdentity.generate("Ana", post_quantum=False)
    message = LoginChallenge(origin="o", account="a" * 32, nonce=bytes(32)).message()
    key = person.card().signing_key
    verify_signature(key, "login", message, person.sign("login", message))
    with pytest.raises(SignatureError):
        verify_signature(key, "login", message, person.sign("manifest", message))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": "", "account": "a" * 32, "nonce": bytes(32)},
        {"origin": "o", "account": "A" * 32, "nonce": bytes(32)},
        {"origin": "o", "account": "a" * 31, "nonce": bytes(32)},
        {"origin": "o", "account": "a" * 32, "nonce": bytes(31)},
    ],
)
def test_login_challenge_refuses_bad_parts(kwargs: dict[str, object]) -> None:
    with pytest.raises(FormatError):
        LoginChallenge(**kwargs)  # type: ignore[arg-type]


def test_parsers() -> None:
    assert parse_account_id("0123456789abcdef" * 2) == "0123456789abcdef" * 2
    assert parse_nonce("A" * 43 + "=") == bytes(32)
    for bad in ("", "g" * 32, "a" * 33, " " + "a" * 31, 1, None):
        with pytest.raises(FormatError):
            parse_account_id(bad)
    for bad_nonce in ("A" * 43 + "B", "A" * 44, "AAAA", "", 1):
        with pytest.raises(FormatError):
            parse_nonce(bad_nonce)
