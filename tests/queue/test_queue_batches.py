"""Batch tasks with real workers: one handler call for up to N jobs."""

from __future__ import annotations

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError
from redkit.queue import JobFailedError

from .conftest import poll, running


def test_a_batch_handler_receives_up_to_n_jobs(rk: Redkit) -> None:
    q = rk.queue("batches")
    sizes: list[int] = []

    @q.task(batch=10)
    async def shout(words: list[str]) -> list[str]:
        sizes.append(len(words))
        return [w.upper() for w in words]

    @q.task(batch=4)
    def store(rows: list[int]) -> None:  # a plain function, in a thread; None: no results
        sizes.append(-len(rows))

    with pytest.raises(ConfigError, match="one item"):
        shout.enqueue("a", "b")
    with pytest.raises(ConfigError, match="batch"):
        q.task(batch=0)(lambda items: None)
    jobs = shout.enqueue_many([(f"w{i}",) for i in range(25)])
    rows = store.enqueue_many([(i,) for i in range(6)])
    with running(q, concurrency=40):  # one claim takes them all
        assert [job.result(timeout=10) for job in jobs] == [f"W{i}" for i in range(25)]
        assert [job.result(timeout=10) for job in rows] == [None] * 6
    shouted = [n for n in sizes if n > 0]
    stored = [-n for n in sizes if n < 0]
    assert sum(shouted) == 25
    assert max(shouted) <= 10
    assert max(shouted) > 1  # jobs did share a call
    assert sum(stored) == 6
    assert max(stored) <= 4


def test_a_failing_batch_fails_each_of_its_jobs(rk: Redkit) -> None:
    q = rk.queue("badbatch")

    @q.task(batch=5)
    async def broken(items: list[int]) -> list[int]:
        raise RuntimeError("all of them")

    @q.task(batch=5)
    async def short(items: list[int]) -> list[int]:
        return []  # not one result per job

    jobs = broken.enqueue_many([(i,) for i in range(3)]) + short.enqueue_many([(1,), (2,)])
    with running(q, concurrency=10):
        poll(lambda: q.counts()["failed"] == 5, timeout=10)
    with pytest.raises(JobFailedError, match="all of them"):
        jobs[0].result()
    with pytest.raises(JobFailedError, match="list of"):
        jobs[-1].result()


async def test_async_batch(ark: AsyncRedkit) -> None:
    q = ark.queue("abatch")

    @q.task(batch=3)
    async def double(xs: list[int]) -> list[int]:
        return [2 * x for x in xs]

    jobs = await double.enqueue_many([(i,) for i in range(5)])
    with running(q, concurrency=5):
        assert [await job.result(timeout=10) for job in jobs] == [0, 2, 4, 6, 8]
