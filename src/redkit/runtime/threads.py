"""The thread flavour of the runtime: one thread per loop."""

from __future__ import annotations

import ctypes
import logging
import signal
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redkit import connection, errors, ops
from redkit.errors import ConfigError
from redkit.runtime.core import (
    CANCEL_GRACE,
    HEARTBEAT,
    RESET,
    SIGNALS,
    Action,
    Backoff,
    Base,
    Hook,
    Loop,
    LoopCancelled,
    LoopContext,
    Pause,
    Step,
    reset_sync,
    supervise,
)

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, RedkitCore

log = logging.getLogger("redkit.runtime")


class Runtime(Base[Step]):
    """Loops in threads, one thread per loop.

    Args:
        rk: the facade whose client, keys and settings the runtime uses.
        heartbeat: seconds between heartbeats (None: no heartbeat key).
        drain_timeout: default seconds :meth:`stop` waits for loops to finish their unit.
        backoff: the delays between retries of a failing loop.

    A step runs as ``step(ctx)`` with a :class:`~redkit.runtime.LoopContext`. A step still
    busy at the deadline gets :class:`~redkit.runtime.LoopCancelled` raised at its next
    Python instruction (a call blocked in C code, such as a socket read, sees it when it
    returns).
    """

    def __init__(
        self,
        rk: RedkitCore | AsyncRedkitCore,
        *,
        heartbeat: float | None = 5.0,
        drain_timeout: float = 30.0,
        backoff: Backoff = Backoff(),  # noqa: B008 - frozen: one shared default is fine
    ) -> None:
        if heartbeat is not None and connection.is_async(rk.client):
            raise ConfigError("a thread Runtime writes its heartbeat with a sync facade (Redkit)")
        super().__init__(rk, heartbeat, drain_timeout, backoff)
        self._events: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._in_step: set[str] = set()
        self._stopped = threading.Event()

    def add(
        self,
        name: str,
        step: Step,
        *,
        cleanup: Hook | None = None,
        interrupt: Hook | None = None,
    ) -> None:
        """Run ``step(ctx)`` over and over in a thread of its own (at once, if started).

        ``cleanup()`` runs in that thread once the loop has ended (drained or cancelled).
        ``interrupt()`` runs in the stopping thread when a stop is asked: let it cut a
        blocking read short (waits through ``ctx.wait`` return by themselves).
        """
        with self._lock:
            loop = self._register(name, step, cleanup, interrupt)
            if self._phase == "running":
                self._launch(loop)

    def start(self) -> None:
        """Start every loop added so far, and the heartbeat. Does nothing when started."""
        with self._lock:
            if self._phase != "new":
                return
            if self.heartbeat is not None:
                self._loops[HEARTBEAT] = Loop(HEARTBEAT, self._beat, self._unbeat)
            self._phase, self._started_at = "running", time.time()
            for loop in self._loops.values():
                self._launch(loop)

    def _launch(self, loop: Loop[Step]) -> None:
        event = self._events[loop.name] = threading.Event()
        thread = threading.Thread(
            target=self._main, args=(loop, event), name=f"redkit-{loop.name}", daemon=True
        )
        self._threads[loop.name] = thread
        thread.start()

    def remove(self, name: str, deadline: float | None = None) -> bool:
        """Drain one loop and forget it; True unless it had to be cancelled."""
        with self._lock:
            loop = self._loops.get(name) if name != HEARTBEAT else None
        if loop is None:
            return True
        if name in self._threads:
            self._drain([loop], self.drain_timeout if deadline is None else deadline)
        with self._lock:
            self._loops.pop(name, None)
            self._threads.pop(name, None)
        return not loop.cancelled

    def stop(self, deadline: float | None = None) -> bool:
        """Drain every loop (up to ``deadline`` s, default ``drain_timeout``), then cancel.

        Returns True when every loop finished on its own. Safe to call more than once
        and from several threads: later calls wait for the first one.
        """
        with self._lock:
            phase = self._phase
            if phase in ("new", "running"):
                self._phase = "draining"
        if phase == "running":
            self._drain(self._user_loops(), self.drain_timeout if deadline is None else deadline)
            beat = self._loops.get(HEARTBEAT)
            if beat is not None:
                self._drain([beat], CANCEL_GRACE)
        elif phase == "draining":
            self._stopped.wait()
        self._phase = "stopped"
        self._restore_signals()
        self._stopped.set()
        return not any(loop.cancelled for loop in self._loops.values())

    def join(self, timeout: float | None = None) -> bool:
        """Block until the runtime has stopped (e.g. after a signal); False on timeout."""
        return self._stopped.wait(timeout)

    def _drain(self, loops: Sequence[Loop[Step]], deadline: float) -> None:
        for loop in loops:
            self._events[loop.name].set()
            self._interrupt(loop)
        # a step may stop its own runtime: its thread ends after the step returns
        others = [
            loop for loop in loops if self._threads[loop.name] is not threading.current_thread()
        ]
        ends = time.monotonic() + deadline
        for loop in others:
            self._threads[loop.name].join(max(0.0, ends - time.monotonic()))
        self._cancel(others)
        for loop in others:
            self._threads[loop.name].join(CANCEL_GRACE)

    def _cancel(self, loops: Sequence[Loop[Step]]) -> None:
        with self._lock:  # only a thread inside its step: never its cleanup
            for loop in loops:
                ident = self._threads[loop.name].ident
                if loop.name in self._in_step and ident is not None:
                    loop.cancelled = True
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(ident), ctypes.py_object(LoopCancelled)
                    )

    def _main(self, loop: Loop[Step], event: threading.Event) -> None:
        ctx = LoopContext(loop.name, event)
        flow = supervise(loop, self.backoff)
        try:
            action = next(flow)
            while True:
                action = flow.send(self._act(loop, action, ctx))
        except StopIteration:
            pass
        except LoopCancelled:
            log.warning("runtime loop %r cancelled at the drain deadline", loop.name)
        finally:
            self._cleanup(loop)

    def _act(self, loop: Loop[Step], action: Action, ctx: LoopContext) -> Any:
        if isinstance(action, Pause):
            ctx.wait(action.seconds)
            return None
        if action == RESET:
            reset_sync(self._rk)
            return None
        with self._lock:
            self._in_step.add(loop.name)
        try:
            loop.step(ctx)
        except Exception as exc:
            return exc
        finally:
            with self._lock:
                self._in_step.discard(loop.name)
        return None

    def _cleanup(self, loop: Loop[Step]) -> None:
        try:
            if loop.cleanup is not None:
                loop.cleanup()
        except Exception:
            log.exception("runtime loop %r: cleanup failed", loop.name)
        finally:
            loop.end()

    def _beat(self, ctx: LoopContext) -> None:
        self._rk.run(self._beat_flow())
        ctx.wait(self.heartbeat or 0)

    def _unbeat(self) -> None:
        try:
            self._rk.run(ops.command("DEL", self.heartbeat_key))
        except errors.RedkitError as exc:  # it expires by itself within three periods
            log.info("runtime: could not delete the heartbeat key (%s)", exc)

    def install_signal_handlers(self, signals: Sequence[int] = SIGNALS) -> None:
        """SIGTERM/SIGINT drain the runtime, a second one cancels what is left.

        For a worker process (a CLI); a library never installs them by itself. Call it
        from the main thread; the previous handlers come back when the runtime stops
        (if it is stopped from the main thread).
        """
        if threading.current_thread() is not threading.main_thread():
            raise ConfigError("signal handlers can only be installed from the main thread")
        for signum in signals:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        # a handler must not block, nor take a lock the interrupted code may hold
        target = self._cancel_now if self._phase == "draining" else self.stop
        threading.Thread(target=target, name="redkit-runtime-stop", daemon=True).start()

    def _cancel_now(self) -> None:
        self._cancel(self._user_loops())

    def _restore_signals(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in self._previous_handlers.items():
                signal.signal(signum, handler)
            self._previous_handlers.clear()
