"""``redkit retry QUEUE [JOB_ID]...``: put failed and dead-lettered jobs back in a queue."""

from __future__ import annotations

import click

from redkit.cli._common import friendly_errors, open_queue
from redkit.config import Settings
from redkit.facade import Redkit


@click.command("retry")
@click.argument("queue")
@click.argument("job_ids", nargs=-1, metavar="[JOB_ID]...")
@click.option("--url", help="Redis URL (default: REDIS_URL, else the embedded server).")
@click.option("--prefix", help="Key prefix (default: REDKIT_PREFIX, else 'redkit').")
def command(queue: str, job_ids: tuple[str, ...], url: str | None, prefix: str | None) -> None:
    """Put failed and dead-lettered jobs of QUEUE back (all of them, or the JOB_IDs)."""
    settings = Settings.from_env(url=url, prefix=prefix)
    with friendly_errors(), Redkit(settings=settings) as rk:
        q = open_queue(rk, queue)
        chosen = [q.job(job_id) for job_id in job_ids]
        moved = sum(job.retry() for job in chosen) if chosen else q.retry_failed()
    click.echo(f"{moved} job{'s' if moved != 1 else ''} put back in queue {queue!r}")
