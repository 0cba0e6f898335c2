"""``redkit info``: where redkit would connect, and what it finds there."""

from __future__ import annotations

import os

import click

from redkit.cli._common import friendly_errors
from redkit.client import ServerInfo
from redkit.config import Settings
from redkit.facade import Redkit


def _source(url: str | None) -> str:
    """Which setting chose the server, for the first line of the report."""
    if url is not None:
        return "--url"
    if os.environ.get("REDIS_URL"):
        return "REDIS_URL"
    if os.environ.get("REDIS_HOST") or os.environ.get("REDIS_PORT"):
        return "REDIS_HOST/REDIS_PORT"
    return "nothing configured: the embedded Valkey, started for this command"


def _persistence(value: bool | None) -> str:
    if value is None:
        return "unknown"
    return "on (AOF or RDB saves)" if value else "off (nothing written to disk)"


def render(info: ServerInfo, source: str) -> str:
    """The report ``redkit info`` prints, one ``name: value`` line per fact."""
    rows = [
        ("target", f"{info.target}  ({source})"),
        ("engine", f"{info.engine} {info.version}"),
        ("mode", info.mode),
        ("key prefix", info.prefix),
        ("maxmemory policy", info.maxmemory_policy or "unknown"),
        ("persistence", _persistence(info.persistence)),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name + ':':<{width + 1}} {value}" for name, value in rows)


@click.command("info")
@click.option("--url", help="Redis URL to inspect (default: REDIS_URL, else the embedded server).")
@click.option("--prefix", help="Key prefix to report (default: REDKIT_PREFIX, else 'redkit').")
def command(url: str | None, prefix: str | None) -> None:
    """Show where redkit connects and what it finds there."""
    with friendly_errors():
        settings = Settings.from_env(url=url, prefix=prefix)
        with Redkit(settings=settings) as rk:
            info = rk.info()
    click.echo(render(info, _source(url)))
