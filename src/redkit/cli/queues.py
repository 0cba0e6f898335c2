"""``redkit queues``: how many jobs each queue holds, per state; ``--watch`` follows them."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import click

from redkit.cli._common import friendly_errors, open_queue, queues_found
from redkit.config import Settings
from redkit.facade import Redkit
from redkit.queue.ops import STATES

#: Jobs a worker has yet to finish.
OUTSTANDING = ("waiting", "delayed", "active", "blocked")
BAR = 20


def names(rk: Redkit) -> list[str]:
    """The queues under the prefix (SCAN over their ``meta`` keys: an admin tool only)."""
    return sorted(queues_found(rk))


def all_counts(rk: Redkit, chosen: list[str]) -> dict[str, dict[str, int]]:
    """The counts of each queue in ``chosen`` (default: all), over all its partitions."""
    found = queues_found(rk)
    return {name: open_queue(rk, name, found).counts() for name in chosen or sorted(found)}


def render(rows: dict[str, dict[str, int]], extra: dict[str, list[str]] | None = None) -> str:
    """A table: one line per queue, one column per state and its live workers.

    ``extra`` adds columns: its ``""`` entry is their headers, one entry per queue.
    """
    width = max([len("queue"), *map(len, rows)])
    columns = [*STATES, "workers"]
    head = f"{'queue':<{width}} " + " ".join(f"{s:>9}" for s in columns)
    lines = [head + ("  " + "  ".join(extra[""]) if extra else "")]
    for name, counts in rows.items():
        line = f"{name:<{width}} " + " ".join(f"{counts[s]:>9,}" for s in columns)
        lines.append(line + ("  " + "  ".join(extra[name]) if extra else ""))
    return "\n".join(lines)


@dataclass
class Progress:
    """A queue's drain since the watch began: jobs finished, the rate, what is left."""

    first: dict[str, int]
    last: dict[str, int]
    at: float = field(default_factory=time.monotonic)
    rate: float = 0.0

    def update(self, counts: dict[str, int], now: float) -> None:
        """Take a new reading; the rate is smoothed over the last few readings."""
        finished = finished_between(self.last, counts)
        elapsed = now - self.at
        if elapsed > 0:
            current = max(0.0, finished / elapsed)
            self.rate = current if self.rate == 0 else 0.5 * self.rate + 0.5 * current
        self.last, self.at = counts, now

    def columns(self) -> list[str]:
        """``[#####.....]  52%``, the rate and the time left at that rate."""
        left = outstanding(self.last)
        done = finished_between(self.first, self.last)
        share = 1.0 if done + left == 0 else done / (done + left)
        bar = "[" + "#" * round(share * BAR) + "." * (BAR - round(share * BAR)) + "]"
        eta = "" if left == 0 else ("?" if self.rate <= 0 else f"{left / self.rate:,.0f}s")
        return [f"{bar} {share:>4.0%}", f"{self.rate:>9,.0f}", f"{eta:>8}"]


def outstanding(counts: dict[str, int]) -> int:
    """Jobs a worker has yet to finish (waiting, delayed, running or blocked)."""
    return sum(counts[s] for s in OUTSTANDING)


def finished_between(before: dict[str, int], after: dict[str, int]) -> int:
    """Jobs that left the queue's outstanding ones between two readings (added ones count)."""
    added = after["enqueued"] - before["enqueued"]
    return max(0, added + outstanding(before) - outstanding(after))


def watch(rk: Redkit, chosen: list[str], interval: float, until_empty: bool) -> None:
    """Redraw the table with a progress bar, jobs/s and time left, every ``interval`` s."""
    screen = click.get_text_stream("stdout").isatty()
    progress: dict[str, Progress] = {}
    while True:
        now = time.monotonic()
        rows = all_counts(rk, chosen)
        for name, counts in rows.items():
            if name in progress:
                progress[name].update(counts, now)
            else:
                progress[name] = Progress(counts, counts, now)
        extra = {"": [f"{'progress':<{BAR + 7}}", f"{'jobs/s':>9}", f"{'left':>8}"]}
        extra.update({name: progress[name].columns() for name in rows})
        table = render(rows, extra) if rows else "no queues"
        if screen:
            click.echo("\x1b[H\x1b[J", nl=False)  # redraw in place
        click.echo(table + ("" if screen else "\n"))
        if until_empty and all(outstanding(c) == 0 for c in rows.values()):
            return
        time.sleep(max(0.0, interval - (time.monotonic() - now)))


@click.command("queues")
@click.argument("queue_names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--watch",
    "-w",
    "watching",
    is_flag=True,
    help="Redraw every --interval seconds with progress, jobs/s and time left.",
)
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="Seconds between redraws with --watch.",
)
@click.option(
    "--until-empty",
    is_flag=True,
    help="With --watch: stop once no job is waiting, delayed or running.",
)
@click.option("--url", help="Redis URL (default: REDIS_URL, else the embedded server).")
@click.option("--prefix", help="Key prefix (default: REDKIT_PREFIX, else 'redkit').")
def command(
    queue_names: tuple[str, ...], watching: bool, interval: float, until_empty: bool,
    url: str | None, prefix: str | None,
) -> None:  # fmt: skip
    """Show how many jobs each queue holds (all queues under the prefix by default)."""
    with friendly_errors(), Redkit(settings=Settings.from_env(url=url, prefix=prefix)) as rk:
        if watching:
            with contextlib.suppress(KeyboardInterrupt):
                watch(rk, list(queue_names), interval, until_empty)
            return
        rows = all_counts(rk, list(queue_names))
    click.echo(render(rows) if rows else "no queues")
