"""``redkit demo``: the demo shop (FastAPI + uvicorn) on the embedded Valkey or REDIS_URL."""

from __future__ import annotations

import os

import click

from redkit._lazy import require
from redkit.cli._common import friendly_errors


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
def command(host: str, port: int) -> None:
    """Run the demo shop: cache, sessions, JWT revocation and rate limits in one app."""
    require("fastapi", "demo")
    uvicorn = require("uvicorn", "demo")
    from redkit import AsyncRedkit
    from redkit.demo.app import create_app

    with friendly_errors():
        ark = AsyncRedkit(prefix=None if os.environ.get("REDKIT_PREFIX") else "redkit-demo")
        click.echo(f"redkit demo: Redis at {ark.target}")
        click.echo(f"redkit demo: open http://{host}:{port}/  (Ctrl-C stops it)")
        uvicorn.run(create_app(ark), host=host, port=port, log_level="warning")
