"""Cosignatures and add-checkpoint bodies (C2SP tlog-cosignature, tlog-witness); §15 recomputed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vault.cosignature import (
    MAX_PROOF_LINES,
    add_checkpoint_body,
    cosign,
    cosigned_message,
    parse_add_checkpoint,
    verify_cosignatures,
)
from vault.errors import NoteError, SignatureError
from vault.merkle import MemoryHashStore, consistency_proof, leaf_hash, root
from vault.note import Checkpoint, Note, NoteSigner, sign_checkpoint
from vault.peer_key import PeerSigner

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
LOG = NoteSigner.from_seed("a.example/log", b"\x07" * 32)
WITNESS = PeerSigner(name="b.example/log/peer", seed=b"\x06" * 32)
OTHER = PeerSigner(name="c.example/log/peer", seed=b"\x09" * 32)
STORE = MemoryHashStore(
    leaf_hash(
        json.dumps(
            {"time": 1900000000 + i, "type": "switch.checkin", "vault": "9c" * 16},
            separators=(",", ":"),
        ).encode()
    )
    for i in range(5)
)
CHECKPOINT = Checkpoint(origin=LOG.name, size=5, root_hash=root(STORE, 5))
NOTE = sign_checkpoint(CHECKPOINT, LOG)


def example(name: str) -> str:
    match = re.search(rf"<!-- example:{re.escape(name)} -->\n```\n(.*?)\n```\n", DOC, re.DOTALL)
    assert match is not None, f"no example {name!r} in docs/protocol.md"
    return match.group(1)


def test_the_documented_examples() -> None:
    message = cosigned_message(CHECKPOINT.marshal(), 1900000100)
    assert message.decode() == example("cosigned-message") + "\n"
    body = add_checkpoint_body(3, consistency_proof(STORE, 3, 5), NOTE)
    assert body.decode() == example("witness-request") + "\n"
    line = cosign(CHECKPOINT.marshal(), WITNESS, 1900000100)
    assert line == example("cosignature") + "\n"
    [found] = verify_cosignatures(NOTE + line.encode(), [WITNESS.verifier()])
    assert (found.witness, found.timestamp, found.line) == (WITNESS.verifier(), 1900000100, line)


def test_the_signature_is_over_the_cosigned_message() -> None:
    line = cosign(CHECKPOINT.marshal(), WITNESS, 1900000100)
    signature = Note.parse(NOTE + line.encode()).signatures[-1]
    assert signature.key_id == WITNESS.verifier().key_id
    assert signature.signature[:8] == (1900000100).to_bytes(8, "big")
    WITNESS.verifier().verify(
        cosigned_message(CHECKPOINT.marshal(), 1900000100), signature.signature[8:]
    )


def test_unknown_cosigners_are_ignored_and_bad_ones_refused() -> None:
    line = cosign(CHECKPOINT.marshal(), OTHER, 1900000100)
    assert verify_cosignatures(NOTE + line.encode(), [WITNESS.verifier()]) == []
    # The log's own signature is not a cosignature, even from a key of the same bytes.
    assert verify_cosignatures(NOTE, [WITNESS.verifier()]) == []
    good = cosign(CHECKPOINT.marshal(), WITNESS, 1900000100)
    other_tree = Checkpoint(origin=LOG.name, size=5, root_hash=b"\x01" * 32)
    moved = sign_checkpoint(other_tree, LOG) + good.encode()
    with pytest.raises(SignatureError, match="invalid cosignature"):
        verify_cosignatures(moved, [WITNESS.verifier()])
    blob = Note.parse(NOTE + good.encode()).signatures[-1]
    zero = type(blob)(name=blob.name, key_id=blob.key_id, signature=bytes(8) + blob.signature[8:])
    with pytest.raises(SignatureError):
        verify_cosignatures(NOTE + zero.line().encode(), [WITNESS.verifier()])
    with pytest.raises(NoteError):
        cosigned_message(CHECKPOINT.marshal(), 0)


def test_request_bodies_round_trip_and_malformed_ones_are_refused() -> None:
    proof = consistency_proof(STORE, 3, 5)
    parsed = parse_add_checkpoint(add_checkpoint_body(3, proof, NOTE))
    assert (parsed.old_size, list(parsed.proof), parsed.checkpoint) == (3, proof, NOTE)
    assert parse_add_checkpoint(add_checkpoint_body(0, [], NOTE)).proof == ()
    bad = [
        b"old 3\n" + NOTE,
        b"old 03\n\n" + NOTE,
        b"old -1\n\n" + NOTE,
        b"old 3 \n\n" + NOTE,
        b"new 3\n\n" + NOTE,
        b"old 18446744073709551616\n\n" + NOTE,
        b"old 3\nnot base64\n\n" + NOTE,
        b"old 3\n" + b"AQ==\n" + b"\n" + NOTE,
        b"old 3\n" + (b"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n" * 64) + b"\n" + NOTE,
        b"old 3\n\n" + NOTE[:-1],
        b"old 3\n\nnot a checkpoint\n\n\xe2\x80\x94 x AAAAAAA=\n",
    ]
    for body in bad:
        with pytest.raises(NoteError):
            parse_add_checkpoint(body)
    with pytest.raises(NoteError):
        add_checkpoint_body(3, [b"\x02" * 32] * (MAX_PROOF_LINES + 1), NOTE)
