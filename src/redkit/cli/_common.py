"""What the subcommands share: turning redkit errors into one-line CLI failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from redkit.errors import RedkitError


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
