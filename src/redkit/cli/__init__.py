"""The ``redkit`` command.

Each subcommand lives in a module of its own in this package and exposes a click command
named ``command``; :data:`COMMANDS` lists the modules, so adding ``redkit demo`` is one new
module (``cli/demo.py``) and one name here. click is an optional dependency (the ``cli``
extra); without it ``redkit`` prints the install command instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from redkit._lazy import require
from redkit.errors import MissingDependencyError

if TYPE_CHECKING:
    import click

__all__ = ["COMMANDS", "build", "main"]

COMMANDS: tuple[str, ...] = (
    "demo",
    "dashboard",
    "info",
    "server",
    "queues",
    "jobs",
    "retry",
    "purge",
    "schedules",
    "worker",
)
"""The subcommand modules, ``redkit.cli.<name>.command``, each imported when named."""


def build() -> click.Group:
    """The ``redkit`` command group: each subcommand of :data:`COMMANDS` is imported when
    it runs (or when ``--help`` lists it), so ``redkit worker`` loads no other.

    Raises:
        MissingDependencyError: click is not installed.
    """
    require("click", "cli")  # a clear install command instead of an ImportError
    import click

    from redkit import __version__
    from redkit.cli._group import LazyGroup

    group = LazyGroup(
        __name__,
        COMMANDS,
        name="redkit",
        help="redkit: Redis patterns for Python web backends.",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    return click.version_option(__version__, "-V", "--version", prog_name="redkit")(group)


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``redkit`` (the console script); ``argv`` defaults to ``sys.argv[1:]``."""
    try:
        group = build()
    except MissingDependencyError as exc:
        print(f"redkit: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    group.main(args=list(argv) if argv is not None else None, prog_name="redkit")
