"""Leases, fencing and the dead-letter set, driven through the worker's own operations."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from redkit import Redkit
from redkit.queue import JobFailedError
from redkit.queue import ops as qops

from .conftest import poll, running


def _take(rk: Redkit, q: object, worker: str, want: int, acks: list[qops.Ack]) -> qops.Taken:
    return rk.run(qops.take(q.keys, worker, q.policy, want, acks))  # type: ignore[attr-defined]


def test_a_re_delivered_job_cannot_be_finished_by_its_old_holder(rk: Redkit) -> None:
    q = rk.queue("fence", lease=0.2)

    @q.task
    def job_fn() -> None: ...

    job = job_fn.enqueue()
    (first,) = _take(rk, q, "A", 1, []).jobs
    assert job.status() == "active"
    # A stops renewing; once its lease ends the next take hands the job to B
    (second,) = poll(lambda: _take(rk, q, "B", 1, []).jobs, timeout=5)
    assert second.member == first.member
    assert second.token > first.token
    assert second.deliveries == 2
    late = qops.Ack(first.member, first.token, "d", rk.serializer.dumps("from A"))
    assert _take(rk, q, "A", 0, [late]).stale == 1
    assert job.status() == "active"  # still B's
    ack = qops.Ack(second.member, second.token, "d", rk.serializer.dumps("from B"))
    assert _take(rk, q, "B", 0, [ack, ack]).stale == 1  # a repeated ack is refused too
    assert job.result() == "from B"


def test_renewal_keeps_a_long_job(rk: Redkit) -> None:
    q = rk.queue("renew", lease=0.6)

    @q.task
    def job_fn() -> None: ...

    job = job_fn.enqueue()
    (held,) = _take(rk, q, "A", 1, []).jobs
    for _ in range(12):  # 1.2 s: twice the lease, renewed every 0.1 s
        assert rk.run(qops.renew(q.keys, "A", q.policy.lease_ms))
        assert _take(rk, q, "B", 1, []).jobs == []
        rk.run(qops.renew(q.keys, "B", q.policy.lease_ms))
        time.sleep(0.1)  # the time that passes is the point here, not a synchronisation
    assert job.status() == "active"
    ack = qops.Ack(held.member, held.token, "d", rk.serializer.dumps(1))
    assert _take(rk, q, "A", 0, [ack]).stale == 0


def test_a_job_that_keeps_killing_workers_is_dead_lettered(rk: Redkit) -> None:
    q = rk.queue("dead", lease=0.1, dead_after=2)

    @q.task
    def poison() -> None: ...

    job = poison.enqueue()
    assert _take(rk, q, "A", 1, []).jobs  # A dies holding it
    poll(lambda: _take(rk, q, "B", 1, []).jobs, timeout=5)  # B dies holding it
    poll(lambda: q.counts()["dead"] == 1 or _take(rk, q, "C", 0, []).jobs, timeout=5)
    assert job.status() == "dead"
    counts = q.counts()
    states = {k: counts[k] for k in ("waiting", "delayed", "active", "done", "failed", "dead")}
    assert states == {"waiting": 0, "delayed": 0, "active": 0, "done": 0, "failed": 0, "dead": 1}
    with pytest.raises(JobFailedError, match="dead after 2 deliveries"):
        job.result()


def test_jobs_of_a_lost_claim_reply_are_handed_back(rk: Redkit) -> None:
    q = rk.queue("lostreply")

    @q.task
    def job_fn(i: int) -> None: ...

    kept, lost = job_fn.enqueue(1), job_fn.enqueue(2)
    claimed = _take(rk, q, "A", 2, []).jobs
    assert [c.deliveries for c in claimed] == [1, 1]
    # the worker only knows it runs the first (the reply naming the second was lost)
    known = [(claimed[0].member, claimed[0].token)]
    assert rk.run(qops.release(q.keys, "A", known)) == 1
    assert kept.status() == "active"
    assert lost.status() == "waiting"
    (again,) = _take(rk, q, "B", 1, []).jobs
    assert again.member == claimed[1].member
    assert again.deliveries == 1  # a hand-back is not a delivery


def test_a_lost_reply_that_reclaimed_a_retried_job_hands_it_back(rk: Redkit) -> None:
    """A retry ack (delay 0) and a claim in one call whose reply is lost: the call may have
    claimed the same job again under a new token; the hand-back must not keep it."""
    q = rk.queue("reclaimed")

    @q.task(retries=3, backoff="fixed", backoff_base=0)
    def job_fn(i: int) -> None: ...

    job = job_fn.enqueue(1)
    (first,) = _take(rk, q, "A", 1, []).jobs
    ack = qops.Ack(first.member, first.token, "r", rk.serializer.dumps({"e": 1}), 0)
    (again,) = _take(rk, q, "A", 1, [ack]).jobs  # the reply the worker never reads
    assert (again.member, again.token) == (first.member, first.token + 1)
    # the worker knows only its pending ack (the old token): the new claim goes back
    assert rk.run(qops.release(q.keys, "A", [(ack.member, ack.token)])) == 1
    assert job.status() == "waiting"
    (third,) = _take(rk, q, "B", 1, [ack]).jobs  # the stale ack changes nothing
    assert third.member == first.member


def test_a_job_claimed_again_by_its_own_worker_keeps_the_new_run(
    rk: Redkit, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker's event loop stalls past the lease; its job is recovered and this same
    worker claims it again while the first run still goes on. The first run finishing must
    not forget the second (its bookkeeping is by fencing token), and only the second
    run's outcome is accepted."""
    q = rk.queue("reclaim", lease=0.3, dead_after=5)
    calls: list[int] = []
    first_done = threading.Event()

    @q.task
    async def slow() -> str:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1.5)  # noqa: ASYNC251 - stalls the loop on purpose: the lease ends
            await asyncio.sleep(0.5)  # still running when the job is claimed again
            first_done.set()
            return "first"
        await asyncio.sleep(1.5)
        return "second"

    job = slow.enqueue()
    member = qops.member(job.id)
    with running(q, concurrency=4) as handle:
        poll(lambda: calls, timeout=10)
        # another worker's claim call recovers the job while this worker's loop is stuck
        poll(lambda: _take(rk, q, "other", 0, []) and job.status() == "waiting", timeout=10)
        assert first_done.wait(20)
        worker = handle.worker
        poll(lambda: worker.processed >= 1, timeout=10)  # the first run has ended
        assert len(calls) == 2, "the same worker claimed the job again"
        assert member in worker._running  # the first run's end kept the second's entry
        assert worker._tokens[member] == 2
        assert job.result(timeout=20) == "second"
        poll(lambda: not worker._running, timeout=10)
    assert any("refused" in r.getMessage() for r in caplog.records)  # run 1's stale report


def test_a_cancelled_job_whose_worker_dies_is_cancelled_not_dead_lettered(rk: Redkit) -> None:
    """A running job's cancellation was requested, then its worker died on its last
    allowed death: the job ends cancelled (as the request asked), not dead-lettered, so
    that a later retry() cannot bring it back only to have the claim cancel it."""
    q = rk.queue("cxdead", lease=0.1, dead_after=1)

    @q.task
    def job_fn() -> None: ...

    job = job_fn.enqueue()
    assert _take(rk, q, "A", 1, []).jobs  # A dies holding it
    assert job.cancel()  # requested: A never hears of it
    poll(lambda: _take(rk, q, "B", 0, []) and job.status() != "active", timeout=5)
    assert job.status() == "cancelled"
    assert q.counts()["dead"] == 0
    with pytest.raises(JobFailedError, match="cancelled"):
        job.result()


def test_a_job_a_failed_over_server_still_leases_to_its_worker_is_handed_back(
    standalone_url: str, prefix: str
) -> None:
    """The server fails over to a replica that missed a worker's report of a finished job
    (or restarts from an older snapshot): the job is active again, leased to that worker,
    which no longer runs it and renews its lease all the same. Only the worker's lease
    loop sees the connections drop (its claim loop waits for a slot); the claim loop must
    still hand the job back, or it stays active for as long as the worker lives."""
    rk = Redkit(standalone_url, prefix=prefix)
    q = rk.queue("failover", lease=1.0)
    gate = threading.Event()
    runs: list[str] = []

    @q.task
    def quick(tag: str) -> str:
        runs.append(tag)
        return tag

    @q.task
    def slow() -> None:
        gate.wait(20)

    first = quick.enqueue("a")
    assert first.status() == "waiting"  # taken in from the inbox: its hash exists
    key = q.keys.job(qops.member(first.id))
    unreported = rk.client.dump(key)  # the job as the replica holds it
    before = {entry["id"] for entry in rk.client.client_list()}
    try:
        with running(q, concurrency=1) as handle:
            assert first.result(timeout=10) == "a"
            held = slow.enqueue()
            poll(lambda: held.status() == "active")  # the claim loop waits for a slot
            wid, member = handle.worker.id, qops.member(first.id)
            rk.client.restore(key, 0, unreported, replace=True)
            rk.client.hset(key, mapping={"st": "active", "wk": wid, "tk": 1, "n": 1})
            rk.client.zrem(q.keys.done, member)
            rk.client.sadd(q.keys.worker(wid), member)
            rk.client.hincrby(q.keys.group.key("gactive"), "*", 1)
            own = rk.client.client_id()
            for entry in rk.client.client_list():  # the failover: the worker's links drop
                if entry["id"] not in before and int(entry["id"]) != own:
                    rk.client.execute_command("CLIENT", "KILL", "ID", entry["id"])
            gate.set()
            poll(lambda: held.status() == "done")
            poll(lambda: first.status() != "active", timeout=5)  # well past its lease
            assert first.result(timeout=10) == "a"
        assert runs == ["a", "a"]  # run again: its outcome was lost with the failover
    finally:
        rk.close()
