"""Helpers for the queue tests: an in-process worker in a thread, worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.flavours import poll as poll  # shared; re-exported for the tests here

from redkit.queue import AsyncQueue, Queue, Worker

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


class Running:
    """A worker running in a thread of its own (``Worker.run_sync``)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.thread = threading.Thread(target=worker.run_sync, kwargs={"signals": False})
        self.thread.start()
        assert worker.started.wait(10)

    def stop(self, grace: float | None = None) -> None:
        if self.thread.is_alive():
            self.worker.stop_threadsafe(grace, timeout=30)
            self.thread.join(10)


@contextmanager
def running(queue: Queue | AsyncQueue, **options: Any) -> Iterator[Running]:
    """Run a worker for ``queue`` while the block runs; stopped (drained) after it."""
    handle = Running(Worker(queue, **options))
    try:
        yield handle
    finally:
        handle.stop()


def worker_process(
    url: str, prefix: str, log: Path, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    """``redkit worker queue_app:queue`` in a process of its own, its output in ``log``."""
    environ = {
        **os.environ, "REDIS_URL": url, "REDKIT_PREFIX": prefix, "PYTHONPATH": str(SRC),
        "REDKIT_EMBEDDED": "0", **env,
    }  # fmt: skip
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "redkit.cli", "worker", "queue_app:queue", *args],
            cwd=HERE, env=environ, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
