"""Control: pausing and resuming a queue, cancelling running jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError
from redkit.queue import JobFailedError, current_job

from .conftest import HERE, SRC, poll, running


def control_worker(url: str, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    """``redkit worker control_app:queue`` in a process of its own."""
    env = {
        **os.environ, "REDIS_URL": url, "REDKIT_PREFIX": prefix, "PYTHONPATH": str(SRC),
        "REDKIT_EMBEDDED": "0",
    }  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "redkit.cli", "worker", "control_app:queue", "-c", "4"],
            cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip


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
            poll(lambda: rk.client.xlen(q.keys.inbox) == 0)
        assert q.counts()["waiting"] == 7
        assert ran == []
        assert q.resume() is True
        assert q.resume() is False
        assert [job.result(timeout=10) for job in jobs] == [0, 1, 2, 3, 4]
        poll(lambda: q.counts()["done"] == 7)
    assert sorted(ran) == list(range(7))


def test_pause_lets_running_jobs_finish(rk: Redkit) -> None:
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
        poll(lambda: rk.client.xlen(q.keys.inbox) == 0)
        slow.enqueue(3)  # another wake-up: the take after the first one has run
        poll(lambda: rk.client.xlen(q.keys.inbox) == 0)
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


def test_cancel_running_jobs_in_another_process(
    target_url: str, prefix: str, tmp_path: Path
) -> None:
    rk = Redkit(target_url, prefix=prefix)
    q = rk.queue("control", lease=2.0)
    proc = control_worker(target_url, prefix, tmp_path / "worker.log")
    try:
        spinning = q.enqueue("spin")  # a plain function, checking current_job()
        napping = q.enqueue("nap", 60)  # async: cancelled at its await
        poll(lambda: spinning.status() == napping.status() == "active", timeout=30)
        at = time.monotonic()
        assert spinning.cancel()
        assert napping.cancel()
        for job in (spinning, napping):
            with pytest.raises(JobFailedError, match="cancelled"):
                job.result(timeout=20)
            assert job.status() == "cancelled"
        assert time.monotonic() - at < 20  # not the nap's 60 s
        assert napping.error()["type"] == "CancelledError"  # type: ignore[index]
        assert spinning.error()["type"] == "JobCancelledError"  # type: ignore[index]
        assert not spinning.cancel()  # finished: nothing to cancel
        short = q.enqueue("nap", 0)
        assert short.result(timeout=20) == "woke"  # the worker runs on
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        rk.close()


def test_cancel_in_process_and_on_a_lost_worker(rk: Redkit) -> None:
    q = rk.queue("cancel", lease=1.0)
    started = threading.Event()
    seen: list[bool] = []

    @q.task
    def stubborn() -> str:
        started.set()
        job = current_job()
        job.wait_cancelled(10)
        seen.append(job.cancelled)
        return "finished anyway"  # a result wins over the cancellation

    with pytest.raises(ConfigError):
        current_job()
    waiting = q.enqueue("stubborn", delay=60)
    assert waiting.cancel()
    assert waiting.status() == "cancelled"
    with running(q, concurrency=2):
        job = stubborn.enqueue()
        assert started.wait(10)
        assert job.cancel()
        assert job.result(timeout=10) == "finished anyway"
    assert seen == [True]
    # a job whose worker vanished after the request is cancelled, not run again
    lost = stubborn.enqueue()
    assert lost.status() == "waiting"  # taken in from the inbox: its hash exists
    member = lost._member
    rk.client.hset(q.keys.job(member), mapping={"st": "active", "wk": "gone"})
    rk.client.zrem(q.keys.wait, member)
    rk.client.sadd(q.keys.worker("gone"), member)
    rk.client.zadd(q.keys.workers, {"gone": 0})  # its lease ended long ago
    assert lost.cancel()
    with running(q, concurrency=1), pytest.raises(JobFailedError, match="cancelled"):
        lost.result(timeout=10)


async def test_async_cancel_of_a_running_job(ark: AsyncRedkit) -> None:
    q = ark.queue("acancel")
    entered = asyncio.Event()
    loop = asyncio.get_running_loop()

    @q.task
    async def wait_forever() -> None:
        loop.call_soon_threadsafe(entered.set)
        await asyncio.sleep(60)

    with running(q, concurrency=1):
        job = await wait_forever.enqueue()
        await asyncio.wait_for(entered.wait(), 10)
        assert await job.cancel()
        with pytest.raises(JobFailedError, match="cancelled"):
            await job.result(timeout=10)
