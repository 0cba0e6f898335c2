"""``redkit jobs QUEUE --state failed``: the jobs of one state as a table."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from redkit.cli._common import friendly_errors, open_queue
from redkit.config import Settings
from redkit.facade import Redkit
from redkit.queue import JobInfo
from redkit.queue.ops import STATES

#: What the time column means for each state.
WHEN = {"delayed": "due", "done": "finished", "failed": "failed", "dead": "dead"}


def ago(moment: datetime | None, now: datetime) -> str:
    """``12s ago``, ``in 3m 5s``: a moment relative to ``now``, short."""
    if moment is None:
        return ""
    seconds = round((now - moment).total_seconds())
    text = span(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def span(seconds: int) -> str:
    """``45s``, ``3m 5s``, ``2h 10m``, ``4d 3h``."""
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                     ("m", 60, "s", 1)):  # fmt: skip
        if seconds >= size:
            rest = (seconds % size) // subsize
            return f"{seconds // size}{unit}" + (f" {rest}{sub}" if rest else "")
    return f"{seconds}s"


def clip(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def arguments(job: JobInfo) -> str:
    """The job's arguments as a call would read: ``1, 'x', to='a@b.c'``."""
    if job.args is None and job.kwargs is None:
        return ""
    parts = [repr(a) for a in job.args or ()]
    parts += [f"{k}={v!r}" for k, v in (job.kwargs or {}).items()]
    return ", ".join(parts)


def render(jobs: list[JobInfo], state: str, now: datetime) -> str:
    """One line per job: id, task, attempts, age, the state's moment, arguments, error."""
    header = ["id", "task", "tries", "enqueued"]
    if state in WHEN:
        header.append(WHEN[state])
    header.append("arguments")
    failing = state in ("failed", "dead", "delayed", "waiting")
    if failing:
        header.append("error")
    rows = []
    for job in jobs:
        row = [clip(job.id, 36), clip(job.task, 24), str(job.attempts), ago(job.enqueued_at, now)]
        if state in WHEN:
            row.append(ago(job.at, now))
        row.append(clip(arguments(job), 40))
        if failing:
            error = job.error or {}
            message = f"{error.get('type', '')}: {error.get('message', '')}" if error else ""
            row.append(clip(message, 60))
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]  # fmt: skip
    return "\n".join(lines)


@click.command("jobs")
@click.argument("queue")
@click.option(
    "--state", "-s", default="failed", show_default=True, type=click.Choice(STATES),
    help="Which jobs to list.",
)  # fmt: skip
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--traceback", "tracebacks", is_flag=True, help="Print each job's last traceback.")
@click.option("--url", help="Redis URL (default: REDIS_URL, else the embedded server).")
@click.option("--prefix", help="Key prefix (default: REDKIT_PREFIX, else 'redkit').")
def command(
    queue: str, state: str, limit: int, offset: int, tracebacks: bool, url: str | None,
    prefix: str | None,
) -> None:  # fmt: skip
    """List the jobs of QUEUE in one state (failed ones by default), latest first."""
    with friendly_errors(), Redkit(settings=Settings.from_env(url=url, prefix=prefix)) as rk:
        q = open_queue(rk, queue)
        jobs = q.jobs(state, limit=limit, offset=offset)
        total = q.counts()[state]
    if not jobs:
        click.echo(f"no {state} jobs in queue {queue!r}")
        return
    click.echo(render(jobs, state, datetime.now(timezone.utc)))
    shown = f"{offset + 1}-{offset + len(jobs)}"
    click.echo(f"({shown} of {total} {state} job{'s' if total != 1 else ''})")
    if tracebacks:
        for job in jobs:
            error = job.error or {}
            if error.get("traceback"):
                click.echo(f"\n--- {job.id} (attempt {error.get('attempts')})")
                click.echo(str(error["traceback"]).rstrip())
