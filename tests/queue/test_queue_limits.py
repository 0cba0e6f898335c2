"""Queue-wide limits with real workers: a global concurrency limit and a rate limit."""

from __future__ import annotations

import threading
import time

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError

from .conftest import poll, running


def test_global_concurrency_holds_across_workers(rk: Redkit) -> None:
    q = rk.queue("conc")
    lock = threading.Lock()
    now, peak = [0], [0]

    @q.task
    def work(i: int) -> None:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.02)
        with lock:
            now[0] -= 1

    q.set_concurrency(3)
    work.enqueue_many([(i,) for i in range(30)])
    with running(q, concurrency=5), running(q, concurrency=5):  # 10 slots, 3 allowed
        poll(lambda: q.counts()["done"] == 30, timeout=30)
    assert peak[0] == 3
    assert rk.client.hget(q.keys.group.key("gactive"), "*") is None  # back to zero
    q.set_concurrency(None)
    with pytest.raises(ConfigError):
        q.set_concurrency(-1)


def test_rate_limit_spaces_job_starts(rk: Redkit) -> None:
    q = rk.queue("rate", events=1000)  # "active" events carry the server's claim time

    @q.task
    async def work(i: int) -> None: ...

    q.set_rate_limit("20/second")  # a burst of 20, then one every 50 ms
    work.enqueue_many([(i,) for i in range(50)])
    with running(q, concurrency=10), running(q, concurrency=10):
        poll(lambda: q.counts()["done"] == 50, timeout=30)
    starts = [int(e.id.split("-")[0]) for e in q.events(count=1000) if e.event == "active"]
    assert len(starts) == 50
    # GCRA: in any span of t ms at most burst + t / 50 starts (+1 for the edges)
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            assert j - i + 1 <= 20 + (starts[j] - starts[i]) / 50 + 1, (i, j)
    assert starts[-1] - starts[0] >= 30 * 50 - 50  # the 30 after the burst were spaced
    with pytest.raises(ConfigError):
        q.set_rate_limit("fast")
    q.set_rate_limit(None)
    assert rk.client.hget(q.keys.meta, "ri") is None


async def test_async_limits(ark: AsyncRedkit) -> None:
    q = ark.queue("alimits")

    @q.task
    async def ping(x: int) -> int:
        return x

    await q.set_concurrency(1)
    await q.set_rate_limit("100/second")
    jobs = await ping.enqueue_many([(1,), (2,)])
    with running(q, concurrency=4):
        assert [await job.result(timeout=10) for job in jobs] == [1, 2]
    await q.set_concurrency(None)
    await q.set_rate_limit(None)


def test_a_task_rate_limit_delays_that_task_only(rk: Redkit) -> None:
    q = rk.queue("trate", events=1000)  # "active" events carry the server's claim time

    @q.task
    async def slow(i: int) -> None: ...

    @q.task
    async def fast(i: int) -> None: ...

    q.set_task_rate_limit(slow, "20/second")  # a burst of 20, then one per 50 ms
    slow_jobs = slow.enqueue_many([(i,) for i in range(40)])
    fast.enqueue_many([(i,) for i in range(40)])
    with running(q, concurrency=10), running(q, concurrency=10):
        poll(lambda: q.counts()["done"] == 80, timeout=30)
    slow_ids = {job._member for job in slow_jobs}
    active = [e for e in q.events(count=1000) if e.event == "active"]
    starts = [int(e.id.split("-")[0]) for e in active if e.job_id in slow_ids]
    assert len(starts) == 40  # each claimed once: a job that had to wait was not claimed
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            assert j - i + 1 <= 20 + (starts[j] - starts[i]) / 50 + 1, (i, j)
    last_fast = max(i for i, e in enumerate(active) if e.job_id not in slow_ids)
    assert last_fast < len(active) - 1  # the other task ran meanwhile, not after
    assert rk.client.hget(q.keys.group.key("gactive"), "*") is None
    q.set_task_rate_limit("slow", None)
    with pytest.raises(ConfigError):
        q.set_task_rate_limit(42, "1/second")  # type: ignore[arg-type]
