"""Token buckets that limit login attempts, per key and overall: in-process, or shared in Redis.

Buckets are keyed by what the request names (a public key or an account
id), never by the client's address: the server keeps no client addresses,
and reporters behind Tor share exit addresses anyway. One global bucket
caps the total rate, so guessing across many keys is slow too.

:class:`RateLimiter` keeps the buckets in the process's memory (the
embedded default): under gunicorn with N workers, or on several hosts, each
process has its own, so the effective limits are up to N times the
configured ones. With ``EVAULT_REDIS_URL`` set, :class:`SharedRateLimiter`
keeps them in Redis instead, one set for every worker and host, updated
atomically by one script per request (Redis's own clock, so hosts' clocks
do not matter). Neither needs a database write (a failed login costs no
write lock), and both lose nothing that matters on a restart. Per-key state
is bounded: in memory the oldest buckets are dropped first; in Redis each
bucket expires once it would be full again. If Redis cannot be reached the
shared limiter falls back to an in-process one for that request, says so in
the log, and goes back to Redis once it answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Bucket", "Limiter", "RateLimiter", "SharedRateLimiter"]

_log = logging.getLogger(__name__)

DEFAULT_PREFIX = "evault:limits"
"""Where in Redis the buckets are kept (one Redis may serve other applications)."""


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


class Limiter(Protocol):
    """What the views ask of a rate limiter (see :class:`RateLimiter`)."""

    def acquire(self, key: str, *, overall_too: bool = True) -> int: ...

    def charge_overall(self) -> int: ...


# KEYS: the key's bucket, the overall bucket. ARGV: key burst, key rate,
# overall burst, overall rate, "1" to count the overall bucket too, and the
# mode ("acquire" or "charge", the overall bucket only). The same arithmetic
# as RateLimiter; buckets expire once they would be full again.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function level(key, burst, rate)
  local v = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(v[1]), tonumber(v[2])
  if tokens == nil or ts == nil then return burst end
  return math.min(burst, tokens + math.max(0, now - ts) * rate)
end
local function keep(key, tokens, burst, rate)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('EXPIRE', key, math.ceil((burst - tokens) / rate) + 1)
end
local kb, kr = tonumber(ARGV[1]), tonumber(ARGV[2])
local gb, gr = tonumber(ARGV[3]), tonumber(ARGV[4])
local overall = level(KEYS[2], gb, gr)
if ARGV[6] == 'charge' then
  if overall < 1 then return math.ceil((1 - overall) / gr) end
  keep(KEYS[2], overall - 1, gb, gr)
  return 0
end
local own = level(KEYS[1], kb, kr)
local wait = 0
if own < 1 then wait = (1 - own) / kr end
local both = ARGV[5] == '1'
if both and overall < 1 then wait = math.max(wait, (1 - overall) / gr) end
if wait == 0 then
  own = own - 1
  overall = overall - 1
end
keep(KEYS[1], own, kb, kr)
if both then keep(KEYS[2], overall, gb, gr) end
return math.ceil(wait)
"""


class SharedRateLimiter:
    """:class:`RateLimiter`'s buckets in Redis, shared by every process that names ``prefix``."""

    def __init__(
        self,
        url: str,
        *,
        per_key: Bucket,
        overall: Bucket,
        prefix: str | None = None,
    ) -> None:
        # Imported here: only servers that share limits need the client.
        import redis

        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script: Any = self._redis.register_script(_SCRIPT)
        self._per_key = per_key
        self._overall = overall
        self._prefix = prefix or DEFAULT_PREFIX
        self._fallback = RateLimiter(per_key=per_key, overall=overall)
        self._told = 0.0

    def _run(self, key: str, *, overall_too: bool, mode: str) -> int | None:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        try:
            wait = self._script(
                keys=[f"{self._prefix}:key:{digest}", f"{self._prefix}:overall"],
                args=[
                    self._per_key.burst,
                    repr(self._per_key.per_second),
                    self._overall.burst,
                    repr(self._overall.per_second),
                    "1" if overall_too else "0",
                    mode,
                ],
            )
        except self._errors as exc:
            now = time.monotonic()
            if now - self._told > 60:
                self._told = now
                # The class only: a message could carry the URL and its password.
                _log.warning(
                    "rate limits: Redis does not answer (%s); limiting in this process",
                    type(exc).__name__,
                )
            return None
        return int(wait)

    def acquire(self, key: str, *, overall_too: bool = True) -> int:
        """As :meth:`RateLimiter.acquire`, for every process sharing the Redis."""
        wait = self._run(key, overall_too=overall_too, mode="acquire")
        if wait is None:
            return self._fallback.acquire(key, overall_too=overall_too)
        return wait

    def charge_overall(self) -> int:
        """As :meth:`RateLimiter.charge_overall`, for every process sharing the Redis."""
        wait = self._run("", overall_too=True, mode="charge")
        if wait is None:
            return self._fallback.charge_overall()
        return wait
