"""``redkit dashboard`` as a real process: the password, the API, a clean stop."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from redkit import Redkit
from redkit.embedded import free_port


def test_dashboard_serves_behind_its_password(standalone_url: str, prefix: str) -> None:
    with Redkit(standalone_url, prefix=prefix) as rk:
        rk.queue("emails").enqueue("send")
    port = free_port()
    env = {**os.environ, "REDKIT_DASHBOARD_PASSWORD": "s3cret", "REDKIT_EMBEDDED": "0"}
    args = ["dashboard", "--port", str(port), "--url", standalone_url, "--prefix", prefix]
    process = subprocess.Popen(
        [sys.executable, "-m", "redkit.cli", *args], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                response = httpx.get(base + "/api/queues", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the dashboard did not answer in 30 s"
                time.sleep(0.1)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(base + "/api/queues", auth=("x", "wrong"), timeout=5).status_code == 401
        queues = httpx.get(base + "/api/queues", auth=("any", "s3cret"), timeout=5).json()
        assert [q["name"] for q in queues] == ["emails"]
    finally:
        process.terminate()
        output = process.communicate(timeout=15)[0].decode()
    assert "Traceback" not in output, output
    assert f"open http://127.0.0.1:{port}/" in output
