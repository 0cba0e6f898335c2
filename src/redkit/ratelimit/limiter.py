"""The rate limiter users meet: :class:`RateLimiter` (sync) and :class:`AsyncRateLimiter`.

::

    limiter = rk.rate_limiter("10/second; 1000/hour", algorithm="gcra")
    result = limiter.hit("user:42")          # .allowed, .remaining, .reset_after, .retry_after
    limiter.peek("user:42"); limiter.reset("user:42")
    limiter.acquire("payments-api", timeout=5)   # wait until a hit is allowed

Guarantees: a check is one EVALSHA; every limit of the policy is checked and charged in
that one script, all or nothing, on the server's clock. A check never takes longer than
``deadline`` (connect and reply; nothing is retried); when Redis is unavailable,
``on_error`` decides: ``"closed"`` raises :class:`redkit.errors.ConnectionError`,
``"open"`` admits the hit with ``result.degraded`` set, ``"local"`` asks an in-process
limiter (also ``degraded``). Failures are logged and counted in
:attr:`RateLimiter.failures`. An error reply that is not an outage (see
:mod:`redkit.ratelimit.failure`) is raised as :class:`redkit.errors.RedisCommandError`.
"""

from __future__ import annotations

import math
import random
import time
from typing import TYPE_CHECKING, Generic, Literal

from redkit import errors, ops
from redkit.errors import ConfigError, RateLimitExceededError, RedkitError
from redkit.failure import FailureOptions, Guarded, check_deadline, with_deadline
from redkit.ratelimit.failure import C, OnError, limiter_policy, unavailable
from redkit.ratelimit.local import LocalLimiter
from redkit.ratelimit.ops import (
    HIT,
    PEEK,
    LimitState,
    Plan,
    RateLimitResult,
)
from redkit.ratelimit.policy import Limit, Policy, parse_policy

if TYPE_CHECKING:
    from collections.abc import Iterable

    from redkit.client import AsyncRedkitCore, RedkitCore  # noqa: F401 - type arguments

Key = str | bytes | int
Check = ops.Once[RateLimitResult] | ops.Flow[RateLimitResult]
Algorithm = Literal[
    "gcra",
    "token_bucket",
    "fixed_window",
    "sliding_window",
    "sliding_log",
    # aliases
    "fixed",
    "sliding",
    "sliding_window_counter",
    "log",
    "token",
]
_DEFAULT_DEADLINE = 0.5


class RateLimiterOptions(FailureOptions, total=False):
    """The keyword options of :class:`RateLimiter` and :class:`AsyncRateLimiter`.

    For ``**options: Unpack[RateLimiterOptions]`` in factories; see :class:`RateLimiter`
    for what each option means.
    """

    algorithm: Algorithm
    name: str
    burst: int | None
    on_error: OnError
    cooldown: float


def _at_once(result: RateLimitResult) -> ops.Flow[RateLimitResult]:
    """A flow that asks Redis nothing (the failure policy's answer during a cooldown)."""
    yield from ()
    return result


class _RateLimiterCore(Generic[C], Guarded):
    """The constructor and flows shared by :class:`RateLimiter` and :class:`AsyncRateLimiter`."""

    def __init__(
        self,
        rk: C,
        policy: str | Limit | Policy | Iterable[Limit | str],
        *,
        algorithm: str = "gcra",
        name: str = "default",
        burst: int | None = None,
        on_error: str = "closed",
        deadline: float | None = _DEFAULT_DEADLINE,
        cooldown: float = 1.0,
    ) -> None:
        self.policy = parse_policy(policy, burst=burst)
        self.name = name
        self._plan = Plan(rk.keys, name, algorithm, self.policy)
        self.algorithm = self._plan.algorithm
        self._failure = limiter_policy(name, on_error, cooldown)
        self._local = LocalLimiter(self.policy) if on_error == "local" else None
        deadline = check_deadline(deadline)
        self.deadline = deadline
        self._rk: C = with_deadline(rk, deadline)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.policy)!r}, algorithm={self.algorithm!r}, "
            f"name={self.name!r}, on_error={self.on_error!r})"
        )

    def _check_flow(self, key: Key, cost: int, mode: int) -> Check:
        # one effect, so a Once rather than a generator: the drivers run it directly
        if self._failure.down_until and self._failure.cooling_down():
            return _at_once(self._degraded(key, cost, mode, None))
        plan = self._plan
        once = ops.Once(
            plan.check(key, cost, mode), plan.parse, lambda exc: self._failed(exc, key, cost, mode)
        )
        return self._noted(once, key) if self._rk.observers and mode == HIT else once

    def _noted(self, once: ops.Once[RateLimitResult], key: Key) -> ops.Flow[RateLimitResult]:
        """``once``, then a ``ratelimit.rejected`` note (limiter name, key) on a rejection:
        only while someone observes (metrics, the dashboard), so the hot path stays one call."""
        result = yield from once
        if not result.allowed:
            text = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
            yield ops.Note("ratelimit.rejected", (self.name, text))
        return result

    def _failed(self, exc: RedkitError, key: Key, cost: int, mode: int) -> RateLimitResult:
        down = unavailable(exc)
        if down is None:
            raise exc  # the command was refused: not an outage, whatever on_error says
        return self._degraded(key, cost, mode, down)

    def _degraded(
        self, key: Key, cost: int, mode: int, exc: errors.ConnectionError | None
    ) -> RateLimitResult:
        self._failure.failed(exc)  # raises when failing closed
        if self._local is not None:
            return self._local.check(key, cost, mode)
        states = tuple(LimitState(x, x.capacity, 0.0) for x in self.policy.limits)
        return RateLimitResult(True, 0.0, states, degraded=True)

    def _acquire_flow(
        self, key: Key, cost: int, timeout: float | None
    ) -> ops.Flow[RateLimitResult]:
        if timeout is not None and timeout < 0:
            raise ConfigError(f"timeout must be >= 0 seconds, got {timeout!r}")
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while True:
            result = yield from self._check_flow(key, cost, HIT)
            if result.allowed:
                return result
            left = deadline - time.monotonic()
            # a cost above the limit's capacity never fits: retry_after is infinite
            if result.retry_after > left or math.isinf(result.retry_after):
                raise RateLimitExceededError(
                    f"rate limit {str(self.policy)!r} for this key is not expected to admit a "
                    f"hit of cost {cost} within {timeout}s (retry after {result.retry_after:.3f}s)",
                    result.retry_after,
                    result,
                )
            # a little jitter so that waiters released together do not collide again
            yield ops.Sleep(result.retry_after + random.uniform(0, 0.01))

    def _reset_flow(self, key: Key) -> ops.Flow[None]:
        if self._local is not None:
            self._local.reset(key)
        yield ops.Call("DEL", *self._plan.keys(key))


class RateLimiter(_RateLimiterCore["RedkitCore"]):
    """A rate limiter for synchronous code. Build it with :meth:`redkit.Redkit.rate_limiter`.

    Args:
        rk: the facade (:class:`redkit.Redkit`).
        policy: ``"100/minute"``, ``"10/second; 1000/hour"``, a :class:`Limit` or a list.
        algorithm: ``"gcra"`` (default), ``"token_bucket"``, ``"fixed_window"``,
            ``"sliding_window"`` (counter, approximate) or ``"sliding_log"`` (exact).
        name: a namespace, so that two limiters on the same keys do not share counts.
        burst: bucket size for every limit without its own (token bucket and GCRA).
        on_error: ``"closed"`` (raise), ``"open"`` (admit, flagged) or ``"local"``.
        deadline: seconds a check may take before the failure policy answers; ``None``
            uses the facade's own timeouts and retries.
        cooldown: seconds to skip Redis after a failure (0: ask again at once).
    """

    def hit(self, key: Key, cost: int = 1) -> RateLimitResult:
        """Check ``cost`` against every limit for ``key`` and charge it if all allow it."""
        return self._rk.run(self._check_flow(key, cost, HIT))

    def peek(self, key: Key, cost: int = 1) -> RateLimitResult:
        """Would a hit of ``cost`` be allowed now? Charges nothing."""
        return self._rk.run(self._check_flow(key, cost, PEEK))

    def acquire(self, key: Key, cost: int = 1, *, timeout: float | None = None) -> RateLimitResult:
        """Wait until a hit is allowed, then take it.

        Raises:
            RateLimitExceededError: not allowed within ``timeout`` seconds (raised as soon
                as the limiter knows the wait would be longer).
        """
        return self._rk.run(self._acquire_flow(key, cost, timeout))

    def reset(self, key: Key) -> None:
        """Forget all usage of ``key``."""
        self._rk.run(self._reset_flow(key))


class AsyncRateLimiter(_RateLimiterCore["AsyncRedkitCore"]):
    """A rate limiter for asyncio. Build it with :meth:`redkit.AsyncRedkit.rate_limiter`.

    Takes the same options as :class:`RateLimiter`; its methods are awaited.
    """

    async def hit(self, key: Key, cost: int = 1) -> RateLimitResult:
        """Check ``cost`` against every limit for ``key`` and charge it if all allow it."""
        return await self._rk.run(self._check_flow(key, cost, HIT))

    async def peek(self, key: Key, cost: int = 1) -> RateLimitResult:
        """Would a hit of ``cost`` be allowed now? Charges nothing."""
        return await self._rk.run(self._check_flow(key, cost, PEEK))

    async def acquire(
        self, key: Key, cost: int = 1, *, timeout: float | None = None
    ) -> RateLimitResult:
        """Wait until a hit is allowed, then take it (see :meth:`RateLimiter.acquire`)."""
        return await self._rk.run(self._acquire_flow(key, cost, timeout))

    async def reset(self, key: Key) -> None:
        """Forget all usage of ``key``."""
        await self._rk.run(self._reset_flow(key))
