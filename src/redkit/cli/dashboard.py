"""``redkit dashboard``: the web dashboard on its own (Starlette + uvicorn)."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from redkit._lazy import require
from redkit.cli._common import friendly_errors
from redkit.config import Settings

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--queue", "queues", multiple=True, help="A queue to show (besides those found).")
@click.option("--read-only", is_flag=True, help="Show everything, allow no action.")
@click.option("--poll", default=2.0, show_default=True, help="Seconds between page updates.")
@click.option("--url", help="Redis URL (default: REDIS_URL, else the embedded server).")
@click.option("--prefix", help="Key prefix (default: REDKIT_PREFIX, else 'redkit').")
def command(
    host: str, port: int, queues: tuple[str, ...], read_only: bool, poll: float,
    url: str | None, prefix: str | None,
) -> None:  # fmt: skip
    """Run the dashboard: queues, rate limits, caches and sessions of REDIS_URL.

    Set REDKIT_DASHBOARD_PASSWORD to ask for it (HTTP basic auth, any user name); without
    it the dashboard serves anyone who can reach it, so it listens on 127.0.0.1 by default.
    """
    require("starlette", "dashboard")
    require("uvicorn", "dashboard")
    from redkit import AsyncRedkit
    from redkit.dashboard import create_dashboard
    from redkit.demo.serve import listen, serve

    password = os.environ.get("REDKIT_DASHBOARD_PASSWORD") or None
    if password is None and host not in LOOPBACK:
        click.echo(
            f"redkit dashboard: warning: listening on {host} without a password "
            "(set REDKIT_DASHBOARD_PASSWORD)",
            err=True,
        )
    with friendly_errors():
        ark = AsyncRedkit(settings=Settings.from_env(url=url, prefix=prefix))
        app = create_dashboard(
            ark, queues=queues, read_only=read_only, poll=poll, auth=_basic(password)
        )
        try:
            sock = listen(host, port)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise click.ClickException(f"cannot listen on {host}:{port}: {reason}") from None
        url = f"http://{host}:{sock.getsockname()[1]}/"
        click.echo(f"redkit dashboard: Redis at {ark.target}, prefix {ark.keys.prefix}")
        serve(app, sock, lambda: click.echo(f"redkit dashboard: open {url}  (Ctrl-C stops it)"))


def _basic(password: str | None) -> Callable[[Request], bool | Response] | None:
    """An auth hook asking for ``password`` by HTTP basic auth (None: everyone is let in)."""
    if password is None:
        return None
    from starlette.responses import Response

    def check(request: Request) -> bool | Response:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                given = base64.b64decode(header[6:]).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                given = ""
            if secrets.compare_digest(given.encode(), password.encode()):
                return True
        return Response(
            "password required", 401, {"WWW-Authenticate": 'Basic realm="redkit dashboard"'}
        )

    return check
