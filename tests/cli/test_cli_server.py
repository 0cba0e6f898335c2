"""``redkit server`` as a real subprocess: it serves, prints its URL, and stops on signals."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from redis.backoff import NoBackoff
from redis.retry import Retry

from redkit import Redkit
from redkit.cli import build

START_DEADLINE = 20.0
STOP_DEADLINE = 15.0


class ServerProcess:
    """``python -m redkit.cli server ...`` with its output collected line by line."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "REDKIT_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "redkit.cli", "server", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cwd,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for_line(self, needle: str, timeout: float = START_DEADLINE) -> str:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            self.output.append(line)
            if needle in line:
                return line
        self.stop()
        raise AssertionError(f"no line with {needle!r} within {timeout}s: {''.join(self.output)}")

    def url(self) -> str:
        return self.wait_for_line("export REDIS_URL=").split("export REDIS_URL=", 1)[1].strip()

    def finish(self, signum: int | None) -> int:
        if signum is not None:
            self.proc.send_signal(signum)
        code = self.proc.wait(STOP_DEADLINE)
        self._close()
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        self._pump_thread.join(STOP_DEADLINE)  # EOF once the process and its children exit
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def spawn() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for process in started:
        process.stop()


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )


def answers(url: str) -> bool:
    with client(url) as conn:
        try:
            return bool(conn.ping())
        except redis.ConnectionError:
            return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serves_until_signalled(spawn: list[ServerProcess], signum: int) -> None:
    server = ServerProcess()
    spawn.append(server)
    url = server.url()
    assert url.startswith("redis://127.0.0.1:")
    with client(url) as conn:
        assert conn.set("k", "v")
        assert conn.get("k") == b"v"
        valkey_pid = int(conn.info()["process_id"])
    server.proc.send_signal(signum)
    server.wait_for_line("embedded Valkey stopped", timeout=STOP_DEADLINE)
    assert server.finish(None) == 0
    assert not answers(url)
    assert not Path(f"/proc/{valkey_pid}").exists(), "valkey-server outlived redkit server"


def test_unix_socket_is_removed_on_stop(spawn: list[ServerProcess]) -> None:
    server = ServerProcess("--unix-socket")
    spawn.append(server)
    url = server.url()
    assert url.startswith("unix://")
    socket_path = Path(url.removeprefix("unix://"))
    assert answers(url)
    assert server.finish(signal.SIGTERM) == 0
    assert not socket_path.exists()


def test_persistence_keeps_data_across_runs(spawn: list[ServerProcess], tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ServerProcess("--persistence", "--data-dir", str(data))
    spawn.append(first)
    with client(first.url()) as conn:
        conn.set("kept", "yes")
    assert first.finish(signal.SIGTERM) == 0
    second = ServerProcess("--persistence", "--data-dir", str(data))
    spawn.append(second)
    with client(second.url()) as conn:
        assert conn.get("kept") == b"yes"
    assert second.finish(signal.SIGTERM) == 0


def test_dying_server_is_an_error(spawn: list[ServerProcess]) -> None:
    server = ServerProcess()
    spawn.append(server)
    with client(server.url()) as conn:
        valkey_pid = int(conn.info()["process_id"])
    os.kill(valkey_pid, signal.SIGKILL)
    server.wait_for_line("exited unexpectedly")
    assert server.finish(None) == 1


@pytest.mark.parametrize(
    "args",
    [["--port", "1", "--unix-socket"], ["--data-dir", "x"], ["--port", "0"]],
    ids=["port-and-socket", "data-dir-alone", "port-zero"],
)
def test_bad_options_are_usage_errors(args: list[str]) -> None:
    result = CliRunner().invoke(build(), ["server", *args])
    assert result.exit_code == 2
    assert "Error:" in result.stderr


def test_sentinel_topology_serves_and_fails_over(spawn: list[ServerProcess]) -> None:
    server = ServerProcess("--sentinel")
    spawn.append(server)
    url = server.url()
    assert url.startswith("redis+sentinel://127.0.0.1:")
    assert url.endswith("/mymaster")
    with Redkit(url, prefix="cli-sentinel") as rk:
        assert rk.client.set("k", "v")
        primary = rk.client.connection_pool.get_master_address()
        first_sentinel = int(url.split("//", 1)[1].split(",", 1)[0].split(":")[1])
        with redis.Redis(port=first_sentinel, socket_timeout=5) as sentinel:
            assert sentinel.execute_command("SENTINEL", "FAILOVER", "mymaster")
        deadline = time.monotonic() + 30
        while rk.client.connection_pool.get_master_address() == primary:
            assert time.monotonic() < deadline, "the sentinels did not switch"
            time.sleep(0.05)
        assert rk.client.get("k") == b"v"  # the replica had it, now the primary serves it
    assert server.finish(signal.SIGTERM) == 0
    assert not answers(f"redis://{primary[0]}:{primary[1]}")


def test_sentinel_takes_no_other_option() -> None:
    result = CliRunner().invoke(build(), ["server", "--sentinel", "--port", "7000"])
    assert result.exit_code == 2
    assert "--sentinel takes no other option" in result.output
