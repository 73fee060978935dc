"""The STREAM payload: 64 KiB chunks of ChaCha20-Poly1305 (age.md, "Payload").

Chunks are independent, so batches of them are sealed or opened on a small
thread pool (pyca/cryptography releases the GIL while it works) while the
calling thread reads and writes. Memory stays bounded by the number of
batches in flight, whatever the size of the file. Decryption writes the
plaintext of every chunk that authenticated, in order, and stops at the first
one that does not.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from vault._threads import signals_to_main_thread
from vault.age._crypto import hkdf_sha256
from vault.errors import PayloadError

__all__ = [
    "CHUNK_SIZE",
    "ENCRYPTED_CHUNK_SIZE",
    "NONCE_SIZE",
    "decrypt_payload",
    "encrypt_payload",
    "payload_key",
    "payload_size",
]

CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
NONCE_SIZE = 16
_BATCH_CHUNKS = 16
_MAX_COUNTER = 1 << 88


class Reader(Protocol):
    def readinto(self, buffer: memoryview, /) -> int:
        """Fill ``buffer`` completely unless the input ends; 0 only at EOF."""
        ...


Writer = Callable[[memoryview], object]
"""``dst.write``: must consume the data before returning (as files do), since the
buffer behind the view is reused; a short count is followed by another write."""


def payload_key(file_key: bytes, nonce: bytes) -> bytes:
    """The payload key: HKDF-SHA-256(file key, salt = nonce, info = "payload")."""
    return hkdf_sha256(file_key, nonce, b"payload")


def _nonce(counter: int, last: bool) -> bytes:
    if counter >= _MAX_COUNTER:
        raise PayloadError("payload too long: chunk counter overflow")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class _Batch:
    """One batch of chunks with its reusable input and output buffers."""

    __slots__ = ("error", "input", "length", "output", "output_length")

    def __init__(self, input_size: int, output_size: int) -> None:
        self.input = bytearray(input_size)
        self.output = bytearray(output_size)
        self.length = 0
        self.output_length = 0
        self.error: PayloadError | None = None


def write_all(write: Writer, view: memoryview) -> None:
    """Write all of ``view``, looping over short writes of raw files and sockets."""
    while len(view):
        n = write(view)
        if not isinstance(n, int) or n >= len(view):
            return
        view = view[n:]


def _fill(reader: Reader, view: memoryview, piece: int) -> int:
    """Fill ``view`` in reads of ``piece`` bytes; fewer bytes only at EOF."""
    filled = 0
    while filled < len(view):
        n = reader.readinto(view[filled : filled + piece])
        if not n:
            break
        filled += n
    return filled


def _take(free: queue.SimpleQueue[_Batch]) -> _Batch:
    """The next free batch, waiting in slices so a signal handler runs promptly."""
    while True:
        try:
            return free.get(timeout=0.25)
        except queue.Empty:
            continue


def _pipeline(
    reader: Reader,
    write: Writer,
    in_size: int,
    out_size: int,
    piece: int,
    work: Callable[[_Batch, int, bool], int],
    chunks_of: Callable[[int, bool], int],
) -> None:
    """Read batches, process them on a pool, write the results in order.

    The calling thread reads, a pool of workers seals or opens chunks, and
    one writer thread writes finished batches in order, so reading, the
    cryptography and writing overlap. A fixed set of batches circulates
    between them, which bounds memory.
    """
    first = _Batch(in_size, out_size)
    first.length = _fill(reader, memoryview(first.input), piece)
    # One byte more tells whether a full first batch is the whole input.
    carry = bytearray(1)
    carried = _fill(reader, memoryview(carry), 1) if first.length == in_size else 0
    if not carried:
        # The whole input fits one batch (a manifest, a small file): done here,
        # without starting threads, which would cost more than the work.
        work(first, 0, True)
        if first.output_length:
            write_all(write, memoryview(first.output)[: first.output_length])
        if first.error is not None:
            raise first.error
        return
    workers = _workers()
    free: queue.SimpleQueue[_Batch] = queue.SimpleQueue()
    made = 1

    def take() -> _Batch:
        """A free batch; a new one while fewer than the bound exist (a short input needs two)."""
        nonlocal made
        if made < workers + 3:
            try:
                return free.get_nowait()
            except queue.Empty:
                made += 1
                return _Batch(in_size, out_size)
        return _take(free)

    done: queue.SimpleQueue[tuple[_Batch, Future[int]] | None] = queue.SimpleQueue()
    failure: list[BaseException] = []

    def writer() -> None:
        while (item := done.get()) is not None:
            batch, future = item
            if not failure:
                try:
                    future.result()
                    if batch.output_length:
                        write_all(write, memoryview(batch.output)[: batch.output_length])
                    if batch.error is not None:
                        raise batch.error
                except BaseException as exc:  # noqa: BLE001 — re-raised by the calling thread
                    failure.append(exc)
            free.put(batch)

    pool = ThreadPoolExecutor(workers)
    writer_thread = threading.Thread(target=writer, name="age-writer", daemon=True)
    with signals_to_main_thread():
        writer_thread.start()
    interrupted: BaseException | None = None
    try:
        counter = 0
        current = first
        while not failure:
            nxt = None
            last = current.length < in_size
            read_error: BaseException | None = None
            if not last:
                nxt = take()
                try:
                    nxt.input[:carried] = carry[:carried]
                    nxt.length = carried + _fill(reader, memoryview(nxt.input)[carried:], piece)
                    carried = 0
                except BaseException as exc:  # noqa: BLE001 — raised once `current` is queued
                    read_error = exc
                last = read_error is None and nxt.length == 0
            current.error = None
            current.output_length = 0
            with signals_to_main_thread():  # ``submit`` may start a worker thread
                future = pool.submit(work, current, counter, last)
            done.put((current, future))
            counter += chunks_of(current.length, last)
            if read_error is not None:
                # The batch read before the error still goes out (or fails) first.
                raise read_error
            if last or nxt is None:
                break
            current = nxt
    except BaseException as exc:  # noqa: BLE001 — re-raised below, after the writer stops
        interrupted = exc
    finally:
        done.put(None)
        writer_thread.join()
        pool.shutdown(wait=True, cancel_futures=True)
    # The writer's error concerns an earlier batch than anything the reader
    # met since, so it is the one to report.
    if failure:
        raise failure[0]
    if interrupted is not None:
        raise interrupted


def payload_size(plaintext_size: int) -> int:
    """The size of the payload (nonce and sealed chunks) of ``plaintext_size`` bytes."""
    if plaintext_size < 0:
        raise ValueError("negative size")
    chunks = max(1, -(-plaintext_size // CHUNK_SIZE))
    return NONCE_SIZE + plaintext_size + chunks * TAG_SIZE


def encrypt_payload(
    file_key: bytes, reader: Reader, write: Writer, *, nonce: bytes | None = None
) -> None:
    """Write the payload nonce and the encrypted chunks of everything ``reader`` holds.

    ``nonce`` is random unless given. A caller gives one only to produce the
    very same payload again from the same file key and plaintext (to resume
    an upload); a nonce must never be used with a file key for two
    different plaintexts.
    """
    if nonce is None:
        nonce = os.urandom(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise ValueError("the payload nonce must be 16 bytes")
    write_all(write, memoryview(nonce))
    aead = ChaCha20Poly1305(payload_key(file_key, nonce))
    in_size = CHUNK_SIZE * _BATCH_CHUNKS

    def seal(batch: _Batch, counter: int, last: bool) -> int:
        data = memoryview(batch.input)
        out = memoryview(batch.output)
        count = max(1, -(-batch.length // CHUNK_SIZE))
        pos = 0
        for i in range(count):
            end = min(batch.length, (i + 1) * CHUNK_SIZE)
            chunk = data[i * CHUNK_SIZE : end]
            size = len(chunk) + TAG_SIZE
            aead.encrypt_into(
                _nonce(counter + i, last and i == count - 1), chunk, None, out[pos : pos + size]
            )
            pos += size
        batch.output_length = pos
        return pos

    def chunks_of(length: int, last: bool) -> int:
        return max(1, -(-length // CHUNK_SIZE))

    _pipeline(
        reader, write, in_size, ENCRYPTED_CHUNK_SIZE * _BATCH_CHUNKS, CHUNK_SIZE, seal, chunks_of
    )


def decrypt_payload(file_key: bytes, nonce: bytes, reader: Reader, write: Writer) -> None:
    """Decrypt the chunks that follow the payload nonce, writing plaintext in order.

    Raises:
        PayloadError: at the first chunk that is missing, short, altered, out
            of place or followed by extra data. Plaintext of the chunks
            before it has already been written.
    """
    aead = ChaCha20Poly1305(payload_key(file_key, nonce))
    in_size = ENCRYPTED_CHUNK_SIZE * _BATCH_CHUNKS

    def open_into(chunk: memoryview, counter: int, last: bool, out: memoryview) -> bool:
        try:
            aead.decrypt_into(_nonce(counter, last), chunk, None, out[: len(chunk) - TAG_SIZE])
        except InvalidTag:
            return False
        return True

    def open_batch(batch: _Batch, counter: int, at_eof: bool) -> int:
        data = memoryview(batch.input)[: batch.length]
        out = memoryview(batch.output)
        count = -(-batch.length // ENCRYPTED_CHUNK_SIZE)
        pos = 0
        if count == 0:
            batch.error = PayloadError("truncated file: the payload has no chunks")
            return 0
        for i in range(count):
            chunk = data[i * ENCRYPTED_CHUNK_SIZE : (i + 1) * ENCRYPTED_CHUNK_SIZE]
            final_piece = at_eof and i == count - 1
            index = counter + i
            target = out[pos:]
            if len(chunk) == ENCRYPTED_CHUNK_SIZE:
                if open_into(chunk, index, False, target):
                    pos += CHUNK_SIZE
                    if final_piece:
                        batch.error = PayloadError("truncated file: the final chunk is missing")
                        break
                    continue
                if open_into(chunk, index, True, target):
                    # A valid final chunk is released even when data follows
                    # it, as the reference implementation does.
                    pos += CHUNK_SIZE
                    if not final_piece:
                        batch.error = PayloadError("invalid file: data after the final chunk")
                    break
                batch.error = PayloadError(f"damaged file: chunk {index} failed to authenticate")
                break
            # A short piece can only be the end of the input.
            if len(chunk) < TAG_SIZE:
                batch.error = PayloadError("truncated file: the last chunk is incomplete")
                break
            if not open_into(chunk, index, True, target):
                batch.error = PayloadError(
                    f"damaged or truncated file: chunk {index} failed to authenticate"
                )
                break
            if len(chunk) == TAG_SIZE and index > 0:
                batch.error = PayloadError("invalid file: empty final chunk")
                break
            pos += len(chunk) - TAG_SIZE
        batch.output_length = pos
        return pos

    def chunks_of(length: int, last: bool) -> int:
        return -(-length // ENCRYPTED_CHUNK_SIZE)

    _pipeline(
        reader,
        write,
        in_size,
        CHUNK_SIZE * _BATCH_CHUNKS,
        ENCRYPTED_CHUNK_SIZE,
        open_batch,
        chunks_of,
    )
