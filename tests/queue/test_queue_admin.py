"""Operator reads and actions: jobs by state, workers alive, job detail, delete, promote, purge."""

from __future__ import annotations

import threading

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError
from redkit.queue import admin

from .conftest import poll, running


def test_jobs_by_state_detail_delete_promote_purge(rk: Redkit) -> None:
    q = rk.queue("admin")
    jobs = [q.enqueue("send", i, job_id=f"order:{i}") for i in range(3)]
    later = q.enqueue("send", 9, job_id="later", delay=3600)

    listed = q.jobs("waiting")
    assert [j.id for j in listed] == ["order:0", "order:1", "order:2"]  # claim order
    assert [j.id for j in q.jobs("waiting", start=1, count=1)] == ["order:1"]
    assert [j.id for j in q.jobs("delayed")] == ["later"]
    info = jobs[0].info()
    assert info is not None
    assert (info.state, info.task, info.deliveries) == ("waiting", "send", 0)
    assert rk.serializer.loads(info.payload) == [[0], {}]
    assert info.enqueued_ms
    assert info.finished_ms is None
    assert q.job("missing").info() is None

    assert later.promote()
    assert later.status() == "waiting"
    assert not later.promote()  # no longer delayed
    assert jobs[1].delete()
    assert jobs[1].info() is None
    assert not jobs[1].delete()
    assert q.counts()["waiting"] == 3
    assert q.purge("waiting") == 3
    assert q.counts()["waiting"] == 0
    assert jobs[0].status() is None
    with pytest.raises(ConfigError, match="state"):
        q.purge("active")
    with pytest.raises(ConfigError, match="state"):
        q.jobs("running")


def test_workers_and_active_jobs_are_listed(rk: Redkit) -> None:
    q = rk.queue("admin-workers")
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
        assert [j.id for j in q.jobs("active")] == ["held"]
        assert job.delete() is False  # a worker holds it
        stats = rk.run(admin.stats(q.keys))
        assert stats.counts["active"] == 1
        assert stats.workers == 1
        poll(lambda: failed.status() == "failed")
        (info,) = q.jobs("failed")
        assert info.error
        assert b"ValueError" in info.error
        assert info.finished_ms
        release.set()
        assert job.result(timeout=10) == "ok"
    assert q.workers() == []
    assert [j.id for j in q.jobs("done")] == ["held"]
    stats = rk.run(admin.stats(q.keys))
    assert stats.counts == {
        "waiting": 0, "delayed": 0, "done": 1, "failed": 1, "dead": 0, "active": 0
    }  # fmt: skip
    assert stats.done_last_minute == 1
    assert stats.failed_last_minute == 1
    assert stats.latency_ms["p50"] is not None
    assert stats.latency_ms["p50"] >= 0
    assert q.purge("failed") == 1
    assert q.counts()["failed"] == 0


async def test_async_admin(ark: AsyncRedkit) -> None:
    q = ark.queue("admin-async")
    job = await q.enqueue("send", job_id="a b", delay=3600)
    assert [j.id for j in await q.jobs("delayed")] == ["a b"]  # the id as given, unescaped
    info = await job.info()
    assert info is not None
    assert info.state == "delayed"
    assert await job.promote()
    assert [j.id for j in await q.jobs("waiting")] == ["a b"]
    assert await q.workers() == []
    assert await job.delete()
    assert await q.purge("done") == 0
    stats = await ark.run(admin.stats(q.keys))
    assert stats.latency_ms == {"p50": None, "p90": None, "p99": None}
