"""vault.note: note keys, signed notes, checkpoints and receipts.

Round trips are property tests; tampering flips every bit of a signed note and
of a receipt and expects each copy to be rejected.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import merkle, note
from vault.errors import FormatError, NoteError, ProofError, SignatureError

LOG = note.NoteSigner.from_seed("log.example/vault", hashlib.sha256(b"log key").digest())
OTHER = note.NoteSigner.from_seed("log.example/vault", hashlib.sha256(b"other key").digest())
WITNESS = note.NoteSigner.from_seed("witness.example", hashlib.sha256(b"witness").digest())

ENTRIES = [b"event %d" % i for i in range(40)]
STORE = merkle.MemoryHashStore(merkle.leaf_hash(entry) for entry in ENTRIES)

fast = settings(max_examples=60, deadline=None)

# Key names: non-empty, no Unicode space, no '+', no control character.
names = st.text(
    st.characters(codec="utf-8", exclude_characters="+"), min_size=1, max_size=16
).filter(lambda s: not any(ch.isspace() or ch < " " for ch in s))
# Lines of note text: anything but control characters (newline separates lines).
lines = st.text(st.characters(codec="utf-8").filter(lambda ch: ch >= " "), max_size=30)
texts = st.lists(lines, min_size=1, max_size=6).map(lambda ls: "".join(line + "\n" for line in ls))
seeds = st.binary(min_size=32, max_size=32)


def _checkpoint(size: int, *, origin: str = LOG.name) -> note.Checkpoint:
    return note.Checkpoint(origin=origin, size=size, root_hash=merkle.root(STORE, size))


def _receipt(
    index: int, size: int, *, signers: tuple[note.NoteSigner, ...] = (LOG,), extra: bytes = b""
) -> note.Receipt:
    signed = note.sign_note(_checkpoint(size).marshal(), signers)
    proof = tuple(merkle.inclusion_proof(STORE, index, size))
    return note.Receipt(index=index, proof=proof, checkpoint=signed, extra=extra)


def _bit_flips(data: bytes) -> list[bytes]:
    return [
        data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]
        for i in range(len(data))
        for bit in range(8)
    ]


# keys -----------------------------------------------------------------------


@fast
@given(name=names, seed=seeds)
def test_key_round_trips(name: str, seed: bytes) -> None:
    signer = note.NoteSigner.from_seed(name, seed)
    assert note.NoteSigner.parse_skey(signer.skey()).verifier() == signer.verifier()
    vkey = str(signer.verifier())
    assert note.NoteVerifier.parse(vkey) == signer.verifier()
    assert str(note.NoteVerifier.parse(vkey)) == vkey
    digest = hashlib.sha256(name.encode() + b"\n\x01" + signer.public_key).digest()
    assert signer.key_id == int.from_bytes(digest[:4], "big")


def test_repr_never_shows_the_seed() -> None:
    seed = hashlib.sha256(b"log key").digest()
    shown = repr(LOG) + str(LOG) + repr(LOG.verifier())
    assert seed.hex() not in shown
    assert base64.b64encode(b"\x01" + seed).decode()[4:40] not in shown
    assert "PRIVATE" not in shown
    assert note.NoteSigner.generate("x").name == "x"


@pytest.mark.parametrize(
    "name", ["", "a+b", "a b", "a\tb", "a\u00a0b", "a\u2003b", "a\u3000b", "a\u2028b", "a\x01b"]
)
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(NoteError, match="invalid key name"):
        note.NoteSigner.from_seed(name, bytes(32))
    with pytest.raises(NoteError, match="invalid key name"):
        note.NoteVerifier(name=name, public_key=bytes(32))


@pytest.mark.parametrize(
    "vkey",
    [
        str(LOG.verifier()).upper(),
        str(LOG.verifier()).replace("+", "+0", 1),
        str(LOG.verifier())[:-1],
        str(LOG.verifier()) + "\n",
        str(LOG.verifier()) + "=",
        " " + str(LOG.verifier()),
        f"{LOG.name}+{LOG.key_id:08X}+{str(LOG.verifier()).split('+', 2)[2]}",
        f"other+{LOG.key_id:08x}+{str(LOG.verifier()).split('+', 2)[2]}",
        f"{LOG.name}+{LOG.key_id:08x}+" + base64.b64encode(b"\x01" + bytes(31)).decode(),
        f"{LOG.name}+{LOG.key_id:08x}",
        "",
    ],
)
def test_invalid_vkeys(vkey: str) -> None:
    with pytest.raises(NoteError):
        note.NoteVerifier.parse(vkey)


def test_invalid_skeys() -> None:
    skey = LOG.skey()
    for bad in [skey[len("PRIVATE+KEY+") :], skey.replace("PRIVATE", "private"), skey[:-2]]:
        with pytest.raises(NoteError):
            note.NoteSigner.parse_skey(bad)
    # A key ID that belongs to another key.
    mismatched = skey.replace(f"+{LOG.key_id:08x}+", f"+{OTHER.key_id:08x}+")
    with pytest.raises(NoteError, match="key ID does not match"):
        note.NoteSigner.parse_skey(mismatched)
    with pytest.raises(NoteError, match="seed length"):
        note.NoteSigner.from_seed("x", bytes(31))


def test_verifier_verify_raises() -> None:
    signature = base64.b64decode(LOG.sign("a\n").split()[-1])[4:]
    LOG.verifier().verify(b"a\n", signature)
    with pytest.raises(SignatureError):
        LOG.verifier().verify(b"b\n", signature)
    with pytest.raises(SignatureError):
        LOG.verifier().verify(b"a\n", signature[:-1])


# signed notes -------------------------------------------------------------------


@fast
@given(text=texts, signer_names=st.lists(names, min_size=1, max_size=4), seed=seeds)
def test_sign_open_round_trip(text: str, signer_names: list[str], seed: bytes) -> None:
    signers = [
        note.NoteSigner.from_seed(name, hashlib.sha256(seed + bytes([i])).digest())
        for i, name in enumerate(signer_names)
    ]
    signed = note.sign_note(text, signers)
    parsed = note.Note.parse(signed)
    assert parsed.text == text
    assert parsed.marshal() == signed
    assert [s.line() for s in parsed.signatures] == [signer.sign(text) for signer in signers]
    # Any one trusted key suffices; the others are ignored.
    opened = note.open_note(signed, [signers[-1].verifier(), WITNESS.verifier()])
    assert opened.text == text
    assert opened.verified_by == (signers[-1].verifier(),)
    opened = note.open_note(signed, [signer.verifier() for signer in signers])
    assert set(opened.verified_by) == {signer.verifier() for signer in signers}


@pytest.mark.parametrize("text", ["", "no newline", "a\r\n", "tab\there\n", "\x00\n", "\ud800\n"])
def test_sign_rejects_invalid_text(text: str) -> None:
    with pytest.raises(NoteError, match="note text"):
        note.sign_note(text, [LOG])


def test_sign_needs_a_signer() -> None:
    with pytest.raises(NoteError, match="no signers"):
        note.sign_note("a\n", [])


def test_text_may_contain_blank_lines_and_signature_lines() -> None:
    text = "\n\nfirst\n\n" + WITNESS.sign("x\n") + "\n"
    opened = note.open_note(note.sign_note(text, [LOG]), [LOG.verifier(), WITNESS.verifier()])
    assert opened.text == text
    assert opened.names == (LOG.name,)


def test_every_bit_flip_of_a_note_is_rejected() -> None:
    signed = note.sign_note("Ognuno sta solo\n\ned \u00e8 subito sera.\n", [LOG])
    for tampered in _bit_flips(signed):
        with pytest.raises((NoteError, SignatureError)):
            note.open_note(tampered, [LOG.verifier()])


@fast
@given(text=texts, data=st.data())
def test_random_bit_flip_is_rejected(text: str, data: st.DataObject) -> None:
    signed = note.sign_note(text, [LOG])
    position = data.draw(st.integers(0, len(signed) * 8 - 1))
    tampered = bytearray(signed)
    tampered[position // 8] ^= 1 << (position % 8)
    with pytest.raises((NoteError, SignatureError)):
        note.open_note(bytes(tampered), [LOG.verifier()])


def test_wrong_key() -> None:
    signed = note.sign_note("hello\n", [LOG])
    # Same name, other key: a different key ID, so the signature is unknown.
    with pytest.raises(SignatureError, match="no verifiable signatures"):
        note.open_note(signed, [OTHER.verifier()])
    with pytest.raises(SignatureError, match="no verifiable signatures"):
        note.open_note(signed, [])


def test_a_bad_trusted_signature_rejects_the_note() -> None:
    good = note.sign_note("hello\n", [LOG, WITNESS])
    forged = note.NoteSignature(name=WITNESS.name, key_id=WITNESS.key_id, signature=bytes(64))
    bad = note.Note(text="hello\n", signatures=(*note.Note.parse(good).signatures, forged))
    with pytest.raises(SignatureError, match=f"invalid signature for trusted key {WITNESS.name}"):
        note.open_note(bad.marshal(), [LOG.verifier(), WITNESS.verifier()])
    # Unknown to this verifier: the forged line is ignored.
    assert note.open_note(bad.marshal(), [LOG.verifier()]).names == (LOG.name,)


def test_ambiguous_trusted_keys() -> None:
    impostor = OTHER.verifier()
    # A 32-bit key ID collision is cheap to grind; stand one in directly.
    object.__setattr__(impostor, "key_id", LOG.key_id)
    with pytest.raises(NoteError, match="ambiguous"):
        note.open_note(note.sign_note("a\n", [LOG]), [LOG.verifier(), impostor])
    # The same key twice is not ambiguous.
    assert note.open_note(note.sign_note("a\n", [LOG]), [LOG.verifier()] * 2).names == (LOG.name,)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"a\n\n\xe2\x80\x94 name AAAAAAB=\n", "canonical base64"),  # 5 bytes, trailing bits
        (b"a\n\n\xe2\x80\x94 name AAAAAA==\n", "canonical base64"),  # only 4 bytes
        (b"a\n\n\xe2\x80\x94 name AAAAAAE\n", "canonical base64"),  # no padding
        (b"a\n\n\xe2\x80\x94 name\n", "without a signature"),
        (b"a\n\n\xe2\x80\x94  AAAAAAE=\n", "invalid key name"),
        (b"a\n\n\xe2\x80\x94 a+b AAAAAAE=\n", "invalid key name"),
        (b"a\n\n\xe2\x80\x94 a\xc2\xa0b AAAAAAE=\n", "invalid key name"),
        (b"a\n\n\xe2\x80\x94 name AAAAAAE= \n", "canonical base64"),
        (b"a\n\n- name AAAAAAE=\n", "not a signature"),
        (b"a\n\n\xe2\x80\x94name AAAAAAE=\n", "not a signature"),
        (b"a\n\n\xe2\x80\x94 Bad Name AAAAAAE=\n", "canonical base64"),
        (b"a\r\n\n\xe2\x80\x94 name AAAAAAE=\n", "control character"),
        (b"a\n\n\xe2\x80\x94 name AAAAAAE=\n\n", "no signatures"),
        (b"a\n\n\xe2\x80\x94 name AAAAAAE=", "does not end with a newline"),
        (b"\xc0\xaf\n\n\xe2\x80\x94 name AAAAAAE=\n", "utf-8"),
        (b"\n\xe2\x80\x94 name AAAAAAE=\n", "no blank line"),
    ],
)
def test_malformed_notes(data: bytes, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        note.Note.parse(data)


def test_unknown_signature_is_kept_when_parsing() -> None:
    data = b"a\n\n\xe2\x80\x94 name AAAAAAE=\n"
    parsed = note.Note.parse(data)
    assert parsed.signatures == (note.NoteSignature(name="name", key_id=0, signature=b"\x01"),)
    assert parsed.marshal() == data
    with pytest.raises(SignatureError):
        note.open_note(data, [LOG.verifier()])


# checkpoints --------------------------------------------------------------------

origins = lines.filter(bool)
checkpoints = st.builds(
    note.Checkpoint,
    origin=origins,
    size=st.integers(0, 2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(origins, max_size=3).map(tuple),
)


@fast
@given(checkpoint=checkpoints)
def test_checkpoint_round_trip(checkpoint: note.Checkpoint) -> None:
    text = checkpoint.marshal()
    assert note.Checkpoint.parse(text) == checkpoint
    assert note.Checkpoint.parse(text).marshal() == text
    signed = note.sign_checkpoint(checkpoint, LOG)
    assert note.open_checkpoint(signed, LOG.verifier(), origin=checkpoint.origin) == checkpoint


ROOT = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"log\n01\n{ROOT}\n",
        f"log\n+1\n{ROOT}\n",
        f"log\n 1\n{ROOT}\n",
        f"log\n1 \n{ROOT}\n",
        f"log\n1_0\n{ROOT}\n",
        f"log\n\u0661\n{ROOT}\n",
        f"log\n{2**64}\n{ROOT}\n",
        f"log\n{'9' * 5000}\n{ROOT}\n",
        f"log\n1\n{ROOT.rstrip('=')}\n",
        f"log\n1\n{ROOT[:-2]}B=\n",  # trailing bits set
        f"log\n1\n{ROOT} \n",
        f"log\n1\n{ROOT}\n\n",
        f"log\n1\n{ROOT}\next\n\n",
        f"lo\tg\n1\n{ROOT}\n",
        f"log\n1\n{ROOT}\ne\x7fx\x01t\n",
        f"log\n1\n{ROOT}",
        f"\n1\n{ROOT}\n",
        "log\n1\n",
    ],
)
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(NoteError, match="checkpoint"):
        note.Checkpoint.parse(text)


def test_checkpoint_limits() -> None:
    text = f"log\n{2**64 - 1}\n{ROOT}\n"
    assert note.Checkpoint.parse(text).size == 2**64 - 1
    assert note.Checkpoint.parse(f"log with spaces+plus\n0\n{ROOT}\n").size == 0
    with pytest.raises(NoteError):
        note.Checkpoint(origin="log", size=-1, root_hash=bytes(32))
    with pytest.raises(NoteError):
        note.Checkpoint(origin="log", size=1, root_hash=bytes(31))
    with pytest.raises(NoteError):
        note.Checkpoint(origin="log", size=1, root_hash=bytes(32), extensions=("a\nb",))


def test_open_checkpoint_checks_key_and_origin() -> None:
    checkpoint = _checkpoint(7)
    signed = note.sign_checkpoint(checkpoint, LOG)
    assert note.open_checkpoint(signed, LOG.verifier()) == checkpoint
    with pytest.raises(SignatureError):
        note.open_checkpoint(signed, OTHER.verifier())
    with pytest.raises(ProofError, match="unexpected log"):
        note.open_checkpoint(signed, LOG.verifier(), origin="log.example/other")
    renamed = note.sign_checkpoint(_checkpoint(7, origin="log.example/other"), LOG)
    with pytest.raises(ProofError, match="unexpected log"):
        note.open_checkpoint(renamed, LOG.verifier())
    # Cosignatures from keys the verifier does not know are ignored.
    cosigned = note.sign_note(checkpoint.marshal(), [WITNESS, LOG])
    assert note.open_checkpoint(cosigned, LOG.verifier()) == checkpoint
    # Note text that is not a checkpoint is a format error, after the signature check.
    with pytest.raises(NoteError, match="checkpoint"):
        note.open_checkpoint(note.sign_note("just text\n", [LOG]), LOG.verifier())


# receipts (tlog-proof) ----------------------------------------------------------


@fast
@given(
    size=st.integers(1, len(ENTRIES)),
    data=st.data(),
    extra=st.binary(max_size=40),
)
def test_receipt_round_trip_and_verify(size: int, data: st.DataObject, extra: bytes) -> None:
    index = data.draw(st.integers(0, size - 1))
    receipt = _receipt(index, size, extra=extra)
    encoded = receipt.marshal()
    assert note.Receipt.parse(encoded) == receipt
    assert note.Receipt.parse(encoded).marshal() == encoded
    checkpoint = note.verify_receipt(encoded, ENTRIES[index], LOG.verifier())
    assert checkpoint == _checkpoint(size)
    leaf = merkle.leaf_hash(ENTRIES[index])
    assert note.verify_receipt(receipt, leaf, LOG.verifier(), leaf_is_hash=True) == checkpoint
    other = ENTRIES[(index + 1) % len(ENTRIES)]
    with pytest.raises(ProofError):
        note.verify_receipt(receipt, other, LOG.verifier())
    with pytest.raises(SignatureError):
        note.verify_receipt(receipt, ENTRIES[index], OTHER.verifier())


def test_receipt_layout() -> None:
    receipt = _receipt(5, 7, extra=b"item 42")
    proof = [base64.b64encode(node).decode() for node in receipt.proof]
    expected = (
        "c2sp.org/tlog-proof@v1\n"
        f"extra {base64.b64encode(b'item 42').decode()}\n"
        "index 5\n" + "".join(line + "\n" for line in proof) + "\n"
    ).encode() + receipt.checkpoint
    assert receipt.marshal() == expected
    assert len(proof) == 3
    # One leaf: no proof lines at all, the blank line follows the index.
    single = _receipt(0, 1)
    assert single.proof == ()
    assert single.marshal().startswith(b"c2sp.org/tlog-proof@v1\nindex 0\n\n")
    assert note.verify_receipt(single.marshal(), ENTRIES[0], LOG.verifier()).size == 1


def test_receipt_with_witness_cosignatures() -> None:
    receipt = _receipt(3, 9, signers=(LOG, WITNESS))
    assert note.verify_receipt(receipt.marshal(), ENTRIES[3], LOG.verifier()).size == 9


def test_every_bit_flip_of_a_receipt_is_rejected() -> None:
    encoded = _receipt(5, 11).marshal()
    for tampered in _bit_flips(encoded):
        with pytest.raises((NoteError, ProofError)):
            note.verify_receipt(tampered, ENTRIES[5], LOG.verifier())


def test_extra_data_is_not_authenticated() -> None:
    encoded = _receipt(2, 4, extra=b"hint").marshal()
    swapped = encoded.replace(b"extra aGludA==", b"extra bWludA==")
    assert swapped != encoded
    assert note.verify_receipt(swapped, ENTRIES[2], LOG.verifier()).size == 4


def test_receipt_checks_index_against_the_checkpoint() -> None:
    good = _receipt(2, 4)
    moved = note.Receipt(index=3, proof=good.proof, checkpoint=good.checkpoint)
    with pytest.raises(ProofError):
        note.verify_receipt(moved, ENTRIES[2], LOG.verifier())
    outside = note.Receipt(index=4, proof=good.proof, checkpoint=good.checkpoint)
    with pytest.raises(ProofError):
        note.verify_receipt(outside, ENTRIES[2], LOG.verifier())
    with pytest.raises(ProofError):
        note.verify_receipt(good, bytes(31), LOG.verifier(), leaf_is_hash=True)
    with pytest.raises(ProofError, match="unexpected log"):
        note.verify_receipt(good, ENTRIES[2], LOG.verifier(), origin="log.example/other")


def _edit(receipt: bytes, old: bytes, new: bytes) -> bytes:
    assert old in receipt
    return receipt.replace(old, new, 1)


def test_malformed_receipts() -> None:
    encoded = _receipt(5, 7, extra=b"x").marshal()
    header, _, checkpoint = encoded.partition(b"\n\n")
    first_hash = header.split(b"\n")[3]
    cases = [
        _edit(encoded, b"@v1", b"@v2"),
        _edit(encoded, b"index 5", b"index 05"),
        _edit(encoded, b"index 5", b"index +5"),
        _edit(encoded, b"index 5", b"index  5"),
        _edit(encoded, b"index 5", b"Index 5"),
        _edit(encoded, b"index 5\n", b""),
        _edit(encoded, b"extra eA==", b"extra "),
        _edit(encoded, b"extra eA==", b"extra eB=="),
        _edit(encoded, first_hash, first_hash.rstrip(b"=")),
        _edit(encoded, first_hash, first_hash + b"AAAA"),
        _edit(encoded, first_hash + b"\n", first_hash + b"\n\n"),
        _edit(encoded, b"\n\n", b"\n"),
        _edit(encoded, b"index 5\n", b"index 5\r\n"),
        _edit(encoded, b"c2sp", b"\xffc2sp"),
        header + b"\n\n",
        header + b"\n\nnot a note\n",
        b"c2sp.org/tlog-proof@v1\nindex 0\n" + b"\n".join([first_hash] * 65) + b"\n\n" + checkpoint,
        b"",
    ]
    for data in cases:
        with pytest.raises(NoteError):
            note.Receipt.parse(data)


def test_extra_line_is_optional() -> None:
    encoded = _receipt(5, 7, extra=b"x").marshal()
    without = note.Receipt.parse(_edit(encoded, b"extra eA==\n", b""))
    assert without.extra == b""
    assert without.marshal() == _receipt(5, 7).marshal()


def test_receipt_constructor_checks() -> None:
    good = _receipt(0, 2)
    with pytest.raises(NoteError):
        note.Receipt(index=-1, proof=good.proof, checkpoint=good.checkpoint)
    with pytest.raises(NoteError):
        note.Receipt(index=2**64, proof=good.proof, checkpoint=good.checkpoint)
    with pytest.raises(NoteError):
        note.Receipt(index=0, proof=(bytes(31),), checkpoint=good.checkpoint)
    with pytest.raises(NoteError):
        note.Receipt(index=0, proof=good.proof, checkpoint=b"x\n\n")


def test_errors_are_in_the_vault_tree() -> None:
    assert issubclass(NoteError, FormatError)
    assert issubclass(SignatureError, ProofError)
