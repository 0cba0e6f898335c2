"""The ``redkit`` group, whose subcommands are imported when named, not when it is built.

The pattern is click's own "lazily loading subcommands": ``redkit worker`` then loads
neither the dashboard nor the embedded server, and a worker process stays smaller.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import click


class LazyGroup(click.Group):
    """A group of the subcommands ``<package>.<name>.command`` for each of ``names``."""

    def __init__(self, package: str, names: Sequence[str], **attrs: Any) -> None:
        super().__init__(**attrs)
        self.package, self.names = package, tuple(names)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.names, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.names:
            return self.commands.get(cmd_name)
        command = importlib.import_module(f"{self.package}.{cmd_name}").command
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.package}.{cmd_name}.command is not a click command")
        self.add_command(command, cmd_name)
        return command
