"""Concurrency limits: at most N holders per key at once, each holding an expiring lease.

::

    slots = rk.concurrency_limiter(4, name="pdf-render", lease=60)
    with slots.acquire("tenant:7", timeout=10):
        render()

A lease is a member of a sorted set scored by its expiry on the server's clock. A holder
that dies without releasing loses its slot when its lease runs out (renew long work with
:meth:`Lease.extend`). Acquiring, releasing and renewing are one script each.

Waiters are served in arrival order: a caller that finds no slot joins a queue (a sorted
set by arrival) and blocks on a wake-up list of its own; a release wakes the waiters at
the head of the queue, and a slot goes to a caller only when fewer waiters are ahead of
it than slots are free, so a newcomer, or a holder that just released, cannot cut in. A
waiter re-registers every time it wakes; one that stops (gone, cancelled) drops out of
the queue when its registration lapses, within a few seconds.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from typing import TYPE_CHECKING, Generic

from redkit import errors, ops
from redkit.errors import ConfigError, RateLimitExceededError, RedkitError
from redkit.failure import FailureOptions, Guarded, check_deadline, with_deadline
from redkit.ratelimit.failure import C, OnError, limiter_policy, unavailable
from redkit.ratelimit.ops import CONC_ACQUIRE, CONC_EXTEND, CONC_RELEASE

if TYPE_CHECKING:
    from types import TracebackType

    from redkit.client import AsyncRedkitCore, RedkitCore  # noqa: F401 - type arguments

Key = str | bytes | int
_POLL_MAX = 0.1  # how often the local fallback re-checks
_BLOCK_MAX = 1.0  # the longest single wait for a wake-up (a lapsed waiter is noticed then)
_SIGNAL_TTL_MS = 10_000  # an unclaimed wake-up
# acquire modes and statuses: see rl_conc_acquire-4.lua
_PEEK, _TRY, _WAIT = 0, 1, 2
_ACQUIRED, _QUEUED = 0, 2


class ConcurrencyLimiterOptions(FailureOptions, total=False):
    """The keyword options of :class:`ConcurrencyLimiter` and :class:`AsyncConcurrencyLimiter`.

    For ``**options: Unpack[ConcurrencyLimiterOptions]`` in factories; see
    :class:`ConcurrencyLimiter` for what each option means.
    """

    name: str
    lease: float
    on_error: OnError
    cooldown: float


class _ConcurrencyCore(Generic[C], Guarded):
    """The constructor and flows shared by the sync and async concurrency limiters."""

    def __init__(
        self,
        rk: C,
        limit: int,
        *,
        name: str = "default",
        lease: float = 30.0,
        on_error: str = "closed",
        deadline: float | None = 0.5,
        cooldown: float = 1.0,
    ) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigError(f"a concurrency limit must be a positive integer, got {limit!r}")
        if not (lease >= 0.001 and math.isfinite(lease)):
            raise ConfigError(f"lease must be at least 1 ms, got {lease!r}")
        deadline = check_deadline(deadline)
        self.limit = limit
        self.name = name
        self.lease = lease
        self.deadline = deadline
        self._keys = rk.keys
        self._failure = limiter_policy(name, on_error, cooldown)
        self._local: dict[str, int] = {}
        self._local_lock = threading.Lock()
        self._rk: C = with_deadline(rk, deadline)

    def _group_keys(self, key: Key) -> tuple[str, str, str, str]:
        """Leases, queue, registrations, and the prefix of the wake-up lists (see the scripts)."""
        group = self._keys.group("rl", self.name, key)
        return group.key("conc"), group.key("queue"), group.key("seen"), group.key("wake", "")

    def _wake_key(self, key: Key, lease_id: str) -> str:
        """The wake-up list of the waiter ``lease_id`` (what the scripts build from the prefix)."""
        return self._keys.group("rl", self.name, key).key("wake", lease_id)

    def _ask(self, key: Key, lease_id: str, mode: int) -> ops.Flow[list[int]]:
        """One rl_conc_acquire call: ``[status, retry_after_us, free, ahead]``."""
        ttl = round((2 * _BLOCK_MAX + 1.0) * 1e6)  # a waiter re-registers after every wait
        args = (self.limit, round(self.lease * 1e6), lease_id, mode, ttl)
        reply = yield ops.Eval(CONC_ACQUIRE, self._group_keys(key), args)
        return [int(x) for x in reply]

    def _try_flow(self, key: Key, mode: int = _TRY) -> ops.Flow[tuple[str | None, float, int]]:
        """(lease id or None, retry_after, ahead); a lease id "" or "local:..." is degraded."""
        if self._failure.down_until and self._failure.cooling_down():
            return self._degraded(key, None)
        lease_id = secrets.token_hex(16)
        try:
            status, retry, _, ahead = yield from self._ask(key, lease_id, mode)
        except RedkitError as exc:
            down = unavailable(exc)
            if down is None:
                raise
            return self._degraded(key, down)
        if status == _ACQUIRED:
            return lease_id, 0.0, 0
        # a queued caller keeps its id: it is its place in the line
        return (lease_id if status == _QUEUED else None), retry / 1e6, ahead + 1

    def _degraded(
        self, key: Key, exc: errors.ConnectionError | None
    ) -> tuple[str | None, float, int]:
        self._failure.failed(exc)
        if self._failure.on_error == "open":
            return "", 0.0, 0
        with self._local_lock:
            held = self._local.get(str(key), 0)
            if held >= self.limit:
                return None, _POLL_MAX, 1
            self._local[str(key)] = held + 1
        return "local:" + str(key), 0.0, 0

    def _acquire_flow(self, key: Key, timeout: float | None) -> ops.Flow[str]:
        """Take a slot, waiting in line (arrival order) for at most ``timeout`` seconds."""
        if timeout is not None and not timeout >= 0:
            raise ConfigError(f"timeout must be >= 0 seconds, got {timeout!r}")
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        lease_id, retry, ahead = yield from self._try_flow(key, _WAIT)
        while lease_id is None:  # the local fallback is full: poll
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._timed_out(timeout, retry)
            yield ops.Sleep(min(left, retry))
            lease_id, retry, ahead = yield from self._try_flow(key, _WAIT)
        if not ahead:
            return lease_id
        try:
            return (yield from self._wait_in_line(key, lease_id, deadline, timeout, retry))
        except BaseException as exc:
            if not isinstance(exc, (RedkitError, GeneratorExit)):  # cancelled, interrupted
                yield from self._release_flow(key, lease_id)  # the place, or a slot just got
            raise

    def _wait_in_line(
        self, key: Key, lease_id: str, deadline: float, timeout: float | None, retry: float
    ) -> ops.Flow[str]:
        """Wait for ``lease_id``'s turn: woken by a release, re-checking at least every second."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                yield from self._release_flow(key, lease_id)  # leave the line
                raise self._timed_out(timeout, retry)
            try:
                # a release pushes to this waiter's wake-up list (a dedicated connection)
                wake = self._wake_key(key, lease_id)
                yield from ops.wait_signal(wake, min(left, _BLOCK_MAX, retry or _BLOCK_MAX))
                status, retry_us, _, _ = yield from self._ask(key, lease_id, _WAIT)
            except RedkitError as exc:
                down = unavailable(exc)
                if down is None:
                    raise
                got, _, _ = self._degraded(key, down)  # raises when failing closed
                if got is not None:
                    return got
                return (yield from self._acquire_flow(key, max(0.0, deadline - time.monotonic())))
            if status == _ACQUIRED:
                return lease_id
            retry = retry_us / 1e6

    def _timed_out(self, timeout: float | None, retry: float) -> RateLimitExceededError:
        return RateLimitExceededError(
            f"no concurrency slot of {self.limit} for this key within {timeout}s", retry
        )

    def _release_flow(self, key: Key, lease_id: str) -> ops.Flow[bool]:
        if lease_id.startswith("local:") or not lease_id:
            if lease_id:
                with self._local_lock:
                    self._local[str(key)] = max(0, self._local.get(str(key), 0) - 1)
            return True
        args = (lease_id, self.limit, _SIGNAL_TTL_MS)
        return bool((yield ops.Eval(CONC_RELEASE, self._group_keys(key), args)))

    def _extend_flow(self, key: Key, lease_id: str, lease: float | None) -> ops.Flow[bool]:
        if lease_id.startswith("local:") or not lease_id:
            return True
        seconds = self.lease if lease is None else lease
        args = (lease_id, round(seconds * 1e6))
        return bool((yield ops.Eval(CONC_EXTEND, self._group_keys(key)[:1], args)))

    def _state_flow(self, key: Key) -> ops.Flow[tuple[int, int]]:
        """(slots held, callers waiting) now."""
        _, _, free, waiting = yield from self._ask(key, "", _PEEK)
        return self.limit - free, waiting


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


class ConcurrencyLimiter(_ConcurrencyCore["RedkitCore"]):
    """At most ``limit`` holders per key. Build it with :meth:`redkit.Redkit.concurrency_limiter`.

    Callers that wait for a slot are served in arrival order: a slot that frees goes to
    the longest waiter (woken by the release), never to a newcomer, nor to the holder
    that just released it.

    Args:
        rk: the facade (:class:`redkit.Redkit`).
        limit: slots per key.
        name: a namespace for the keys.
        lease: seconds a slot stays held without :meth:`Lease.extend` (a dead holder's
            slot frees after this long).
        on_error: ``"closed"`` (raise), ``"open"`` (grant, flagged) or ``"local"`` (count
            holders in this process only).
        deadline: seconds a call to Redis may take; ``None`` uses the facade's timeouts.
        cooldown: seconds to skip Redis after a failure.
    """

    def acquire(self, key: Key, *, timeout: float | None = None) -> Lease:
        """Wait in line for a slot; raises RateLimitExceededError after ``timeout`` seconds."""
        return Lease(self, key, self._rk.run(self._acquire_flow(key, timeout)))

    def try_acquire(self, key: Key) -> Lease | None:
        """A slot if one is free now and nobody waits for it, else None."""
        lease_id, _, _ = self._rk.run(self._try_flow(key))
        return None if lease_id is None else Lease(self, key, lease_id)

    def in_flight(self, key: Key) -> int:
        """How many slots of ``key`` are held now."""
        return self._rk.run(self._state_flow(key))[0]

    def waiting(self, key: Key) -> int:
        """How many callers wait in line for a slot of ``key`` now."""
        return self._rk.run(self._state_flow(key))[1]


class AsyncConcurrencyLimiter(_ConcurrencyCore["AsyncRedkitCore"]):
    """The asyncio :class:`ConcurrencyLimiter`; build it with ``ark.concurrency_limiter``."""

    async def acquire(self, key: Key, *, timeout: float | None = None) -> AsyncLease:
        """Wait in line for a slot; raises RateLimitExceededError after ``timeout`` seconds."""
        return AsyncLease(self, key, await self._rk.run(self._acquire_flow(key, timeout)))

    async def try_acquire(self, key: Key) -> AsyncLease | None:
        """A slot if one is free now and nobody waits for it, else None."""
        lease_id, _, _ = await self._rk.run(self._try_flow(key))
        return None if lease_id is None else AsyncLease(self, key, lease_id)

    async def in_flight(self, key: Key) -> int:
        """How many slots of ``key`` are held now."""
        return (await self._rk.run(self._state_flow(key)))[0]

    async def waiting(self, key: Key) -> int:
        """How many callers wait in line for a slot of ``key`` now."""
        return (await self._rk.run(self._state_flow(key)))[1]
