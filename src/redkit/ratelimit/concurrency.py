"""Concurrency limits: at most N holders per key at once, each holding an expiring lease.

::

    slots = rk.concurrency_limiter(4, name="pdf-render", lease=60)
    with slots.acquire("tenant:7", timeout=10):
        render()

A lease is a member of a sorted set scored by its expiry on the server's clock. A holder
that dies without releasing loses its slot when its lease runs out (renew long work with
:meth:`Lease.extend`). Acquiring, releasing and renewing are one script each.
"""

from __future__ import annotations

import math
import random
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from redkit import ops
from redkit.errors import ConfigError, RateLimitExceededError, RedkitError
from redkit.ratelimit.failure import FailurePolicy, unavailable
from redkit.ratelimit.ops import CONC_ACQUIRE, CONC_EXTEND, CONC_RELEASE

if TYPE_CHECKING:
    from types import TracebackType

    from redkit.client import AsyncRedkit, Redkit, _Base

Key = str | bytes | int
_POLL_MAX = 0.1


class _ConcurrencyCore:
    def __init__(
        self,
        rk: _Base,
        limit: int,
        *,
        name: str = "default",
        lease: float = 30.0,
        on_error: str = "closed",
        deadline: float | None = 0.5,
        cooldown: float = 1.0,
    ) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"a concurrency limit must be a positive integer, got {limit!r}")
        if not (lease >= 0.001 and math.isfinite(lease)):
            raise ConfigError(f"lease must be at least 1 ms, got {lease!r}")
        if deadline is not None and not (deadline > 0 and math.isfinite(deadline)):
            raise ConfigError(f"deadline must be a positive number of seconds, got {deadline!r}")
        self.limit = limit
        self.name = name
        self.lease = lease
        self.deadline = deadline
        self._keys = rk.keys
        self._failure = FailurePolicy(name, on_error, cooldown)
        self._local: dict[str, int] = {}
        self._local_lock = threading.Lock()

    @property
    def failures(self) -> int:
        """How many acquisitions were answered by the failure policy instead of Redis."""
        return self._failure.failures

    def _key(self, key: Key) -> str:
        return self._keys.group("rl", self.name, key).key("conc")

    def _try_flow(self, key: Key) -> ops.Flow[tuple[str | None, float, int]]:
        """(lease id or None, retry_after, slots left); lease id "" for a degraded grant."""
        if self._failure.down_until and self._failure.cooling_down():
            return self._degraded(key, None)
        lease_id = secrets.token_hex(16)
        args = (self.limit, round(self.lease * 1e6), lease_id, 1)
        try:
            reply = yield ops.Eval(CONC_ACQUIRE, (self._key(key),), args)
        except RedkitError as exc:
            down = unavailable(exc)
            if down is None:
                raise
            return self._degraded(key, down)
        allowed, retry, left = int(reply[0]), int(reply[1]), int(reply[2])
        return (lease_id if allowed else None), retry / 1e6, left

    def _degraded(self, key: Key, exc: Any) -> tuple[str | None, float, int]:
        self._failure.failed(exc)
        if self._failure.on_error == "open":
            return "", 0.0, self.limit
        with self._local_lock:
            held = self._local.get(str(key), 0)
            if held >= self.limit:
                return None, _POLL_MAX, 0
            self._local[str(key)] = held + 1
        return "local:" + str(key), 0.0, self.limit - held - 1

    def _acquire_flow(self, key: Key, timeout: float | None) -> ops.Flow[str]:
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        wait = 0.005
        while True:
            lease_id, retry, _ = yield from self._try_flow(key)
            if lease_id is not None:
                return lease_id
            left = deadline - time.monotonic()
            if left <= 0:
                raise RateLimitExceededError(
                    f"no concurrency slot of {self.limit} for this key within {timeout}s",
                    retry,
                )
            # holders release early more often than their leases expire: poll, backing off
            yield ops.Sleep(min(left, retry, wait) + random.uniform(0, wait / 2))
            wait = min(_POLL_MAX, wait * 2)

    def _release_flow(self, key: Key, lease_id: str) -> ops.Flow[bool]:
        if lease_id.startswith("local:") or not lease_id:
            if lease_id:
                with self._local_lock:
                    self._local[str(key)] = max(0, self._local.get(str(key), 0) - 1)
            return True
        return bool((yield ops.Eval(CONC_RELEASE, (self._key(key),), (lease_id,))))

    def _extend_flow(self, key: Key, lease_id: str, lease: float | None) -> ops.Flow[bool]:
        if lease_id.startswith("local:") or not lease_id:
            return True
        seconds = self.lease if lease is None else lease
        args = (lease_id, round(seconds * 1e6))
        return bool((yield ops.Eval(CONC_EXTEND, (self._key(key),), args)))

    def _in_flight_flow(self, key: Key) -> ops.Flow[int]:
        args = (self.limit, round(self.lease * 1e6), "", 0)
        reply = yield ops.Eval(CONC_ACQUIRE, (self._key(key),), args)
        return self.limit - int(reply[2])


class Lease:
    """One held slot of a :class:`ConcurrencyLimiter`; a context manager that releases it."""

    def __init__(self, owner: ConcurrencyLimiter, key: Key, lease_id: str) -> None:
        self._owner, self.key, self._id = owner, key, lease_id
        self.degraded = not lease_id or lease_id.startswith("local:")

    def release(self) -> bool:
        """Give the slot back; False when the lease had already expired."""
        return self._owner._rk.run(self._owner._release_flow(self.key, self._id))

    def extend(self, lease: float | None = None) -> bool:
        """Renew the lease for ``lease`` seconds (default: the limiter's); False if it expired."""
        return self._owner._rk.run(self._owner._extend_flow(self.key, self._id, lease))

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class AsyncLease:
    """One held slot of an :class:`AsyncConcurrencyLimiter`; ``async with`` releases it."""

    def __init__(self, owner: AsyncConcurrencyLimiter, key: Key, lease_id: str) -> None:
        self._owner, self.key, self._id = owner, key, lease_id
        self.degraded = not lease_id or lease_id.startswith("local:")

    async def release(self) -> bool:
        """Give the slot back; False when the lease had already expired."""
        return await self._owner._rk.run(self._owner._release_flow(self.key, self._id))

    async def extend(self, lease: float | None = None) -> bool:
        """Renew the lease for ``lease`` seconds (default: the limiter's); False if it expired."""
        return await self._owner._rk.run(self._owner._extend_flow(self.key, self._id, lease))

    async def __aenter__(self) -> AsyncLease:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


class ConcurrencyLimiter(_ConcurrencyCore):
    """At most ``limit`` holders per key. Build it with :meth:`redkit.Redkit.concurrency_limiter`.

    Args:
        limit: slots per key.
        name: a namespace for the keys.
        lease: seconds a slot stays held without :meth:`Lease.extend` (a dead holder's
            slot frees after this long).
        on_error: ``"closed"`` (raise), ``"open"`` (grant, flagged) or ``"local"`` (count
            holders in this process only).
        deadline: seconds a call to Redis may take; ``None`` uses the facade's timeouts.
        cooldown: seconds to skip Redis after a failure.
    """

    def __init__(self, rk: Redkit, limit: int, **options: Any) -> None:
        super().__init__(rk, limit, **options)
        self._rk = rk if self.deadline is None else rk.with_timeout(self.deadline)

    def acquire(self, key: Key, *, timeout: float | None = None) -> Lease:
        """Wait for a slot; raises RateLimitExceededError after ``timeout`` seconds."""
        return Lease(self, key, self._rk.run(self._acquire_flow(key, timeout)))

    def try_acquire(self, key: Key) -> Lease | None:
        """A slot if one is free now, else None."""
        lease_id, _, _ = self._rk.run(self._try_flow(key))
        return None if lease_id is None else Lease(self, key, lease_id)

    def in_flight(self, key: Key) -> int:
        """How many slots of ``key`` are held now."""
        return self._rk.run(self._in_flight_flow(key))


class AsyncConcurrencyLimiter(_ConcurrencyCore):
    """The asyncio :class:`ConcurrencyLimiter`; build it with ``ark.concurrency_limiter``."""

    def __init__(self, rk: AsyncRedkit, limit: int, **options: Any) -> None:
        super().__init__(rk, limit, **options)
        self._rk = rk if self.deadline is None else rk.with_timeout(self.deadline)

    async def acquire(self, key: Key, *, timeout: float | None = None) -> AsyncLease:
        """Wait for a slot; raises RateLimitExceededError after ``timeout`` seconds."""
        return AsyncLease(self, key, await self._rk.run(self._acquire_flow(key, timeout)))

    async def try_acquire(self, key: Key) -> AsyncLease | None:
        """A slot if one is free now, else None."""
        lease_id, _, _ = await self._rk.run(self._try_flow(key))
        return None if lease_id is None else AsyncLease(self, key, lease_id)

    async def in_flight(self, key: Key) -> int:
        """How many slots of ``key`` are held now."""
        return await self._rk.run(self._in_flight_flow(key))
