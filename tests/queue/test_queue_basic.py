"""The queue with an in-process worker: enqueue, dedup, priorities, delays, retries, timeouts."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest
from tests.conftest import ON_SENTINEL_TOO

from redkit import AsyncRedkit, Redkit
from redkit.embedded import EmbeddedServer
from redkit.errors import ConfigError, SerializationError
from redkit.queue import JobFailedError, JobNotFinishedError, Worker

from .conftest import poll, running


def test_enqueue_checks_arguments_and_payload(rk: Redkit) -> None:
    q = rk.queue("checks")

    @q.task
    def greet(name: str, excited: bool = False) -> str:
        return name

    with pytest.raises(ConfigError, match="greet"):
        greet.enqueue()  # missing argument: fails at enqueue, not in a worker
    with pytest.raises(ConfigError):
        greet.enqueue("a", loud=True)
    with pytest.raises(SerializationError):
        greet.enqueue(object())
    with pytest.raises(ConfigError, match="priority"):
        greet.enqueue("a", priority=1.5)
    with pytest.raises(ConfigError, match="delay"):
        greet.enqueue("a", delay=-1)
    with pytest.raises(ConfigError, match="job_id"):

        @q.task
        def bad(job_id: str) -> None: ...

    with pytest.raises(ConfigError, match="retrys"):
        q.task(retrys=3)  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="backoff"):
        q.task(backoff="linear")(lambda: None)
    with pytest.raises(ConfigError, match="leese"):
        rk.queue("x", leese=3)  # type: ignore[call-arg]
    assert q.counts()["waiting"] == 0


@ON_SENTINEL_TOO
def test_job_ids_deduplicate(rk: Redkit) -> None:
    q = rk.queue("dedup")

    @q.task
    def send(to: str) -> str:
        return to

    first = send.enqueue("a", job_id="welcome:42")
    again = send.enqueue("b", job_id="welcome:42")
    assert first.id == again.id == "welcome:42"
    many = send.enqueue_many([("c",), {"to": "d"}, ("e",)], job_id="welcome:42")
    assert len(many) == 3
    assert q.counts()["waiting"] == 1
    with running(q, concurrency=2):
        assert first.result(timeout=10) == "a"
    assert send.enqueue("z", job_id="welcome:42").result() == "a"  # kept while it exists


def test_bulk_enqueue_is_one_round_trip(rk: Redkit) -> None:
    q = rk.queue("bulk")

    @q.task
    async def double(x: int) -> int:
        return 2 * x

    calls: list[str] = []
    rk.observe(lambda event: calls.append(event.name))
    jobs = double.enqueue_many([(i,) for i in range(500)])
    assert calls == ["script queue_add"]
    double.enqueue(-1)
    assert calls == ["script queue_add", "XADD"]  # a plain job: one native command
    double.enqueue(-2, priority=1)
    assert calls == ["script queue_add", "XADD", "script queue_add"]
    assert q.counts()["waiting"] == 502
    with running(q, concurrency=20):
        assert [job.result(timeout=20) for job in jobs[-3:]] == [994, 996, 998]
        poll(lambda: q.counts()["done"] == 502)


def test_priorities_order_claims(rk: Redkit) -> None:
    q = rk.queue("prio")
    order: list[int] = []

    @q.task
    def note(p: int) -> None:
        order.append(p)

    for p in (5, 0, -3, 5, 2, -3):
        note.enqueue(p, priority=p)
    with running(q, concurrency=1):
        poll(lambda: len(order) == 6)
    assert order == [-3, -3, 0, 2, 5, 5]


def test_delayed_jobs_start_on_time(rk: Redkit) -> None:
    q = rk.queue("delay")
    started: dict[str, float] = {}

    @q.task
    def stamp(name: str) -> None:
        started[name] = time.time()

    with running(q, concurrency=4):
        time.sleep(0.05)  # let the worker go idle (blocked on the server)
        at = time.time()
        stamp.enqueue("late", delay=0.6)
        stamp.enqueue("early", delay=0.3)
        stamp.enqueue("now")
        poll(lambda: len(started) == 3)
    # never early; the upper bounds leave room for a loaded machine (the benchmark measures
    # the real enqueue-to-start latency)
    assert started["now"] - at < 1.0
    assert 0.3 <= started["early"] - at < 0.3 + 1.0
    assert 0.6 <= started["late"] - at < 0.6 + 1.0


def test_retries_follow_the_backoff(rk: Redkit) -> None:
    q = rk.queue("retry")
    attempts: list[float] = []

    @q.task(retries=3, backoff="exponential", backoff_base=0.1, jitter=False)
    def flaky() -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 4:
            raise RuntimeError(f"attempt {len(attempts)}")
        return "ok"

    @q.task(retries=1, backoff="fixed", backoff_base=0.05)
    def hopeless() -> None:
        raise ValueError("never")

    job, doomed = flaky.enqueue(), hopeless.enqueue()
    with running(q, concurrency=2):
        assert job.result(timeout=10) == "ok"
        with pytest.raises(JobFailedError, match="failed after 2 deliveries: ValueError: never"):
            doomed.result(timeout=10)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    for gap, want in zip(gaps, (0.1, 0.2, 0.4), strict=False):
        assert want <= gap < want + 1.0  # never early; late only on a loaded machine
    assert doomed.status() == "failed"
    assert q.counts()["failed"] == 1
    error = doomed.error()
    assert error is not None
    assert (error["type"], error["message"], error["attempts"]) == ("ValueError", "never", 2)
    assert 'raise ValueError("never")' in error["traceback"]
    assert job.error() is not None  # kept from its last failed attempt


def test_timeout_stops_an_async_handler(rk: Redkit) -> None:
    q = rk.queue("timeout")
    stopped = threading.Event()

    @q.task(timeout=0.2)
    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()

    job = slow.enqueue()
    with running(q, concurrency=1):
        with pytest.raises(JobFailedError, match=r"timed out after 0\.2 s"):
            job.result(timeout=10)
        assert stopped.is_set()


def test_result_status_and_cancel(rk: Redkit) -> None:
    q = rk.queue("result")

    @q.task
    def echo(x: object) -> object:
        return x

    job = echo.enqueue({"a": [1, 2]})
    later = echo.enqueue(1, delay=60)
    assert job.status() == "waiting"
    assert later.status() == "delayed"
    with pytest.raises(JobNotFinishedError):
        job.result(timeout=0.05)
    assert later.cancel()
    assert later.status() == "cancelled"
    assert not later.cancel()
    with running(q, concurrency=1):
        assert job.result(timeout=10) == {"a": [1, 2]}
    assert job.status() == "done"
    assert q.job("missing").status() is None
    with pytest.raises(JobFailedError, match="cancelled"):
        later.result()


def test_graceful_stop_hands_unfinished_jobs_back(rk: Redkit) -> None:
    q = rk.queue("grace")
    started = threading.Event()

    @q.task
    async def forever() -> None:
        started.set()
        await asyncio.sleep(60)

    @q.task
    async def quick() -> str:
        await asyncio.sleep(0.05)
        return "done"

    long_job = forever.enqueue(priority=-1)
    short_job = quick.enqueue()
    with running(q, concurrency=2) as worker:
        assert started.wait(10)
        poll(lambda: short_job.status() == "active")
        began = time.monotonic()
        worker.stop(grace=0.5)
        assert time.monotonic() - began < 3
    assert short_job.status() == "done"  # finished within the grace period
    assert long_job.status() == "waiting"  # handed back at once, not after a lease
    assert q.counts()["waiting"] == 1


async def test_async_producer(ark: AsyncRedkit) -> None:
    q = ark.queue("aio")

    @q.task
    async def add(a: int, b: int) -> int:
        return a + b

    jobs = await add.enqueue_many([(1, 2), (3, 4)])
    one = await add.enqueue(5, 6, job_id="x")
    assert await one.status() == "waiting"
    assert (await q.counts())["waiting"] == 3
    with running(q, concurrency=4):
        assert await one.result(timeout=10) == 11
        assert [await job.result(timeout=10) for job in jobs] == [3, 7]


def test_worker_options_are_checked(rk: Redkit) -> None:
    q = rk.queue("opts")
    with pytest.raises(ConfigError, match="concurrency"):
        Worker(q, concurrency=0)
    with pytest.raises(ConfigError, match="grace"):
        Worker(q, grace=-1)
    borrowed = Redkit(client=rk.client)
    with pytest.raises(ConfigError, match="handed-in client"):
        Worker(borrowed.queue("opts"))


def test_a_busy_worker_spends_well_under_one_round_trip_per_job(
    standalone_url: str, prefix: str
) -> None:
    with Redkit(standalone_url, prefix=prefix) as rk:
        q = rk.queue("trips")

        @q.task
        async def noop(i: int) -> None: ...

        n = 2000
        noop.enqueue_many([(i,) for i in range(n)])

        def sent() -> int:
            stats = rk.client.info("commandstats")
            names = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_blpop")
            return sum(int(stats[name]["calls"]) for name in names if name in stats)

        before = sent()
        with running(q, concurrency=50):
            poll(lambda: q.counts()["done"] == n, timeout=30)
            # script calls and blocking waits: what a worker sends (polling here uses ZCARD)
            trips = sent() - before
        assert trips < n * 0.2, f"{trips} round trips for {n} jobs"


def test_finished_jobs_are_kept_for_a_time_and_a_count(rk: Redkit) -> None:
    q = rk.queue("keep", keep_completed=5, result_ttl=60)

    @q.task
    async def echo(i: int) -> int:
        return i

    jobs = echo.enqueue_many([(i,) for i in range(20)])
    with running(q, concurrency=1):  # one at a time: finished in order
        assert jobs[-1].result(timeout=10) == 19
        poll(lambda: q.counts()["done"] == 5)
    assert [job.status() for job in jobs[:15]] == [None] * 15
    assert [job.result() for job in jobs[15:]] == [15, 16, 17, 18, 19]

    short = rk.queue("short", result_ttl=0.2)
    quick = short.task(echo.definition.func, name="echo")
    job = quick.enqueue(1)
    with running(short, concurrency=1):
        assert job.result(timeout=10) == 1
    poll(lambda: job.status() is None, timeout=5)  # expired with its result
    assert short.counts()["done"] <= 1  # the index entry goes on the next report


def test_odd_failures_never_strand_a_job(rk: Redkit) -> None:
    q = rk.queue("odd")

    def broken_backoff(n: int) -> float:
        raise RuntimeError("backoff bug")

    @q.task
    def exits() -> None:
        raise SystemExit(2)

    @q.task
    async def cancels_itself() -> None:
        raise asyncio.CancelledError

    @q.task(retries=3, backoff=broken_backoff)
    def flaky() -> None:
        raise ValueError("once")

    jobs = [exits.enqueue(), cancels_itself.enqueue(), flaky.enqueue()]
    with running(q, concurrency=3):
        for job in jobs:
            with pytest.raises(JobFailedError):
                job.result(timeout=10)
    assert [job.error()["type"] for job in jobs] == [  # type: ignore[index]
        "SystemExit",
        "CancelledError",
        "ValueError",
    ]


def test_a_delayed_job_does_not_wait_for_the_servers_clock_tick(prefix: str) -> None:
    """At ``hz 1`` the server ends blocking waits up to a second late; the worker's own
    timer starts a due job on time anyway."""
    with (
        EmbeddedServer(extra_args=["--hz", "1"]) as server,
        Redkit(server.url, prefix=prefix) as rk,
    ):
        q = rk.queue("tick")
        late: list[float] = []

        @q.task
        def stamp(due: float) -> None:
            late.append(time.time() - due)

        with running(q, concurrency=2):
            for n in range(3):
                due = time.time() + 0.3
                stamp.enqueue(due, delay=0.3)
                poll(lambda n=n: len(late) > n, timeout=10)
    assert min(late) >= -0.01  # never early (clocks of one machine)
    assert max(late) < 0.6, late  # a server tick would add up to 1 s
