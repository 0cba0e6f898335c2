"""Operator actions beside listing and purging: workers, one job's detail, delete, promote,
and a queue's throughput and latency."""

from __future__ import annotations

import threading

from redkit import AsyncRedkit, Redkit
from redkit.queue import admin

from .conftest import poll, running


def test_detail_delete_and_promote(rk: Redkit) -> None:
    q = rk.queue("operator")
    jobs = [q.enqueue("send", i, job_id=f"order:{i}") for i in range(2)]
    later = q.enqueue("send", 9, job_id="later", delay=3600)

    info = jobs[0].info()
    assert info is not None
    assert (info.id, info.state, info.task, info.attempts) == ("order:0", "waiting", "send", 0)
    assert (info.args, info.kwargs) == ([0], {})
    delayed = later.info()
    assert delayed is not None
    assert delayed.at is not None
    assert delayed.at > delayed.enqueued_at  # when it is due
    assert q.job("missing").info() is None

    assert later.promote()
    assert later.status() == "waiting"
    assert not later.promote()  # no longer delayed
    assert jobs[1].delete()
    assert jobs[1].info() is None
    assert not jobs[1].delete()
    assert q.counts()["waiting"] == 2


def test_workers_active_jobs_and_stats(rk: Redkit) -> None:
    q = rk.queue("operator-workers")
    release = threading.Event()

    @q.task
    def hold() -> str:
        release.wait(10)
        return "ok"

    @q.task
    def boom() -> None:
        raise ValueError("no")

    job = hold.enqueue(job_id="held")
    failed = boom.enqueue()
    with running(q, concurrency=2) as worker:
        seen = poll(lambda: [w for w in q.workers() if w.jobs == ["held"]])
        assert seen[0].id == worker.worker.id
        assert seen[0].alive
        assert job.delete() is False  # a worker holds it
        poll(lambda: failed.status() == "failed")
        stats = rk.run(admin.stats(q.keys))
        assert stats.counts["active"] == 1
        assert stats.workers == 1
        detail = rk.run(admin.detail(q.keys, "held"))
        assert detail is not None
        assert detail.worker == worker.worker.id
        release.set()
        assert job.result(timeout=10) == "ok"
    assert q.workers() == []
    stats = rk.run(admin.stats(q.keys))
    assert (stats.counts["done"], stats.counts["failed"], stats.counts["active"]) == (1, 1, 0)
    assert stats.done_last_minute == 1
    assert stats.failed_last_minute == 1
    assert stats.latency_ms["p50"] is not None
    assert stats.latency_ms["p50"] >= 0
    done = rk.run(admin.detail(q.keys, "held"))
    assert done is not None
    assert rk.serializer.loads(done.result) == "ok"


async def test_async_operator(ark: AsyncRedkit) -> None:
    q = ark.queue("operator-async")
    job = await q.enqueue("send", job_id="a b", delay=3600)
    info = await job.info()
    assert info is not None
    assert (info.id, info.state) == ("a b", "delayed")  # the id as given, unescaped
    assert await job.promote()
    assert await q.workers() == []
    assert await job.delete()
    stats = await ark.run(admin.stats(q.keys))
    assert stats.latency_ms == {"p50": None, "p90": None, "p99": None}
