"""What both flavours of the runtime share: states, health, errors, backoff, the loop logic.

The logic of a loop is written once, as the generator :func:`supervise`: it asks its
driver to run a step, and on failure to drop the client's connections (failover) and to
pause. :mod:`redkit.runtime.threads` and :mod:`redkit.runtime.aio` are the two drivers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import asdict, dataclass
from typing import Any, Generic, Literal, TypeVar

import redis.exceptions as rex

from redkit import connection, errors, ops
from redkit.errors import ConfigError

log = logging.getLogger("redkit.runtime")

State = Literal["starting", "running", "reconnecting", "draining", "stopped"]
Kind = Literal["failover", "unavailable", "error"]
StepT = TypeVar("StepT")
SIGNALS = (signal.SIGTERM, signal.SIGINT)
CANCEL_GRACE = 1.0
HEARTBEAT = "heartbeat"
# reply codes that mean "the server cannot serve now", whatever exception carries them
_CODES: dict[str, Kind] = {
    "READONLY": "failover",
    "LOADING": "unavailable",
    "MASTERDOWN": "unavailable",
    "CLUSTERDOWN": "unavailable",
    "TRYAGAIN": "unavailable",
}
_UNAVAILABLE = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.InvalidResponse,  # not speaking the protocol: a wrong address, or a proxy in between
    rex.ClusterError,
    rex.TryAgainError,
    rex.RedisClusterException,
    OSError,
    errors.ConnectionError,
)


class LoopCancelled(BaseException):
    """Raised in a loop's thread when it is still busy at the drain deadline."""


def classify(exc: BaseException) -> Kind:
    """``"failover"`` (READONLY, or UNBLOCKED: a blocking command cut short because its
    primary became a replica), ``"unavailable"`` (connection, LOADING, no master) or
    ``"error"`` (anything else), looking through the chain of causes."""
    seen: BaseException | None = exc
    while seen is not None:
        code = str(seen).split(" ", 1)[0]
        if isinstance(seen, rex.ReadOnlyError) or code in ("READONLY", "UNBLOCKED"):
            return "failover"
        if isinstance(seen, _UNAVAILABLE) or code in _CODES:
            return "unavailable"
        seen = seen.__cause__
    return "error"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter.

    Retry ``n`` waits between ``d / 2`` and ``d`` seconds, ``d = min(cap, base * 2**(n-1))``.
    """

    base: float = 0.1
    cap: float = 5.0

    def __post_init__(self) -> None:
        if not (0 < self.base <= self.cap):
            raise ConfigError(f"backoff needs 0 < base <= cap, got {self.base!r}, {self.cap!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(max(attempt, 1) - 1, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class LoopHealth:
    """One loop as a dashboard sees it (times are ``time.time()`` seconds)."""

    name: str
    state: State
    since: float
    steps: int
    errors: int
    last_error: str | None
    last_error_at: float | None
    cancelled: bool


@dataclass(frozen=True)
class Health:
    """The runtime as a dashboard sees it; ``state`` sums up the loops."""

    process: str
    state: State
    started_at: float | None
    loops: dict[str, LoopHealth]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what the heartbeat key holds)."""
        return asdict(self)


Hook = Callable[[], Any]


class Loop(Generic[StepT]):
    """A registered loop: its step, hooks and health, whatever the flavour."""

    def __init__(
        self, name: str, step: StepT, cleanup: Hook | None = None, interrupt: Hook | None = None
    ) -> None:
        self.name, self.step, self.cleanup, self.interrupt = name, step, cleanup, interrupt
        self.state: tuple[State, float] = ("starting", time.time())
        self.steps = self.errors = 0
        self.last_error: tuple[str, float] | None = None
        self.stop_requested = self.cancelled = False

    def move(self, state: State) -> None:
        """Enter ``state``; a draining or stopped loop only ever becomes stopped."""
        if self.state[0] not in (state, "draining", "stopped"):
            self.state = (state, time.time())

    def end(self) -> None:
        self.state = ("stopped", time.time())

    def health(self) -> LoopHealth:
        (state, since), error = self.state, self.last_error
        return LoopHealth(
            self.name,
            state,
            since,
            self.steps,
            self.errors,
            error[0] if error else None,
            error[1] if error else None,
            self.cancelled,
        )


class Pause:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


STEP, RESET = "step", "reset"
Action = str | Pause


def supervise(loop: Loop[Any], backoff: Backoff) -> Generator[Action, Any, None]:
    """The logic of every loop, for both drivers: step, and on failure reset and back off.

    The driver answers ``STEP`` with the step's exception (None when it returned).
    """
    failures = 0
    while not loop.stop_requested:
        error = yield STEP
        if error is None:
            if loop.state[0] == "reconnecting":
                log.info("runtime loop %r: reconnected", loop.name)
            failures = 0
            loop.steps += 1
            loop.move("running")
            continue
        failures += 1
        if _failed(loop, error) == "failover":
            yield RESET
        yield Pause(backoff.delay(failures))


def _failed(loop: Loop[Any], error: BaseException) -> Kind:
    """Count and log a failed step; an outage is logged once, when it begins."""
    kind = classify(error)
    loop.errors += 1
    loop.last_error = (f"{type(error).__name__}: {error}", time.time())
    if kind == "error":
        log.error("runtime loop %r failed; retrying", loop.name, exc_info=error)
    elif loop.state[0] == "reconnecting":
        log.debug("runtime loop %r: still unavailable (%s)", loop.name, error)
    else:
        log.warning("runtime loop %r: server unavailable (%s); reconnecting", loop.name, error)
        loop.move("reconnecting")
    return kind


class LoopContext:
    """What a thread-flavour step receives."""

    def __init__(self, name: str, event: threading.Event) -> None:
        self.name = name
        self._event = event

    @property
    def stopping(self) -> bool:
        """True once the loop is asked to stop (finish this unit and return)."""
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless asked to stop; True when asked to stop."""
        return self._event.wait(seconds)


class AsyncLoopContext:
    """What an asyncio step receives."""

    def __init__(self, name: str, event: asyncio.Event) -> None:
        self.name = name
        self._event = event

    @property
    def stopping(self) -> bool:
        """True once the loop is asked to stop (finish this unit and return)."""
        return self._event.is_set()

    async def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless asked to stop; True when asked to stop."""
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True


Step = Callable[[LoopContext], None]
AsyncStep = Callable[[AsyncLoopContext], Awaitable[None]]


class Base(Generic[StepT]):
    """Registration, health and the heartbeat's key and value, for both flavours."""

    def __init__(
        self, rk: Any, heartbeat: float | None, drain_timeout: float, backoff: Backoff
    ) -> None:
        if heartbeat is not None and not heartbeat > 0:
            raise ConfigError(
                f"heartbeat must be a positive number of seconds or None, got {heartbeat!r}"
            )
        if not drain_timeout >= 0:
            raise ConfigError(f"drain_timeout must be 0 or more seconds, got {drain_timeout!r}")
        self._rk = rk
        self.heartbeat, self.drain_timeout, self.backoff = heartbeat, drain_timeout, backoff
        host, pid = socket.gethostname(), os.getpid()
        self.process = f"{host}:{pid}:{secrets.token_hex(3)}"
        self.heartbeat_key = rk.keys.group("runtime").user_key(
            "process", host, pid, self.process[-6:]
        )
        self._loops: dict[str, Loop[StepT]] = {}
        self._phase: Literal["new", "running", "draining", "stopped"] = "new"
        self._started_at: float | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _register(
        self, name: str, step: StepT, cleanup: Hook | None, interrupt: Hook | None
    ) -> Loop[StepT]:
        if not name or name == HEARTBEAT or name in self._loops:
            raise ConfigError(f"loop name {name!r} is empty, reserved or already in use")
        if not callable(step):
            raise ConfigError(f"a loop step must be callable, got {step!r}")
        if self._phase in ("draining", "stopped"):
            raise ConfigError("this runtime is stopping or stopped; build a new one")
        loop: Loop[StepT] = Loop(name, step, cleanup, interrupt)
        self._loops[name] = loop
        return loop

    @property
    def names(self) -> list[str]:
        """The loops that run (or will run once started), heartbeat excluded."""
        return [name for name in self._loops if name != HEARTBEAT]

    def health(self) -> Health:
        """A snapshot of every loop's state, errors and timestamps."""
        loops = {name: loop.health() for name, loop in list(self._loops.items())}
        return Health(self.process, self._summary(loops), self._started_at, loops)

    def _summary(self, loops: dict[str, LoopHealth]) -> State:
        if self._phase != "running":
            return "starting" if self._phase == "new" else self._phase
        states = {loop.state for loop in loops.values()}
        if "reconnecting" in states:
            return "reconnecting"
        return "starting" if "starting" in states else "running"

    def _beat_flow(self) -> ops.Flow[Any]:
        payload = json.dumps(self.health().as_dict(), separators=(",", ":"))
        ttl_ms = max(1, int((self.heartbeat or 0) * 3000))
        return ops.command("SET", self.heartbeat_key, payload, "PX", ttl_ms)

    @staticmethod
    def _interrupt(loop: Loop[Any]) -> None:
        """Ask ``loop`` to stop: its waits return, its ``interrupt`` hook runs."""
        loop.stop_requested = True
        loop.move("draining")
        if loop.interrupt is not None:
            try:
                loop.interrupt()
            except Exception:
                log.exception("runtime loop %r: interrupt failed", loop.name)

    def _user_loops(self) -> list[Loop[StepT]]:
        return [loop for name, loop in self._loops.items() if name != HEARTBEAT]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(process={self.process!r}, loops={self.names!r})"


def reset_sync(rk: Any) -> None:
    """Drop a sync facade's connections after a failover, so the next call finds the primary."""
    for client in rk.clients():
        if connection.is_async(client):  # the thread listener of an asyncio facade
            return
        try:
            if connection.is_cluster(client):
                client.nodes_manager.initialize()
            else:
                client.connection_pool.disconnect()
        except Exception as exc:  # the next step retries anyway
            log.info("runtime: could not reset the client's connections (%s)", exc)


async def reset_async(rk: Any) -> None:
    """Drop an asyncio facade's connections after a failover (see :func:`reset_sync`)."""
    for client in rk.clients():
        try:
            if connection.is_cluster(client):
                await client.nodes_manager.initialize()
            else:
                await client.connection_pool.disconnect()
        except Exception as exc:
            log.info("runtime: could not reset the client's connections (%s)", exc)
