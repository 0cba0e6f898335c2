"""What the subcommands share: turning redkit errors into one-line CLI failures, and
opening a queue with as many partitions as its keys show."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from redkit.errors import RedkitError
from redkit.keys import escape
from redkit.queue import partitions

if TYPE_CHECKING:
    from redkit.facade import Redkit
    from redkit.queue import Queue


def queues_found(rk: Redkit, name: str | None = None) -> dict[str, int]:
    """The queues under the prefix (or ``name`` alone), as their keys name them, with
    their partition counts (SCAN over their ``meta`` keys: an admin tool only)."""
    pattern = partitions.meta_pattern(rk.keys.prefix, name)
    return partitions.discovered(rk.client.scan_iter(match=pattern, count=1000), rk.keys.prefix)


def open_queue(rk: Redkit, name: str, found: dict[str, int] | None = None) -> Queue:
    """The queue ``name``, with the partitions its keys show (see :func:`queues_found`)."""
    if found is None:
        found = queues_found(rk, name)
    return rk.queue(name, partitions=found.get(escape(name), 1))


def one_line(exc: BaseException) -> str:
    """The first line of an error message (redis-py and valkey logs can span several)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn a :class:`RedkitError` into ``Error: <one line>`` and exit code 1, no traceback."""
    try:
        yield
    except RedkitError as exc:
        raise click.ClickException(one_line(exc)) from None
