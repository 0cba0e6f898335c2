"""A runtime for long-running loops: threads (:class:`Runtime`) or asyncio (:class:`AsyncRuntime`).

A *loop* is a function that does one unit of work and returns: fetch and handle one job,
read what a listener connection received within a second, write one heartbeat. The
runtime calls it again and again, which lets it own the hard parts once:

* **drain**: ``stop()`` lets every loop finish the unit it is in, then calls it no more;
  loops still busy at the deadline are cancelled (a task is cancelled; a thread gets
  :class:`LoopCancelled` raised at its next Python instruction).
* **reconnect**: a unit that fails because the server is unreachable, loading, read-only
  after a failover (the client's connections are dropped, so the next call finds the new
  primary) or without a master is retried after an exponential backoff with jitter;
  other errors are logged and retried after the same backoff.
* **heartbeat**: one key per runtime, refreshed every ``heartbeat`` seconds with a TTL of
  three periods, holding :meth:`Runtime.health` as JSON; deleted by ``stop()``.
* **health**: starting, running, reconnecting, draining, stopped, per loop and overall,
  with the last error and timestamps.
* **signals**: only when asked (``install_signal_handlers()``): the first SIGTERM or
  SIGINT drains, a second one cancels what is left.

Each step receives a context whose ``wait(seconds)`` sleeps unless the loop is asked to
stop (then it returns True at once), so an idle loop never delays a drain; a loop that
blocks elsewhere gives an ``interrupt`` hook, run when the stop is asked::

    rt = Runtime(rk)
    rt.add("emails", lambda ctx: handle(queue.fetch(timeout=1)))
    rt.start()
    rt.install_signal_handlers()     # a worker process only
    rt.join()                        # until SIGTERM has drained it
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redkit.runtime.aio import AsyncRuntime
from redkit.runtime.core import (
    AsyncLoopContext,
    AsyncStep,
    Backoff,
    Health,
    LoopCancelled,
    LoopContext,
    LoopHealth,
    State,
    Step,
    classify,
)
from redkit.runtime.threads import Runtime

if TYPE_CHECKING:
    from redkit.client import RedkitCore

# One runtime per facade, so a process has one heartbeat for everything that runs on it.
# Kept here until the facade can hold it.
_SHARED: weakref.WeakKeyDictionary[Any, Runtime] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def share(
    rk: RedkitCore,
    name: str,
    step: Step,
    *,
    cleanup: Callable[[], Any] | None = None,
    interrupt: Callable[[], Any] | None = None,
) -> Runtime:
    """Run a loop on the facade's shared thread runtime, started on first use.

    Everything shared this way is listed in one heartbeat. Returns the runtime (read its
    :meth:`~Runtime.health`).
    """
    with _SHARED_LOCK:
        runtime = _SHARED.get(rk)
        if runtime is None:
            runtime = _SHARED[rk] = Runtime(rk)
            runtime.start()
        runtime.add(name, step, cleanup=cleanup, interrupt=interrupt)
        return runtime


def unshare(rk: RedkitCore, name: str, deadline: float | None = None) -> bool:
    """Drain a loop off the facade's shared runtime, which stops with its last loop.

    True unless the loop had to be cancelled at ``deadline``.
    """
    with _SHARED_LOCK:
        runtime = _SHARED.get(rk)
        if runtime is None:
            return True
        drained = runtime.remove(name, deadline)
        if not runtime.names:
            del _SHARED[rk]
            runtime.stop(deadline)
        return drained


__all__ = [
    "AsyncLoopContext",
    "AsyncRuntime",
    "AsyncStep",
    "Backoff",
    "Health",
    "LoopCancelled",
    "LoopContext",
    "LoopHealth",
    "Runtime",
    "State",
    "Step",
    "classify",
    "share",
    "unshare",
]
