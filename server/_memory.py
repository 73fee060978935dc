"""Hand memory freed by a large request back to the system.

A chunk request streams up to 64 MiB through buffers of 1 MiB. glibc keeps
what such buffers leave behind in each thread's arena, so a worker that has
received a few uploads sits several MiB above what it needs while idle, and
the next upload's buffers come on top of that. ``malloc_trim`` returns the
free pages at once. It costs well under a millisecond per call, and it is
called once per chunk request, so it does not show in upload throughput
(``bench/upload_speed.py``).

Other C libraries (musl, macOS) have no ``malloc_trim``; there this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

__all__ = ["release_free_memory"]


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)  # the C library this process already uses
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Return the C library's free memory to the system, where it can (glibc)."""
    if _TRIM is not None:
        _TRIM(0)
