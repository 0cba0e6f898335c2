"""Real worker processes: kill -9 in the middle of work loses no job; a poison job is caught."""

from __future__ import annotations

import itertools
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from redkit import Redkit
from redkit.embedded import EmbeddedServer
from redkit.errors import RedkitError
from redkit.queue import JobFailedError
from redkit.queue import ops as qops

from .conftest import poll, worker_process

N = 10_000
CONCURRENCY = 10
JOB_SECONDS = 0.02  # 4 x 10 slots: a drain of N takes >= N * 0.02 / 40 = 5 s


@pytest.mark.slow
@pytest.mark.timeout(180)  # its own drain deadline is 120 s
def test_killed_workers_lose_no_job(target_url: str, prefix: str, tmp_path: Path) -> None:
    """10,000 jobs through 4 worker processes, one of which is kill -9-ed every second
    (and replaced): every job completes, none is lost, none ran twice at the same time.

    Each job takes 20 ms, so 4 workers of 10 need at least 5 s: the kills cannot be
    outrun by a fast machine."""
    rk = Redkit(target_url, prefix=prefix)
    q = rk.queue("proc", lease=1.0, dead_after=20)
    ran_key = rk.keys.group("test").key("ran")
    log = tmp_path / "workers.log"
    start = lambda: worker_process(  # noqa: E731
        target_url, prefix, log, "-c", str(CONCURRENCY), QUEUE_TEST_JOB_SECONDS=str(JOB_SECONDS)
    )
    procs = [start() for _ in range(4)]
    kills, pace = 0, threading.Event()
    try:
        q.enqueue_many("work", [(i,) for i in range(N)])
        deadline = time.monotonic() + 120
        while q.counts()["done"] < N:
            assert time.monotonic() < deadline, f"not drained: {q.counts()}"
            pace.wait(1.0)  # the kill cadence, not a synchronisation
            if q.counts()["done"] >= N:
                break
            victim = procs.pop(0)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            kills += 1
            procs.append(start())
    finally:
        _stop(procs)
    assert kills >= 2
    ran = [int(x.split(b":")[0]) for x in rk.client.lrange(ran_key, 0, -1)]
    assert set(ran) == set(range(N)), "every job ran"
    assert len(ran) - N <= kills * 2 * CONCURRENCY, "only killed workers' jobs ran twice"
    _assert_no_overlap(rk)
    assert _states(q) == {"waiting": 0, "delayed": 0, "active": 0, "done": N, "failed": 0,
                          "dead": 0, "blocked": 0}  # fmt: skip
    rk.close()


@pytest.mark.slow
def test_a_job_that_crashes_its_workers_is_dead_lettered(
    target_url: str, prefix: str, tmp_path: Path
) -> None:
    rk = Redkit(target_url, prefix=prefix)
    q = rk.queue("proc", lease=1.0, dead_after=2)
    job = q.enqueue("crash")
    after = q.enqueue("work", 7)
    log = tmp_path / "workers.log"
    # two supervised processes, one job at a time (a job running beside the poison one
    # would die with it); each death is followed by a new process
    supervisor = worker_process(
        target_url, prefix, log, "-c", "1", "--processes", "2", QUEUE_TEST_DEAD_AFTER="2"
    )
    try:
        assert after.result(timeout=30) == 7
        poll(lambda: job.status() == "dead", timeout=20)
        assert log.read_text().count("starting another") >= 2
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(15) == 0
    finally:
        _stop([supervisor])
    assert q.counts()["dead"] == 1
    rk.close()


def _assert_no_overlap(rk: Redkit) -> None:
    """No two completed runs of one job overlapped in time (killed runs left no span).

    Holds while no live worker loses its lease; an outage longer than the lease (the AOF
    test) may legitimately let a job run again beside a run that is still going."""
    spans: dict[int, list[tuple[float, float]]] = {}
    for raw in rk.client.lrange(rk.keys.group("test").key("ran"), 0, -1):
        i, start, end = raw.decode().split(":")
        spans.setdefault(int(i), []).append((float(start), float(end)))
    for i, runs in spans.items():
        runs.sort()
        for (_, end), (start, _) in itertools.pairwise(runs):
            assert end <= start, f"job {i} ran twice at the same time: {runs}"


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_sigterm_hands_running_jobs_back_at_once(
    target_url: str, prefix: str, tmp_path: Path
) -> None:
    rk = Redkit(target_url, prefix=prefix)
    q = rk.queue("proc", lease=30.0)  # a hand-back that waited for the lease would fail
    job = q.enqueue("work", 1)
    log = tmp_path / "workers.log"
    proc = worker_process(target_url, prefix, log, "--grace", "0.2", QUEUE_TEST_JOB_SECONDS="60")
    try:
        poll(lambda: job.status() == "active", timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        _stop([proc])
    assert job.status() == "waiting"
    assert q.counts()["waiting"] == 1
    rk.close()


def test_sigterm_with_redis_down_ends_the_worker_without_a_hang(
    prefix: str, tmp_path: Path
) -> None:
    """The hand-back cannot reach the server: the worker says so and exits; the lease
    returns its jobs once the server is back."""
    with EmbeddedServer() as server:
        rk = Redkit(server.url, prefix=prefix)
        q = rk.queue("proc", lease=1.0)
        job = q.enqueue("work", 1)
        log = tmp_path / "workers.log"
        proc = worker_process(
            server.url, prefix, log, "--grace", "0.5", QUEUE_TEST_JOB_SECONDS="60"
        )
        try:
            poll(lambda: job.status() == "active", timeout=20)
            server.kill()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0  # the grace, then one failed hand-back: no hang
        finally:
            _stop([proc])
        assert "could not hand unfinished jobs back" in log.read_text()
        rk.close()


def test_process_pool_tasks_run_in_children_and_a_timeout_kills_them(
    target_url: str, prefix: str, tmp_path: Path
) -> None:
    rk = Redkit(target_url, prefix=prefix)
    q = rk.queue("proc", lease=1.0)
    quick, stuck = q.enqueue("burn", 0.05), q.enqueue("burn", 600)
    log = tmp_path / "workers.log"
    proc = worker_process(target_url, prefix, log, "--pool-size", "1")
    try:
        pid = quick.result(timeout=60)
        assert pid != proc.pid
        assert psutil.Process(pid).ppid() == proc.pid  # a child of the worker process
        with pytest.raises(JobFailedError, match="its process was killed"):
            stuck.result(timeout=60)
        assert proc.poll() is None  # the worker itself carries on
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        _stop([proc])
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    rk.close()


@pytest.mark.slow
def test_a_server_crash_with_aof_loses_no_job(prefix: str, tmp_path: Path) -> None:
    """Bulk jobs, and jobs enqueued one by one across the crash: every enqueue the server
    acknowledged runs, and the workers resume by themselves."""
    fsync = ["--appendfsync", "always"]  # every acknowledged write is on disk
    with EmbeddedServer(persistence=True, extra_args=fsync) as server:
        rk = Redkit(server.url, prefix=prefix)
        q = rk.queue("proc", lease=1.0, dead_after=20)
        ran_key = rk.keys.group("test").key("ran")
        log = tmp_path / "workers.log"
        n = 600
        acked: list[int] = []  # extra jobs whose enqueue returned
        stop = threading.Event()

        def produce() -> None:  # one by one, before, during and after the outage
            with Redkit(server.url, prefix=prefix) as producer:
                p = producer.queue("proc")
                for k in itertools.count(n):
                    if stop.is_set():
                        return
                    try:
                        p.enqueue("work", k, job_id=f"x{k}")
                    except RedkitError:
                        stop.wait(0.05)
                        continue
                    acked.append(k)
                    stop.wait(0.005)

        procs = [worker_process(server.url, prefix, log, "-c", "10") for _ in range(2)]
        producer = threading.Thread(target=produce)
        try:
            q.enqueue_many("work", [(i,) for i in range(n)])
            producer.start()
            poll(lambda: q.counts()["done"] >= n // 4, timeout=30)
            server.kill()
            server.restart()
            before = len(acked)
            poll(lambda: len(acked) >= before + 20, timeout=30)  # the producer recovered
            stop.set()
            producer.join(30)
            expected = set(range(n)) | set(acked)
            poll(lambda: expected <= _ran(rk, ran_key), timeout=40)  # workers resumed
            assert all(proc.poll() is None for proc in procs)
        finally:
            stop.set()
            _stop(procs)
        states = _states(q)
        assert states["done"] >= len(expected)
        assert {k: v for k, v in states.items() if k != "done"} == dict.fromkeys(
            ("waiting", "delayed", "active", "failed", "dead", "blocked"), 0
        )
        rk.close()


def _ran(rk: Redkit, key: str) -> set[int]:
    try:
        return {int(x.split(b":")[0]) for x in rk.client.lrange(key, 0, -1)}
    except RedkitError:  # the test's own client meets the outage too
        return set()


def _states(q: Any) -> dict[str, int]:
    """Jobs per state (without the worker and enqueue totals)."""
    return {state: n for state, n in q.counts().items() if state in qops.STATES}


def _done(q: Any) -> int:
    try:
        return int(q.counts()["done"])
    except RedkitError:  # the test's own client meets the outage too
        return -1
