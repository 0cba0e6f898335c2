"""What the benchmark scripts share: the server to measure on, the throughput table, and
the runs under callgrind."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
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


def callgrind_totals(script: str, args: Sequence[str], tmp: str) -> list[int]:
    """Run ``python script *args`` under callgrind (dump files in ``tmp``) and return the
    instructions of each dump, in order. Callgrind dumps before every ``ffi_call``, so a
    child marks the spans it measures with a ctypes call (``getppid``)."""
    cmd = [
        "valgrind", "--tool=callgrind", "--dump-before=ffi_call",
        f"--callgrind-out-file={tmp}/cg.out", sys.executable, script, *args,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the run under callgrind failed:\n{done.stderr[-3000:]}")
    dumps = sorted(glob.glob(f"{tmp}/cg.out.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
    return [_total(p) for p in dumps]


def _total(path: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")
