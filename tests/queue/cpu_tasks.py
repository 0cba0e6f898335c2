"""Module-level handlers for the process-pool tests (a child imports them by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def checksum(n: int) -> dict[str, int]:
    """CPU-bound work; says which process ran it."""
    return {"sum": sum(i * i for i in range(n)), "pid": os.getpid()}


def spin(pid_file: str) -> None:
    """Writes its pid, then never returns by itself (only a kill stops it)."""
    Path(pid_file).write_text(str(os.getpid()))
    while True:
        time.sleep(0.01)


def refuse(value: str) -> None:
    raise ValueError(f"cannot use {value!r}")


def die(code: int) -> None:
    os._exit(code)


async def async_double(x: int) -> int:
    return 2 * x


def whoami() -> dict[str, object]:
    """What ``current_job()`` says inside a pool process."""
    from redkit.queue import current_job, job_key

    job = current_job()
    return {"id": job.id, "task": job.task, "queue": job.queue, "key": job_key()}
