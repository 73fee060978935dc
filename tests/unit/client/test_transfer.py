"""The pieces of ``evault add``: pending records, payload pieces, resumable encryption."""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
import time
from collections.abc import Callable
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
    record = _pending(decoy=True, release=True)
    ids = {"upload": record.upload, "item": record.item}
    assert pending.Pending.parse(record.to_bytes(), **ids) == record
    # The server's ids are not in the sealed record: the server gives them back beside it.
    assert record.upload.encode() not in record.to_bytes()


def test_a_pending_record_is_sealed_to_its_owner(tmp_path: Any) -> None:
    identity = age.X25519Identity.generate()
    out = io.BytesIO()
    age.encrypt(io.BytesIO(_pending().to_bytes()), out, [identity.recipient()])
    sealed = out.getvalue()
    assert b"evidence" not in sealed
    assert b"file_key" not in sealed
    plain = io.BytesIO()
    age.decrypt(io.BytesIO(sealed), plain, [identity])
    parsed = pending.Pending.parse(plain.getvalue(), upload="u" * 40, item="a" * 32)
    assert parsed.path == "/home/r/evidence/été.pdf"


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


class _FakeUploader:
    def __init__(self, plan: list[tuple[int, int]]) -> None:
        self.plan = plan
        self.queue: queue.Queue[bytes | None] = queue.Queue()
        self.error = None

    def queued(self) -> list[bytes]:
        out = []
        while not self.queue.empty():
            piece = self.queue.get()
            assert piece is not None
            out.append(piece)
        return out


PIECE = transfer.UPLOAD_PIECE


@pytest.mark.parametrize("size", [1, PIECE, 2 * PIECE + 5])
@pytest.mark.parametrize("skip_first", [False, True])
def test_only_the_pieces_planned_are_queued_and_none_straddles(size: int, skip_first: bool) -> None:
    pieces = [(o, min(PIECE, size - o)) for o in range(0, size, PIECE)]
    plan = pieces[1:] if skip_first else pieces
    uploader = _FakeUploader(plan)
    sink = transfer._Sink(uploader)  # type: ignore[arg-type]
    data = os.urandom(size)
    step = 1024 * 1024 + 7  # batches do not fall on request boundaries
    for start in range(0, size, step):
        sink.write(memoryview(data[start : start + step]))
    queued = uploader.queued()
    expected = b"".join(data[o : o + n] for o, n in plan)
    assert b"".join(queued) == expected
    # Every queued piece lies within one request.
    offset = plan[0][0] if plan else 0
    for piece in queued:
        assert offset // PIECE == (offset + len(piece) - 1) // PIECE
        offset += len(piece)
    assert sink.digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_request_body_reads_exactly_its_length() -> None:
    pieces: queue.Queue[bytes | None] = queue.Queue()
    for piece in (b"abc", b"defg", b"hi"):
        pieces.put(piece)
    body = transfer._PieceBody(pieces, 9)
    assert len(body) == 9
    assert b"".join(iter(lambda: body.read(1 << 20), b"")) == b"abcdefghi"
    assert body.sent == 9


def test_a_request_body_stops_when_the_encryptor_does() -> None:
    pieces: queue.Queue[bytes | None] = queue.Queue()
    pieces.put(b"abc")
    pieces.put(None)
    body = transfer._PieceBody(pieces, 9)
    body.read()
    with pytest.raises(transfer._Stop):
        body.read()


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


def test_files_side_by_side_keep_their_order_and_their_errors() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def task(n: int) -> Callable[[], int]:
        def run() -> int:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.01 * (n % 3))
            with lock:
                running -= 1
            if n == 4:
                raise ConfigError("four is unreadable")
            return n * 10

        return run

    outcomes = transfer.side_by_side([task(n) for n in range(9)], width=3, stop=threading.Event())
    assert [o if isinstance(o, int) else str(o) for o in outcomes] == [
        0,
        10,
        20,
        30,
        "four is unreadable",
        50,
        60,
        70,
        80,
    ]
    assert 1 < most <= 3


def test_once_stopped_no_file_more_starts() -> None:
    stop = threading.Event()
    started: list[int] = []

    def task(n: int) -> Callable[[], int]:
        def run() -> int:
            started.append(n)
            if n == 1:
                stop.set()
            return n

        return run

    outcomes = transfer.side_by_side([task(n) for n in range(6)], width=1, stop=stop)
    assert started == [0, 1]
    assert outcomes == [0, 1, None, None, None, None]
