"""Where the callers of one key in this process meet: one leads the load, the rest wait.

:class:`ThreadFlights` serves the threads of a :class:`~redkit.cache.Cache`,
:class:`TaskFlights` the asyncio tasks of an :class:`~redkit.cache.AsyncCache`. The
``get_or_set`` flow (:mod:`redkit.cache.stampede`) is the same for both: a follower waits
with ``yield ops.UserCall(flight.wait)``, which the sync driver calls and the async
driver awaits.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Protocol


class Flight:
    """One load in this process that other callers of the key wait for."""

    __slots__ = ("error", "retry", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.retry = False

    def result(self) -> Any:
        """The leader's value, or its exception raised."""
        if self.error is not None:
            raise self.error
        return self.value


class Flights(Protocol):
    """The loads running in this process, by key (threads or asyncio tasks)."""

    def join(self, key: str) -> tuple[Any, bool]:
        """The flight of ``key`` and True when the caller starts (leads) it."""
        ...

    def land(self, key: str, flight: Any, value: Any, error: BaseException | None) -> None:
        """End ``flight``: share ``value`` or ``error``; a BaseException makes followers retry."""
        ...


class _ThreadFlight(Flight):
    __slots__ = ("_done",)

    def __init__(self) -> None:
        super().__init__()
        self._done = threading.Event()

    def wait(self) -> Flight:
        self._done.wait()
        return self


class ThreadFlights:
    """Loads shared by the threads of this process (for :class:`~redkit.cache.Cache`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _ThreadFlight] = {}

    def join(self, key: str) -> tuple[_ThreadFlight, bool]:
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = _ThreadFlight()
            return flight, True

    def land(
        self, key: str, flight: _ThreadFlight, value: Any, error: BaseException | None
    ) -> None:
        with self._lock:
            del self._flights[key]
        _settle(flight, value, error)
        flight._done.set()


class _TaskFlight(Flight):
    __slots__ = ("_done",)

    def __init__(self) -> None:
        super().__init__()
        self._done = asyncio.Event()

    async def wait(self) -> Flight:
        await self._done.wait()  # a cancelled follower stops waiting; the others go on
        return self


class TaskFlights:
    """Loads shared by the asyncio tasks of this process (for ``AsyncCache``).

    Tasks meet per event loop: an ``AsyncRedkit`` serves every loop of the process, and a
    task cannot wait for an event of another loop.
    """

    def __init__(self) -> None:
        self._flights: dict[tuple[asyncio.AbstractEventLoop, str], _TaskFlight] = {}

    def join(self, key: str) -> tuple[_TaskFlight, bool]:
        where = (asyncio.get_running_loop(), key)
        flight = self._flights.get(where)
        if flight is not None:
            return flight, False
        flight = self._flights[where] = _TaskFlight()
        return flight, True

    def land(self, key: str, flight: _TaskFlight, value: Any, error: BaseException | None) -> None:
        del self._flights[asyncio.get_running_loop(), key]
        _settle(flight, value, error)
        flight._done.set()


def _settle(flight: Flight, value: Any, error: BaseException | None) -> None:
    if error is None:
        flight.value = value
    elif isinstance(error, Exception):
        flight.error = error
    else:  # cancelled or interrupted: not an outcome to share, the followers try again
        flight.retry = True
