"""An in-process limiter: the fallback used while Redis is unavailable.

It applies the same policy with GCRA (a token bucket per limit, all or nothing) on this
process's monotonic clock. Its counts are per process, so with N app instances the
fleet admits up to N times the limit while it is in use; that is the price of staying up
without Redis, and why ``on_error="local"`` is opt-in.
"""

from __future__ import annotations

import math
import threading
import time

from redkit.ratelimit.ops import HIT, LimitState, RateLimitResult
from redkit.ratelimit.policy import Policy

_MAX_KEYS = 10_000


class LocalLimiter:
    """GCRA over a policy, in memory, thread-safe; results are flagged ``degraded``."""

    def __init__(self, policy: Policy, max_keys: int = _MAX_KEYS) -> None:
        self._limits = policy.limits
        self._intervals = [limit.period / limit.amount for limit in policy.limits]
        self._tats: dict[tuple[str, int], float] = {}
        self._max_keys = max_keys
        self._lock = threading.Lock()

    def check(self, key: str | bytes | int, cost: int, mode: int) -> RateLimitResult:
        """Check (and, for ``mode == HIT``, charge) ``cost`` against every limit."""
        now = time.monotonic()
        name = str(key)
        with self._lock:
            tats = [max(self._tats.get((name, i), now), now) for i in range(len(self._limits))]
            retry = 0.0
            for limit, interval, tat in zip(self._limits, self._intervals, tats, strict=True):
                wait = tat + (cost - limit.capacity) * interval - now
                if wait > 0:
                    retry = math.inf if cost > limit.capacity else max(retry, wait)
            allowed = retry == 0.0
            if allowed and mode == HIT and cost > 0:
                tats = [tat + cost * iv for tat, iv in zip(tats, self._intervals, strict=True)]
                self._store(name, tats, now)
        states = tuple(
            LimitState(
                limit, max(0, math.floor((limit.capacity * iv - (tat - now)) / iv)), tat - now
            )
            for limit, iv, tat in zip(self._limits, self._intervals, tats, strict=True)
        )
        return RateLimitResult(allowed, retry, states, degraded=True)

    def _store(self, name: str, tats: list[float], now: float) -> None:
        if len(self._tats) >= self._max_keys:
            self._tats = {k: v for k, v in self._tats.items() if v > now}
            if len(self._tats) >= self._max_keys:
                self._tats.clear()  # under a flood of distinct keys, forget rather than grow
        for i, tat in enumerate(tats):
            self._tats[(name, i)] = tat

    def reset(self, key: str | bytes | int) -> None:
        """Forget the usage of one key."""
        with self._lock:
            for i in range(len(self._limits)):
                self._tats.pop((str(key), i), None)
