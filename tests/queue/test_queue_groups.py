"""Groups with real workers: round robin between groups, fairness, per-group concurrency."""

from __future__ import annotations

import threading
import time

from redkit import AsyncRedkit, Redkit

from .conftest import poll, running

NOISY, QUIET, EACH = 10_000, 9, 100
WORKERS, CONCURRENCY = 2, 20
#: the bound docs/queue.md states: with G groups waiting, a group's k jobs are all
#: claimed within G * k claims (plus up to G: the rotation may start anywhere)
BOUND = (QUIET + 1) * EACH + QUIET + 1


def test_a_noisy_group_does_not_starve_the_others(rk: Redkit) -> None:
    q = rk.queue("fair", events=20_000)  # the stream records claims in their exact order
    finished: list[str] = []

    @q.task
    async def work(tenant: str, i: int) -> None:
        finished.append(tenant)

    for start in range(0, NOISY, 1000):  # the noisy tenant enqueues first, and most
        work.enqueue_many([("noisy", i) for i in range(start, start + 1000)], group="noisy")
    for g in range(QUIET):
        work.enqueue_many([(f"quiet{g}", i) for i in range(EACH)], group=f"quiet{g}")
    assert q.counts()["waiting"] == NOISY + QUIET * EACH
    workers = [running(q, concurrency=CONCURRENCY) for _ in range(WORKERS)]
    for worker in workers:
        worker.__enter__()
    try:
        poll(lambda: sum(g != "noisy" for g in finished) == QUIET * EACH, timeout=60)
        quiet_done_at = len(finished)
    finally:
        for worker in workers:
            worker.__exit__(None, None, None)
    claims, after = [], "0"
    while batch := q.events(after=after, count=1000):
        claims += [e.job_id for e in batch if e.event == "active"]
        after = batch[-1].id
    pipe = rk.client.pipeline(transaction=False)
    for job_id in claims:
        pipe.hget(q.keys.job(job_id), "g")
    groups = [g.decode() for g in pipe.execute()]
    quiet_claims = [i for i, g in enumerate(groups) if g != "noisy"]
    assert len(quiet_claims) == QUIET * EACH
    # without groups the quiet jobs would be claimed after all 10,000 noisy ones
    assert quiet_claims[-1] < BOUND, (quiet_claims[-1], BOUND)
    assert quiet_done_at < 2 * BOUND  # and they finished about as soon


def test_ungrouped_jobs_take_turns_with_groups_and_limits_hold(rk: Redkit) -> None:
    q = rk.queue("limits")
    lock = threading.Lock()
    running_now: dict[str, int] = {"a": 0, "b": 0, "-": 0}
    peak: dict[str, int] = {"a": 0, "b": 0, "-": 0}

    @q.task
    def work(tenant: str) -> None:
        with lock:
            running_now[tenant] += 1
            peak[tenant] = max(peak[tenant], running_now[tenant])
        time.sleep(0.02)
        with lock:
            running_now[tenant] -= 1

    q.set_group_concurrency(1, group="a")
    q.set_group_concurrency(2)  # every other group
    work.enqueue_many([("a",)] * 8, group="a")
    work.enqueue_many([("b",)] * 8, group="b")
    work.enqueue_many([("-",)] * 8)  # no group: one more participant of the rotation
    with running(q, concurrency=4), running(q, concurrency=4):
        poll(lambda: q.counts()["done"] == 24, timeout=30)
    assert peak["a"] == 1  # across both workers
    assert peak["b"] == 2
    assert rk.client.hlen(q.keys.group.key("gactive")) == 0  # every count went back to 0
    q.set_group_concurrency(None, group="a")
    assert rk.client.hkeys(q.keys.group.key("glimits")) == [b"*"]


def test_grouped_jobs_retry_cancel_and_delay(rk: Redkit) -> None:
    q = rk.queue("gmisc")
    attempts: list[int] = []

    @q.task(retries=2, backoff="fixed", backoff_base=0.01, jitter=False)
    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) < 2:
            raise RuntimeError("once")
        return x

    later = flaky.enqueue(2, group="t", delay=0.2)
    gone = flaky.enqueue(3, group="t")
    assert gone.cancel()
    job = flaky.enqueue(1, group="t")
    assert q.counts()["waiting"] == 1
    with running(q, concurrency=2):
        assert job.result(timeout=10) == 1
        assert later.result(timeout=10) == 2
    assert gone.status() == "cancelled"
    assert rk.client.llen(q.keys.group.key("groups")) == 0


async def test_async_groups(ark: AsyncRedkit) -> None:
    q = ark.queue("agroups")

    @q.task
    async def ping(x: int) -> int:
        return x

    jobs = await ping.enqueue_many([(1,), (2,)], group="tenant-1")
    assert (await q.counts())["waiting"] == 2
    await q.set_group_concurrency(3, group="tenant-1")
    with running(q, concurrency=2):
        assert [await job.result(timeout=10) for job in jobs] == [1, 2]


def test_a_group_rate_limit_holds_the_group_back_only(rk: Redkit) -> None:
    q = rk.queue("grate", events=1000)  # "active" events carry the server's claim time

    @q.task
    async def work(tenant: str) -> None: ...

    q.set_group_rate_limit("20/second", group="slow")  # a burst of 20, then one per 50 ms
    slow = work.enqueue_many([("slow",)] * 40, group="slow")
    fast = work.enqueue_many([("fast",)] * 40, group="fast")
    with running(q, concurrency=10), running(q, concurrency=10):
        poll(lambda: q.counts()["done"] == 80, timeout=30)
    members = {job._member: "slow" for job in slow} | {job._member: "fast" for job in fast}
    active = [e for e in q.events(count=1000) if e.event == "active"]
    starts = [int(e.id.split("-")[0]) for e in active if members[e.job_id] == "slow"]
    assert len(starts) == 40
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            assert j - i + 1 <= 20 + (starts[j] - starts[i]) / 50 + 1, (i, j)
    last_fast = max(i for i, e in enumerate(active) if members[e.job_id] == "fast")
    last_slow = max(i for i, e in enumerate(active) if members[e.job_id] == "slow")
    assert last_fast < last_slow  # the other group was not held back
    q.set_group_rate_limit(None, group="slow")
    assert rk.client.hlen(q.keys.group.key("glimits")) == 0
