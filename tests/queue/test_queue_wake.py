"""An idle worker: the job that wakes it is claimed behind the wait, with no round trip of
the worker's own between the wake-up and the job's start, and no timer in between."""

from __future__ import annotations

import threading

from redkit import Redkit, ops
from redkit.queue import Worker
from redkit.queue import ops as qops

from .conftest import poll, running


def claims(events: list[ops.Event]) -> list[ops.Event]:
    """The claim calls among ``events`` (takes asking for jobs, not reports only)."""
    return [
        e for e in events
        if e.name == "script queue_take" and isinstance(e.effect, ops.Eval)
        and int(e.effect.args[3]) > 0
    ]  # fmt: skip


def behind_a_wait(claim: ops.Event, events: list[ops.Event]) -> bool:
    return any(type(e.effect) is ops.Block and e.effect.then is claim.effect for e in events)


def test_jobs_for_an_idle_worker_are_claimed_behind_its_wait(rk: Redkit) -> None:
    q = rk.queue("wake")
    events: list[ops.Event] = []
    rk.observe(events.append)

    @q.task
    async def noop(i: int) -> int:
        return i

    with running(q, concurrency=4) as handle:
        worker: Worker = handle.worker
        for i in range(5):
            poll(lambda: worker._blocking)  # idle: it waits on the server
            mark = len(events)
            assert noop.enqueue(i).result(timeout=10) == i
            # every claim since the enqueue rode behind a wait, the first one included: the
            # job came back with the wake-up, and a claim that came back short was not
            # followed by another one asking for nothing
            since = events[mark:]
            assert claims(since), since
            assert all(behind_a_wait(c, since) for c in claims(since)), [e.name for e in since]


def test_a_wait_that_ends_without_a_wake_up_claims_too(rk: Redkit) -> None:
    q = rk.queue("wake")

    @q.task
    def noop() -> None: ...

    job = noop.enqueue()
    rk.client.delete(q.keys.wake)  # no wake-up: the wait times out, or is interrupted
    taken = rk.run(qops.block_take(q.keys, "A", 0.05, q.policy, 10))
    assert [c.member for c in taken.jobs] == [job.id]
    other = noop.enqueue()
    rk.client.delete(q.keys.wake)
    rk.run(qops.interrupt(q.keys, "A"))
    taken = rk.run(qops.block_take(q.keys, "A", 5.0, q.policy, 10))
    assert [c.member for c in taken.jobs] == [other.id]


def test_stopping_an_idle_worker_loses_no_job(rk: Redkit) -> None:
    """A stop ends the wait, and the claim behind it may take a job that arrived just then:
    the stop hands it back (not as a delivery), or it ran; it is never stranded."""
    q = rk.queue("wake")
    ran: list[int] = []

    @q.task
    def note(i: int) -> None:
        ran.append(i)

    for i in range(5):
        with running(q, concurrency=2) as handle:
            poll(lambda: handle.worker._blocking)
            enqueue = threading.Thread(target=note.enqueue, args=(i,))
            enqueue.start()
            handle.stop(grace=5)
            enqueue.join(10)
        counts = q.counts()
        assert counts["active"] == 0
        assert counts["waiting"] + counts["done"] == i + 1
        assert all(info.attempts == 0 for info in q.jobs("waiting"))  # not a delivery
    with running(q, concurrency=2):
        poll(lambda: q.counts()["done"] == 5)
    assert sorted(ran) == list(range(5))
