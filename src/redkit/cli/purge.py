"""``redkit purge QUEUE``: delete a queue's jobs (asks first; ``--yes`` does not)."""

from __future__ import annotations

import click

from redkit.cli._common import friendly_errors, open_queue
from redkit.config import Settings
from redkit.facade import Redkit
from redkit.queue.ops import PURGEABLE


@click.command("purge")
@click.argument("queue")
@click.option(
    "--state", "-s", "states", multiple=True, type=click.Choice(PURGEABLE),
    help="Delete only jobs in this state (repeatable; default: every state but active).",
)  # fmt: skip
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--url", help="Redis URL (default: REDIS_URL, else the embedded server).")
@click.option("--prefix", help="Key prefix (default: REDKIT_PREFIX, else 'redkit').")
def command(
    queue: str, states: tuple[str, ...], yes: bool, url: str | None, prefix: str | None
) -> None:
    """Delete the jobs of QUEUE (waiting, delayed, done, failed, dead, blocked; never running
    ones)."""
    chosen = states or PURGEABLE
    with friendly_errors(), Redkit(settings=Settings.from_env(url=url, prefix=prefix)) as rk:
        q = open_queue(rk, queue)
        counts = q.counts()
        found = {state: counts[state] for state in chosen if counts[state]}
        if not found:
            click.echo(f"nothing to purge in queue {queue!r}")
            return
        listing = ", ".join(f"{n:,} {state}" for state, n in found.items())
        total = sum(found.values())
        if not yes:
            click.confirm(f"Delete {total:,} jobs from queue {queue!r} ({listing})?", abort=True)
        deleted = q.purge(*found)
    click.echo(f"deleted {deleted:,} job{'s' if deleted != 1 else ''} from queue {queue!r}")
