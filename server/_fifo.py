"""A gate that lets a fixed number of threads through at once, strictly in arrival order.

The web check-in shares its Argon2id hashing among all comers through one
such gate (:mod:`server.services.switch`). ``threading.Semaphore`` is not
fair: a thread that arrives just as a slot frees up can take it before one
that has waited, and a waiter woken too late goes to the back of the line,
so under a steady stream of newcomers one waiter can wait without end. Here
a freed slot is handed to the longest waiter directly, never put back for
anyone to grab, so a request waits only for those that arrived before it.

There is no timeout: giving up on a waiter would answer it unjudged, and a
web check-in answered unjudged is one a guesser could keep refusing.
"""

from __future__ import annotations

import collections
import threading
from types import TracebackType

__all__ = ["FifoGate"]


class FifoGate:
    """At most ``slots`` holders at once; the others wait and enter first come, first served."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("internal error: a gate needs at least one slot")
        self._lock = threading.Lock()
        self._slots = slots
        self._free = slots
        self._waiters: collections.deque[threading.Lock] = collections.deque()

    @property
    def waiting(self) -> int:
        """How many threads wait to enter."""
        with self._lock:
            return len(self._waiters)

    def acquire(self) -> None:
        """Enter, after every thread that asked before; blocks as long as that takes."""
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            # A lock taken here and released by the thread that hands its
            # slot over: a one-shot signal that cannot be missed.
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        try:
            turn.acquire()
        except BaseException:
            # Interrupted while waiting: leave the line, or pass on a slot
            # handed over at that very moment, so no slot is lost.
            with self._lock:
                if turn in self._waiters:
                    self._waiters.remove(turn)
                else:
                    self._hand_over()
            raise

    def release(self) -> None:
        """Leave; the slot goes to the longest waiter, if any."""
        with self._lock:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._waiters:
            self._waiters.popleft().release()
        elif self._free < self._slots:
            self._free += 1
        else:
            raise RuntimeError("internal error: a gate released more often than entered")

    def __enter__(self) -> FifoGate:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
