"""The tasks that worker processes run in the queue tests (REDIS_URL, REDKIT_PREFIX)."""

from __future__ import annotations

import os
import time

from redkit import Redkit

rk = Redkit()
queue = rk.queue(
    "proc", lease=1.0, dead_after=int(os.environ.get("QUEUE_TEST_DEAD_AFTER", "20")),
    partitions=int(os.environ.get("QUEUE_TEST_PARTITIONS", "1")),
)  # fmt: skip
RAN = rk.keys.group("test").key("ran")


@queue.task
def work(i: int) -> int:
    """A job that takes a while, so that killed workers die in the middle of some.

    Records ``i:start:end`` in RAN when it completes.
    """
    start = time.time()
    time.sleep(float(os.environ.get("QUEUE_TEST_JOB_SECONDS", "0.03")))
    rk.client.rpush(RAN, f"{i}:{start}:{time.time()}")
    return i


@queue.task
def crash() -> None:
    """A job that kills its worker every time."""
    os._exit(3)


@queue.task(process=True, timeout=float(os.environ.get("QUEUE_TEST_PROCESS_TIMEOUT", "2")))
def burn(seconds: float) -> int:
    """CPU-bound, in the worker's process pool: spins, then returns its process id."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return os.getpid()
