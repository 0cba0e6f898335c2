"""Idempotent queue tasks: a redelivered job never charges twice, with real worker
processes killed (-9) after the side effect."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redkit import Redkit
from redkit.errors import ConfigError
from redkit.queue import job_key

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def _poll(check: Callable[[], Any], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not true within {seconds} s"
        time.sleep(0.05)


def _worker(url: str, prefix: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    environ = {
        **os.environ, "REDIS_URL": url, "REDKIT_PREFIX": prefix, "PYTHONPATH": str(SRC),
        "REDKIT_EMBEDDED": "0",
    }  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "redkit.cli", "worker", "idem_jobs:queue", "-c", "20", *extra],
            cwd=HERE, env=environ, stdout=subprocess.DEVNULL, stderr=out,
            start_new_session=True,  # its process group: the worker and its pool's children
        )  # fmt: skip


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    """kill -9 the worker and its process pool's children, as a lost machine would."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_a_redelivered_job_does_not_charge_twice(
    standalone_url: str, prefix: str, tmp_path: Path
) -> None:
    rk = Redkit(standalone_url, prefix=prefix)
    queue = rk.queue("idem", lease=1.0, dead_after=20)
    marks = rk.keys.group("test")
    orders = {f"o{i}": ("after-charge" if i % 2 else "before-ack") for i in range(8)}
    jobs = [queue.enqueue("pay", order, 10, die) for order, die in orders.items()]
    log = tmp_path / "workers.log"
    first = _worker(standalone_url, prefix, log)
    second = None
    try:  # every first delivery hangs after its side effect: then kill -9 its worker
        _poll(lambda: rk.client.llen(marks.key("reached")) == len(orders))
        _kill(first)
        second = _worker(standalone_url, prefix, log)  # takes the jobs back after the lease
        jobs += [queue.enqueue("pay", order, 10) for order in orders]  # and a duplicate each
        answers = [job.result(timeout=30) for job in jobs]
    finally:
        _kill(first)
        _kill(second)
    charges = Counter(c.decode() for c in rk.client.lrange(marks.key("charges"), 0, -1))
    assert charges == dict.fromkeys(orders, 1), log.read_text()[-3000:]
    by_order: dict[str, list[Any]] = {}
    for answer in answers:
        by_order.setdefault(answer["order"], []).append(answer)
    assert all(len({str(a) for a in same}) == 1 for same in by_order.values())
    rk.close()


@pytest.mark.parametrize(
    ("task", "dies"),
    [
        ("pay_by_job", ("after-charge", "before-ack")),
        ("apay_by_job", ("after-charge", "before-ack")),
        ("pay_in_process", ("after-charge",)),
    ],
    ids=["sync", "async", "process"],
)
def test_a_task_keyed_by_its_job_charges_once_per_job(
    standalone_url: str, prefix: str, tmp_path: Path, task: str, dies: tuple[str, ...]
) -> None:
    """``key=job_key``: the job's first delivery hangs after the charge (or after the
    idempotent call returned, before the ack) and its worker is killed; the redelivery
    resumes or replays, so each job charges once and every job gets its first answer."""
    rk = Redkit(standalone_url, prefix=prefix)
    queue = rk.queue("idem", lease=1.0, dead_after=20)
    marks = rk.keys.group("test")
    orders = {f"o{i}": dies[i % len(dies)] for i in range(2 * len(dies))}
    jobs = [queue.enqueue(task, order, 10, die) for order, die in orders.items()]
    log = tmp_path / "workers.log"
    first = _worker(standalone_url, prefix, log, "--pool-size", "2")
    second = None
    try:
        _poll(lambda: rk.client.llen(marks.key("reached")) == len(orders))
        _kill(first)
        second = _worker(standalone_url, prefix, log, "--pool-size", "2")
        answers = [job.result(timeout=60) for job in jobs]
    finally:
        _kill(first)
        _kill(second)
    charges = Counter(c.decode() for c in rk.client.lrange(marks.key("charges"), 0, -1))
    assert charges == dict.fromkeys(orders, 1), log.read_text()[-3000:]
    assert [a["order"] for a in answers] == list(orders)
    assert sorted(a["charge"] for a in answers) == list(range(1, len(orders) + 1))
    infos = [job.info() for job in jobs]
    assert all(i is not None and i.attempts == 2 for i in infos), infos  # delivered again
    rk.close()


def test_job_key_outside_a_job_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="inside a task's handler"):
        job_key("any", amount=1)
