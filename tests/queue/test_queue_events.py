"""Progress and the event stream, with real workers: follow, replay from an id, bounded."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

from redkit import AsyncRedkit, Redkit
from redkit.queue import QueueEvent, current_job

from .conftest import running


def test_events_follow_each_job_through_its_states(rk: Redkit) -> None:
    q = rk.queue("events", events=1000)
    attempts: dict[str, int] = defaultdict(int)

    @q.task(retries=1, backoff="fixed", backoff_base=0.01, jitter=False)
    def step(name: str, fail_times: int) -> str:
        job = current_job()
        attempts[name] += 1
        job.progress({"done": 1, "of": 2})
        if attempts[name] <= fail_times:
            raise RuntimeError("flaky")
        job.progress({"done": 2, "of": 2})
        return name

    start = q.read_events(timeout=0)  # "$" with no wait: nothing new yet
    assert start == []
    ok = step.enqueue("ok", 0, job_id="ok")
    step.enqueue("flaky", 1, job_id="flaky")
    step.enqueue("broken", 5, job_id="broken")
    cancelled = step.enqueue("never", 0, job_id="never", delay=60)
    assert cancelled.cancel()
    seen: list[QueueEvent] = []
    after = "0"
    with running(q, concurrency=3):
        # follow the stream as a producer or dashboard would, without a gap
        while sum(e.event in ("completed", "failed") for e in seen) < 3:
            batch = q.read_events(after=after, timeout=5)
            assert batch, "events keep coming until every job is finished"
            seen += batch
            after = batch[-1].id
        assert ok.result(timeout=5) == "ok"
    assert ok.progress() == {"done": 2, "of": 2}
    by_job: dict[str, list[str]] = defaultdict(list)
    for e in seen:
        by_job[e.job_id].append(e.event)
    assert by_job["ok"] == ["enqueued", "active", "progress", "progress", "completed"]
    assert by_job["flaky"] == [
        "enqueued", "active", "progress", "retried", "active", "progress", "progress",
        "completed",
    ]  # fmt: skip
    assert by_job["broken"][-1] == "failed"
    assert by_job["never"] == ["enqueued", "cancelled"]
    progress = [e.data for e in seen if e.job_id == "ok" and e.event == "progress"]
    assert progress == [{"done": 1, "of": 2}, {"done": 2, "of": 2}]
    # replay from any id gives the same events after it
    middle = seen[len(seen) // 2]
    replayed = q.events(after=middle.id, count=1000)
    assert replayed == seen[len(seen) // 2 + 1 :]
    assert q.events(count=1000) == seen


def test_the_stream_is_bounded_and_off_by_default(rk: Redkit) -> None:
    bounded = rk.queue("bounded", events=50)
    bounded.enqueue_many("t", [(i,) for i in range(2000)])
    length = int(rk.client.xlen(bounded.keys.group.key("events")))
    assert 50 <= length < 300  # trimmed in whole stream nodes, so about 50
    plain = rk.queue("plain")
    plain.enqueue("t", 1)
    assert rk.client.exists(plain.keys.group.key("events")) == 0
    assert plain.events() == []


def test_a_follower_wakes_on_new_events(rk: Redkit) -> None:
    q = rk.queue("follow", events=100)
    q.enqueue("t", 0, job_id="zero")
    (zero,) = q.events()
    got: list[list[QueueEvent]] = []
    reader = threading.Thread(target=lambda: got.append(q.read_events(zero.id, timeout=10)))
    reader.start()
    q.enqueue("t", 1, job_id="first")
    reader.join(15)
    assert [(e.event, e.job_id) for e in got[0]] == [("enqueued", "first")]
    assert q.read_events(timeout=0) == []  # "$": only what comes after now


async def test_async_progress_and_events(ark: AsyncRedkit) -> None:
    q = ark.queue("aevents", events=100)

    @q.task
    async def work() -> int:
        current_job().progress(50)
        await asyncio.sleep(0)
        current_job().progress(100)
        return 1

    job = await work.enqueue()
    with running(q, concurrency=1):
        assert await job.result(timeout=10) == 1
    assert await job.progress() == 100
    events = [e.event for e in await q.events()]
    assert events == ["enqueued", "active", "progress", "progress", "completed"]
    assert await q.read_events(after=(await q.events())[-1].id, timeout=0) == []
