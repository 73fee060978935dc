"""Identities, cards and fingerprints."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import age
from vault.errors import FormatError, KeyFormatError, SignatureError
from vault.keys import Card, PersonalIdentity, verify_signature

ALICE = PersonalIdentity.generate("Alice")
BOB_CLASSIC = PersonalIdentity.generate("Bob", post_quantum=False)
NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip())


def test_default_identity_is_post_quantum() -> None:
    assert ALICE.card().post_quantum
    assert isinstance(ALICE.age_identity, age.HybridIdentity)
    assert not BOB_CLASSIC.card().post_quantum
    assert ALICE.card().recipient.startswith("age1pq1")


@settings(max_examples=25, deadline=None)
@given(name=NAMES)
def test_card_round_trip(name: str) -> None:
    card = PersonalIdentity.generate(name, post_quantum=False).card()
    data = card.to_json()
    assert Card.from_json(data) == card
    assert Card.from_json(data).to_json() == data


def test_fingerprint_is_twelve_groups_of_five_digits_and_stable() -> None:
    card = ALICE.card()
    fingerprint = card.fingerprint()
    assert re.fullmatch(r"\d{5}( \d{5}){11}", fingerprint)
    # The same keys under another name or from a re-parsed card: same code.
    renamed = Card(name="Alice (work)", recipient=card.recipient, signing_key=card.signing_key)
    assert renamed.fingerprint() == fingerprint
    assert Card.from_json(card.to_json()).fingerprint() == fingerprint
    assert PersonalIdentity.from_bytes(ALICE.to_bytes()).card().fingerprint() == fingerprint


def test_fingerprint_changes_with_either_key() -> None:
    card = ALICE.card()
    other = PersonalIdentity.generate("Mallory").card()
    swapped_age = Card(name="A", recipient=other.recipient, signing_key=card.signing_key)
    swapped_sig = Card(name="A", recipient=card.recipient, signing_key=other.signing_key)
    fingerprints = {card.fingerprint(), swapped_age.fingerprint(), swapped_sig.fingerprint()}
    assert len(fingerprints) == 3


def test_signatures_are_bound_to_their_context() -> None:
    card = ALICE.card()
    signature = ALICE.sign("checkin", b"vault 1, 2026-11-27")
    card.verify("checkin", b"vault 1, 2026-11-27", signature)
    with pytest.raises(SignatureError):
        card.verify("login", b"vault 1, 2026-11-27", signature)
    with pytest.raises(SignatureError):
        card.verify("checkin", b"vault 1, 2026-11-28", signature)
    with pytest.raises(SignatureError):
        BOB_CLASSIC.card().verify("checkin", b"vault 1, 2026-11-27", signature)
    with pytest.raises(SignatureError):
        verify_signature(card.signing_key, "checkin", b"x", b"short")
    with pytest.raises(RuntimeError):
        ALICE.sign("no such context", b"x")


def test_identity_serialisation_round_trip_and_secrecy() -> None:
    data = ALICE.to_bytes()
    again = PersonalIdentity.from_bytes(data)
    assert again.card() == ALICE.card()
    assert str(ALICE.age_identity) not in repr(ALICE)
    with pytest.raises(FormatError) as info:
        PersonalIdentity.from_bytes(data.replace(b'"v":1', b'"v":1 '))
    assert "AGE-SECRET" not in str(info.value)


@pytest.mark.parametrize(
    "change",
    [
        lambda v: v.replace(b'"v":1', b'"v":2'),
        lambda v: v.replace(b'"name":"Alice"', b'"name":""'),
        lambda v: v.replace(b'{"ed25519"', b'{"extra":1,"ed25519"'),
        lambda v: v.replace(b'"recipient":"age1', b'"recipient":"age2'),
        lambda v: v + b"\n",
    ],
)
def test_bad_cards_are_refused(change: object) -> None:
    data = ALICE.card().to_json()
    with pytest.raises(FormatError):
        Card.from_json(change(data))  # type: ignore[operator]


def test_card_checks_its_fields() -> None:
    card = ALICE.card()
    with pytest.raises(KeyFormatError):
        Card(name="x", recipient=card.recipient, signing_key=b"\x00" * 31)
    with pytest.raises(FormatError):
        Card(name="bad\u202ename", recipient=card.recipient, signing_key=card.signing_key)
    with pytest.raises(KeyFormatError):
        Card(name="x", recipient="age1nope", signing_key=card.signing_key)
