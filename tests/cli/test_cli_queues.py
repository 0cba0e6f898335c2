"""``redkit queues`` on a real server."""

from __future__ import annotations

from click.testing import CliRunner

from redkit import Redkit
from redkit.cli import build


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
    assert lines[0].split() == ["queue", "waiting", "delayed", "done", "failed", "dead"]
    assert lines[1].split() == ["emails", "3", "1", "0", "0", "0"]
    assert lines[2].split() == ["reports", "1", "0", "0", "0", "0"]
    only = runner.invoke(build(), [*args, "reports"], catch_exceptions=False)
    assert len(only.stdout.splitlines()) == 2
    empty = runner.invoke(build(), ["queues", "--url", standalone_url, "--prefix", prefix + "x"])
    assert empty.stdout.strip() == "no queues"
