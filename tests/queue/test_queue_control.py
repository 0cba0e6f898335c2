"""Control: pausing and resuming a queue, cancelling running jobs."""

from __future__ import annotations

from redkit import AsyncRedkit, Redkit

from .conftest import poll, running


def test_a_paused_queue_is_not_claimed_from(rk: Redkit) -> None:
    q = rk.queue("paused")
    ran: list[int] = []

    @q.task
    def note(i: int) -> int:
        ran.append(i)
        return i

    assert q.pause() is True
    assert q.pause() is False  # already paused
    assert q.is_paused()
    jobs = note.enqueue_many([(i,) for i in range(5)])
    with running(q, concurrency=4) as worker:
        # the worker's lease is written by the same script call that would have claimed
        poll(lambda: rk.client.zscore(q.keys.workers, worker.worker.id) is not None)
        # a job enqueued now wakes the worker; once it blocks again (it took the second
        # wake-up too), its take after the first one has claimed nothing
        for i in (5, 6):
            note.enqueue(i)
            poll(lambda: rk.client.llen(q.keys.wake) == 0)
        assert q.counts()["waiting"] == 7
        assert ran == []
        assert q.resume() is True
        assert q.resume() is False
        assert [job.result(timeout=10) for job in jobs] == [0, 1, 2, 3, 4]
        poll(lambda: q.counts()["done"] == 7)
    assert sorted(ran) == list(range(7))


def test_pause_lets_running_jobs_finish(rk: Redkit) -> None:
    import threading

    q = rk.queue("pause-running")
    started, release = threading.Event(), threading.Event()

    @q.task
    def slow(i: int) -> int:
        started.set()
        release.wait(10)
        return i

    with running(q, concurrency=1):
        first = slow.enqueue(1)
        assert started.wait(10)
        q.pause()
        second = slow.enqueue(2)
        release.set()
        assert first.result(timeout=10) == 1  # the running job finished while paused
        poll(lambda: rk.client.llen(q.keys.wake) == 0)
        slow.enqueue(3)  # another wake-up: the take after the first one has run
        poll(lambda: rk.client.llen(q.keys.wake) == 0)
        assert second.status() == "waiting"
        q.resume()
        assert second.result(timeout=10) == 2


async def test_async_pause_and_resume(ark: AsyncRedkit) -> None:
    q = ark.queue("apaused")

    @q.task
    async def double(x: int) -> int:
        return 2 * x

    assert await q.pause()
    assert await q.is_paused()
    job = await double.enqueue(21)
    assert await job.status() == "waiting"
    assert await q.resume()
    assert not await q.is_paused()
    assert (await q.counts())["waiting"] == 1
