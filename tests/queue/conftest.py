"""Helpers for the queue tests: an in-process worker in a thread, worker processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tests.flavours import poll as poll  # shared; re-exported for the tests here

from redkit.queue import AsyncQueue, Queue, Worker

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


class Running:
    """A worker running in a thread of its own (``Worker.run_sync``)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.thread = threading.Thread(target=worker.run_sync, kwargs={"signals": False})
        self.thread.start()
        assert worker.started.wait(10)

    def stop(self, grace: float | None = None) -> None:
        if self.thread.is_alive():
            self.worker.stop_threadsafe(grace, timeout=30)
            self.thread.join(10)


@contextmanager
def running(queue: Queue | AsyncQueue, **options: Any) -> Iterator[Running]:
    """Run a worker for ``queue`` while the block runs; stopped (drained) after it."""
    handle = Running(Worker(queue, **options))
    try:
        yield handle
    finally:
        handle.stop()


def worker_process(
    url: str, prefix: str, log: Path, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    """``redkit worker queue_app:queue`` in a process of its own, its output in ``log``."""
    environ = {
        **os.environ, "REDIS_URL": url, "REDKIT_PREFIX": prefix, "PYTHONPATH": str(SRC),
        "REDKIT_EMBEDDED": "0", **env,
    }  # fmt: skip
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "redkit.cli", "worker", "queue_app:queue", *args],
            cwd=HERE, env=environ, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip


class LostReply:
    """A TCP proxy in front of ``url`` that loses one reply: the first successful reply to
    a request that contains ``marker`` is dropped, with the client's connection (the
    server ran the command; the client retries it on a new connection)."""

    def __init__(self, url: str, marker: bytes) -> None:
        parsed = urlparse(url)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        self.marker, self.armed, self.dropped = marker, True, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(self.target)
            marked = threading.Event()  # a marked request awaits its reply on this link
            threading.Thread(target=self._up, args=(client, server, marked), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, marked), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, marked: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if self.armed and self.marker in data:
                    marked.set()
                server.sendall(data)
        _close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, marked: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if marked.is_set() and self.armed and not data.startswith(b"-"):
                    self.armed = False  # an error reply (NOSCRIPT) goes through
                    self.dropped += 1
                    break
                marked.clear()
                client.sendall(data)
        _close(client, server)

    def close(self) -> None:
        self.listener.close()


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
