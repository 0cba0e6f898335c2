"""Flows with real workers: a parent runs after its children, with their outcomes."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError
from redkit.queue import JobFailedError, current_job
from redkit.queue import ops as qops

from .conftest import LostReply, running


def _queue(rk: Redkit, name: str) -> Any:
    q = rk.queue(name)
    gate = threading.Event()
    ran: list[str] = []

    @q.task
    def part(x: int) -> int:
        if x < 0:
            raise ValueError(f"bad part {x}")
        if x == 99:
            gate.wait(10)
        return x * 10

    @q.task
    def total() -> dict[str, Any]:
        job = current_job()
        ran.append(job.id)
        errors = {k: v["type"] for k, v in job.failed_children.items()}
        return {"sum": sum(job.children.values()), "ok": sorted(job.children), "errors": errors}

    return q, gate, ran


def test_a_parent_runs_after_its_children_with_their_results(rk: Redkit) -> None:
    q, _, _ = _queue(rk, "flow")
    parent, children = q.enqueue_flow(("total", ()), [("part", (1,)), ("part", {"x": 2})])
    assert parent.status() == "blocked"
    with running(q, concurrency=4):
        result = parent.result(timeout=10)
    assert result == {"sum": 30, "ok": sorted(c.id for c in children), "errors": {}}
    with pytest.raises(ConfigError, match="on_child_failure"):
        q.enqueue_flow(("total", ()), [], on_child_failure="retry")
    alone, _ = q.enqueue_flow(("total", ()), [], job_id="alone")
    assert alone.status() == "waiting"  # no children: ready at once
    with pytest.raises(ConfigError, match="exists"):
        q.enqueue_flow(("total", ()), [], job_id="alone")


def test_failure_policies(rk: Redkit) -> None:
    q, gate, ran = _queue(rk, "flowfail")
    failing, _ = q.enqueue_flow(("total", ()), [("part", (1,)), ("part", (-1,))])
    ignoring, kids = q.enqueue_flow(
        ("total", ()), [("part", (1,)), ("part", (-1,))], on_child_failure="ignore"
    )
    going_on, _ = q.enqueue_flow(
        ("total", ()), [("part", (99,)), ("part", (-2,))], on_child_failure="continue"
    )
    with running(q, concurrency=4):
        with pytest.raises(JobFailedError, match="bad part -1"):
            failing.result(timeout=10)
        assert ignoring.result(timeout=10) == {
            "sum": 10, "ok": [kids[0].id], "errors": {kids[1].id: "ValueError"},
        }  # fmt: skip
        # "continue": the parent ran at the first failure, while a child still runs
        early = going_on.result(timeout=10)
        assert early["errors"]
        assert early["sum"] == 0
        gate.set()
    assert failing.id not in ran  # a failed child failed the parent: it never ran


def test_a_retried_child_is_counted_once(rk: Redkit) -> None:
    """With "ignore", a child that failed for good counts as ended; retried by hand, its
    new outcome replaces the old one: the parent still waits for its other child."""
    q, _, _ = _queue(rk, "flowretry")
    parent, (first, second) = q.enqueue_flow(
        ("total", ()), [("part", (1,)), ("part", (2,))], on_child_failure="ignore"
    )

    def take(want: int, *acks: qops.Ack) -> list[qops.Claimed]:
        return rk.run(qops.take(q.keys, "A", q.policy, want, acks)).jobs

    running = {job.member: job for job in take(2)}
    failed = running[first.id]
    take(0, qops.Ack(failed.member, failed.token, "f", rk.serializer.dumps({"e": 1})))
    assert first.retry()
    (again,) = take(1)
    take(0, qops.Ack(again.member, again.token, "d", rk.serializer.dumps(10)))
    assert second.status() == "active"
    assert parent.status() == "blocked"  # not before its second child has ended
    done = running[second.id]
    (ready,) = take(1, qops.Ack(done.member, done.token, "d", rk.serializer.dumps(20)))
    assert ready.member == parent.id
    assert dict(ready.children) == {
        f"d:{first.id}": rk.serializer.dumps(10),
        f"d:{second.id}": rk.serializer.dumps(20),
    }


def test_a_flow_whose_reply_was_lost_is_added_once(standalone_url: str, prefix: str) -> None:
    """The server adds a flow but its reply is lost: the client sends the call again on a
    new connection, and that second run must report the flow added (by the first), not
    refuse it as existing."""
    proxy = LostReply(standalone_url, b"EVAL")
    rk = Redkit(proxy.url, prefix=prefix)
    try:
        q, _, _ = _queue(rk, "flowlost")
        parent, children = q.enqueue_flow(("total", ()), [("part", (1,)), ("part", (2,))])
        assert proxy.dropped == 1
        assert parent.status() == "blocked"
        assert [c.status() for c in children] == ["waiting", "waiting"]
        assert q.counts()["waiting"] == 2
    finally:
        rk.close()
        proxy.close()


def test_a_blocked_parent_can_be_cancelled(rk: Redkit) -> None:
    q, _, ran = _queue(rk, "flowcancel")
    parent, children = q.enqueue_flow(("total", ()), [("part", (1,))])
    assert parent.cancel()
    assert parent.status() == "cancelled"
    with running(q, concurrency=2):
        assert children[0].result(timeout=10) == 10
    assert ran == []


async def test_async_flow(ark: AsyncRedkit) -> None:
    q = ark.queue("aflow")

    @q.task
    async def leaf(x: int) -> int:
        return x

    @q.task
    async def root() -> int:
        return sum(current_job().children.values())

    parent, children = await q.enqueue_flow((root, ()), [(leaf, (i,)) for i in range(5)])
    assert len(children) == 5
    with running(q, concurrency=3):
        assert await parent.result(timeout=10) == 10
