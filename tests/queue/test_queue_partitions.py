"""Partitioned queues: keys in several slots, routing, fair claiming, handles, admin."""

from __future__ import annotations

import asyncio
import signal
import threading
import zlib
from pathlib import Path

import pytest
import redis.cluster
from click.testing import CliRunner
from redis.crc import key_slot
from starlette.testclient import TestClient

from redkit import AsyncRedkit, Redkit
from redkit.cli import build
from redkit.dashboard import create_dashboard
from redkit.errors import ConfigError
from redkit.queue import Dedupe, JobFailedError, current_job
from redkit.queue import ops as qops

from .conftest import poll, running, worker_process

ACT = {"X-Redkit-Dashboard": "1"}  # the dashboard's actions need it
FLOOD, QUIET, CONCURRENCY = 5_000, 50, 20
#: the bound docs/queue.md states: with P partitions that have jobs, a partition's k jobs
#: are all claimed within P * k claims, plus a round's worth (the concurrency) per partition
BOUND = 2 * QUIET + 2 * CONCURRENCY


def _part(job: object) -> int:
    return job._keys.index  # type: ignore[attr-defined, no-any-return]


def _ids_in(part: int, partitions: int, count: int, stem: str) -> list[str]:
    """``count`` job ids of the form ``stem-<n>`` that map to partition ``part``."""
    ids, n = [], 0
    while len(ids) < count:
        job_id, n = f"{stem}-{n}", n + 1
        if qops.job_partition(job_id, partitions) == part:
            ids.append(job_id)
    return ids


def _three_each(partitions: int) -> list[str]:
    """Three job ids for each partition."""
    return [job_id for p in range(partitions) for job_id in _ids_in(p, partitions, 3, "job")]


def test_partitions_live_in_their_own_slots(rk: Redkit) -> None:
    q = rk.queue("spread", partitions=4)

    @q.task
    def noop(i: int) -> None: ...

    assert q.parts[0].wait == rk.queue("spread").keys.wait  # partition 0: the plain keys
    jobs = noop.enqueue_many([(i,) for i in range(40)])
    parts = {_part(job) for job in jobs}
    assert len(parts) >= 3  # random ids spread over the partitions
    slots = [key_slot(keys.wait.encode()) for keys in q.parts]
    if isinstance(rk.client, redis.cluster.RedisCluster):  # the server agrees
        assert slots == [rk.client.cluster_keyslot(keys.wait) for keys in q.parts]
    # a hash tag each (their slots, from the random prefix, coincide 6 times in 16384)
    tags = [keys.wait[1 : keys.wait.index("}")] for keys in q.parts]
    assert len(set(tags)) == 4
    for job in jobs:  # every key of a job sits in its partition's slot
        keys = q.parts[_part(job)]
        assert key_slot(keys.job(job._member).encode()) == key_slot(keys.wait.encode())
        assert rk.client.exists(keys.job(job._member))
    per_part = [rk.run(qops.counts(keys))["waiting"] for keys in q.parts]
    assert sum(per_part) == 40 == q.counts()["waiting"]
    with pytest.raises(ConfigError, match="partitions"):
        rk.queue("bad", partitions=0)
    with pytest.raises(ConfigError, match="events"):
        rk.queue("bad", partitions=2, events=10)


def test_a_job_id_deduplicates_across_partitions(rk: Redkit) -> None:
    q = rk.queue("dedup", partitions=4)
    other_producer = rk.queue("dedup", partitions=4)

    @q.task
    def send(to: str) -> str:
        return to

    first = [send.enqueue("a", job_id=f"welcome:{i}") for i in range(12)]
    again = [other_producer.enqueue("send", "b", job_id=f"welcome:{i}") for i in range(12)]
    assert {_part(job) for job in first} == set(range(4))  # ids spread, each to its own
    assert [_part(j) for j in first] == [_part(j) for j in again]
    assert q.counts()["waiting"] == 12
    assert q.job("welcome:3").status() == "waiting"
    assert first[5].info().args == ["a"]  # type: ignore[union-attr]
    # a group or a deduplication key decides the partition; an id cannot decide too
    with pytest.raises(ConfigError, match="group= or dedupe="):
        send.enqueue("c", job_id="x", group="tenant")
    with pytest.raises(ConfigError, match="group= or dedupe="):
        send.enqueue("c", job_id="x", dedupe=Dedupe.while_queued("k"))
    unique = [send.enqueue("d", dedupe=Dedupe.while_queued("daily")) for _ in range(3)]
    assert len({job.id for job in unique}) == 1
    grouped = send.enqueue_many([("e",)] * 10, group="tenant-7")
    assert {_part(job) for job in grouped} == {qops.partition_of("tenant-7", 4)}
    assert q.counts()["waiting"] == 12 + 1 + 10


def test_a_group_or_dedupe_key_that_begins_with_schedule_routes_by_hash(rk: Redkit) -> None:
    """Only a job id that begins with ``schedule:`` goes to partition 0 (where the
    schedules add their jobs); a group or a deduplication key is hashed like any other."""
    q = rk.queue("sched-keys", partitions=4)
    elsewhere = rk.queue("sched-keys", partitions=4)

    @q.task
    def send(to: str) -> str:
        return to

    group, key = "schedule:tenant", "schedule:daily"
    hashed = {k: zlib.crc32(k.encode()) % 4 for k in (group, key)}
    assert 0 not in hashed.values()
    grouped = send.enqueue_many([("a",)] * 5, group=group)
    grouped.append(send.enqueue("b", group=group))
    assert {_part(job) for job in grouped} == {hashed[group]}
    unique = [send.enqueue("c", dedupe=Dedupe.while_queued(key)) for _ in range(3)]
    assert len({job.id for job in unique}) == 1
    assert _part(unique[0]) == hashed[key]
    for job in [*grouped, unique[0]]:  # a handle by id finds each one where it went
        assert _part(elsewhere.job(job.id)) == _part(job)
        assert elsewhere.job(job.id).status() == "waiting"
    q.set_group_concurrency(2, group)  # the limit goes to the group's partition
    glimits = q.parts[hashed[group]].group.key("glimits")
    assert rk.client.hget(glimits, qops.member(group)) == b"2"
    assert q.counts()["waiting"] == 7


def test_a_worker_drains_every_partition_and_handles_find_jobs(rk: Redkit) -> None:
    q = rk.queue("drain", partitions=3)

    @q.task
    async def double(i: int) -> int:
        return 2 * i

    @q.task
    def total() -> int:
        return sum(current_job().children.values())

    jobs = double.enqueue_many([(i,) for i in range(300)])
    one_by_one = [double.enqueue(i) for i in range(300, 330)]
    grouped = double.enqueue_many([(i,) for i in range(5)], group="g")
    parent, children = q.enqueue_flow((total, ()), [(double, (i,)) for i in range(4)])
    assert {_part(c) for c in children} == {_part(parent)}
    later = next(j for j in (double.enqueue(1, delay=60) for _ in range(20)) if _part(j) > 0)
    attempts: list[int] = []

    @q.task(retries=2, backoff="fixed", backoff_base=0.05, jitter=False)
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return len(attempts)

    retried = flaky.enqueue(job_id=_ids_in(2, 3, 1, "flaky")[0])  # partition 2
    soon = double.enqueue(21, delay=0.2, job_id=_ids_in(1, 3, 1, "soon")[0])  # partition 1
    with running(q, concurrency=10):
        assert retried.result(timeout=30) == 3  # retried twice, after its backoff
        assert soon.result(timeout=30) == 42  # promoted in its partition when due
        assert parent.result(timeout=30) == 12
        results = [job.result(timeout=30) for job in jobs + one_by_one + grouped]
    assert results == [2 * i for i in range(330)] + [2 * i for i in range(5)]
    far = next(job for job in jobs if _part(job) > 0)
    assert q.job(far.id).status() == "done"  # found in its partition by its id alone
    assert q.job(far.id).result() == far.result()
    assert later.status() == "delayed"
    assert q.job(later.id).cancel()
    assert later.status() == "cancelled"
    with pytest.raises(JobFailedError, match="cancelled"):
        later.result()
    counts = q.counts()
    assert (counts["waiting"], counts["active"], counts["done"]) == (0, 0, 330 + 5 + 5 + 2)


def test_a_flooded_partition_does_not_starve_another(rk: Redkit) -> None:
    q = rk.queue("fair", partitions=2)
    started: list[str] = []

    @q.task
    async def work(kind: str) -> None:
        started.append(kind)
        if kind == "flood":
            await asyncio.sleep(0.005)  # so that the flood outlasts the second wave

    def last(kind: str) -> int:
        return max(i for i, seen in enumerate(started) if seen == kind)

    # the flood, in partition 0 (a one-partition handle writes the same keys), first
    rk.queue("fair").enqueue_many("work", [("flood",)] * FLOOD)
    quiet = _ids_in(1, 2, 2 * QUIET, "quiet")
    first, second = quiet[:QUIET], quiet[QUIET:]
    for job_id in first:
        assert _part(work.enqueue("quiet", job_id=job_id)) == 1
    with running(q, concurrency=CONCURRENCY):
        poll(lambda: started.count("quiet") == QUIET, timeout=60)
        # claimed in order, the quiet jobs would start after all 5,000 flood jobs
        assert last("quiet") < BOUND, (last("quiet"), BOUND)
        # a second wave arrives while the worker is busy with the flood
        for job_id in second:
            work.enqueue("later", job_id=job_id)
        mark = len(started)  # every job of the wave has waited since at most here
        poll(lambda: started.count("later") == QUIET, timeout=60)
        assert started.count("flood") < FLOOD  # the flood still ran meanwhile
    assert last("later") - mark < BOUND, (last("later") - mark, BOUND)


async def test_async_producer_and_handles(ark: AsyncRedkit) -> None:
    q = ark.queue("aio", partitions=3)

    @q.task
    async def echo(x: int) -> int:
        return x

    jobs = await echo.enqueue_many([(i,) for i in range(30)])
    single = await echo.enqueue(99, job_id="single")
    assert {_part(job) for job in jobs} == {0, 1, 2}
    assert (await q.counts())["waiting"] == 31
    with running(q, concurrency=5):
        assert [await job.result(timeout=20) for job in jobs] == list(range(30))
        assert await q.job("single").result(timeout=20) == 99
    assert await single.status() == "done"
    assert (await q.counts())["done"] == 31


def test_counts_lists_retry_purge_and_pause_cover_every_partition(rk: Redkit) -> None:
    q = rk.queue("admin", partitions=3)

    @q.task
    def fail(i: int) -> None:
        raise ValueError(i)

    jobs = fail.enqueue_many([(i,) for i in range(30)])
    assert {_part(job) for job in jobs} == {0, 1, 2}
    with running(q, concurrency=5):
        poll(lambda: q.counts()["failed"] == 30, timeout=30)
    failed = q.jobs("failed", limit=100)
    assert sorted(info.args[0] for info in failed) == list(range(30))  # type: ignore[index]
    assert [info.id for info in q.jobs("failed", limit=10, offset=5)] == [
        info.id for info in failed[5:15]
    ]
    assert q.pause()
    assert q.is_paused()
    assert q.retry_failed() == 30
    assert q.counts()["waiting"] == 30
    assert q.counts()["failed"] == 0
    with running(q, concurrency=5) as worker:
        poll(lambda: [w.id for w in q.workers()] == [worker.worker.id])
        assert q.counts()["waiting"] == 30  # paused: nothing is claimed
    assert q.resume()
    assert not q.is_paused()
    assert q.counts()["waiting"] == 30
    assert q.purge() == 30
    assert q.counts()["waiting"] == 0
    with pytest.raises(ConfigError, match="partitioned"):
        q.set_concurrency(5)
    with pytest.raises(ConfigError, match="partitioned"):
        q.set_rate_limit("10/second")
    q.set_group_concurrency(2, "tenant")  # a group lives in one partition: its limit holds
    glimits = q.parts[qops.partition_of("tenant", 3)].group.key("glimits")
    assert rk.client.hget(glimits, "tenant") == b"2"


def test_graceful_stop_hands_back_jobs_of_every_partition(rk: Redkit) -> None:
    q = rk.queue("grace", partitions=3)
    started = threading.Semaphore(0)

    @q.task
    async def forever(i: int) -> None:
        started.release()
        await asyncio.sleep(60)

    jobs = [forever.enqueue(i, job_id=job_id) for i, job_id in enumerate(_three_each(3))]
    assert {_part(job) for job in jobs} == {0, 1, 2}
    with running(q, concurrency=9) as worker:
        for _ in jobs:
            assert started.acquire(timeout=10)
        assert q.counts()["active"] == 9
        worker.stop(grace=0.2)
    assert [job.status() for job in jobs] == ["waiting"] * 9  # at once, not after a lease
    assert q.counts()["active"] == 0


def test_a_killed_workers_jobs_come_back_in_every_partition(
    target_url: str, prefix: str, tmp_path: Path
) -> None:
    rk = Redkit(target_url, prefix=prefix)
    q = rk.queue("proc", partitions=3)  # the workers' queue (tests/queue/queue_app.py)
    jobs = [q.enqueue("work", i, job_id=job_id) for i, job_id in enumerate(_three_each(3))]
    assert {_part(job) for job in jobs} == {0, 1, 2}
    log = tmp_path / "workers.log"
    victim = worker_process(
        target_url, prefix, log, "-c", "9", QUEUE_TEST_PARTITIONS="3", QUEUE_TEST_JOB_SECONDS="60"
    )
    heir = None
    try:
        poll(lambda: q.counts()["active"] == 9, timeout=30)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        heir = worker_process(
            target_url, prefix, log, QUEUE_TEST_PARTITIONS="3", QUEUE_TEST_JOB_SECONDS="0.01"
        )
        # back within the lease (1 s) and run by the other worker
        assert [job.result(timeout=30) for job in jobs] == list(range(9))
    finally:
        for proc in (victim, heir):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert all(job.info().deaths == 1 for job in jobs)  # type: ignore[union-attr]
    rk.close()


def test_cli_and_dashboard_find_every_partition(target_url: str, prefix: str, rk: Redkit) -> None:
    q = rk.queue("parts", partitions=4)
    jobs = q.enqueue_many("send", [(i,) for i in range(40)])
    far = next(job for job in jobs if _part(job) == 3)
    runner = CliRunner()
    args = ["--url", target_url, "--prefix", prefix]
    table = runner.invoke(build(), ["queues", *args], catch_exceptions=False)
    assert table.stdout.splitlines()[1].split()[:2] == ["parts", "40"]  # one row, all of it
    listed = runner.invoke(build(), ["jobs", "parts", "--state", "waiting", "-n", "50", *args])
    assert "(1-40 of 40 waiting jobs)" in listed.stdout
    app = create_dashboard(AsyncRedkit(target_url, prefix=prefix))
    with TestClient(app) as client:
        queues = client.get("/api/queues").json()
        assert [(one["name"], one["counts"]["waiting"]) for one in queues] == [("parts", 40)]
        found = client.get("/api/job", params={"queue": "parts", "id": far.id}).json()
        assert found["state"] == "waiting"
        page = client.get("/api/jobs", params={"queue": "parts", "state": "waiting"}).json()
        assert page
        assert {one["id"] for one in page} <= {job.id for job in jobs}
        cancel = client.post(
            "/api/job/cancel", params={"queue": "parts", "id": far.id}, headers=ACT
        )
        assert cancel.json()["result"] is True
    assert far.status() == "cancelled"
    purge = runner.invoke(build(), ["purge", "parts", "--yes", *args], catch_exceptions=False)
    assert "deleted 39 jobs" in purge.stdout  # every partition's; the cancelled one is kept
    assert q.counts()["waiting"] == 0


def test_a_handle_by_id_finds_every_kind_of_job(rk: Redkit) -> None:
    q = rk.queue("byid", partitions=4)
    elsewhere = rk.queue("byid", partitions=4)  # another process's queue: ids only

    @q.task
    def echo(x: str) -> str:
        return x

    jobs = {
        "random": echo.enqueue("random"),
        "explicit": echo.enqueue("explicit", job_id="order:17"),
        "delayed": echo.enqueue("delayed", delay=0.05),
        "grouped": echo.enqueue("grouped", group="tenant-1"),
        "dedupe": echo.enqueue("dedupe", dedupe=Dedupe.while_queued("nightly")),
        "debounced": echo.enqueue("debounced", dedupe=Dedupe.debounce("typing", 0.05)),
    }
    for n, job in enumerate(echo.enqueue_many([("many",)] * 8)):
        jobs[f"many-{n}"] = job
    for n, job in enumerate(echo.enqueue_many([("many-grouped",)] * 4, group="tenant-2")):
        jobs[f"many-grouped-{n}"] = job
    parent, children = q.enqueue_flow((echo, ("parent",)), [(echo, ("child",))] * 3)
    jobs["parent"] = parent
    jobs.update({f"child-{n}": child for n, child in enumerate(children)})
    # random ids may all miss a partition: one id of one's own in each makes sure none is
    for part in range(4):
        jobs[f"in-part-{part}"] = echo.enqueue("in-part", job_id=_ids_in(part, 4, 1, "in")[0])
    # a repeat under a deduplication key hands back the job that counts, found by id too
    assert echo.enqueue("again", dedupe=Dedupe.while_queued("nightly")).id == jobs["dedupe"].id
    replaced = echo.enqueue("debounced-2", dedupe=Dedupe.debounce("typing", 0.05))
    assert replaced.id == jobs["debounced"].id
    assert len({_part(job) for job in jobs.values()}) == 4
    cancelled = {"random", "grouped", "child-1"}  # a child's cancel fails its parent
    for kind, job in jobs.items():
        found = elsewhere.job(job.id)
        assert _part(found) == _part(job), kind
        assert found.status() in ("waiting", "delayed", "blocked"), kind
        if kind in cancelled:
            assert found.cancel(), kind
            assert job.status() == "cancelled", kind
    with running(q, concurrency=10):
        for kind, job in jobs.items():
            if kind in cancelled or kind == "parent":
                continue
            want = "debounced-2" if kind == "debounced" else kind.rstrip("-0123456789")
            assert elsewhere.job(job.id).result(timeout=20) == want, kind
    assert elsewhere.job(parent.id).status() == "failed"  # its child was cancelled


def test_scheduled_jobs_are_found_by_their_id(rk: Redkit) -> None:
    q = rk.queue("sched-parts", partitions=4)
    elsewhere = rk.queue("sched-parts", partitions=4)
    ran: list[str] = []

    @q.task
    def beat() -> str:
        ran.append(current_job().id)
        return current_job().id

    q.schedule("beat", beat, every=0.05, catch_up=30)
    assert q.pause()  # the schedule still enqueues; nothing is claimed
    with running(q, concurrency=4):
        poll(lambda: q.counts()["waiting"] >= 8, timeout=30)
        waiting = [info.id for info in q.jobs("waiting", limit=100)]
        assert all(job_id.startswith("schedule:beat:") for job_id in waiting)
        # their ids hash all over, yet each one is where a handle by id looks for it
        assert len({zlib.crc32(job_id.encode()) % 4 for job_id in waiting}) > 1
        assert all(_part(elsewhere.job(job_id)) == 0 for job_id in waiting)
        assert {elsewhere.job(job_id).status() for job_id in waiting} == {"waiting"}
        assert elsewhere.job(waiting[0]).cancel()
        assert q.resume()
        for job_id in waiting[1:]:
            assert elsewhere.job(job_id).result(timeout=20) == job_id
        assert q.remove_schedule("beat")
    assert elsewhere.job(waiting[0]).status() == "cancelled"
    assert waiting[0] not in ran
    # an id of one's own that begins with "schedule:" goes to partition 0 as well
    mine = q.enqueue("beat", job_id="schedule:mine")
    assert zlib.crc32(b"schedule:mine") % 4 != 0
    assert _part(mine) == _part(elsewhere.job("schedule:mine")) == 0
    assert elsewhere.job("schedule:mine").status() == "waiting"
