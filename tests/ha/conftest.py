"""Failover fixtures: fresh topologies per test, the capabilities' traffic, the summary.

Each failover test gets a topology of its own (a failover leaves the old primary demoted
and, after a kill, dead), so the session's shared servers are never disturbed. The
recovery time each capability reached is printed at the end of the run (the terminal
summary) and attached to the test as a property (``--junitxml``).
"""

from __future__ import annotations

import contextlib
import gc
import secrets
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from tests.ha.traffic import Lost, Outcome, Traffic

from redkit import AsyncRedkit, Redkit
from redkit.embedded import EmbeddedCluster, EmbeddedSentinel
from redkit.events import Consumer, Gap, Message, Subscription
from redkit.queue import Worker

RESULTS: list[tuple[str, list[Outcome]]] = []


@pytest.fixture
def fresh_sentinel() -> Iterator[EmbeddedSentinel]:
    """A primary, a replica and three sentinels, deeming a primary down after 1 s."""
    with EmbeddedSentinel(replicas=1, down_after=1.0) as topology:
        yield topology


@pytest.fixture
def fresh_cluster() -> Iterator[EmbeddedCluster]:
    """Three primaries with a replica each, deeming a node failed after 1 s."""
    with EmbeddedCluster(masters=3, replicas=1, node_timeout=1.0) as cluster:
        yield cluster


def report(name: str, outcomes: list[Outcome], record: Any) -> None:
    """Keep ``outcomes`` for the terminal summary and as the test's properties."""
    RESULTS.append((name, outcomes))
    for outcome in outcomes:
        record(f"failing_s:{outcome.name}", round(outcome.recovery, 3))
        record(f"slowest_call_s:{outcome.name}", round(outcome.slowest, 3))


def pytest_runtest_logfinish(nodeid: str) -> None:
    """Collect what a failover test left once pytest let go of it (captured log records
    hold tracebacks, and so clients): redis-py's asyncio RedisCluster (8.1) leaves the
    connections of a node it dropped from its topology to the garbage collector, which
    would warn in whichever test runs next."""
    if "tests/ha/" in nodeid:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.section("failover: time each capability's calls failed")
    for name, outcomes in RESULTS:
        terminalreporter.write_line(name)
        for outcome in outcomes:
            terminalreporter.write_line("  " + outcome.line())


class Capabilities:
    """Every capability's operation as a traffic stream, on one URL and prefix."""

    def __init__(self, url: str) -> None:
        self.prefix = "ha" + secrets.token_hex(4)
        self.rk = Redkit(url, prefix=self.prefix)
        self.ark = AsyncRedkit(url, prefix=self.prefix)
        self.queue = self.rk.queue("jobs")
        self.done: set[int] = set()
        self.worker: Worker | None = None
        self._worker_thread: threading.Thread | None = None
        self._n = 0
        self.fences: list[tuple[float, int]] = []
        # events: what the subscriber and the consumer group received
        self.fan_topic = self.rk.events.topic("ha-fan")
        self.durable = self.rk.events.topic("ha-durable", durable=True)
        self.heard: set[int] = set()
        self.gaps: list[Gap] = []
        self.published: list[tuple[float, int, int | str]] = []
        self.heard_seq: list[tuple[int | None, int]] = []
        self.consumed: set[int] = set()
        self.subscription: Subscription | None = None
        self.consumer: Consumer | None = None

    def next(self) -> int:
        self._n += 1
        return self._n

    def traffic(self, events: bool = True) -> Traffic:
        traffic = Traffic()
        rk, ark = self.rk, self.ark
        lock, alock = rk.lock("ha", ttl=5), ark.lock("ha-async", ttl=5)
        limiter = rk.rate_limiter("1000000/minute", name="ha")
        alimiter = ark.rate_limiter("1000000/minute", name="ha-async")
        cache, acache = rk.cache("ha", on_error="closed"), ark.cache("ha", on_error="closed")
        sessions, tokens = rk.sessions(), rk.tokens()
        idem, aidem = rk.idempotency("ha"), ark.idempotency("ha-async")

        def lock_op() -> None:
            with lock:
                assert lock.fencing_token is not None
                self.fences.append((time.monotonic(), lock.fencing_token))

        async def alock_op() -> None:
            async with alock:
                pass

        def cache_op() -> None:
            n = self.next()
            cache.set(f"k{n}", n, ttl=60)
            if cache.get(f"k{n}") != n:
                raise Lost(f"cache entry k{n}")

        async def acache_op() -> None:
            n = self.next()
            await acache.set(f"a{n}", n, ttl=60)
            if await acache.get(f"a{n}") != n:
                raise Lost(f"cache entry a{n}")

        def session_op() -> None:
            session = sessions.load(None)
            session["n"] = self.next()
            sessions.save(session)
            if sessions.load(session.id).get("n") != session["n"]:
                raise Lost("a session write")

        def token_op() -> None:
            claims = tokens.new_claims("alice", 60)
            tokens.revoke(claims["jti"], datetime.now(timezone.utc) + timedelta(minutes=1))
            if not tokens.is_revoked(claims):
                raise Lost("a revocation")

        def idem_op() -> None:
            n = self.next()
            if idem.do(f"op{n}", lambda: n) != n or idem.do(f"op{n}", lambda: -1) != n:
                raise Lost(f"the result of op{n}")

        async def aidem_op() -> None:
            n = self.next()
            if await aidem.do(f"op{n}", lambda: n) != n:
                raise Lost(f"the result of op{n}")

        traffic.add("lock", lock_op)
        traffic.add_async("lock (async)", alock_op)
        traffic.add("rate limit", lambda: limiter.hit("user"))
        traffic.add_async("rate limit (async)", lambda: alimiter.hit("user"))
        traffic.add("cache", cache_op)
        traffic.add_async("cache (async)", acache_op)
        traffic.add("sessions", session_op)
        traffic.add("tokens", token_op)
        traffic.add("idempotency", idem_op)
        traffic.add_async("idempotency (async)", aidem_op)
        traffic.add("queue (enqueue+work)", self._queue_op())
        if events:
            traffic.add("events fan-out", self._fanout_op())
            traffic.add("events durable", self._durable_op())
        traffic.async_cleanup.append(ark.aclose)
        return traffic

    def _queue_op(self) -> Any:
        @self.queue.task
        def record(n: int) -> None:
            self.done.add(n)

        def op() -> None:
            n = self.next()
            record.enqueue(n)
            # a worker idle in a wait on the old primary hears of new jobs when that wait
            # ends (at most MAX_BLOCK, 5 s), so a job may take that long once
            deadline = time.monotonic() + 6.0
            while n not in self.done:  # the worker drains the queue, whatever happened
                if time.monotonic() > deadline:
                    raise Lost(f"job {n} not processed within 6 s")
                time.sleep(0.01)

        return op

    def _fanout_op(self) -> Any:
        def op() -> None:
            n = self.next()
            seq = self.fan_topic.publish(n)
            self.published.append((time.monotonic(), n, seq))
            deadline = time.monotonic() + 6.0
            # received, or reported as missed: a Gap naming its number
            while n not in self.heard and not any(g.first <= seq <= g.last for g in self.gaps):
                if time.monotonic() > deadline:
                    raise Lost(
                        f"message {n} (number {seq}) neither received nor in a Gap "
                        f"(latest heard: {self.heard_seq[-3:]}, gaps: {self.gaps[-3:]})"
                    )
                time.sleep(0.01)

        return op

    def _durable_op(self) -> Any:
        def op() -> None:
            n = self.next()
            self.durable.publish(n)
            deadline = time.monotonic() + 6.0
            while n not in self.consumed:  # the group's consumer reads it, whatever happened
                if time.monotonic() > deadline:
                    raise Lost(f"durable message {n} not consumed within 6 s")
                time.sleep(0.01)

        return op

    def start_events(self) -> None:
        """A fan-out subscriber and a durable consumer, both running on the runtime."""

        def heard(item: Message | Gap) -> None:
            if isinstance(item, Gap):
                self.gaps.append(item)
            else:
                self.heard.add(item.data)
                self.heard_seq.append((item.seq, item.data))

        self.subscription = self.fan_topic.subscribe(heartbeat=1.0)
        assert self.subscription.wait_ready(10)
        self.subscription.start(heard)
        self.consumer = self.durable.consumer("ha", "c1", claim_idle=1.0)
        self.consumer.create()
        self.consumer.start(lambda message: self.consumed.add(message.data))

    def start_worker(self) -> None:
        self.worker = Worker(self.queue, concurrency=4, grace=5)
        self._worker_thread = threading.Thread(
            target=self.worker.run_sync, kwargs={"signals": False}, daemon=True
        )
        self._worker_thread.start()
        assert self.worker.started.wait(10)

    def close(self) -> None:
        if self.worker is not None and self._worker_thread is not None:
            with contextlib.suppress(Exception):
                self.worker.stop_threadsafe(grace=1, timeout=20)
            self._worker_thread.join(10)
        for part in (self.subscription, self.consumer):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        self.rk.close()
        # the async facade's clients belong to the traffic's event loop, closed with it
