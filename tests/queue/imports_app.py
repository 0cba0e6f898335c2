"""A worker app whose one task reports what the worker process has imported (REDIS_URL,
REDKIT_PREFIX): see test_queue_imports.py."""

from __future__ import annotations

import sys

from redkit import Redkit

rk = Redkit()
queue = rk.queue("imports")


@queue.task
async def loaded() -> list[str]:
    """The modules the worker process holds while it runs a job."""
    return sorted(sys.modules)
