"""Start ``redkit demo`` as a real process for the tests that need one (or two)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from redkit.embedded import free_port


@contextmanager
def demo_process(redis_url: str, prefix: str, secret: str | None = "s" * 32) -> Iterator[str]:
    """Run the demo on ``redis_url`` with ``prefix``; yield its base URL; stop it after.

    ``secret=None`` leaves ``REDKIT_DEMO_SECRET`` unset (the demos share one through Redis).
    """
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "REDKIT_PREFIX": prefix}
    env.pop("REDKIT_DEMO_SECRET", None)
    if secret is not None:
        env["REDKIT_DEMO_SECRET"] = secret
    process = subprocess.Popen(
        [sys.executable, "-m", "redkit.cli", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"the demo exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(base + "/info", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the demo at {base} did not answer within 30 s")
