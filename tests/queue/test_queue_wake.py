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

    def ready_without_a_wake_up() -> str:
        job = noop.enqueue()
        q.counts()  # takes the job in from the inbox (and leaves a wake-up there)
        rk.client.delete(q.keys.inbox)  # no wake-up: the wait times out, or is interrupted
        return job.id

    job = ready_without_a_wake_up()
    taken = rk.run(qops.block_take(q.keys, "A", 0.05, q.policy, 10))
    assert [c.member for c in taken.jobs] == [job]
    other = ready_without_a_wake_up()
    rk.run(qops.interrupt(q.keys, "A"))
    taken = rk.run(qops.block_take(q.keys, "A", 5.0, q.policy, 10))
    assert [c.member for c in taken.jobs] == [other]


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


def test_a_stop_hands_back_at_once_what_the_ended_wait_claimed(rk: Redkit) -> None:
    """The claim behind the wait that a stop ends may take a job that was ready without
    waking the worker: it goes back at once, not after the grace the running jobs get."""
    q = rk.queue("wake", events=100)
    started, release = threading.Event(), threading.Event()

    @q.task
    def hold() -> None:
        started.set()
        release.wait(30)

    @q.task
    def note() -> None: ...

    hold.enqueue()
    with running(q, concurrency=2) as handle:
        assert started.wait(10)
        poll(lambda: handle.worker._blocking)  # one slot free: it waits on the server
        # a job ready without a wake-up: added, and the wake-up item gone in the same step
        add = qops.add(q.keys, [qops.NewJob("quiet", "note", b"[[],{}]", 0, 0)], 100)
        pipe = rk.client.pipeline(transaction=True)
        pipe.execute_command(*add.effect.command)
        pipe.delete(q.keys.inbox)
        pipe.execute()
        assert q.job("quiet").status() == "waiting"
        stopper = threading.Thread(target=handle.stop, kwargs={"grace": 30})
        stopper.start()
        try:
            # the stop ends the wait, the claim behind it takes the job ...
            poll(lambda: any(e.event == "active" and e.job_id == "quiet" for e in q.events()))
            # ... and it is back while the held job still runs (its grace: 30 s)
            poll(lambda: q.job("quiet").status() == "waiting", timeout=15)
            assert q.counts()["active"] == 1
        finally:
            release.set()
            stopper.join(30)
    info = q.job("quiet").info()
    assert info is not None
    assert info.attempts == 0  # not a delivery
