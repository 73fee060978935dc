"""Network waits said in words: what the client waits for, and for how long.

A reporter on a bad line, or before a server that was just killed, must not
face a frozen screen. :class:`Watch` keeps the time of one API's silences:
since when nothing came from the server or went to it while a request was
under way, and whether requests failed and are being tried again. When a
silence passes :data:`FIRST` seconds it tells its listener once, then again
at most every :data:`EVERY` seconds while it lasts, and once more when the
server answers again. The listener (the CLI's :func:`client.ui.tell_wait`)
decides how to show it; this module never prints.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from vault._threads import signals_to_main_thread

__all__ = ["EVERY", "FIRST", "Wait", "Watch"]

FIRST = 10.0
"""Seconds of silence before the first word: a slow answer is not yet a wait."""
EVERY = 5.0
"""Seconds between two words about the same wait, at least."""
_TICK = 1.0


@dataclass(frozen=True, kw_only=True)
class Wait:
    """One word about one wait."""

    seconds: int
    """How long nothing has come from the server."""
    reconnecting: bool = False
    """A request failed (no connection, a timeout, a gateway error) and is tried again."""
    busy: bool = False
    """The server said it is busy and when to come back (503 or 429 with Retry-After)."""
    over: bool = False
    """The server answers again: the last word about this wait."""

    def line(self) -> str:
        """The wait in one plain line."""
        if self.over:
            return f"the server answers again, after {self.seconds} s"
        if self.busy:
            return f"the server is busy — trying again ({self.seconds} s so far)…"
        doing = "reconnecting…" if self.reconnecting else "still waiting…"
        return f"no answer from the server for {self.seconds} s — {doing}"


class Watch:
    """The silences of one API, told to ``tell`` as :class:`Wait` words.

    Requests mark themselves with :meth:`request`, bytes that move with
    :meth:`moved`, failed attempts with :meth:`failed`. A thread (started
    with the first request, a daemon) looks every second; :meth:`check` is
    what it runs, and what tests call with their own clock.
    """

    def __init__(
        self,
        tell: Callable[[Wait], None],
        *,
        first: float = FIRST,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
        thread: bool = True,
    ) -> None:
        self._tell = tell
        self._first = first
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._under_way = 0
        self._since = clock()
        self._told: float | None = None
        self._failing = False
        self._busy = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._use_thread = thread

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """A request under way: its silence counts from now."""
        with self._lock:
            if self._under_way == 0 and self._told is None:
                self._since = self._clock()
            self._under_way += 1
            start = self._use_thread and self._thread is None
            if start:
                self._thread = threading.Thread(target=self._run, name="evault-watch", daemon=True)
        if start and self._thread is not None:
            with signals_to_main_thread():
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._under_way -= 1
                if self._under_way == 0:
                    # Done, answered or given up: the error, if any, says the rest.
                    self._told = None
                    self._failing = self._busy = False

    def moved(self) -> None:
        """Bytes came from the server or went to it: any wait is over."""
        now = self._clock()
        with self._lock:
            told, since = self._told, self._since
            self._since = now
            self._told = None
            self._failing = self._busy = False
        if told is not None:
            self._tell(Wait(seconds=int(now - since), over=True))

    def failed(self, *, busy: bool = False) -> None:
        """An attempt failed and the request will be sent again."""
        with self._lock:
            self._failing = True
            self._busy = busy

    def check(self) -> None:
        """Tell the wait under way, if it is long enough and was not told just now."""
        now = self._clock()
        with self._lock:
            if self._under_way == 0:
                return
            silent = now - self._since
            if silent < self._first:
                return
            if self._told is not None and now - self._told < self._every:
                return
            self._told = now
            wait = Wait(seconds=int(silent), reconnecting=self._failing, busy=self._busy)
        self._tell(wait)

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(_TICK):
            with contextlib.suppress(Exception):  # a listener's fault must not kill the watch
                self.check()
