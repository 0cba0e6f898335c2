"""What admin tools read and do through the public API: counts, jobs(), purge()."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError
from redkit.queue import JobInfo
from redkit.queue import ops as qops


def _fail_all(rk: Redkit, name: str, count: int) -> None:
    q = rk.queue(name)
    taken = rk.run(qops.take(q.keys, "w1", q.policy, count, []))
    error = rk.serializer.dumps({"type": "KeyError", "message": "'x'", "attempts": 1})
    acks = [qops.Ack(j.member, j.token, "f", error) for j in taken.jobs]
    rk.run(qops.take(q.keys, "w1", q.policy, 0, acks))


def test_jobs_lists_each_state_with_its_details(rk: Redkit) -> None:
    q = rk.queue("admin")
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    q.enqueue("send", "a", job_id="odd id/1")
    _fail_all(rk, "admin", 1)
    q.enqueue_many("send", [("b",), ("c",), {"to": "d"}])
    q.enqueue("send", "later", delay=60)
    rk.run(qops.take(q.keys, "w2", q.policy, 1, []))  # claims "b"

    failed = q.jobs()  # failed by default
    assert [j.id for j in failed] == ["odd id/1"]
    job = failed[0]
    assert isinstance(job, JobInfo)
    assert (job.task, job.state, job.attempts, job.deaths) == ("send", "failed", 1, 0)
    assert job.args == ["a"]
    assert job.kwargs == {}
    assert job.error == {"type": "KeyError", "message": "'x'", "attempts": 1}
    assert job.enqueued_at >= before
    assert job.at is not None
    assert job.enqueued_at <= job.at

    assert [(j.args, j.kwargs) for j in q.jobs("waiting")] == [(["c"], {}), ([], {"to": "d"})]
    assert [j.args for j in q.jobs("active")] == [["b"]]
    delayed = q.jobs("delayed")
    assert delayed[0].at is not None
    assert delayed[0].at - delayed[0].enqueued_at == timedelta(seconds=60)
    assert q.jobs("done") == []
    assert [j.args for j in q.jobs("waiting", limit=1, offset=1)] == [[]]

    with pytest.raises(ConfigError, match="state"):
        q.jobs("lost")
    with pytest.raises(ConfigError, match="limit"):
        q.jobs("waiting", limit=0)


def test_counts_include_running_jobs_workers_and_the_total(rk: Redkit) -> None:
    q = rk.queue("admin-counts")
    q.enqueue_many("send", [(i,) for i in range(4)])
    rk.run(qops.take(q.keys, "w1", q.policy, 1, []))
    rk.run(qops.take(q.keys, "w2", q.policy, 2, []))
    assert q.counts() == {
        "waiting": 1, "delayed": 0, "active": 3, "done": 0, "failed": 0, "dead": 0,
        "workers": 2, "enqueued": 4,
    }  # fmt: skip


def test_purge_deletes_by_state_and_never_running_jobs(rk: Redkit) -> None:
    q = rk.queue("admin-purge")
    q.enqueue_many("send", [(i,) for i in range(5)])
    q.enqueue("send", 9, delay=60, job_id="later")
    rk.run(qops.take(q.keys, "w1", q.policy, 1, []))
    _fail_all(rk, "admin-purge", 1)
    assert q.purge("failed") == 1
    assert q.counts()["failed"] == 0
    assert q.purge() == 4  # 3 waiting + 1 delayed
    assert q.counts()["active"] == 1
    assert q.job("later").status() is None
    assert q.enqueue("send", 9, job_id="later").status() == "waiting"  # the id is free
    with pytest.raises(ConfigError, match="stop the workers"):
        q.purge("active")


async def test_async_queue_lists_and_purges(ark: AsyncRedkit) -> None:
    q = ark.queue("admin-async")
    await q.enqueue_many("send", [(i,) for i in range(3)])
    assert [j.args for j in await q.jobs("waiting")] == [[0], [1], [2]]
    assert (await q.counts())["enqueued"] == 3
    assert await q.purge("waiting") == 3
    assert await q.jobs("waiting") == []
