"""``redkit queues`` and ``redkit retry`` on a real server."""

from __future__ import annotations

import time

from click.testing import CliRunner

from redkit import Redkit
from redkit.cli import build
from redkit.queue import ops as qops


def test_queues_lists_counts_per_state(standalone_url: str, prefix: str) -> None:
    with Redkit(standalone_url, prefix=prefix) as rk:
        emails = rk.queue("emails")
        emails.enqueue_many("send", [(i,) for i in range(3)])
        emails.enqueue("send", 9, delay=60)
        rk.queue("reports").enqueue("build")
    runner = CliRunner()
    args = ["queues", "--url", standalone_url, "--prefix", prefix]
    result = runner.invoke(build(), args, catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "queue", "waiting", "delayed", "active", "done", "failed", "dead", "blocked", "workers"
    ]  # fmt: skip
    assert lines[1].split() == ["emails", "3", "1", "0", "0", "0", "0", "0", "0"]
    assert lines[2].split() == ["reports", "1", "0", "0", "0", "0", "0", "0", "0"]
    only = runner.invoke(build(), [*args, "reports"], catch_exceptions=False)
    assert len(only.stdout.splitlines()) == 2
    empty = runner.invoke(build(), ["queues", "--url", standalone_url, "--prefix", prefix + "x"])
    assert empty.stdout.strip() == "no queues"


def test_retry_puts_failed_jobs_back(standalone_url: str, prefix: str) -> None:
    with Redkit(standalone_url, prefix=prefix) as rk:
        q = rk.queue("jobs", lease=0.1, dead_after=1)
        first, second = q.enqueue("a", job_id="one"), q.enqueue("a", job_id="two")
        # a worker that claims both and dies: after its lease, both are dead-lettered
        rk.run(qops.take(q.keys, "gone", q.policy, 2, []))
        deadline = time.monotonic() + 5
        while q.counts()["dead"] < 2 and time.monotonic() < deadline:
            rk.run(qops.take(q.keys, "other", q.policy, 0, []))
        assert q.counts()["dead"] == 2
        runner = CliRunner()
        args = ["retry", "jobs", "--url", standalone_url, "--prefix", prefix]
        one = runner.invoke(build(), [*args, "one"], catch_exceptions=False)
        assert one.stdout.strip() == "1 job put back in queue 'jobs'"
        assert first.status() == "waiting"
        rest = runner.invoke(build(), args, catch_exceptions=False)
        assert rest.stdout.strip() == "1 job put back in queue 'jobs'"
        assert second.status() == "waiting"
        assert q.counts()["dead"] == 0
