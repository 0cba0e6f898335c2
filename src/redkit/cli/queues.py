"""``redkit queues``: how many jobs each queue holds, per state."""

from __future__ import annotations

import click

from redkit.cli._common import friendly_errors
from redkit.config import Settings
from redkit.facade import Redkit

STATES = ("waiting", "delayed", "done", "failed", "dead")


def names(rk: Redkit) -> list[str]:
    """The queues under the prefix (SCAN over their ``meta`` keys: an admin tool only)."""
    head = "{" + rk.keys.prefix + ":queue:"
    found = set()
    for key in rk.client.scan_iter(match=rk.keys.pattern("queue"), count=1000):
        text = key.decode() if isinstance(key, bytes) else str(key)
        if text.startswith(head) and text.endswith("}:meta"):
            found.add(text[len(head) : -len("}:meta")])
    return sorted(found)


def render(rows: dict[str, dict[str, int]]) -> str:
    """A table: one line per queue, one column per state."""
    width = max([len("queue"), *map(len, rows)])
    lines = [f"{'queue':<{width}} " + " ".join(f"{s:>9}" for s in STATES)]
    for name, counts in rows.items():
        lines.append(f"{name:<{width}} " + " ".join(f"{counts[s]:>9,}" for s in STATES))
    return "\n".join(lines)


@click.command("queues")
@click.argument("queue_names", nargs=-1, metavar="[NAME]...")
@click.option("--url", help="Redis URL (default: REDIS_URL, else the embedded server).")
@click.option("--prefix", help="Key prefix (default: REDKIT_PREFIX, else 'redkit').")
def command(queue_names: tuple[str, ...], url: str | None, prefix: str | None) -> None:
    """Show how many jobs each queue holds (all queues under the prefix by default)."""
    with friendly_errors(), Redkit(settings=Settings.from_env(url=url, prefix=prefix)) as rk:
        chosen = list(queue_names) or names(rk)
        rows = {name: rk.queue(name).counts() for name in chosen}
    click.echo(render(rows) if rows else "no queues")
