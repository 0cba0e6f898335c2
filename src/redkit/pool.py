"""An asyncio connection pool that waits for a free connection instead of failing.

redis-py's asyncio ``ConnectionPool`` raises "Too many connections" at once when all of
its ``max_connections`` are busy, and its ``BlockingConnectionPool`` waits but costs about
a fifth of the throughput at 50 concurrent tasks (a condition variable around every get
and release). :class:`WaitingPool` keeps the plain pool's fast path and only waits when
the pool is exhausted: a caller queues a future, and each release hands the freed slot
to the oldest waiter. A caller that waits longer than ``timeout`` gets a
``ConnectionError`` (which redkit reports as :class:`redkit.errors.ConnectionError`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError


class WaitingPool(redis.asyncio.ConnectionPool):
    """A bounded asyncio pool whose callers wait up to ``timeout`` seconds for a connection."""

    def __init__(self, *, timeout: float | None = 20.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """A connection: at once when one is free or may be made, else after a release."""
        try:
            return await super().get_connection(*args, **kwargs)
        except MaxConnectionsError:
            pass
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout is None else loop.time() + self.timeout
        while True:
            await self._wait_for_release(loop, deadline)
            try:
                return await super().get_connection(*args, **kwargs)
            except MaxConnectionsError:
                continue  # another caller took the slot first; wait for the next one

    async def _wait_for_release(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None
    ) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            # asyncio.wait, not wait_for: wait_for of Python < 3.12 swallows a cancellation
            # that arrives after the wake-up, so the two versions would behave differently
            await asyncio.wait({waiter}, timeout=remaining)
            if not waiter.done():
                waiter.cancel()
                raise RedisConnectionError(
                    f"no free connection within {self.timeout}s "
                    f"(all {self.max_connections} are busy; raise REDKIT_MAX_CONNECTIONS?)"
                )
        except BaseException:
            # woken by a release but leaving anyway (cancelled): the slot is the next one's
            if waiter.done() and not waiter.cancelled():
                self._wake_next()
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def release(self, connection: Any) -> None:
        """Return ``connection`` to the pool and wake the oldest waiter, if any."""
        await super().release(connection)
        self._wake_next()

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
