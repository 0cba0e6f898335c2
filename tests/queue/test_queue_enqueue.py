"""The add script (``queue_add``): what one enqueue sends and stores."""

from __future__ import annotations

from typing import Any

import pytest
from tests.flavours import poll
from tests.queue.conftest import running

from redkit import Redkit, ops
from redkit.errors import ConfigError
from redkit.queue import ops as qops


def test_a_plain_enqueue_is_one_native_command(rk: Redkit) -> None:
    # the producer's cost grows with every argument (see docs/queue.md, "What one
    # enqueue costs the producer")
    q = rk.queue("small")

    @q.task
    def noop(i: int) -> None: ...

    sent: list[Any] = []
    rk.observe(lambda event: sent.append(event.effect))
    job = noop.enqueue(1)
    (effect,) = sent
    assert isinstance(effect, ops.Call)
    assert effect.args == ("XADD", q.keys.inbox, "*", job.id, "noop", "p", b"[[1],{}]")
    mine = noop.enqueue(2, job_id="mine")  # an id of one's own too: a duplicate is skipped
    assert sent[1].args == ("XADD", q.keys.inbox, "*", "mine", "noop", "p", b"[[2],{}]")
    assert rk.client.hgetall(q.keys.job(job.id)) == {}  # in the inbox, until taken in
    assert [j.id for j in q.jobs("waiting")] == [job.id, mine.id]
    fields = rk.client.hgetall(q.keys.job(job.id))
    assert (fields[b"t"], fields[b"st"]) == (b"noop", b"waiting")
    sent.clear()
    # with a priority or a delay, the add script: one key and three arguments a job, plus
    # one for what the jobs share
    later = noop.enqueue(3, delay=1.5, priority=-2)
    (effect,) = sent
    assert isinstance(effect, ops.Eval)
    assert effect.keys == (q.keys.wait,)
    assert list(effect.args) == ["-2 1500 0", later.id, "noop", b"[[3],{}]"]
    sent.clear()
    urgent = noop.enqueue(4, priority=-1)
    assert list(sent[0].args) == ["-1 0 0", urgent.id, "noop", b"[[4],{}]"]


def test_a_new_job_counts_nothing_yet(rk: Redkit) -> None:
    q = rk.queue("fresh")

    @q.task
    def noop(i: int) -> None: ...

    job = noop.enqueue(1)
    info = job.info()  # takes the job in from the inbox
    assert info is not None
    fields = rk.client.hgetall(q.keys.job(job.id))
    assert fields[b"st"] == b"waiting"
    assert not {b"n", b"tk", b"c"} & set(fields)  # the counters start absent ...
    assert (info.state, info.attempts, info.deaths) == ("waiting", 0, 0)  # ... read as 0
    assert [j.attempts for j in q.jobs("waiting")] == [0]
    with running(q, concurrency=1):
        job.result(timeout=10)
    info = job.info()
    assert info is not None
    assert (info.state, info.attempts, info.deaths) == ("done", 1, 0)


def test_enqueued_counts_the_jobs_added_not_the_duplicates(rk: Redkit) -> None:
    q = rk.queue("seq")

    @q.task
    def noop(i: int) -> None: ...

    noop.enqueue(1, job_id="a")
    noop.enqueue(2, job_id="a")
    noop.enqueue_many([(3,), (4,)], job_id="b")
    noop.enqueue_many([(5,), (6,)])
    counts = q.counts()
    assert (counts["waiting"], counts["enqueued"]) == (4, 4)


def test_the_jobs_of_one_call_share_priority_and_delay(rk: Redkit) -> None:
    q = rk.queue("shared")
    order: list[int] = []

    @q.task
    def note(i: int) -> None:
        order.append(i)

    note.enqueue_many([(1,), (2,)], priority=3)
    note.enqueue_many([(3,), (4,)], priority=-1)
    late = note.enqueue_many([(5,), (6,)], priority=-2, delay=0.3)
    assert q.counts()["delayed"] == 2
    with running(q, concurrency=1):
        poll(lambda: len(order) == 6)
    assert order[:4] == [3, 4, 1, 2]  # by priority, then in the order added
    assert sorted(order[4:]) == [5, 6]
    assert all(job.status() == "done" for job in late)
    keys = q.keys
    mixed = [qops.NewJob("x", "note", b"[[7],{}]", 0, 0), qops.NewJob("y", "note", b"", 1, 0)]
    with pytest.raises(ConfigError, match="share their priority and delay"):
        qops.add(keys, mixed)


def test_a_delayed_enqueue_wakes_idle_workers_only_for_the_next_due(rk: Redkit) -> None:
    q = rk.queue("wakes")

    @q.task
    def noop(i: int) -> None: ...

    wake = q.keys.inbox
    noop.enqueue(1, delay=60)
    assert rk.client.xlen(wake) == 1  # the first delayed job: a worker must wait less
    rk.client.delete(wake)
    noop.enqueue(2, delay=120)
    assert rk.client.xlen(wake) == 0  # due after the first: no wake-up needed
    noop.enqueue(3, delay=30)
    assert rk.client.xlen(wake) == 1


def test_an_add_sent_again_after_its_job_ran_adds_nothing(rk: Redkit) -> None:
    # redis-py resends a command whose reply timed out; a worker may have run the job by then
    q = rk.queue("resent")

    @q.task
    def double(x: int) -> int:
        return 2 * x

    sent: list[Any] = []
    rk.observe(lambda event: sent.append(event.effect))
    job = double.enqueue(21)
    (add,) = sent
    with running(q, concurrency=1):
        assert job.result(timeout=10) == 42
    rk.run(ops.Once(add, lambda reply: reply))  # its entry is skipped when taken in
    assert job.status() == "done"
    counts = q.counts()
    assert (counts["waiting"], counts["done"], counts["enqueued"]) == (0, 1, 1)
