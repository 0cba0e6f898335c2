"""Tasks for the control tests' worker processes (REDIS_URL, REDKIT_PREFIX)."""

from __future__ import annotations

import asyncio

from redkit import Redkit
from redkit.queue import current_job

rk = Redkit()
queue = rk.queue("control", lease=2.0)


@queue.task
def spin() -> str:
    """A plain-function handler that stops cooperatively when its job is cancelled."""
    job = current_job()
    while not job.wait_cancelled(0.05):
        pass
    job.check_cancelled()  # raises JobCancelledError
    return "not reached"


@queue.task
async def nap(seconds: float) -> str:
    """An async handler: cancelled at its await."""
    await asyncio.sleep(seconds)
    return "woke"
