"""The hammer: 50 concurrent duplicates per key over many keys, against two uvicorn
processes whose handlers crash at random (exceptions, and kill -9 of the serving
process, restarted by a supervisor). Each key's side effect happens exactly once, and
every client ends with the same answer."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from redkit import Redkit

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
KEYS, DUPLICATES, SERVERS = 12, 50, 2
RETRYABLE = (409, 500, 502, 503)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Servers:
    """Uvicorn processes serving idem_server:app, restarted when they die."""

    def __init__(self, url: str, prefix: str, log: Path) -> None:
        self.environ = {
            **os.environ, "REDIS_URL": url, "REDKIT_PREFIX": prefix, "PYTHONPATH": str(SRC),
            "REDKIT_EMBEDDED": "0",
        }  # fmt: skip
        self.log = log
        self.ports = [_free_port() for _ in range(SERVERS)]
        self.procs = [self._start(port) for port in self.ports]
        self.restarts = 0
        self.stopping = threading.Event()
        self.supervisor = threading.Thread(target=self._supervise, daemon=True)
        self.supervisor.start()

    def _start(self, port: int) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "idem_server:app", "--port", str(port),
                 "--log-level", "warning", "--no-access-log"],
                cwd=HERE, env=self.environ, stdout=subprocess.DEVNULL, stderr=out,
            )  # fmt: skip

    def _supervise(self) -> None:
        while not self.stopping.wait(0.05):
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    self.procs[i] = self._start(self.ports[i])
                    self.restarts += 1

    def stop(self) -> None:
        self.stopping.set()
        self.supervisor.join(5)
        for proc in self.procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)


async def _client(http: httpx.AsyncClient, ports: list[int], order: str, deadline: float) -> Any:
    """Post until an answer comes: another server on a connection error, a retry with
    backoff on 409 and on 5xx, as a payment client does."""
    while time.monotonic() < deadline:
        port = random.choice(ports)
        try:
            response = await http.post(
                f"http://127.0.0.1:{port}/pay",
                json={"order": order, "amount": 10},
                headers={"Idempotency-Key": f"pay-{order}"},
            )
        except httpx.TransportError:
            await asyncio.sleep(random.uniform(0.05, 0.2))
            continue
        if response.status_code in RETRYABLE:
            await asyncio.sleep(random.uniform(0.05, 0.3))
            continue
        assert response.status_code == 201, response.text
        return response.json()
    raise AssertionError(f"no answer for {order} in time")


async def _hammer(ports: list[int]) -> list[Any]:
    deadline = time.monotonic() + 50
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        ready = time.monotonic() + 20  # both servers listen
        for port in ports:
            while True:
                try:
                    await http.get(f"http://127.0.0.1:{port}/")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < ready, "the servers did not start"
                    await asyncio.sleep(0.05)
        orders = [f"o{i}" for i in range(KEYS)] * DUPLICATES
        random.shuffle(orders)
        return await asyncio.gather(*(_client(http, ports, o, deadline) for o in orders))


def test_duplicates_and_crashes_charge_each_key_exactly_once(
    standalone_url: str, prefix: str, tmp_path: Path
) -> None:
    rk = Redkit(standalone_url, prefix=prefix)
    marks = rk.keys.group("test")
    servers = Servers(standalone_url, prefix, tmp_path / "servers.log")
    try:
        answers = asyncio.run(_hammer(servers.ports))
    finally:
        servers.stop()
    charges = Counter(c.decode() for c in rk.client.lrange(marks.key("charges"), 0, -1))
    log = (tmp_path / "servers.log").read_text()[-4000:]
    assert charges == {f"o{i}": 1 for i in range(KEYS)}, log
    by_order: dict[str, set[int]] = {}
    for answer in answers:
        by_order.setdefault(answer["order"], set()).add(answer["charge"])
    assert all(len(numbers) == 1 for numbers in by_order.values()), "the answers differ"
    crashes = {
        where: int(rk.client.get(marks.key(where)) or 0)
        for where in ("kills:before", "kills:after", "raises:before", "raises:after")
    }
    assert crashes["raises:before"] + crashes["raises:after"] > 0, crashes
    assert crashes["kills:before"] + crashes["kills:after"] > 0, crashes
    assert servers.restarts >= 1
    print(f"crashes {crashes}, restarts {servers.restarts}")
    rk.close()
