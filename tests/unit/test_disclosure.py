"""Disclosures: only what the reporter chose, signed, parsed strictly, verified like manifests."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import canonical
from vault.disclosure import DEFAULT_REVEAL, Disclosure, Reveal, SignedDisclosure
from vault.errors import ConfigError, ManifestError, SignatureError
from vault.keys import PersonalIdentity
from vault.manifest import Manifest, SignedManifest

REPORTER = PersonalIdentity.generate("Reporter", post_quantum=False)
OTHER = PersonalIdentity.generate("Other", post_quantum=False)
NOTE = "from the ministry, source K"
MANIFEST = Manifest(
    item_id="ab" * 16,
    vault_id="9c" * 16,
    filename="memo.pdf",
    media_type="application/pdf",
    size=8,
    plaintext_sha256=hashlib.sha256(b"the memo").hexdigest(),
    payload_sha256=hashlib.sha256(b"the payload").hexdigest(),
    captured_at="2026-11-27T06:00:00Z",
    note=NOTE,
    signer=REPORTER.card().signing_key,
)
REVEALS = [Reveal(name=n, time=t, note=o) for n in (0, 1) for t in (0, 1) for o in (0, 1)]


def _verify(signed: SignedDisclosure, **changes: object) -> Disclosure:
    values: dict[str, object] = {
        "signer": REPORTER.card().signing_key,
        "payload_sha256": MANIFEST.payload_sha256,
        "item_id": MANIFEST.item_id,
        "vault_id": MANIFEST.vault_id,
        "plaintext_sha256": MANIFEST.plaintext_sha256,
        "size": MANIFEST.size,
    }
    values.update(changes)
    return signed.verify(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "reveal"),
    [
        ("name,time", Reveal(name=True, time=True, note=False)),
        ("note", Reveal(name=False, time=False, note=True)),
        ("time,note,name", Reveal(name=True, time=True, note=True)),
        ("none", Reveal(name=False, time=False, note=False)),
        (" Name,TIME ", Reveal(name=True, time=True, note=False)),
    ],
)
def test_choices_are_read_and_written_back(text: str, reveal: Reveal) -> None:
    assert Reveal.parse(text) == reveal
    assert Reveal.parse(str(reveal)) == reveal


@pytest.mark.parametrize(
    "text", ["", "name,name", "names", "none,name", "name,,time", "name time", "all"]
)
def test_other_choices_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Reveal.parse(text)
    assert caught.value.hint is not None
    assert "name,time" in caught.value.hint


def test_by_default_the_note_is_never_published() -> None:
    assert Reveal(name=True, time=True, note=False) == DEFAULT_REVEAL


@pytest.mark.parametrize("reveal", REVEALS, ids=str)
def test_a_disclosure_holds_what_was_chosen_and_nothing_else(reveal: Reveal) -> None:
    signed = Disclosure.of(MANIFEST, reveal).sign(REPORTER)
    data = signed.to_json()
    assert (NOTE.encode() in data) == reveal.note
    assert (b"memo.pdf" in data) == reveal.name
    assert (b"2026-11-27T06:00:00Z" in data) == reveal.time
    parsed = SignedDisclosure.parse(data)
    assert parsed == signed
    assert parsed.disclosure.reveal == reveal
    assert _verify(parsed) == signed.disclosure
    # What the released file gives away anyway is always there.
    value = canonical.loads(data)
    assert value["size"] == 8
    assert value["plaintext_sha256"] == MANIFEST.plaintext_sha256
    assert value["media_type"] == "application/pdf"


@settings(max_examples=50, deadline=None)
@given(
    name=st.none() | st.text(min_size=1, max_size=40),
    note=st.none() | st.text(max_size=60),
)
def test_serialising_a_parsed_disclosure_gives_its_bytes_back(
    name: str | None, note: str | None
) -> None:
    try:
        disclosure = Disclosure.of(MANIFEST, DEFAULT_REVEAL)
        disclosure = Disclosure(**{**disclosure.__dict__, "filename": name, "note": note})
    except ManifestError:
        return  # a value the manifest refuses too (an empty name, lone surrogates)
    data = disclosure.sign(REPORTER).to_json()
    assert SignedDisclosure.parse(data).to_json() == data


def _signed_value() -> dict[str, object]:
    value = canonical.loads(Disclosure.of(MANIFEST, DEFAULT_REVEAL).sign(REPORTER).to_json())
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, "unexpected or missing fields"),
        ({"note": 5}, "note must be a string or null"),
        ({"filename": ""}, "filename must have 1 to 1024 characters"),
        ({"captured_at": "yesterday"}, "capture time"),
        ({"size": -1}, "size"),
        ({"item": None}, "item must be a string"),
        ({"type": "evault.disclosure.v2"}, "unsupported disclosure type"),
        ({"signature": "AAAA"}, "signature is not canonical base64 of 64 bytes"),
        ({"media_type": "pdf"}, "media type"),
    ],
)
def test_parsing_is_strict(change: dict[str, object], message: str) -> None:
    value = {**_signed_value(), **change}
    with pytest.raises(ManifestError, match=message):
        SignedDisclosure.parse(canonical.dumps(value))


def test_only_the_canonical_encoding_is_taken() -> None:
    value = _signed_value()
    with pytest.raises(ManifestError, match="invalid disclosure"):
        SignedDisclosure.parse(json.dumps(value, indent=1).encode())
    missing = {k: v for k, v in value.items() if k != "note"}
    with pytest.raises(ManifestError, match="unexpected or missing fields"):
        SignedDisclosure.parse(canonical.dumps(missing))


def test_a_manifest_is_no_disclosure_and_a_disclosure_no_manifest() -> None:
    manifest = MANIFEST.sign(REPORTER).to_json()
    with pytest.raises(ManifestError):
        SignedDisclosure.parse(manifest)
    everything = Reveal(name=True, time=True, note=True)
    with pytest.raises(ManifestError):
        SignedManifest.parse(Disclosure.of(MANIFEST, everything).sign(REPORTER).to_json())


def test_verify_checks_the_signer_the_signature_and_what_is_held() -> None:
    signed = Disclosure.of(MANIFEST, DEFAULT_REVEAL).sign(REPORTER)
    with pytest.raises(SignatureError, match="unexpected key"):
        _verify(signed, signer=OTHER.card().signing_key)
    # The note "withheld" is signed too: turning it on is a forgery.
    value = {**canonical.loads(signed.to_json()), "note": "invented"}
    with pytest.raises(SignatureError):
        _verify(SignedDisclosure.parse(canonical.dumps(value)))
    for change in (
        {"payload_sha256": "00" * 32},
        {"item_id": "cd" * 16},
        {"vault_id": "cd" * 16},
        {"plaintext_sha256": "00" * 32},
        {"size": 9},
    ):
        with pytest.raises(ManifestError, match="does not match the signed disclosure"):
            _verify(signed, **change)
    # A manifest's signature is no disclosure's: another context.
    with pytest.raises(ManifestError):
        Disclosure.of(MANIFEST, DEFAULT_REVEAL).sign(OTHER)
