"""What admin tools read and do through the public API: counts, jobs(), purge()."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from redkit import AsyncRedkit, Redkit, ops
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
        "blocked": 0, "workers": 2, "enqueued": 4,
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


def _ring(rk: Redkit, q: Any) -> list[str]:
    """The groups the claim rotates through (the queue's ring)."""
    raw = rk.run(ops.Once(ops.Call("LRANGE", q.keys.group.key("groups"), 0, -1), list))
    return sorted(x.decode() if isinstance(x, bytes) else x for x in raw)


def test_grouped_jobs_and_blocked_parents_are_counted_listed_and_purged(rk: Redkit) -> None:
    q = rk.queue("admin-grouped")
    q.enqueue("send", "u1", job_id="u1")
    q.enqueue("send", "a1", job_id="a1", group="a")
    q.enqueue("send", "b1", job_id="b1", group="b")
    q.enqueue("send", "a2", job_id="a2", group="a")
    q.enqueue("send", "u2", job_id="u2")
    q.enqueue("send", "p", job_id="first", priority=-1, group="b")  # a lower score: first
    parent, kids = q.enqueue_flow(("total", ()), [("part", (1,))], job_id="parent")
    counts = q.counts()
    assert (counts["waiting"], counts["blocked"]) == (7, 1)  # the child waits too
    waiting = [j.id for j in q.jobs("waiting")]
    assert waiting == ["first", "u1", "a1", "b1", "a2", "u2", kids[0].id]
    assert [j.id for j in q.jobs("waiting", limit=3, offset=2)] == waiting[2:5]
    assert {j.state for j in q.jobs("waiting")} == {"waiting"}
    blocked = q.jobs("blocked")
    assert [(j.id, j.state, j.task) for j in blocked] == [("parent", "blocked", "total")]

    assert parent.cancel()  # leaves the blocked set
    assert q.counts()["blocked"] == 0
    assert q.jobs("blocked") == []
    other, _ = q.enqueue_flow(("total", ()), [("part", (2,))], job_id="other")
    assert q.purge("blocked") == 1
    assert other.status() is None
    assert q.counts()["blocked"] == 0

    # one purge call deleting part of the grouped jobs: group b's jobs go, group a keeps one
    purge_once = ops.Eval(qops.PURGE, (q.keys.wait,), (q.keys.base, 6, "waiting"))
    assert rk.run(ops.Once(purge_once, int)) == 6  # 4 ungrouped, then "first" and "a1"
    assert [j.id for j in q.jobs("waiting")] == ["b1", "a2"]
    assert q.counts()["waiting"] == 2
    assert _ring(rk, q) == ["a", "b"]
    assert q.purge("waiting") == 2
    assert q.counts()["waiting"] == 0
    assert _ring(rk, q) == []  # no group is left in the rotation
    # claims still take turns between groups afterwards
    q.enqueue_many("send", [("a",)] * 3, group="a")
    q.enqueue_many("send", [("c",)] * 3, group="c")
    taken = rk.run(qops.take(q.keys, "w1", q.policy, 4, []))
    assert sorted(rk.serializer.loads(j.payload)[0][0] for j in taken.jobs) == [
        "a", "a", "c", "c",
    ]  # fmt: skip
    assert q.purge("waiting") == 2
    assert _ring(rk, q) == []
    # cancelling or deleting a group's last waiting job takes the group out of the ring
    cancelled = q.enqueue("send", "x", group="x")
    deleted = q.enqueue("send", "y", group="y")
    assert _ring(rk, q) == ["x", "y"]
    assert cancelled.cancel()
    assert deleted.delete()
    assert _ring(rk, q) == []


def test_a_flow_parent_leaves_the_blocked_state_when_ready_or_failed(rk: Redkit) -> None:
    q = rk.queue("admin-flow")
    ok, _ = q.enqueue_flow(("total", ()), [("part", (1,))], job_id="ok")
    failing, _ = q.enqueue_flow(("total", ()), [("part", (2,))], job_id="failing")
    assert [j.id for j in q.jobs("blocked")] == ["ok", "failing"]
    taken = rk.run(qops.take(q.keys, "w1", q.policy, 2, []))
    by_parent = {rk.serializer.loads(j.payload)[0][0]: j for j in taken.jobs}
    error = rk.serializer.dumps({"type": "ValueError", "message": "no", "attempts": 1})
    acks = [
        qops.Ack(by_parent[1].member, by_parent[1].token, "d", rk.serializer.dumps(10)),
        qops.Ack(by_parent[2].member, by_parent[2].token, "f", error),
    ]
    rk.run(qops.take(q.keys, "w1", q.policy, 0, acks))
    assert (ok.status(), failing.status()) == ("waiting", "failed")
    assert q.counts()["blocked"] == 0
    assert [j.id for j in q.jobs("waiting")] == ["ok"]
    deleted, _ = q.enqueue_flow(("total", ()), [("part", (3,))], job_id="deleted")
    assert deleted.delete()
    assert q.counts()["blocked"] == 0


async def test_async_counts_lists_and_purges_grouped_and_blocked(ark: AsyncRedkit) -> None:
    q = ark.queue("admin-async-grouped")
    await q.enqueue_many("send", [(i,) for i in range(3)], group="g")
    await q.enqueue_flow(("total", ()), [("part", (1,))])
    counts = await q.counts()
    assert (counts["waiting"], counts["blocked"]) == (4, 1)
    assert len(await q.jobs("waiting")) == 4
    assert len(await q.jobs("blocked")) == 1
    assert await q.purge() == 5
    counts = await q.counts()
    assert (counts["waiting"], counts["blocked"]) == (0, 0)
