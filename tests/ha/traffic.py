"""Real traffic for failover tests: every capability called in a loop while a node fails.

Each *stream* is one capability's operation, called again and again by a thread (sync
facades) or a task (async facades, all on one event loop in a thread of its own). Every
call is recorded with its start, end and error, so a test can tell, per capability, how
long calls failed after the disruption, which errors they raised, and when it resumed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redkit.errors import RedkitError

#: A call that did not fail but whose result shows a write went missing
LOST = "lost"


class Lost(Exception):
    """Raised by a stream's operation when it read back less than it wrote."""


@dataclass
class Call:
    start: float
    end: float
    error: BaseException | None = None


@dataclass
class Outcome:
    """What one stream went through from the disruption on (times in seconds)."""

    name: str
    calls: int
    failures: int
    errors: dict[str, int]
    recovery: float  # from the disruption to the end of the last failed call (0: none failed)
    slowest: float  # the longest call that started after the disruption
    untyped: list[str] = field(default_factory=list)

    def line(self) -> str:
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(self.errors.items())) or "-"
        return (
            f"{self.name:<22} failing for {self.recovery:5.2f} s, slowest call "
            f"{self.slowest:5.2f} s ({self.failures} of {self.calls} calls failed: {kinds})"
        )


class Stream:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[Call] = []

    def record(self, start: float, error: BaseException | None) -> None:
        self.calls.append(Call(start, time.monotonic(), error))

    def outcome(self, since: float) -> Outcome:
        after = [c for c in self.calls if c.end >= since]
        failed = [c for c in after if c.error is not None]
        errors: dict[str, int] = {}
        untyped = []
        for call in failed:
            kind = type(call.error).__name__
            errors[kind] = errors.get(kind, 0) + 1
            if not isinstance(call.error, (RedkitError, Lost)):
                untyped.append(repr(call.error))
        recovery = max((c.end for c in failed), default=since) - since
        slowest = max((c.end - c.start for c in after if c.start >= since), default=0.0)
        return Outcome(self.name, len(after), len(failed), errors, recovery, slowest, untyped)

    def ok_since(self, moment: float) -> int:
        """How many of the latest calls, started after ``moment``, succeeded in a row."""
        ok = 0
        for call in reversed(self.calls):
            if call.start < moment or call.error is not None:
                break
            ok += 1
        return ok


class Traffic:
    """Streams of calls in threads and tasks, started and stopped together."""

    PAUSE = 0.005  # between two calls of one stream, so eight streams share two cores

    def __init__(self) -> None:
        self.streams: dict[str, Stream] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._async_ops: list[tuple[Stream, Callable[[], Awaitable[object]]]] = []
        #: coroutines run on the traffic's event loop once it stopped (closing clients)
        self.async_cleanup: list[Callable[[], Awaitable[object]]] = []

    def add(self, name: str, op: Callable[[], object]) -> None:
        stream = self.streams[name] = Stream(name)

        def loop() -> None:
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    op()
                except Exception as exc:
                    stream.record(start, exc)
                else:
                    stream.record(start, None)
                self._stop.wait(self.PAUSE)

        self._threads.append(threading.Thread(target=loop, name=f"traffic-{name}", daemon=True))

    def add_async(self, name: str, op: Callable[[], Awaitable[object]]) -> None:
        self._async_ops.append((Stream(name), op))
        self.streams[name] = self._async_ops[-1][0]

    def start(self) -> None:
        if self._async_ops:
            self._threads.append(threading.Thread(target=self._run_async, daemon=True))
        for thread in self._threads:
            thread.start()

    def _run_async(self) -> None:
        async def one(stream: Stream, op: Callable[[], Awaitable[object]]) -> None:
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    await op()
                except Exception as exc:
                    stream.record(start, exc)
                else:
                    stream.record(start, None)
                await asyncio.sleep(self.PAUSE)

        async def main() -> None:
            try:
                await asyncio.gather(*(one(stream, op) for stream, op in self._async_ops))
            finally:
                for cleanup in self.async_cleanup:
                    await cleanup()

        asyncio.run(main())

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def wait_all_ok(self, since: float, calls: int = 5, timeout: float = 30.0) -> bool:
        """Wait until every stream made ``calls`` successful calls in a row after ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(s.ok_since(since) >= calls for s in self.streams.values()):
                return True
            time.sleep(0.05)
        return False

    def outcomes(self, since: float) -> list[Outcome]:
        return [stream.outcome(since) for stream in self.streams.values()]
