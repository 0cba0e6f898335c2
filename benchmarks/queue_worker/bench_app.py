"""The no-op tasks the queue benchmark's worker process runs (REDIS_URL, REDKIT_PREFIX).

In a directory of its own: a worker started in benchmarks/ would import benchmarks/queue.py
in place of the standard library's queue module.
"""

from __future__ import annotations

import os
import time

from redkit import Redkit
from redkit.queue import current_job

rk = Redkit()
# BENCH_EVENTS: the queue's event stream length (0: off); BENCH_PROGRESS=1: each job
# reports its progress once; BENCH_PARTITIONS: the queue's partitions
queue = rk.queue(
    "bench", events=int(os.environ.get("BENCH_EVENTS", "0")),
    partitions=int(os.environ.get("BENCH_PARTITIONS", "1")),
)  # fmt: skip
PROGRESS = os.environ.get("BENCH_PROGRESS") == "1"
FIRST = rk.keys.group("bench").key("first")
LATENCY = rk.keys.group("bench").key("latency")


@queue.task
async def noop(i: int) -> None:
    """The job being measured: nothing at all (or one progress report)."""
    if PROGRESS:
        current_job().progress(i)


@queue.task
async def mark() -> None:
    """The first job of a drain: when it started."""
    rk.client.set(FIRST, repr(time.time()))


@queue.task
async def stamp(sent: float) -> None:
    """Enqueue-to-start latency of one job."""
    rk.client.rpush(LATENCY, time.time() - sent)
