"""The one clock the switch reads: real time in service, a hand-moved one in tests.

Every decision of the dead-man switch (deadlines, reminders, cooling-off,
the sweep) takes its time from a :class:`Clock`, so a test moves days ahead
in a call and a deployment has a single place where time comes from.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Gives the current time, aware, in UTC, to the second."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)


class ManualClock:
    """A clock that stands still until moved; safe to share between threads."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = (start or SystemClock().now()).astimezone(dt.UTC).replace(microsecond=0)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move forward by ``delta`` and return the new time."""
        if delta < dt.timedelta(0):
            raise ValueError("a clock does not go back")
        with self._lock:
            self._now = (self._now + delta).replace(microsecond=0)
            return self._now

    def set(self, when: dt.datetime) -> None:
        """Jump to ``when`` (tests only; may go back)."""
        with self._lock:
            self._now = when.astimezone(dt.UTC).replace(microsecond=0)
