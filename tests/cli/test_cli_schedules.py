"""``redkit schedules`` on a real server."""

from __future__ import annotations

from click.testing import CliRunner

from redkit import Redkit
from redkit.cli import build


def test_schedules_lists_next_runs(standalone_url: str, prefix: str) -> None:
    with Redkit(standalone_url, prefix=prefix) as rk:
        rk.queue("reports").add_schedule("nightly", "build", cron="0 2 * * *", tz="Europe/Paris")
        rk.queue("pings").add_schedule("ping", "ping", every=30)
    runner = CliRunner()
    args = ["schedules", "--url", standalone_url, "--prefix", prefix]
    result = runner.invoke(build(), args, catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["queue", "schedule", "task", "when", "next", "run"]
    assert lines[1].split()[:4] == ["pings", "ping", "ping", "every"]
    reports = lines[2].split()
    assert reports[:5] == ["reports", "nightly", "build", "cron", "0"]
    assert "T02:00:00+0" in reports[-1]  # the next 02:00 in Paris, with its UTC offset
    only = runner.invoke(build(), [*args, "pings"], catch_exceptions=False)
    assert len(only.stdout.splitlines()) == 2
    none = runner.invoke(build(), ["schedules", "--url", standalone_url, "--prefix", prefix + "x"])
    assert none.stdout.strip() == "no schedules"
