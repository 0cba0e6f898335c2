"""What the benchmark scripts share: the server to measure on, and the throughput table."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from redkit.embedded import EmbeddedServer


@contextmanager
def server_url() -> Iterator[tuple[str, str]]:
    """``REDIS_URL`` when set, else a private embedded Valkey: ``(url, description)``."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url, "REDIS_URL"
        return
    with EmbeddedServer() as server:
        yield server.url, "embedded Valkey"


def table(rows: list[tuple[str, tuple[float, float, float]]], scale: float, width: int = 28) -> str:
    """Rows of (name, (median, min, max) per second), with the median as a share of ``scale``."""
    lines = [f"{'':<{width}} {'median/s':>10} {'min/s':>10} {'max/s':>10} {'of PING':>8}"]
    for name, (med, low, high) in rows:
        lines.append(
            f"{name:<{width}} {med:>10,.0f} {low:>10,.0f} {high:>10,.0f} {med / scale:>7.0%}"
        )
    return "\n".join(lines)
