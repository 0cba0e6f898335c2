"""Real worker processes: kill -9 in the middle of work loses no job; a poison job is caught."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from redkit import Redkit
from redkit.embedded import EmbeddedServer
from redkit.errors import RedkitError
from redkit.queue import ops as qops

from .conftest import poll, worker_process

N = 2000
CONCURRENCY = 10


@pytest.mark.slow
def test_killed_workers_lose_no_job(target_url: str, prefix: str, tmp_path: Path) -> None:
    rk = Redkit(target_url, prefix=prefix)
    q = rk.queue("proc", lease=1.0, dead_after=20)
    ran_key = rk.keys.group("test").key("ran")
    log = tmp_path / "workers.log"
    start = lambda: worker_process(target_url, prefix, log, "-c", str(CONCURRENCY))  # noqa: E731
    procs = [start() for _ in range(3)]
    try:
        q.enqueue_many("work", [(i,) for i in range(N)])
        kills = 0
        while kills < 3:  # kill -9 one worker each time another fifth of the jobs is done
            poll(lambda k=kills: q.counts()["done"] >= (k + 1) * N // 5, timeout=30)
            victim = procs.pop(0)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            kills += 1
            procs.append(start())
        poll(lambda: q.counts()["done"] == N, timeout=40)
    finally:
        _stop(procs)
    ran = [int(x) for x in rk.client.lrange(ran_key, 0, -1)]
    assert set(ran) == set(range(N)), "every job ran"
    assert len(ran) - N <= kills * 2 * CONCURRENCY, "only killed workers' jobs ran twice"
    assert _states(q) == {"waiting": 0, "delayed": 0, "active": 0, "done": N, "failed": 0,
                          "dead": 0}  # fmt: skip
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


@pytest.mark.slow
def test_a_server_crash_with_aof_loses_no_job(prefix: str, tmp_path: Path) -> None:
    fsync = ["--appendfsync", "always"]  # every acknowledged write is on disk
    with EmbeddedServer(persistence=True, extra_args=fsync) as server:
        rk = Redkit(server.url, prefix=prefix)
        q = rk.queue("proc", lease=1.0, dead_after=20)
        ran_key = rk.keys.group("test").key("ran")
        log = tmp_path / "workers.log"
        n = 600
        procs = [worker_process(server.url, prefix, log, "-c", "10") for _ in range(2)]
        try:
            q.enqueue_many("work", [(i,) for i in range(n)])
            poll(lambda: q.counts()["done"] >= n // 4, timeout=30)
            server.kill()
            server.restart()
            poll(lambda: _done(q) == n, timeout=40)  # the workers resumed by themselves
            assert all(proc.poll() is None for proc in procs)
        finally:
            _stop(procs)
        assert {int(x) for x in rk.client.lrange(ran_key, 0, -1)} == set(range(n))
        assert _states(q) == {"waiting": 0, "delayed": 0, "active": 0, "done": n, "failed": 0,
                              "dead": 0}  # fmt: skip
        rk.close()


def _states(q: Any) -> dict[str, int]:
    """Jobs per state (without the worker and enqueue totals)."""
    return {state: n for state, n in q.counts().items() if state in qops.STATES}


def _done(q: Any) -> int:
    try:
        return int(q.counts()["done"])
    except RedkitError:  # the test's own client meets the outage too
        return -1
