"""Signed manifests and safe local filenames."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.errors import ManifestError, SignatureError
from vault.keys import PersonalIdentity
from vault.manifest import Manifest, SignedManifest, safe_filename, sha256_stream

REPORTER = PersonalIdentity.generate("Reporter", post_quantum=False)
OTHER = PersonalIdentity.generate("Other", post_quantum=False)
PLAIN = hashlib.sha256(b"the memo").hexdigest()
PAYLOAD = hashlib.sha256(b"the payload").hexdigest()


def manifest(**changes: object) -> Manifest:
    fields: dict[str, object] = {
        "item_id": "itm_01",
        "vault_id": "vlt_01",
        "filename": "memo.pdf",
        "media_type": "application/pdf",
        "size": 8,
        "plaintext_sha256": PLAIN,
        "payload_sha256": PAYLOAD,
        "captured_at": "2026-11-27T06:00:00Z",
        "note": "from the harbour office",
        "signer": REPORTER.card().signing_key,
    }
    fields.update(changes)
    return Manifest(**fields)  # type: ignore[arg-type]


def verify(signed: SignedManifest, **changes: object) -> Manifest:
    args: dict[str, object] = {
        "signer": REPORTER.card().signing_key,
        "plaintext_sha256": PLAIN,
        "payload_sha256": PAYLOAD,
        "item_id": "itm_01",
        "vault_id": "vlt_01",
    }
    args.update(changes)
    return signed.verify(**args)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    filename=st.text(min_size=1, max_size=60),
    note=st.text(max_size=60),
    size=st.integers(0, 2**53 - 1),
)
def test_round_trip(filename: str, note: str, size: int) -> None:
    signed = manifest(filename=filename, note=note, size=size).sign(REPORTER)
    data = signed.to_json()
    again = SignedManifest.parse(data)
    assert again == signed
    assert again.to_json() == data
    assert verify(again) == signed.manifest


def test_verify_checks_signature_signer_and_hashes() -> None:
    signed = manifest().sign(REPORTER)
    with pytest.raises(SignatureError, match="unexpected key"):
        verify(signed, signer=OTHER.card().signing_key)
    with pytest.raises(ManifestError, match="plaintext hash"):
        verify(signed, plaintext_sha256=PAYLOAD)
    with pytest.raises(ManifestError, match="payload hash"):
        verify(signed, payload_sha256=PLAIN)
    with pytest.raises(ManifestError, match="size"):
        verify(signed, size=9)
    with pytest.raises(ManifestError, match="item id"):
        verify(signed, item_id="itm_02")
    with pytest.raises(ManifestError, match="vault id"):
        verify(signed, vault_id="vlt_02")
    forged = dataclasses.replace(signed, manifest=manifest(filename="other.pdf"))
    with pytest.raises(SignatureError):
        verify(forged)


def test_only_the_named_signer_can_sign() -> None:
    with pytest.raises(ManifestError, match="not this identity"):
        manifest().sign(OTHER)
    # A manifest naming OTHER but signed by REPORTER does not verify for either.
    signed = manifest(signer=OTHER.card().signing_key).sign(OTHER)
    with pytest.raises(SignatureError):
        verify(signed)


def test_any_changed_byte_is_caught() -> None:
    data = manifest().sign(REPORTER).to_json()
    for position in range(0, len(data), 7):
        changed = bytearray(data)
        changed[position] ^= 0x01
        with pytest.raises((ManifestError, SignatureError)):
            verify(SignedManifest.parse(bytes(changed)))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"v":1}',
        b"{}",
        b'{"a":1,"a":1}',
        b"x" * 70000,
    ],
)
def test_malformed_manifests(data: bytes) -> None:
    with pytest.raises(ManifestError):
        SignedManifest.parse(data)


def test_extra_or_wrong_fields_are_refused() -> None:
    data = manifest().sign(REPORTER).to_json()
    with pytest.raises(ManifestError, match="fields"):
        SignedManifest.parse(data.replace(b'{"captured_at"', b'{"aaa":1,"captured_at"'))
    with pytest.raises(ManifestError, match="version"):
        SignedManifest.parse(data.replace(b'"v":1', b'"v":2'))
    with pytest.raises(ManifestError):
        SignedManifest.parse(data.replace(b'"size":8', b'"size":-8'))
    with pytest.raises(ManifestError):
        SignedManifest.parse(data.replace(b'"size":8', b'"size":true'))
    with pytest.raises(ManifestError):
        SignedManifest.parse(data.replace(b'"v":1', b'"v":true'))


@pytest.mark.parametrize(
    "changes",
    [
        {"item_id": "../x"},
        {"vault_id": ""},
        {"filename": ""},
        {"filename": "x" * 1025},
        {"media_type": "pdf"},
        {"size": -1},
        {"size": True},
        {"plaintext_sha256": PLAIN.upper()},
        {"captured_at": "2026-11-27 06:00:00"},
        {"captured_at": "2026-02-30T00:00:00Z"},
        {"captured_at": "\uff12\uff10\uff12\uff16-11-27T06:00:00Z"},
        {"note": "n" * 20000},
        {"signer": b"short"},
    ],
)
def test_invalid_fields_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ManifestError):
        manifest(**changes)


def test_sha256_stream() -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    assert sha256_stream(io.BytesIO(data)) == (hashlib.sha256(data).hexdigest(), len(data))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("memo.pdf", "memo.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Windows\\system32\\x.dll", "x.dll"),
        ("..", "item"),
        ("", "item"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("Com1 .tar.gz", "_Com1 .tar.gz"),
        ("evil\u202etxt.exe", "evil_txt.exe"),
        ("a\x00b\nc\td", "a_b_c_d"),
        ("-rf", "rf"),
        (".bashrc", "bashrc"),
        ("what?.pdf", "what_.pdf"),
        ("  trailing. ", "trailing"),
        # Scripts' own joiners stay inside words; anywhere else they go.
        ("ឯកសារ\u200bសម្ងាត់.txt", "ឯកសារ\u200bសម្ងាត់.txt"),
        ("می\u200cخواهم.pdf", "می\u200cخواهم.pdf"),
        ("क्\u200dष.txt", "क्\u200dष.txt"),
        ("\u200bhidden.txt", "_hidden.txt"),
        ("a\u200b.txt", "a_.txt"),
        ("a\u200b\u200bb", "a__b"),
        ("a\u2060b", "a_b"),
        ("\u3164\u200bx", "__x"),
    ],
)
def test_safe_filename_examples(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_safe_filename_is_always_safe(name: str) -> None:
    result = safe_filename(name)
    assert result
    assert result not in (".", "..")
    assert not set(result) & set('/\\<>:"|?*')
    assert all(c in string.printable or ord(c) > 0x9F for c in result)
    assert not any(c in result for c in "\x00\n\r\t\u202e\u200f")
    assert len(result.encode("utf-8")) <= 200
    assert not result.startswith((".", "-", " "))
    assert not result.endswith((".", " "))
    stem = result.split(".")[0].rstrip(" ").upper()
    assert stem not in {"CON", "PRN", "AUX", "NUL", "COM0", "COM1", "LPT9", "CONIN$"}
    assert not set(result) & set("\uff0f\uff3c\u3164\u2800")
    assert safe_filename(result) == result


@pytest.mark.parametrize(
    "name",
    [
        "AUX" + " " * 250 + "x.txt",
        "CON" + "\u3000" * 250 + "y.tar",
        "nul" + " " * 300 + "z",
        "-.bashrc",
        "..x",
        "-- -rf",
        "a\uff0fb\uff3cc",
        "COM0",
        "file.txt:stream",
    ],
)
def test_rules_that_undo_each_other_still_give_a_safe_name(name: str) -> None:
    result = safe_filename(name)
    assert result.split(".")[0].rstrip(" ").upper() not in {"AUX", "CON", "NUL", "COM0"}
    assert not result.startswith((".", "-", " "))
    assert not set(result) & set(":/\\\uff0f\uff3c")


def test_long_names_keep_their_extension() -> None:
    assert safe_filename("x" * 300 + ".pdf").endswith(".pdf")
    assert len(safe_filename("é" * 300 + ".jpeg").encode()) <= 200
