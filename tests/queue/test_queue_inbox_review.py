"""The inbox under interleavings: a worker about to wait must not miss a job or a wake-up
that another call took in, or a stop or timer that a report cleared, before its wait."""

from __future__ import annotations

import time

from redkit import Redkit, ops
from redkit.queue import ops as qops


def test_a_report_only_take_leaves_a_wake_up_for_the_jobs_it_took_in(rk: Redkit) -> None:
    q = rk.queue("flush")
    keys, policy = q.keys, q.policy
    assert rk.run(qops.take(keys, "idle", policy, 1, ())).jobs == []  # idle: it will wait
    job = q.enqueue("noop")  # the inbox: it would end the idle worker's wait
    # before that wait starts, a busy worker reports (a take that claims nothing)
    rk.run(qops.take(keys, "busy", policy, 0, ()))
    assert rk.client.xlen(keys.inbox) >= 1  # the job it took in left a wake-up
    start = time.monotonic()
    taken = rk.run(qops.block_take(keys, "idle", 3.0, policy, 1))
    assert [c.member for c in taken.jobs] == [qops.member(job.id)]
    assert time.monotonic() - start < 1.5  # woken, not timed out


def test_a_report_keeps_the_interrupt_of_its_workers_next_wait(rk: Redkit) -> None:
    q = rk.queue("own")
    keys, policy = q.keys, q.policy
    assert rk.run(qops.take(keys, "w", policy, 1, ())).jobs == []
    rk.run(qops.interrupt(keys, "w"))  # a stop (or a timer) before the wait is sent
    rk.run(qops.take(keys, "w", policy, 0, ()))  # the worker's report, sent beside the wait
    start = time.monotonic()
    rk.run(qops.block(keys, "w", 3.0))
    assert time.monotonic() - start < 1.5  # the interrupt still ends the wait


def test_a_wait_reads_one_entry_of_a_backlog_not_all_of_it(rk: Redkit) -> None:
    # a paused (or rate limited) queue's workers wait while a backlog fills the inbox: each
    # wait ends at its first entry, and must not carry the whole backlog to the worker
    q = rk.queue("backlog")
    for i in range(50):
        q.enqueue("noop", "x" * 1000, i)
    reply = rk.run(qops.block(q.keys, "w", 1.0))
    entries = [entry for _, stream in (reply.items() if isinstance(reply, dict) else reply)
               for entry in stream]  # fmt: skip
    assert len(entries) == 1


def test_a_take_that_reads_exactly_a_full_batch_of_the_inbox_loses_no_job(rk: Redkit) -> None:
    # a take reads 10,000 entries at the most and trims the inbox after the last one it read
    q = rk.queue("bounds")
    keys, policy = q.keys, q.policy
    pipe = rk.client.pipeline(transaction=False)
    members = [qops.member(f"job-{i}") for i in range(10_002)]
    for m in members:
        add = qops.add(keys, [qops.NewJob(m, "noop", b"[[], {}]", 0, 0)]).effect
        assert isinstance(add, ops.Call)
        pipe.execute_command(*add.args)
    pipe.execute()
    rk.run(qops.take(keys, "w", policy, 0, ()))
    assert rk.client.zcard(keys.wait) == 10_000
    assert rk.client.xlen(keys.inbox) == 2  # the two it did not read, nothing more
    rk.run(qops.take(keys, "w", policy, 0, ()))
    assert rk.client.zrange(keys.wait, 0, -1) == [m.encode() for m in members]
