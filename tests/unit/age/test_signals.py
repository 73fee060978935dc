"""The payload pipeline's helper threads leave SIGINT, SIGTERM and SIGHUP to the main thread.

Python runs signal handlers in the main thread only. If the kernel handed
SIGTERM to a helper thread while the main thread waits on a pipe that stays
open, ``evault decrypt`` would never stop.
"""

from __future__ import annotations

import io
import signal
import threading
from pathlib import Path

import pytest

from vault.age.stream import CHUNK_SIZE, encrypt_payload

TASKS = Path("/proc/self/task")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

pytestmark = pytest.mark.skipif(not TASKS.is_dir(), reason="needs Linux /proc thread status")


def _blocked(native_id: int) -> int:
    for line in (TASKS / str(native_id) / "status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    raise AssertionError("no SigBlk line")


class _WatchingReader:
    """Reads from memory and, on each read, notes the signal masks of new threads."""

    def __init__(self, data: bytes, before: set[int]) -> None:
        self._source = io.BytesIO(data)
        self._before = before
        self.seen: dict[str, int] = {}

    def readinto(self, buffer: memoryview, /) -> int:
        for thread in threading.enumerate():
            if thread.native_id is not None and thread.ident not in self._before:
                self.seen[thread.name] = _blocked(thread.native_id)
        return self._source.readinto(buffer)


def test_helper_threads_block_the_stop_signals() -> None:
    before = {thread.ident for thread in threading.enumerate() if thread.ident is not None}
    reader = _WatchingReader(b"\x07" * (64 * CHUNK_SIZE), before)
    main_mask = _blocked(threading.main_thread().native_id or 0)

    encrypt_payload(b"k" * 32, reader, lambda view: len(view))

    assert any(name == "age-writer" for name in reader.seen)
    assert any(name.startswith("ThreadPoolExecutor") for name in reader.seen)
    for name, mask in reader.seen.items():
        for signum in SIGNALS:
            assert mask & (1 << (signum - 1)), f"{name} may take signal {signum}"
    # The calling thread's own mask is as it was.
    assert _blocked(threading.main_thread().native_id or 0) == main_mask
