"""Deduplication modes with real workers: while queued, while running, throttle, debounce."""

from __future__ import annotations

import itertools
import threading

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError
from redkit.queue import Dedupe

from .conftest import poll, running


def test_unique_while_queued_and_while_running(rk: Redkit) -> None:
    q = rk.queue("unique")
    gate = threading.Event()
    started: list[str] = []

    @q.task
    def sync(account: str) -> str:
        started.append(account)
        gate.wait(10)
        return account

    queued, busy = Dedupe.while_queued("sync:1"), Dedupe.while_running("sync:2")
    a = sync.enqueue("1", dedupe=queued)
    assert sync.enqueue("1", dedupe=queued).id == a.id  # still waiting: the same job
    b = sync.enqueue("2", dedupe=busy)
    assert sync.enqueue("2", dedupe=busy).id == b.id
    assert q.counts()["waiting"] == 2
    with running(q, concurrency=2):  # both run, so the next job stays queued
        poll(lambda: sorted(started) == ["1", "2"])
        c = sync.enqueue("1", dedupe=queued)  # the first one runs: a new job is added
        assert c.id != a.id
        assert sync.enqueue("1", dedupe=queued).id == c.id
        assert sync.enqueue("2", dedupe=busy).id == b.id  # running still counts
        gate.set()
        assert b.result(timeout=10) == "2"
        assert c.result(timeout=10) == "1"
        d = sync.enqueue("2", dedupe=busy)  # finished: a new job
        assert d.id != b.id
        assert d.result(timeout=10) == "2"
    assert sorted(started) == ["1", "1", "2", "2"]
    with pytest.raises(ConfigError, match="one job at a time"):
        sync.enqueue_many([("x",)], dedupe=queued)
    with pytest.raises(ConfigError, match="Dedupe"):
        sync.enqueue("x", dedupe="sync:1")
    with pytest.raises(ConfigError, match="period"):
        Dedupe.throttle("k", 0)


def test_throttle_admits_one_job_per_period(rk: Redkit) -> None:
    q = rk.queue("throttle")

    @q.task
    def refresh() -> None: ...

    rule = Dedupe.throttle("refresh", 0.2)
    ids: list[str] = []
    with running(q, concurrency=4):
        while len(set(ids)) < 4:  # keeps enqueueing until four periods have passed
            ids.append(refresh.enqueue(dedupe=rule).id)
        poll(lambda: q.counts()["done"] == 4)
    distinct = list(dict.fromkeys(ids))
    added = [int(rk.client.hget(q.keys.job(job), "at")) for job in distinct]
    assert all(b - a >= 200 for a, b in itertools.pairwise(added))
    assert len(ids) > len(distinct)  # the others were dropped


def test_debounce_runs_the_last_one_after_a_quiet_period(rk: Redkit) -> None:
    q = rk.queue("debounce")
    ran: list[int] = []

    @q.task
    def reindex(version: int) -> int:
        ran.append(version)
        return version

    rule = Dedupe.debounce("reindex", 0.3)
    with running(q, concurrency=2):
        jobs = [reindex.enqueue(v, dedupe=rule) for v in range(1, 6)]
        assert len({job.id for job in jobs}) == 1
        assert jobs[0].status() == "delayed"
        assert jobs[0].result(timeout=10) == 5  # the last arguments won
        later = reindex.enqueue(6, dedupe=rule)  # after it ran: a new quiet period
        assert later.id != jobs[0].id
        assert later.result(timeout=10) == 6
    assert ran == [5, 6]


async def test_async_dedupe(ark: AsyncRedkit) -> None:
    q = ark.queue("adedupe")

    @q.task
    async def note(x: int) -> int:
        return x

    first = await note.enqueue(1, dedupe=Dedupe.while_queued("n"))
    again = await note.enqueue(2, dedupe=Dedupe.while_queued("n"))
    assert first.id == again.id
    assert (await q.counts())["waiting"] == 1
