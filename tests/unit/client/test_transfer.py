"""The pieces of ``evault add``: pending records, payload pieces, resumable encryption."""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

import pytest

from client import pending, transfer
from client.identity import check_strength
from client.ui import shown
from vault import age
from vault.age.stream import NONCE_SIZE, encrypt_payload, payload_size
from vault.errors import ConfigError


def _pending(**changes: Any) -> Any:
    fields: dict[str, Any] = {
        "upload": "u" * 40,
        "item": "a" * 32,
        "server": "http://127.0.0.1:8080",
        "path": "/home/r/evidence/été.pdf",
        "size": 123,
        "mtime_ns": 1_700_000_000_123_456_789,
        "inode": 2**60 + 5,
        "device": 2**40,
        "file_key": os.urandom(16),
        "nonce": os.urandom(NONCE_SIZE),
        "header": b"age-encryption.org/v1\n",
        "editors": ("b" * 32,),
        "note": "from the archive",
    }
    fields.update(changes)
    return pending.Pending(**fields)


def test_a_pending_record_round_trips_with_large_numbers() -> None:
    record = _pending()
    assert pending.Pending.parse(record.to_bytes()) == record


def test_a_pending_record_is_sealed_to_its_owner(tmp_path: Any) -> None:
    identity = age.X25519Identity.generate()
    out = io.BytesIO()
    age.encrypt(io.BytesIO(_pending().to_bytes()), out, [identity.recipient()])
    sealed = out.getvalue()
    assert b"evidence" not in sealed
    assert b"file_key" not in sealed
    plain = io.BytesIO()
    age.decrypt(io.BytesIO(sealed), plain, [identity])
    assert pending.Pending.parse(plain.getvalue()).path == "/home/r/evidence/été.pdf"


def test_the_same_key_and_nonce_give_the_same_payload() -> None:
    """What resuming relies on: the payload can be produced again, byte for byte."""
    key, nonce = os.urandom(16), os.urandom(NONCE_SIZE)
    data = os.urandom(3 * 64 * 1024 + 17)
    first, second = io.BytesIO(), io.BytesIO()
    encrypt_payload(key, io.BytesIO(data), first.write, nonce=nonce)
    encrypt_payload(key, io.BytesIO(data), second.write, nonce=nonce)
    assert first.getvalue() == second.getvalue()
    assert len(first.getvalue()) == payload_size(len(data))
    assert first.getvalue()[:NONCE_SIZE] == nonce


class _Collect:
    def __init__(self) -> None:
        self.pieces: list[tuple[int, bytes]] = []
        self.error = None

    def put(self, offset: int, data: bytes) -> None:
        self.pieces.append((offset, data))


@pytest.mark.parametrize("size", [0, 1, transfer.UPLOAD_PIECE, 2 * transfer.UPLOAD_PIECE + 5])
def test_the_payload_is_cut_into_pieces_at_their_offsets(size: int) -> None:
    collect = _Collect()
    sink = transfer._Sink(collect)  # type: ignore[arg-type]
    data = os.urandom(size)
    for start in range(0, size, 65536 + 16):
        sink.write(memoryview(data[start : start + 65536 + 16]))
    sink.close()
    assert b"".join(p for _, p in collect.pieces) == data
    assert all(len(p) <= transfer.UPLOAD_PIECE for _, p in collect.pieces)
    offsets = [o for o, _ in collect.pieces]
    assert offsets == [i * transfer.UPLOAD_PIECE for i in range(len(offsets))]
    assert sink.digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_only_pieces_the_server_lacks_are_sent() -> None:
    missing = [(10, 20), (100, 101)]
    assert transfer._overlaps(0, 11, missing)
    assert not transfer._overlaps(0, 10, missing)
    assert not transfer._overlaps(20, 100, missing)
    assert transfer._overlaps(100, 200, missing)


def test_weak_passphrases_are_refused_with_advice() -> None:
    for weak in ("short", "password12345", "aaaaaaaaaaaaaaaa", "qwertyuiopasdf"):
        with pytest.raises(ConfigError) as info:
            check_strength(weak)
        assert info.value.hint
    check_strength("correct horse battery staple orbit")


def test_untrusted_text_cannot_drive_the_terminal() -> None:
    assert shown("evil\x1b[2J\x1b]0;title\x07name[/]") == "evil?[2J?]0;title?name\\[/]"
    assert "\u202e" not in shown("abc\u202etxt.exe")
