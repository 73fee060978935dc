"""Encrypt, decrypt and rewrap whole files with every recipient type."""

from __future__ import annotations

import io

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.helpers import decrypt_bytes, encrypt_bytes
from vault import age
from vault.age.format import Source, parse_header
from vault.age.stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE
from vault.errors import EncryptError

X25519 = age.X25519Identity.generate()
HYBRID = age.HybridIdentity.generate()
BATCH = 16 * CHUNK_SIZE
"""What the pipeline seals at once: a file of exactly one batch is sealed without threads."""
SIZES = [
    0,
    1,
    CHUNK_SIZE - 1,
    CHUNK_SIZE,
    CHUNK_SIZE + 1,
    3 * CHUNK_SIZE + 5,
    17 * CHUNK_SIZE,
    BATCH - 1,
    BATCH,
    BATCH + 1,
    2 * BATCH,
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("armor", [False, True])
@pytest.mark.parametrize("identity", [X25519, HYBRID], ids=["x25519", "hybrid"])
def test_round_trip(size: int, armor: bool, identity: age.X25519Identity) -> None:
    data = bytes(i % 251 for i in range(size))
    blob = encrypt_bytes(data, [identity.recipient()], armor=armor)
    assert decrypt_bytes(blob, [identity]) == data
    expected_chunks = max(1, -(-size // CHUNK_SIZE))
    if not armor:
        header = parse_header(Source(io.BytesIO(blob))).marshal()
        assert len(blob) == len(header) + 16 + size + 16 * expected_chunks


def test_scrypt_round_trip_and_wrong_passphrase() -> None:
    blob = encrypt_bytes(b"evidence", [age.ScryptRecipient("correct horse", work_factor=4)])
    assert decrypt_bytes(blob, [age.ScryptIdentity("correct horse")]) == b"evidence"
    with pytest.raises(age.NoIdentityMatchError):
        decrypt_bytes(blob, [age.ScryptIdentity("wrong")])


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=3 * CHUNK_SIZE + 100))
@example(data=b"")
@example(data=b"x" * CHUNK_SIZE)
def test_round_trip_any_content(data: bytes) -> None:
    blob = encrypt_bytes(data, [X25519.recipient()])
    assert decrypt_bytes(blob, [X25519]) == data


def test_several_recipients_each_decrypt() -> None:
    others = [age.HybridIdentity.generate() for _ in range(3)]
    blob = encrypt_bytes(b"shared", [i.recipient() for i in [HYBRID, *others]])
    for identity in [HYBRID, *others]:
        assert decrypt_bytes(blob, [identity]) == b"shared"
    # The first identity that fits is used, whatever comes before it.
    assert decrypt_bytes(blob, [X25519, others[2]]) == b"shared"


def test_mixing_post_quantum_and_classic_is_refused() -> None:
    with pytest.raises(EncryptError, match="incompatible"):
        encrypt_bytes(b"x", [HYBRID.recipient(), X25519.recipient()])
    with pytest.raises(EncryptError):
        encrypt_bytes(b"x", [age.ScryptRecipient("a", work_factor=2), X25519.recipient()])
    with pytest.raises(EncryptError):
        encrypt_bytes(
            b"x", [age.ScryptRecipient("a", work_factor=2), age.ScryptRecipient("b", work_factor=2)]
        )
    with pytest.raises(EncryptError, match="no recipients"):
        encrypt_bytes(b"x", [])


def test_each_file_has_a_fresh_key_and_nonce() -> None:
    a = encrypt_bytes(b"same", [X25519.recipient()])
    b = encrypt_bytes(b"same", [X25519.recipient()])
    assert a != b
    assert a[-16 - 4 - 16 :] != b[-16 - 4 - 16 :]


def _split(blob: bytes) -> tuple[bytes, bytes]:
    source = Source(io.BytesIO(blob))
    header = parse_header(source).marshal()
    return header, blob[len(header) :]


@pytest.mark.parametrize("identity", [X25519, HYBRID], ids=["x25519", "hybrid"])
def test_rewrap_adds_recipients_and_keeps_the_payload(identity: age.X25519Identity) -> None:
    data = bytes(range(256)) * 700
    blob = encrypt_bytes(data, [identity.recipient()])
    newcomer = type(identity).generate()
    out = io.BytesIO()
    age.rewrap(io.BytesIO(blob), out, identity, [newcomer.recipient()])
    rewrapped = out.getvalue()
    old_header, old_payload = _split(blob)
    new_header, new_payload = _split(rewrapped)
    assert new_payload == old_payload
    assert new_header != old_header
    assert new_header.startswith(old_header[: old_header.index(b"\n---")])
    assert decrypt_bytes(rewrapped, [newcomer]) == data
    assert decrypt_bytes(rewrapped, [identity]) == data


def test_rewrap_keeps_armor() -> None:
    blob = encrypt_bytes(b"armored", [X25519.recipient()], armor=True)
    newcomer = age.X25519Identity.generate()
    out = io.BytesIO()
    age.rewrap(io.BytesIO(blob), out, X25519, [newcomer.recipient()])
    assert out.getvalue().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert decrypt_bytes(out.getvalue(), [newcomer]) == b"armored"


def test_rewrap_refusals() -> None:
    blob = encrypt_bytes(b"x", [HYBRID.recipient()])
    with pytest.raises(age.NoIdentityMatchError):
        age.rewrap(io.BytesIO(blob), io.BytesIO(), X25519, [HYBRID.recipient()])
    with pytest.raises(EncryptError, match="incompatible"):
        age.rewrap(io.BytesIO(blob), io.BytesIO(), HYBRID, [X25519.recipient()])
    with pytest.raises(EncryptError, match="no recipients"):
        age.rewrap(io.BytesIO(blob), io.BytesIO(), HYBRID, [])
    secret = encrypt_bytes(b"x", [age.ScryptRecipient("pw", work_factor=2)])
    with pytest.raises(EncryptError, match="passphrase"):
        age.rewrap(io.BytesIO(secret), io.BytesIO(), age.ScryptIdentity("pw"), [X25519.recipient()])


def test_rewrap_header_alone() -> None:
    blob = encrypt_bytes(b"payload stays on the server", [HYBRID.recipient()])
    header = parse_header(Source(io.BytesIO(blob)))
    editor = age.HybridIdentity.generate()
    new = age.rewrap_header(header, HYBRID, [editor.recipient()])
    _, payload = _split(blob)
    assert decrypt_bytes(new.marshal() + payload, [editor]) == b"payload stays on the server"


def test_decryption_releases_chunks_up_to_the_first_bad_one() -> None:
    data = bytes(range(256)) * (3 * CHUNK_SIZE // 256)
    blob = bytearray(encrypt_bytes(data, [X25519.recipient()]))
    header, _ = _split(bytes(blob))
    second_chunk = len(header) + 16 + ENCRYPTED_CHUNK_SIZE
    blob[second_chunk + 100] ^= 1
    out = io.BytesIO()
    with pytest.raises(age.PayloadError, match="chunk 1"):
        age.decrypt(io.BytesIO(bytes(blob)), out, [X25519])
    assert out.getvalue() == data[:CHUNK_SIZE]


def test_truncation_at_a_chunk_boundary_is_detected() -> None:
    data = b"z" * (2 * CHUNK_SIZE + 10)
    blob = encrypt_bytes(data, [X25519.recipient()])
    header, _ = _split(blob)
    cut = blob[: len(header) + 16 + 2 * ENCRYPTED_CHUNK_SIZE]
    out = io.BytesIO()
    with pytest.raises(age.PayloadError, match="final chunk is missing"):
        age.decrypt(io.BytesIO(cut), out, [X25519])
    assert out.getvalue() == data[: 2 * CHUNK_SIZE]


def test_header_mac_protects_the_stanzas() -> None:
    a = age.X25519Identity.generate()
    blob = encrypt_bytes(b"x", [a.recipient(), X25519.recipient()])
    _, payload = _split(blob)
    parsed = parse_header(Source(io.BytesIO(blob)))
    # Drop the second stanza but keep the MAC: the MAC must no longer verify.
    forged = age.Header(stanzas=parsed.stanzas[:1], mac=parsed.mac)
    with pytest.raises(age.HMACError):
        decrypt_bytes(forged.marshal() + payload, [a])
