"""The inbox: a plain job is one XADD; the scripts take the inbox's jobs in, in order,
before they claim, count, look up, cancel or add."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from tests.flavours import poll
from tests.queue.conftest import running

from redkit import Redkit, ops
from redkit.queue import Dedupe


def _xadd(rk: Redkit, q: Any, entries: list[tuple[str, str, str]]) -> None:
    """Add (id, task, payload) entries to ``q``'s inbox as a plain enqueue does, in one
    round trip (faster than that many enqueues)."""
    pipe = rk.client.pipeline(transaction=False)
    for job_id, task, payload in entries:
        pipe.xadd(q.keys.inbox, {job_id: task, "p": payload})
    pipe.execute()


def test_jobs_keep_the_order_they_were_added_in_across_both_paths(rk: Redkit) -> None:
    q = rk.queue("order")
    ran: list[str] = []

    @q.task
    def note(name: str) -> None:
        ran.append(name)

    names = ["plain-1", "unique", "plain-2", "own-id", "script", "plain-3"]
    note.enqueue("plain-1")  # the inbox
    note.enqueue("unique", dedupe=Dedupe.while_queued("u"))  # a script: takes the inbox in first
    note.enqueue("plain-2")
    note.enqueue("own-id", job_id="own")  # the inbox too
    note.enqueue_many([("script",)])  # one job in a bulk call: the inbox
    note.enqueue("plain-3")
    listed = [info.id for info in q.jobs("waiting", limit=10)]
    assert len(listed) == len(names)
    assert listed[3] == "own"
    with running(q, concurrency=1):
        poll(lambda: len(ran) == len(names))
    assert ran == names


def test_a_job_in_the_inbox_is_found_cancelled_and_deleted_by_id(rk: Redkit) -> None:
    q = rk.queue("lookups")
    ran: list[int] = []

    @q.task
    def note(i: int) -> None:
        ran.append(i)

    first, second, third = (note.enqueue(i) for i in (1, 2, 3))
    assert rk.client.xlen(q.keys.inbox) == 3  # none taken in yet
    info = q.job(first.id).info()  # the lookup takes them in
    assert info is not None
    assert (info.state, info.task) == ("waiting", "note")
    assert rk.client.exists(q.keys.job(third.id)) == 1
    fourth, fifth = note.enqueue(4), note.enqueue(5)
    assert fourth.cancel()
    assert fourth.status() == "cancelled"
    assert fifth.delete()
    assert fifth.status() is None
    with running(q, concurrency=2):
        assert second.result(timeout=10) is None
        poll(lambda: q.counts()["done"] == 3)
    assert sorted(ran) == [1, 2, 3]


def test_an_xadd_sent_twice_adds_one_job(rk: Redkit) -> None:
    # redis-py resends a command whose reply was lost: the second entry is skipped
    q = rk.queue("twice")

    @q.task
    def noop(i: int) -> None: ...

    sent: list[Any] = []
    rk.observe(lambda event: sent.append(event.effect))
    job = noop.enqueue(1)
    (add,) = sent
    rk.run(ops.Once(add, lambda reply: reply))
    assert rk.client.xlen(q.keys.inbox) == 2
    counts = q.counts()
    assert (counts["waiting"], counts["enqueued"]) == (1, 1)
    assert [info.id for info in q.jobs("waiting")] == [job.id]


def test_a_large_inbox_is_taken_in_whole_and_in_order(rk: Redkit) -> None:
    q = rk.queue("large")
    seen: list[int] = []

    @q.task
    async def note(i: int) -> None:
        seen.append(i)

    total = 10_500  # more than one call takes in (10,000)

    def fill(stem: str) -> list[str]:
        ids = [f"{stem}{i:05d}" for i in range(total)]
        entries = [(job_id, "note", f"[[{i}],{{}}]") for i, job_id in enumerate(ids)]
        _xadd(rk, q, [*entries, (ids[7], "note", "[[-1],{}]")])  # a duplicate id: skipped
        return ids

    ids = fill("a")  # a reader takes them all in at once
    counts = q.counts()
    assert (counts["waiting"], counts["enqueued"]) == (total, total)
    assert [info.id for info in q.jobs("waiting", limit=3)] == ids[:3]
    with running(q, concurrency=50):
        poll(lambda: len(seen) == total, timeout=30)
    assert seen == list(range(total))  # one worker, claims in order: started in order
    seen.clear()
    fill("b")  # the worker's claims take them in, 10,000 at the most a call
    with running(q, concurrency=50):
        poll(lambda: len(seen) == total, timeout=30)
    assert seen == list(range(total))
    counts = q.counts()
    assert (counts["waiting"], counts["enqueued"]) == (0, 2 * total)


def test_a_backlog_is_taken_in_over_several_calls(rk: Redkit) -> None:
    # no worker took these in: a lookup takes in 50,000 a call, never all at once
    q = rk.queue("backlog")

    @q.task
    def noop(i: int) -> None: ...

    total = 52_000
    ids = [f"b{i:05d}" for i in range(total)]
    _xadd(rk, q, [(job_id, "noop", "[[0],{}]") for job_id in ids])
    calls: list[str] = []
    rk.observe(lambda event: calls.append(event.name))
    assert q.job(ids[-1]).status() == "waiting"
    assert calls == ["script queue_watch"] * 2  # 50,000 taken in, then the rest
    assert rk.client.xlen(q.keys.inbox) == 1  # a wake-up for the workers, nothing else
    assert q.counts()["waiting"] == total
    more = [f"c{i:05d}" for i in range(total)]
    _xadd(rk, q, [(job_id, "noop", "[[0],{}]") for job_id in more])
    assert q.counts()["waiting"] == 2 * total  # those not taken in yet count too
    assert q.job(more[-1]).cancel()


def test_producers_and_readers_at_once_lose_and_repeat_nothing(rk: Redkit) -> None:
    q = rk.queue("busy")
    ran: Counter[int] = Counter()
    lock = threading.Lock()

    @q.task
    def note(i: int) -> None:
        with lock:
            ran[i] += 1

    producers, per = 4, 300
    stop = threading.Event()

    def produce(base: int) -> None:
        for i in range(per):
            n = base * per + i
            if i % 10 == 0:  # now and then the add script, which takes the inbox in first
                note.enqueue(n, priority=1)
            else:
                note.enqueue(n)

    def read() -> None:
        while not stop.is_set():
            q.counts()
            q.jobs("waiting", limit=5)

    with running(q, concurrency=20):
        readers = [threading.Thread(target=read) for _ in range(2)]
        threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
        for thread in readers + threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        stop.set()
        for thread in readers:
            thread.join(10)
        poll(lambda: q.counts()["done"] == producers * per, timeout=60)
    assert set(ran) == set(range(producers * per))
    assert set(ran.values()) == {1}
