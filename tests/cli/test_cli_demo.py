"""``redkit demo`` as a real process: clear one-line failures, the URL once it serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from redkit.embedded import free_port

DEADLINE = 30.0
LOGIN = {"username": "alice", "password": "redkit"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "REDKIT_"))}
    return {**env, **extra}


def _run_demo(port: int, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redkit.cli", "demo", "--port", str(port)],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def _assert_one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert "open http" not in output, "the URL was printed for a demo that never served"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_an_unreachable_redis_is_one_line_and_a_failure() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = _run_demo(free_port(), REDIS_URL=dead)
    _assert_one_clear_line(result, dead, "REDIS_URL")


def test_a_busy_port_is_one_line_and_a_failure(standalone_url: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = _run_demo(port, REDIS_URL=standalone_url)
    _assert_one_clear_line(result, f"127.0.0.1:{port}", "--port")


@contextmanager
def _demo(**env: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "redkit.cli", "demo", "--port", str(port)],
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(DEADLINE)
        if process.stdout is not None:
            process.stdout.close()


def _until_open(process: subprocess.Popen[str]) -> list[str]:
    """Lines up to the one with the URL (the test's timeout bounds the wait)."""
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        if "open http" in line:
            return seen
    raise AssertionError(f"the demo ended without serving: {''.join(seen)}")


def test_the_url_is_printed_once_it_serves_and_no_warning_on_its_own_server() -> None:
    with _demo() as (process, base):
        before = _until_open(process)
        # the moment the line appears, the page answers: no retry loop here
        assert httpx.get(base + "/info", timeout=5).status_code == 200
        with httpx.Client(base_url=base) as client:  # every path that could warn
            token = client.post("/login", json=LOGIN).json()["access_token"]
            client.get("/token-check", headers={"Authorization": f"Bearer {token}"})
            client.post("/logout-everywhere")
        process.send_signal(signal.SIGINT)
        assert process.wait(DEADLINE) == 0
        assert process.stdout is not None
        output = "".join(before) + process.stdout.read()
    assert output.count("open http") == 1
    assert "persistence" not in output, output
    assert "Traceback" not in output, output


def test_on_a_server_without_persistence_the_warning_appears_once(standalone_url: str) -> None:
    with _demo(REDIS_URL=standalone_url, REDKIT_PREFIX="t-warn") as (process, base):
        before = _until_open(process)
        with httpx.Client(base_url=base) as client:
            token = client.post("/login", json=LOGIN).json()["access_token"]
            client.get("/token-check", headers={"Authorization": f"Bearer {token}"})
        process.send_signal(signal.SIGINT)
        assert process.wait(DEADLINE) == 0
        assert process.stdout is not None
        output = "".join(before) + process.stdout.read()
    assert output.count("no persistence") == 1, output
