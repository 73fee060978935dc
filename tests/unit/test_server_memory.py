"""server._memory: a worker hands the buffers of a large request back to the system."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from server import _memory

GLIBC = platform.libc_ver()[0] == "glibc"

# Buffers of 900 KiB, each followed by a 64 KiB one that stays: once the large
# ones are freed, the C library holds the holes between the small ones, which
# only a trim gives back (as a chunk request's buffers leave a worker's arena).
_PROGRAM = textwrap.dedent(
    """
    import threading
    from server._memory import release_free_memory

    def rss_mib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    kept = []

    def request():
        buffers = []
        for _ in range(64):
            buffers.append(bytearray(b"\\1" * (900 << 10)))
            kept.append(bytearray(b"\\2" * (64 << 10)))
        del buffers

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    before = rss_mib()
    release_free_memory()
    print(before - rss_mib())
    """
)


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is a glibc function")
def test_freed_buffers_go_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, check=True
    )
    returned = float(done.stdout)
    assert returned > 20, f"only {returned:.1f} MiB of about 56 MiB of holes came back"


def test_without_malloc_trim_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_memory, "_TRIM", None)
    _memory.release_free_memory()


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is a glibc function")
def test_glibc_has_it() -> None:
    assert _memory._TRIM is not None
