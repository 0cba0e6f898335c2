"""``redkit server``: the embedded Valkey in the foreground, for development."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from redkit.cli._common import friendly_errors
from redkit.embedded import EmbeddedSentinel, EmbeddedServer

_WATCH_INTERVAL = 0.5


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT (Ctrl-C) and SIGTERM; restore the old handlers afterwards."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _data_args(persistence: bool, data_dir: Path | None) -> list[str]:
    """valkey-server arguments that keep the append-only file in ``data_dir``."""
    if not persistence:
        if data_dir is not None:
            raise click.UsageError("--data-dir needs --persistence")
        return []
    directory = (data_dir or Path(".redkit-data")).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return ["--dir", str(directory)]


def _banner(server: EmbeddedServer, data: list[str]) -> str:
    where = f"data kept in {data[1]}" if data else "data in memory only"
    return "\n".join(
        [
            f"redkit: embedded Valkey running at {server.url}  ({where})",
            "Use it from your app or another shell:",
            "",
            f"    export REDIS_URL={server.url}",
            "",
            "Press Ctrl-C to stop.",
        ]
    )


def _sentinel_banner(topology: EmbeddedSentinel) -> str:
    host, port = topology.primary_address()
    replicas = ", ".join(str(n.port) for n in topology.data_nodes if n.port != port)
    sentinels = ", ".join(str(node.port) for node in topology.sentinels)
    return "\n".join(
        [
            f"redkit: embedded Sentinel topology running at {topology.url}",
            f"  primary {host}:{port}, replica {replicas}, sentinels {sentinels}"
            " (data in memory only)",
            "Use it from your app or another shell:",
            "",
            f"    export REDIS_URL={topology.url}",
            "",
            "Force a failover with: redis-cli -p "
            f"{topology.sentinels[0].port} SENTINEL FAILOVER {topology.service_name}",
            "Press Ctrl-C to stop.",
        ]
    )


def _run_sentinel() -> None:
    stop = threading.Event()
    topology = EmbeddedSentinel()
    with _stop_on_signals(stop), friendly_errors():
        try:
            topology.start()
            click.echo(_sentinel_banner(topology))
            while not stop.wait(_WATCH_INTERVAL):
                if not all(node.running for node in topology.sentinels):
                    raise click.ClickException("a sentinel exited unexpectedly")
        finally:
            topology.stop()
    click.echo("redkit: embedded Sentinel topology stopped.")


@click.command("server")
@click.option("--port", type=click.IntRange(1, 65535), help="TCP port (default: a free one).")
@click.option("--unix-socket", is_flag=True, help="Listen on a unix socket instead of TCP.")
@click.option("--persistence", is_flag=True, help="Keep data on disk across restarts (AOF).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where --persistence keeps its files (default: ./.redkit-data).",
)
@click.option(
    "--sentinel",
    is_flag=True,
    help="A primary, a replica and three sentinels, to try failover by hand.",
)
def command(
    port: int | None, unix_socket: bool, persistence: bool, data_dir: Path | None, sentinel: bool
) -> None:
    """Run the embedded Valkey in the foreground until Ctrl-C."""
    if port is not None and unix_socket:
        raise click.UsageError("--port and --unix-socket exclude each other")
    if sentinel:
        if port is not None or unix_socket or persistence or data_dir is not None:
            raise click.UsageError("--sentinel takes no other option")
        _run_sentinel()
        return
    data = _data_args(persistence, data_dir)
    stop = threading.Event()
    server = EmbeddedServer(
        port=port, unix_socket=unix_socket, persistence=persistence, extra_args=data
    )
    with _stop_on_signals(stop), friendly_errors():
        try:
            server.start()
            click.echo(_banner(server, data))
            while not stop.wait(_WATCH_INTERVAL):
                if not server.running:
                    raise click.ClickException("valkey-server exited unexpectedly")
        finally:
            server.stop()
    click.echo("redkit: embedded Valkey stopped.")
