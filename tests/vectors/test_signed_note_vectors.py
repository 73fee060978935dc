"""Every case in vectors/signed-note: note keys, signed notes and checkpoints.

See vectors/signed-note/FORMAT.md. Our parsers are strict C2SP parsers, so the
checkpoint cases marked ``valid (lenient)`` must be rejected.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.conftest import VECTORS_DIR
from vault import note
from vault.errors import NoteError, ProofError, SignatureError

DIR = VECTORS_DIR / "signed-note"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DIR / name).read_text(encoding="utf-8"))
    return data


KEYS = _load("keys.json")
NOTES = _load("notes.json")
CHECKPOINTS = _load("checkpoints.json")

SIGNERS = {
    key["name"]: note.NoteSigner.from_seed(key["name"], bytes.fromhex(key["private_seed_hex"]))
    for key in KEYS["keys"]
    if "private_seed_hex" in key
}
PETER_VKEY = next(key["vkey"] for key in KEYS["keys"] if key["name"] == "PeterNeumann")


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["id"] for case in cases]


def test_vector_counts() -> None:
    assert len(KEYS["keys"]) == 8
    assert len(KEYS["invalid_vkeys"]) == 2
    assert len(NOTES["cases"]) == 18
    assert len(CHECKPOINTS["cases"]) == 17


# keys.json ------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS["keys"], ids=[key["name"] for key in KEYS["keys"]])
def test_vkey(key: dict[str, Any]) -> None:
    verifier = note.NoteVerifier.parse(key["vkey"])
    assert key["signature_type"] == 1
    assert verifier.name == key["name"]
    assert verifier.public_key.hex() == key["public_key_hex"]
    assert f"{verifier.key_id:08x}" == key["key_id_hex"]
    assert str(verifier) == key["vkey"]
    rebuilt = note.NoteVerifier(name=key["name"], public_key=bytes.fromhex(key["public_key_hex"]))
    assert rebuilt == verifier


@pytest.mark.parametrize("name", sorted(SIGNERS))
def test_published_seed(name: str) -> None:
    key = next(key for key in KEYS["keys"] if key["name"] == name)
    signer = SIGNERS[name]
    assert signer.public_key.hex() == key["public_key_hex"]
    assert f"{signer.key_id:08x}" == key["key_id_hex"]
    assert str(signer.verifier()) == key["vkey"]
    parsed = note.NoteSigner.parse_skey(key["skey"])
    assert parsed.verifier() == signer.verifier()
    assert parsed.skey() == key["skey"]
    # Ed25519 over any text verifies under the published vkey.
    signed = note.sign_note("hello\n", [signer])
    assert note.open_note(signed, [note.NoteVerifier.parse(key["vkey"])]).text == "hello\n"


@pytest.mark.parametrize("case", KEYS["invalid_vkeys"], ids=lambda case: case["why"])
def test_invalid_vkey(case: dict[str, Any]) -> None:
    with pytest.raises(NoteError):
        note.NoteVerifier.parse(case["vkey"])


def test_every_proper_substring_of_a_vkey_is_rejected() -> None:
    n = len(PETER_VKEY)
    for i in range(n + 1):
        for j in range(i, n + 1):
            if (i, j) == (0, n):
                continue
            with pytest.raises(NoteError):
                note.NoteVerifier.parse(PETER_VKEY[i:j])


def test_every_single_byte_increment_of_a_vkey_is_rejected() -> None:
    for i, ch in enumerate(PETER_VKEY):
        mutated = PETER_VKEY[:i] + chr(ord(ch) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(NoteError):
            note.NoteVerifier.parse(mutated)


# notes.json -----------------------------------------------------------------

_ERRORS: dict[str, type[Exception]] = {
    "error: malformed note": NoteError,
    "error: malformed (implementation limit)": NoteError,
    "error: no verifiable signatures": SignatureError,
    "error: invalid signature for a trusted key": SignatureError,
}
_MESSAGES = {
    "error: malformed note": "malformed note",
    "error: malformed (implementation limit)": f"more than {note.MAX_SIGNATURES} signatures",
    "error: no verifiable signatures": "no verifiable signatures",
    "error: invalid signature for a trusted key": "invalid signature for trusted key",
}


def _note_bytes(case: dict[str, Any]) -> bytes:
    data = base64.b64decode(case["note_base64"])
    if "note" in case:
        assert case["note"].encode("utf-8") == data
    return data


@pytest.mark.parametrize("case", NOTES["cases"], ids=_ids(NOTES["cases"]))
def test_note(case: dict[str, Any]) -> None:
    data = _note_bytes(case)
    verifiers = [note.NoteVerifier.parse(vkey) for vkey in case["trusted_vkeys"]]
    expect = case["expect"]
    if expect == "valid":
        opened = note.open_note(data, verifiers)
        assert opened.text == case["text"]
        assert list(opened.names) == case["verified_signatures"]
        assert all(verifier in verifiers for verifier in opened.verified_by)
        # A valid note is re-serialised byte for byte.
        assert note.Note.parse(data).marshal() == data
    else:
        with pytest.raises(_ERRORS[expect]) as info:
            note.open_note(data, verifiers)
        assert type(info.value) is _ERRORS[expect]
        assert _MESSAGES[expect] in str(info.value)


@pytest.mark.parametrize(
    "case",
    [case for case in NOTES["cases"] if case["expect"] == "error: no verifiable signatures"],
    ids=lambda case: case["id"],
)
def test_untrusted_note_still_parses(case: dict[str, Any]) -> None:
    parsed = note.Note.parse(_note_bytes(case))
    assert [sig.name for sig in parsed.signatures] == case["unverified_signatures"]
    if "text" in case:
        assert parsed.text == case["text"]


@pytest.mark.parametrize(
    "case", [case for case in NOTES["cases"] if case["expect"] == "valid"], ids=lambda c: c["id"]
)
def test_signature_lines_reproduced_from_published_seeds(case: dict[str, Any]) -> None:
    parsed = note.Note.parse(_note_bytes(case))
    reproduced = 0
    for signature in parsed.signatures:
        signer = SIGNERS.get(signature.name)
        if signer is None or signer.key_id != signature.key_id:
            continue
        assert signer.sign(case["text"]) == signature.line()
        reproduced += 1
    if case["id"] in {"go-peter", "go-sumdb-tree-5", "go-sumdb-tree-6"}:
        assert reproduced == 1
        assert note.sign_note(case["text"], [SIGNERS[case["verified_signatures"][0]]]) == (
            _note_bytes(case)
        )


def test_signature_limit_is_inclusive() -> None:
    peter = SIGNERS["PeterNeumann"]
    line = peter.sign("x\n").encode()
    at_limit = b"x\n\n" + line * note.MAX_SIGNATURES
    assert note.open_note(at_limit, [peter.verifier()]).names == ("PeterNeumann",)
    with pytest.raises(NoteError, match="more than"):
        note.open_note(at_limit + line, [peter.verifier()])


def test_sumdb_heads_open_as_checkpoints_with_their_origin() -> None:
    sumdb = note.NoteVerifier.parse(
        "localhost.localdev/sumdb+00000c67+AcTrnkbUA+TU4heY3hkjiSES/DSQniBqIeQ/YppAUtK6"
    )
    for case in NOTES["cases"]:
        if not case["id"].startswith("go-sumdb-tree-"):
            continue
        data = _note_bytes(case)
        checkpoint = note.open_checkpoint(data, sumdb, origin="go.sum database tree")
        assert checkpoint.marshal() == case["text"]
        # By default the origin must equal the key name, which it does not here.
        with pytest.raises(ProofError, match="unexpected log"):
            note.open_checkpoint(data, sumdb)


# checkpoints.json ------------------------------------------------------------


@pytest.mark.parametrize("case", CHECKPOINTS["cases"], ids=_ids(CHECKPOINTS["cases"]))
def test_checkpoint(case: dict[str, Any]) -> None:
    text = case["checkpoint_text"]
    expect = case["expect"]
    if expect == "valid":
        checkpoint = note.Checkpoint.parse(text)
        assert checkpoint.origin == case["origin"]
        assert checkpoint.size == case["tree_size"]
        assert checkpoint.root_hash.hex() == case["root_hash_hex"]
        assert base64.b64encode(checkpoint.root_hash).decode() == case["root_hash_base64"]
        assert list(checkpoint.extensions) == case.get("extension_lines", [])
        assert checkpoint.marshal() == text
        if "signed_note" in case:
            signed = case["signed_note"].encode("utf-8")
            parsed = note.Note.parse(signed)
            assert parsed.text == text
            assert parsed.marshal() == signed
    elif expect.startswith("error (only when the verifier requires origin"):
        # Well formed; only a verifier pinning another origin rejects it.
        checkpoint = note.Checkpoint.parse(text)
        assert checkpoint.marshal() == text
        signer = SIGNERS["localhost.localdev/sumdb"]
        signed = note.sign_checkpoint(checkpoint, signer)
        with pytest.raises(ProofError, match="unexpected log"):
            note.open_checkpoint(signed, signer.verifier(), origin="go.sum database tree")
        assert note.open_checkpoint(signed, signer.verifier(), origin=checkpoint.origin) == (
            checkpoint
        )
    else:
        # "error", and "valid (lenient)": a strict C2SP SHA-256 parser rejects both.
        assert expect in {"error", "valid (lenient)"}
        with pytest.raises(NoteError):
            note.Checkpoint.parse(text)


_TD_ROOT = "dGhlIHZpZXcgZnJvbSB0aGUgdHJlZSB0b3BzIGlzIGdyZWF0IQ=="
_GOOD_ROOT = "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0="


@pytest.mark.parametrize(
    "case",
    [case for case in CHECKPOINTS["cases"] if case["id"].startswith("td-")],
    ids=lambda case: case["id"],
)
def test_lenient_cases_with_a_32_byte_root(case: dict[str, Any]) -> None:
    """With the short root hash replaced, only the other faults remain.

    The lenient cases then fail only if they have empty extension lines, and
    every error case still fails, for the reason it was written for.
    """
    text = case["checkpoint_text"].replace(_TD_ROOT, _GOOD_ROOT).replace("YmFuYW5hcw==", _GOOD_ROOT)
    reasons = {
        "td-valid-with-trailing-newlines": "extension line: empty",
        "td-invalid-insufficient-lines": "fewer than three lines",
        "td-invalid-empty-header": "origin: empty",
        "td-invalid-missing-newline-on-roothash": "does not end with a newline",
        "td-invalid-size-not-a-number": "tree size",
        "td-invalid-size-negative": "tree size",
        "td-invalid-size-too-large": "tree size",
        "td-invalid-roothash-not-base64": "root hash",
    }
    if case["id"] in reasons:
        with pytest.raises(NoteError, match=reasons[case["id"]]):
            note.Checkpoint.parse(text)
    else:
        assert case["expect"] == "valid (lenient)"
        assert note.Checkpoint.parse(text).marshal() == text
