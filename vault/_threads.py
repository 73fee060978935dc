"""Helper threads that leave the process's signals to the main thread.

The kernel hands a signal sent to the process to any thread that does not
block it, but Python runs signal handlers only in the main thread. When a
helper thread takes SIGTERM while the main thread waits in a system call,
such as reading a pipe that stays open, the handler runs only once that call
returns, which may be never. Threads inherit the signal mask of the thread
that starts them, so starting helpers with these signals blocked sends every
such signal to the main thread, whose blocked call it interrupts.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["signals_to_main_thread"]

_ASYNC_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextmanager
def signals_to_main_thread() -> Iterator[None]:
    """Threads started inside this block never take SIGINT, SIGTERM or SIGHUP.

    A signal that arrives meanwhile stays pending and is delivered to the
    calling thread when the block ends.
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no thread signal masks
        yield
        return
    # The mask is read before it changes, and restored in every case: a handler
    # that raises just after the blocking call cannot leave these signals blocked.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _ASYNC_SIGNALS)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
