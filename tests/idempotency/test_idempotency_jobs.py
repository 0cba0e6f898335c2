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

from redkit import Redkit

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def _poll(check: Callable[[], Any], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not true within {seconds} s"
        time.sleep(0.05)


def _worker(url: str, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    environ = {
        **os.environ, "REDIS_URL": url, "REDKIT_PREFIX": prefix, "PYTHONPATH": str(SRC),
        "REDKIT_EMBEDDED": "0",
    }  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "redkit.cli", "worker", "idem_jobs:queue", "-c", "20"],
            cwd=HERE, env=environ, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip


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
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = _worker(standalone_url, prefix, log)  # takes the jobs back after the lease
        jobs += [queue.enqueue("pay", order, 10) for order in orders]  # and a duplicate each
        answers = [job.result(timeout=30) for job in jobs]
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
    charges = Counter(c.decode() for c in rk.client.lrange(marks.key("charges"), 0, -1))
    assert charges == dict.fromkeys(orders, 1), log.read_text()[-3000:]
    by_order: dict[str, list[Any]] = {}
    for answer in answers:
        by_order.setdefault(answer["order"], []).append(answer)
    assert all(len({str(a) for a in same}) == 1 for same in by_order.values())
    rk.close()
