"""A worker process (``redkit worker``) loads the queue and nothing else of redkit's.

Each capability costs memory in every process that imports it; a worker's resident
memory is one of the numbers docs/queue.md compares.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from redkit import Redkit

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"

#: What ``redkit worker`` never needs for async tasks: the other capabilities, the web
#: parts, the other subcommands, and the standard library modules only some paths use
#: (not difflib: click parses a short option such as -c by first trying it as a long
#: one, which imports it).
NEVER = (
    "redkit.cache", "redkit.sessions", "redkit.events", "redkit.idempotency", "redkit.locks",
    "redkit.metrics", "redkit.integrations", "redkit.dashboard", "redkit.demo",
    "redkit.embedded", "redkit.cli.dashboard", "redkit.cli.demo", "redkit.cli.server",
    "redkit.ratelimit.limiter", "redkit.ratelimit.concurrency",
    "pickle", "decimal", "multiprocessing",
)  # fmt: skip


def test_a_worker_process_loads_only_what_it_runs(
    standalone_url: str, prefix: str, tmp_path: Path
) -> None:
    env = {
        **os.environ, "REDIS_URL": standalone_url, "REDKIT_PREFIX": prefix,
        "PYTHONPATH": str(SRC), "REDKIT_EMBEDDED": "0",
    }  # fmt: skip
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "redkit.cli", "worker", "imports_app:queue", "-c", "2"],
            cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
    with Redkit(standalone_url, prefix=prefix) as rk:
        try:
            loaded = rk.queue("imports").enqueue("loaded").result(timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert "redkit.queue.worker" in loaded, log.read_text()
    wrong = [m for m in loaded if any(m == p or m.startswith(p + ".") for p in NEVER)]
    assert wrong == []
