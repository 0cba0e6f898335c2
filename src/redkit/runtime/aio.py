"""The asyncio flavour of the runtime: one task per loop, on the running event loop."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redkit import errors, ops
from redkit.errors import ConfigError
from redkit.runtime.core import (
    CANCEL_GRACE,
    HEARTBEAT,
    RESET,
    SIGNALS,
    Action,
    AsyncLoopContext,
    AsyncStep,
    Backoff,
    Base,
    Hook,
    Loop,
    Pause,
    reset_async,
    supervise,
)

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore

log = logging.getLogger("redkit.runtime")


class AsyncRuntime(Base[AsyncStep]):
    """Loops as asyncio tasks. Takes the same arguments as :class:`~redkit.runtime.Runtime`,
    with an :class:`~redkit.AsyncRedkit`; steps are coroutine functions, ``await step(ctx)``.
    A step still busy at the deadline is cancelled (``Task.cancel()``)."""

    def __init__(
        self,
        rk: AsyncRedkitCore,
        *,
        heartbeat: float | None = 5.0,
        drain_timeout: float = 30.0,
        backoff: Backoff = Backoff(),  # noqa: B008 - frozen: one shared default is fine
    ) -> None:
        super().__init__(rk, heartbeat, drain_timeout, backoff)
        self._events: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopped = asyncio.Event()
        self._stopping: asyncio.Task[bool] | None = None

    def add(
        self,
        name: str,
        step: AsyncStep,
        *,
        cleanup: Hook | None = None,
        interrupt: Hook | None = None,
    ) -> None:
        """Run ``await step(ctx)`` over and over in a task of its own (at once, if started).

        ``cleanup()`` (a function or a coroutine function) runs once the loop has ended;
        ``interrupt()`` runs when a stop is asked (see :meth:`Runtime.add`).
        """
        if not _is_async(step):
            raise ConfigError(f"an AsyncRuntime step must be a coroutine function, got {step!r}")
        loop = self._register(name, step, cleanup, interrupt)
        if self._phase == "running":
            self._launch(loop)

    async def start(self) -> None:
        """Start every loop added so far, and the heartbeat. Does nothing when started."""
        if self._phase != "new":
            return
        if self.heartbeat is not None:
            self._loops[HEARTBEAT] = Loop(HEARTBEAT, self._beat, self._unbeat)
        self._phase, self._started_at = "running", time.time()
        for loop in self._loops.values():
            self._launch(loop)

    def _launch(self, loop: Loop[AsyncStep]) -> None:
        event = self._events[loop.name] = asyncio.Event()
        self._tasks[loop.name] = asyncio.create_task(
            self._main(loop, event), name=f"redkit-{loop.name}"
        )

    async def remove(self, name: str, deadline: float | None = None) -> bool:
        """Drain one loop and forget it; True unless it had to be cancelled."""
        loop = self._loops.get(name) if name != HEARTBEAT else None
        if loop is None:
            return True
        if name in self._tasks:
            await self._drain([loop], self.drain_timeout if deadline is None else deadline)
        self._loops.pop(name, None)
        self._tasks.pop(name, None)
        return not loop.cancelled

    async def stop(self, deadline: float | None = None) -> bool:
        """Drain every loop (up to ``deadline`` s, default ``drain_timeout``), then cancel.

        Returns True when every loop finished on its own. Later calls wait for the first.
        """
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(deadline))
        return await asyncio.shield(self._stopping)

    async def _stop(self, deadline: float | None) -> bool:
        phase, self._phase = self._phase, "draining"
        if phase == "running":
            limit = self.drain_timeout if deadline is None else deadline
            await self._drain(self._user_loops(), limit)
            beat = self._loops.get(HEARTBEAT)
            if beat is not None:
                await self._drain([beat], CANCEL_GRACE)
        self._phase = "stopped"
        self._restore_signals()
        self._stopped.set()
        return not any(loop.cancelled for loop in self._loops.values())

    async def join(self, timeout: float | None = None) -> bool:
        """Wait until the runtime has stopped (e.g. after a signal); False on timeout."""
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def _drain(self, loops: Sequence[Loop[AsyncStep]], deadline: float) -> None:
        for loop in loops:
            self._events[loop.name].set()
            self._interrupt(loop)
        tasks = [self._tasks[loop.name] for loop in loops]
        if tasks:
            await asyncio.wait(tasks, timeout=deadline)
        self._cancel(loops)
        pending = [task for task in tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=CANCEL_GRACE)

    def _cancel(self, loops: Sequence[Loop[AsyncStep]]) -> None:
        for loop in loops:
            task = self._tasks.get(loop.name)
            if task is not None and not task.done():
                loop.cancelled = True
                task.cancel()

    async def _main(self, loop: Loop[AsyncStep], event: asyncio.Event) -> None:
        ctx = AsyncLoopContext(loop.name, event)
        flow = supervise(loop, self.backoff)
        try:
            action = next(flow)
            while True:
                action = flow.send(await self._act(loop, action, ctx))
        except StopIteration:
            pass
        except asyncio.CancelledError:
            log.warning("runtime loop %r cancelled at the drain deadline", loop.name)
        finally:
            await self._cleanup(loop)

    async def _act(self, loop: Loop[AsyncStep], action: Action, ctx: AsyncLoopContext) -> Any:
        if isinstance(action, Pause):
            await ctx.wait(action.seconds)
            return None
        if action == RESET:
            await reset_async(self._rk)
            return None
        try:
            await loop.step(ctx)
        except Exception as exc:
            return exc
        return None

    async def _cleanup(self, loop: Loop[AsyncStep]) -> None:
        try:
            if loop.cleanup is not None:
                result = loop.cleanup()
                if inspect.isawaitable(result):
                    await result
        except Exception:
            log.exception("runtime loop %r: cleanup failed", loop.name)
        finally:
            loop.end()

    async def _beat(self, ctx: AsyncLoopContext) -> None:
        await self._rk.run(self._beat_flow())
        await ctx.wait(self.heartbeat or 0)

    async def _unbeat(self) -> None:
        try:
            await self._rk.run(ops.command("DEL", self.heartbeat_key))
        except errors.RedkitError as exc:  # it expires by itself within three periods
            log.info("runtime: could not delete the heartbeat key (%s)", exc)

    def install_signal_handlers(self, signals: Sequence[int] = SIGNALS) -> None:
        """SIGTERM/SIGINT drain the runtime, a second one cancels what is left.

        For a worker process (a CLI); a library never installs them by itself. Call it
        inside the running event loop; the handlers are removed when the runtime stops.
        """
        loop = asyncio.get_running_loop()
        for signum in signals:
            loop.add_signal_handler(signum, self._on_signal)
            self._previous_handlers[signum] = loop

    def _on_signal(self) -> None:
        if self._phase == "stopped":
            return
        if self._phase == "draining":
            self._cancel(self._user_loops())
        else:
            self._stopping = asyncio.ensure_future(self._stop(None))

    def _restore_signals(self) -> None:
        for signum, loop in self._previous_handlers.items():
            loop.remove_signal_handler(signum)
        self._previous_handlers.clear()


def _is_async(step: object) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(step) or (
        callable(step) and inspect.iscoroutinefunction(type(step).__call__)
    )
