"""Hostile input: every failure is a DecryptError with a message, never a hang or a leak."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import encrypt_bytes
from vault import age
from vault.age.stream import CHUNK_SIZE
from vault.errors import DecryptError, VaultError

IDENTITY = age.X25519Identity.generate()
HYBRID = age.HybridIdentity.generate()


class Endless(io.RawIOBase):
    """An input that never ends: ``prefix`` then ``filler`` repeated forever."""

    def __init__(self, prefix: bytes, filler: bytes) -> None:
        self._pending = prefix
        self._filler = filler
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while len(self._pending) < len(buffer):
            self._pending += self._filler * (1 + len(buffer) // len(self._filler))
        n = len(buffer)
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.consumed += n
        return n


class Sink(io.RawIOBase):
    """An output that counts and discards."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        n = memoryview(data).nbytes
        self.size += n
        return n


def encrypt_to(data: bytes, identity: age.X25519Identity | age.HybridIdentity = IDENTITY) -> bytes:
    return encrypt_bytes(data, [identity.recipient()])


def _decrypt(raw: io.RawIOBase | io.BytesIO) -> None:
    age.decrypt(raw, Sink(), [IDENTITY])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prefix", "filler", "error"),
    [
        (b"", b"a", age.HeaderError),  # a gigabyte-long version line
        (b"age-encryption.org/v1\n-> ", b"X", age.HeaderError),  # endless argument line
        (b"age-encryption.org/v1\n-> X25519 a\n", b"A" * 64 + b"\n", age.HeaderError),
        (b"age-encryption.org/v1\n", b"-> grease\n\n", age.HeaderError),  # endless stanzas
        (b"", b" \n", age.HeaderError),  # whitespace forever: not armor, not age
        (b"-----BEGIN AGE ENCRYPTED FILE-----\n", b"A" * 200, age.ArmorError),
    ],
)
def test_endless_headers_are_refused_early(prefix: bytes, filler: bytes, error: type) -> None:
    raw = Endless(prefix, filler)
    tracemalloc.start()
    try:
        with pytest.raises(error):
            _decrypt(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raw.consumed < 16 * 1024 * 1024
    assert peak < 64 * 1024 * 1024


def test_scrypt_work_factor_above_the_cap_is_refused_before_scrypt_runs() -> None:
    blob = _scrypt_blob()
    line_start = blob.index(b"-> scrypt ")
    line_end = blob.index(b"\n", line_start)
    fields = bytes(blob[line_start:line_end]).split(b" ")
    forged = bytes(blob[:line_start]) + b" ".join([*fields[:3], b"40"]) + bytes(blob[line_end:])
    start = time.monotonic()
    with pytest.raises(age.HeaderError, match="work factor too large"):
        age.decrypt(io.BytesIO(forged), Sink(), [age.ScryptIdentity("pw")])  # type: ignore[arg-type]
    assert time.monotonic() - start < 1.0


def _scrypt_blob() -> bytes:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(b"secret"), out, [age.ScryptRecipient("pw", work_factor=2)])
    return out.getvalue()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_gives_a_decrypt_error(data: bytes) -> None:
    with pytest.raises(DecryptError):
        _decrypt(io.BytesIO(data))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_single_byte_change_is_detected(data: st.DataObject) -> None:
    blob = bytearray(encrypt_to(b"evidence " * 50, HYBRID))
    position = data.draw(st.integers(0, len(blob) - 1))
    blob[position] ^= data.draw(st.integers(1, 255))
    out = io.BytesIO()
    with pytest.raises(DecryptError):
        age.decrypt(io.BytesIO(bytes(blob)), out, [HYBRID])
    # Either the header was rejected (nothing released) or the only chunk was.
    assert out.getvalue() == b""


def test_every_truncation_fails_cleanly() -> None:
    blob = encrypt_to(b"q" * (CHUNK_SIZE + 3))
    for cut in [*range(0, 300), *range(len(blob) - 40, len(blob))]:
        with pytest.raises(DecryptError):
            _decrypt(io.BytesIO(blob[:cut]))


def test_payload_errors_name_the_problem() -> None:
    blob = encrypt_to(b"abc")
    with pytest.raises(age.PayloadError) as info:
        _decrypt(io.BytesIO(blob + b"trailing"))
    assert "chunk" in str(info.value)
    header_and_some = blob[: blob.index(b"\n---") + 49 + 8]
    with pytest.raises(age.HeaderError, match="nonce"):
        _decrypt(io.BytesIO(header_and_some))


def test_errors_are_vault_errors_with_messages() -> None:
    for bad in [b"", b"not an age file\n", b"age-encryption.org/v2\nwhatever\n"]:
        with pytest.raises(VaultError) as info:
            _decrypt(io.BytesIO(bad))
        assert info.value.message
        assert isinstance(info.value, DecryptError)


def test_streaming_memory_does_not_grow_with_the_file() -> None:
    """64 MiB through encrypt and decrypt with a few MiB of Python memory."""
    size = 64 * 1024 * 1024

    class Zeros(io.RawIOBase):
        def __init__(self) -> None:
            self.left = size

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            n = min(len(buffer), self.left)
            buffer[:n] = bytes(n)
            self.left -= n
            return n

    class Tee(io.RawIOBase):
        """Keeps the header and the first chunk, counts the rest."""

        def __init__(self) -> None:
            self.head = bytearray()
            self.size = 0

        def writable(self) -> bool:
            return True

        def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
            view = memoryview(data).cast("B")
            if len(self.head) < 8192:
                self.head += view[: 8192 - len(self.head)]
            self.size += len(view)
            return len(view)

    tracemalloc.start()
    try:
        sink = Tee()
        age.encrypt(Zeros(), sink, [IDENTITY.recipient()])  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.size > size
    assert peak < 16 * 1024 * 1024


def test_endless_whitespace_before_armor_is_refused() -> None:
    raw = Endless(b"", b" \n")
    with pytest.raises(age.ArmorError):
        age.decrypt(raw, Sink(), [IDENTITY], armored=True)  # type: ignore[arg-type]
    assert raw.consumed < 1024 * 1024


def test_data_after_the_armor_footer_is_not_read_to_the_end() -> None:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(b"short"), out, [IDENTITY.recipient()], armor=True)
    raw = Endless(out.getvalue(), bytes(4096))
    tracemalloc.start()
    try:
        with pytest.raises(age.ArmorError, match="after the PEM footer"):
            _decrypt(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raw.consumed < 1024 * 1024
    assert peak < 16 * 1024 * 1024


def test_a_writer_that_writes_short_gets_everything() -> None:
    class Short(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
            view = memoryview(data).cast("B")[:1000]
            self.data += view
            return len(view)

    plaintext = bytes(range(256)) * 1000
    out = Short()
    age.encrypt(io.BytesIO(plaintext), out, [IDENTITY.recipient()])  # type: ignore[arg-type]
    back = Short()
    age.decrypt(io.BytesIO(bytes(out.data)), back, [IDENTITY])  # type: ignore[arg-type]
    assert bytes(back.data) == plaintext


def test_the_first_error_in_stream_order_is_reported() -> None:
    """A bad chunk early in the file wins over a read error met later."""

    class FailingTail(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            n = self._data.readinto(buffer)
            if not n:
                raise OSError("disk read error")
            return n

    blob = bytearray(encrypt_to(bytes(20 * CHUNK_SIZE)))
    blob[200] ^= 1  # in the first chunk (the header is shorter than 200 bytes)
    with pytest.raises(age.PayloadError, match="chunk 0"):
        _decrypt(FailingTail(bytes(blob[: len(blob) - 10])))


def test_scrypt_without_enough_memory_is_a_clear_error(tmp_path: Path) -> None:
    """Work factor 20 needs 1 GiB; under a 512 MiB limit it is a HeaderError, not MemoryError."""
    blob = _scrypt_blob()
    line_start = blob.index(b"-> scrypt ")
    line_end = blob.index(b"\n", line_start)
    fields = blob[line_start:line_end].split(b" ")
    forged = blob[:line_start] + b" ".join([*fields[:3], b"20"]) + blob[line_end:]
    (tmp_path / "f.age").write_bytes(forged)
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))\n"
        "from vault import age\n"
        "from vault.errors import HeaderError\n"
        "try:\n"
        "    with open(sys.argv[1], 'rb') as src, open('/dev/null', 'wb') as dst:\n"
        "        age.decrypt(src, dst, [age.ScryptIdentity('pw')])\n"
        "except HeaderError as exc:\n"
        "    print(exc.message)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "f.age")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "not enough memory" in result.stdout
