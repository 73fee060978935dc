"""In-process token buckets that limit login attempts, per key and overall.

Buckets are keyed by what the request names (a public key or an account
id), never by the client's address: the server keeps no client addresses,
and reporters behind Tor share exit addresses anyway. One global bucket
caps the total rate, so guessing across many keys is slow too.

The buckets live in the process's memory. Under gunicorn with N workers
each worker has its own, so the effective limits are up to N times the
configured ones; choose the limits with the worker count in mind. This is
deliberate: the limiter needs no database writes (a failed login costs no
write lock) and loses nothing that matters on a restart. The number of
per-key buckets is capped, the oldest dropped first, so memory stays bounded
whatever keys are sent.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["Bucket", "RateLimiter"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Bucket:
    """Up to ``burst`` requests at once, refilled at ``per_second``."""

    burst: int
    per_second: float

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_second <= 0:
            raise ValueError("internal error: a bucket needs a burst and a refill rate")


class RateLimiter:
    """Token buckets for each key and one for everything, safe across threads."""

    def __init__(
        self,
        *,
        per_key: Bucket,
        overall: Bucket,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_key = per_key
        self._overall = overall
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._global = (float(overall.burst), clock())

    @staticmethod
    def _refill(state: tuple[float, float], bucket: Bucket, now: float) -> float:
        tokens, since = state
        return min(float(bucket.burst), tokens + (now - since) * bucket.per_second)

    def acquire(self, key: str, *, overall_too: bool = True) -> int:
        """Take one token for ``key`` (and one overall); 0, or the seconds to wait.

        Nothing is taken when a bucket is empty, so a refused request does not
        delay the next allowed one. With ``overall_too`` false only the key's
        bucket counts: requests anyone can make up (challenges, login
        attempts) must not be able to empty a bucket that real users share.
        """
        with self._lock:
            now = self._clock()
            overall = self._refill(self._global, self._overall, now)
            if not overall_too:
                overall = float("inf")
            state = self._keys.pop(key, None)
            own = (
                float(self._per_key.burst)
                if state is None
                else self._refill(state, self._per_key, now)
            )
            wait = 0.0
            if own < 1:
                wait = (1 - own) / self._per_key.per_second
            if overall < 1:
                wait = max(wait, (1 - overall) / self._overall.per_second)
            if wait == 0:
                own -= 1
                overall -= 1
            self._keys[key] = (own, now)
            if overall_too:
                self._global = (overall, now)
            while len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
            return math.ceil(wait)

    def charge_overall(self) -> int:
        """Take one token from the overall bucket only; 0, or the seconds to wait."""
        with self._lock:
            now = self._clock()
            overall = self._refill(self._global, self._overall, now)
            if overall < 1:
                self._global = (overall, now)
                return math.ceil((1 - overall) / self._overall.per_second)
            self._global = (overall - 1, now)
            return 0
