"""One asyncio client per event loop, for :class:`~redkit.client.AsyncRedkitCore`.

An asyncio connection belongs to the event loop that opened it. Code that makes one
``AsyncRedkit`` and then runs in several loops — ``asyncio.run()`` twice, Starlette's
``TestClient`` without ``with`` (a new loop per request), pytest-asyncio's per-test
loops, servers that run async views in short-lived loops — needs a client per loop.

:class:`LoopClients` hands each loop its own :class:`LoopClient` (client, driver,
dedicated wait connections, the cluster's one-time initialize), made on the loop's first
use. A loop's client is closed when the facade is closed, or when the loop shuts down:
``asyncio.run``, ``asyncio.Runner``, anyio and asgiref close a loop's asynchronous
generators before closing it, and each loop client registers one whose ``finally``
closes it. A client whose loop was closed without that step is dropped without
awaiting: its sockets are closed directly, so nothing leaks and nothing warns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncGenerator
from typing import Any

from redkit import autopipe, connection, ops
from redkit.config import Settings, Target

log = logging.getLogger("redkit")

#: how long closing the facade waits for a loop running in another thread to close its client
_FOREIGN_CLOSE = 5.0


class LoopClient:
    """What one event loop uses: its client, a driver on it, its dedicated wait connections."""

    __slots__ = (
        "_guard",
        "_init",
        "blocker",
        "client",
        "closed",
        "driver",
        "loop",
        "owned",
        "pipeline",
        "ready",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: Any,
        owned: bool,
        blocker: ops.Blocker,
        driver: ops.AsyncDriver,
        pipeline: autopipe.AutoPipeline | None = None,
    ) -> None:
        self.loop = loop
        self.client = client
        self.owned = owned
        self.blocker = blocker
        self.driver = driver
        self.pipeline = pipeline
        self.ready = not connection.is_cluster(client)
        self.closed = False
        self._init: asyncio.Future[Any] | None = None
        self._guard: AsyncGenerator[None, None] | None = None

    async def initialize(self, target: str) -> None:
        """The cluster's one-time initialize, shared by every task of this loop.

        redis-py >= 7.1's asyncio RedisCluster races when many tasks trigger its lazy
        initialization at once (connections closed under other tasks' feet).
        """
        if self._init is None:
            self._init = asyncio.ensure_future(self.client.initialize())
        try:
            await asyncio.shield(self._init)
        except Exception as exc:
            self._init = None  # the next call tries again
            raise ops.wrap_error(exc, target) from exc
        self.ready = True

    def watch(self) -> None:
        """Close this client when its loop shuts down its asynchronous generators."""
        guard = _close_at_shutdown(self)
        try:  # runs to the first yield, which registers the generator with the running loop
            guard.asend(None).send(None)
        except StopIteration:
            self._guard = guard

    async def aclose(self) -> None:
        """Close the dedicated wait connections, and the client when redkit made it."""
        if self.closed:
            return
        self.closed, self.ready = True, False
        self._finish_guard()
        if self.pipeline is not None:
            await self.pipeline.aclose()
        dedicated = self.blocker.made
        if dedicated is not None and dedicated is not self.client:
            await dedicated.aclose()
        if self.owned:
            await self.client.aclose()

    def abandon(self) -> None:
        """Drop the client of a loop that was closed: close its sockets without the loop."""
        if self.closed:
            return
        self.closed, self.ready = True, False
        self._finish_guard()
        if self.pipeline is not None:
            self.pipeline.abandon()
        dedicated = self.blocker.made
        if dedicated is not None and dedicated is not self.client:
            connection.abandon(dedicated)
        if self.owned:
            connection.abandon(self.client)

    def _finish_guard(self) -> None:
        # ends the shutdown guard without awaiting (it sees ``closed``), so that it is not
        # finalized later through a loop that may be gone
        guard, self._guard = self._guard, None
        if guard is not None:
            with contextlib.suppress(StopIteration):
                guard.aclose().send(None)


async def _close_at_shutdown(state: LoopClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        state._guard = None  # finishing now: aclose() must not close it again
        if not state.closed:
            await state.aclose()


class LoopClients:
    """The per-loop clients of one async facade.

    Args:
        first: the client made (or handed in) with the facade; the first loop uses it.
        owned: whether redkit made ``first`` (and so closes it).
        settings: the facade's settings.
        target: the resolved target when redkit made the client; None for a handed-in one.
        name: the target's masked description, for errors.
        observers: the facade's observers (shared, so later ones reach every loop).
    """

    def __init__(
        self,
        first: Any,
        owned: bool,
        settings: Settings,
        target: Target | None,
        name: str,
        observers: list[ops.Observer],
    ) -> None:
        self.first = first
        self._first_loop: asyncio.AbstractEventLoop | None = None  # the loop ``first`` serves
        self._owned = owned
        self._settings = settings
        self._target = target
        self._name = name
        self._observers = observers
        self._lock = threading.Lock()
        #: the loop clients by loop; read without the lock on every run
        self.by_loop: dict[asyncio.AbstractEventLoop, LoopClient] = {}

    def current(self) -> LoopClient | None:
        """The running loop's client (made now if it has none); None outside a loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        state = self.by_loop.get(loop)
        return state if state is not None and not state.closed else self._bind(loop)

    async def ready(self) -> LoopClient:
        """The running loop's client, made and (for a cluster) initialized."""
        loop = asyncio.get_running_loop()
        state = self.by_loop.get(loop)
        if state is None or state.closed:
            state = self._bind(loop)
        if not state.ready:
            await state.initialize(self._name)
        return state

    def _bind(self, loop: asyncio.AbstractEventLoop) -> LoopClient:
        with self._lock:
            state = self.by_loop.get(loop)
            if state is not None and not state.closed:
                return state
            self._prune()
            if self._first_loop is None or self._first_loop is loop:
                self._first_loop = loop
                client, owned = self.first, self._owned
            elif self._target is not None:
                client, owned = connection.async_client(self._settings, self._target), True
            else:
                client, owned = connection.clone_async(self.first), True
            blocker = connection.blocker(client, self._settings, self._target)
            pipeline = None
            if self._settings.auto_pipeline and autopipe.supports(client):
                pipeline = autopipe.AutoPipeline(client, loop)
            execute = None if pipeline is None else pipeline.execute
            driver = ops.AsyncDriver(client, self._name, self._observers, blocker, execute)
            state = LoopClient(loop, client, owned, blocker, driver, pipeline)
            state.watch()
            self.by_loop[loop] = state
            return state

    def _prune(self) -> None:
        """Drop the clients of loops that are closed (called with the lock held)."""
        for loop, state in list(self.by_loop.items()):
            if loop.is_closed():
                del self.by_loop[loop]
                state.abandon()

    async def aclose(self) -> None:
        """Close every loop's client: this loop's awaited, other running loops' there."""
        here = asyncio.get_running_loop()
        with self._lock:
            self._prune()
            # a loop that is open but idle keeps its client until it shuts down
            states = [s for s in self.by_loop.values() if s.loop is here or s.loop.is_running()]
            for state in states:
                del self.by_loop[state.loop]
        for state in states:
            if state.loop is here:
                await state.aclose()
            else:  # another thread's running loop: close it there
                done = asyncio.run_coroutine_threadsafe(state.aclose(), state.loop)
                try:
                    await asyncio.wait_for(asyncio.wrap_future(done), _FOREIGN_CLOSE)
                except asyncio.TimeoutError:
                    log.warning(
                        "redkit: the event loop of another thread did not close its Redis "
                        "client within %ss; it closes when that loop shuts down",
                        _FOREIGN_CLOSE,
                    )
        if self._owned and self._first_loop is None:
            await self.first.aclose()
