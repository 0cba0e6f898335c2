"""``redkit demo``: the demo shop (FastAPI + uvicorn) on the embedded Valkey or REDIS_URL."""

from __future__ import annotations

import dataclasses
import os

import click

from redkit._lazy import require
from redkit.cli._common import friendly_errors, one_line
from redkit.config import Settings

REACH_TIMEOUT = 3.0


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
def command(host: str, port: int) -> None:
    """Run the demo shop: cache, sessions, JWT revocation and rate limits in one app."""
    require("fastapi", "demo")
    require("uvicorn", "demo")
    from redkit import AsyncRedkit
    from redkit.demo.app import create_app
    from redkit.demo.serve import listen, serve

    with friendly_errors():
        ark = AsyncRedkit(prefix=None if os.environ.get("REDKIT_PREFIX") else "redkit-demo")
        _check_reachable(ark.settings, ark.target)
        try:
            sock = listen(host, port)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise click.ClickException(
                f"cannot listen on {host}:{port}: {reason}"
                " (is another program using the port? choose another with --port)"
            ) from None
        url = f"http://{host}:{sock.getsockname()[1]}/"
        click.echo(f"redkit demo: Redis at {ark.target}")
        ready = f"redkit demo: open {url}  (Ctrl-C stops it)"
        serve(create_app(ark), sock, lambda: click.echo(ready))


def _check_reachable(settings: Settings, target: str) -> None:
    """One clear line, not a traceback from inside the app's startup, when Redis is down."""
    from redkit import Redkit
    from redkit.errors import ConnectionError as RedkitConnectionError

    quick = dataclasses.replace(
        settings,
        connect_timeout=REACH_TIMEOUT,
        socket_timeout=REACH_TIMEOUT,
        retries=0,
    )
    try:
        with Redkit(settings=quick) as rk:
            rk.ping()
    except RedkitConnectionError as exc:
        message = one_line(exc)
        if target not in message:
            message = f"cannot reach Redis at {target}: {message}"
        raise click.ClickException(
            f"{message} (check REDIS_URL, or unset it to use the embedded server)"
        ) from None
