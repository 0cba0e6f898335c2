"""The worker's process pool (``process=True`` tasks): real child processes, hard kills."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psutil
import pytest

from redkit import Redkit
from redkit.errors import ConfigError
from redkit.queue import JobFailedError, Worker

from .conftest import HERE, poll, running


@pytest.fixture
def rk(standalone_url: str, prefix: str) -> Iterator[Redkit]:
    """The pool does not depend on the server: one target is enough."""
    with Redkit(standalone_url, prefix=prefix) as facade:
        yield facade


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(HERE))  # children get the parent's sys.path
    import cpu_tasks

    return cpu_tasks


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_cpu_tasks_run_in_child_processes(rk: Redkit, tasks: ModuleType) -> None:
    q = rk.queue("pool")
    checksum = q.task(process=True)(tasks.checksum)
    double = q.task(process=True)(tasks.async_double)
    with running(q, concurrency=4, pool_size=2) as handle:
        jobs = checksum.enqueue_many([(1000 + i,) for i in range(6)])
        results = [job.result(timeout=60) for job in jobs]
        assert double.enqueue(21).result(timeout=30) == 42
        pool = handle.worker._pool
        assert pool is not None
        assert len(pool._idle) <= 2
    assert [r["sum"] for r in results] == [sum(i * i for i in range(1000 + i)) for i in range(6)]
    pids = {r["pid"] for r in results}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2  # the pool's processes are reused
    for pid in pids:  # stopping the worker stopped its pool
        poll(lambda pid=pid: _gone(pid), timeout=10)


def test_current_job_inside_a_pool_process(rk: Redkit, tasks: ModuleType) -> None:
    q = rk.queue("pool")
    whoami = q.task(process=True)(tasks.whoami)
    with running(q, concurrency=1, pool_size=1):
        job = whoami.enqueue(job_id="j-1")
        assert job.result(timeout=60) == {
            "id": "j-1", "task": "whoami", "queue": "pool", "key": "job:pool:j-1"
        }  # fmt: skip


def test_a_timeout_kills_the_handler_process(rk: Redkit, tasks: ModuleType, tmp_path: Path) -> None:
    q = rk.queue("pool-timeout")
    spin = q.task(process=True, timeout=2.0)(tasks.spin)
    checksum = q.task(process=True)(tasks.checksum)
    pid_file = tmp_path / "pid"
    with running(q, concurrency=2, pool_size=1):
        job = spin.enqueue(str(pid_file))
        with pytest.raises(JobFailedError) as failed:
            job.result(timeout=60)
        pid = int(pid_file.read_text())
        poll(lambda: _gone(pid), timeout=10)  # really stopped, not left running
        assert failed.value.error is not None
        assert failed.value.error["type"] == "JobTimeoutError"
        assert "its process was killed" in failed.value.error["message"]
        after = checksum.enqueue(10).result(timeout=60)  # a fresh child took over
        assert after["pid"] != pid


def test_errors_keep_their_type_and_traceback(rk: Redkit, tasks: ModuleType) -> None:
    q = rk.queue("pool-errors")
    refuse = q.task(process=True)(tasks.refuse)
    with running(q, pool_size=1):
        job = refuse.enqueue("x")
        with pytest.raises(JobFailedError):
            job.result(timeout=60)
    error = job.error()
    assert error is not None
    assert error["type"] == "ValueError"
    assert error["message"] == "cannot use 'x'"
    assert "in refuse" in error["traceback"]


def test_a_child_that_dies_fails_its_job_and_the_worker_goes_on(
    rk: Redkit, tasks: ModuleType
) -> None:
    q = rk.queue("pool-crash")
    die = q.task(process=True, retries=1, backoff="fixed", backoff_base=0.01)(tasks.die)
    checksum = q.task(process=True)(tasks.checksum)
    with running(q, pool_size=1):
        job = die.enqueue(7)
        with pytest.raises(JobFailedError, match="JobCrashedError"):
            job.result(timeout=60)
        assert checksum.enqueue(3).result(timeout=60)["sum"] == 5
    error = job.error()
    assert error is not None
    assert "exit code 7" in error["message"]
    assert error["attempts"] == 2  # retried once by the task's policy, like any failure


def test_a_stop_past_its_grace_kills_the_child_and_hands_the_job_back(
    rk: Redkit, tasks: ModuleType, tmp_path: Path
) -> None:
    q = rk.queue("pool-stop", lease=30.0)
    spin = q.task(process=True)(tasks.spin)
    pid_file = tmp_path / "pid"
    with running(q, pool_size=1, grace=0.2) as worker:
        job = spin.enqueue(str(pid_file))
        poll(pid_file.exists, timeout=60)
        pid = int(pid_file.read_text())
        started = time.monotonic()
        worker.stop()
        assert time.monotonic() - started < 15
    poll(lambda: _gone(pid), timeout=10)
    assert job.status() == "waiting"


def test_cancelling_a_running_process_task_kills_its_process(
    rk: Redkit, tasks: ModuleType, tmp_path: Path
) -> None:
    q = rk.queue("pool-cancel")
    spin = q.task(process=True)(tasks.spin)
    pid_file = tmp_path / "pid"
    with running(q, pool_size=1):
        job = spin.enqueue(str(pid_file))
        poll(pid_file.exists, timeout=60)
        pid = int(pid_file.read_text())
        assert job.cancel()
        poll(lambda: job.status() == "cancelled", timeout=20)
        poll(lambda: _gone(pid), timeout=10)


def test_process_tasks_must_be_importable_by_name(rk: Redkit) -> None:
    q = rk.queue("pool-checks")

    def local() -> None: ...

    with pytest.raises(ConfigError, match="module-level"):
        q.task(process=True)(local)
    with pytest.raises(ConfigError, match="pool_size"):
        Worker(q, pool_size=0)
