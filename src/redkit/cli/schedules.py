"""``redkit schedules``: every queue's schedules with their next run."""

from __future__ import annotations

import click

from redkit.cli._common import friendly_errors
from redkit.config import Settings
from redkit.facade import Redkit


def queue_names(rk: Redkit) -> list[str]:
    """The queues that have schedules (SCAN over their ``schedules`` keys: admin only)."""
    head, tail = "{" + rk.keys.prefix + ":queue:", "}:schedules"
    found = set()
    for key in rk.client.scan_iter(match=rk.keys.pattern("queue"), count=1000):
        text = key.decode() if isinstance(key, bytes) else str(key)
        if text.startswith(head) and text.endswith(tail):
            found.add(text[len(head) : -len(tail)])
    return sorted(found)


@click.command("schedules")
@click.argument("queue_names_", nargs=-1, metavar="[QUEUE]...")
@click.option("--url", help="Redis URL (default: REDIS_URL, else the embedded server).")
@click.option("--prefix", help="Key prefix (default: REDKIT_PREFIX, else 'redkit').")
def command(queue_names_: tuple[str, ...], url: str | None, prefix: str | None) -> None:
    """List the schedules of each queue (all under the prefix by default), with next run."""
    rows: list[tuple[str, ...]] = []
    with friendly_errors(), Redkit(settings=Settings.from_env(url=url, prefix=prefix)) as rk:
        for name in list(queue_names_) or queue_names(rk):
            for info in rk.queue(name).list_schedules():
                s = info.schedule
                when = f"cron {s.cron} ({s.tz})" if s.cron else f"every {s.every:g} s"
                rows.append((name, s.name, s.task, when, info.next_run.isoformat()))
    if not rows:
        click.echo("no schedules")
        return
    header = ("queue", "schedule", "task", "when", "next run")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
