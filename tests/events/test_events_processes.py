"""Real consumer processes: kill -9 in the middle of a stream loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from redkit import Redkit

from .conftest import poll

HERE = Path(__file__).resolve().parent
N = 600


def _consumer(url: str, prefix: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(HERE / "consumer_process.py"), url, prefix, name],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip


@pytest.mark.slow
def test_killed_consumers_lose_nothing(target_url: str, prefix: str, tmp_path: Path) -> None:
    rk = Redkit(target_url, prefix=prefix)
    jobs = rk.events.topic("jobs", durable=True)
    jobs.consumer("g").create()
    test = rk.keys.group("test")
    seen_key, acked_key = test.key("seen"), test.key("acked")
    log = tmp_path / "consumers.log"
    procs = {f"c{i}": _consumer(target_url, prefix, f"c{i}", log) for i in range(3)}
    try:
        ids = jobs.publish_many(list(range(N)))
        for kill_at, victim, fresh in ((N // 5, "c0", "c3"), (N // 2, "c1", "c4")):
            poll(lambda k=kill_at: rk.client.llen(seen_key) >= k, timeout=30)
            procs[victim].send_signal(signal.SIGKILL)  # mid-batch: handled, not acked
            procs[victim].wait(10)
            procs[fresh] = _consumer(target_url, prefix, fresh, log)

        def settled() -> bool:
            group = jobs.info().groups[0]
            return group.pending == 0 and group.lag == 0

        poll(settled, timeout=40)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    seen = [int(x) for x in rk.client.lrange(seen_key, 0, -1)]
    assert set(seen) == set(range(N)), "every message was handled"
    # at least once: the killed consumers' unacknowledged batches ran again, and so may a
    # batch whose consumer stalled past claim_idle on a loaded machine
    assert len(seen) - N < N // 2
    info = jobs.info()
    assert (info.length, info.dead_letters) == (len(ids), 0)
    assert (info.groups[0].pending, info.groups[0].lag) == (0, 0), "every message acknowledged"
    recorded = sum(int(v) for v in rk.client.hvals(acked_key))
    assert recorded <= N, "no message was acknowledged twice"
    rk.close()
