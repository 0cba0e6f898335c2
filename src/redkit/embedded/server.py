"""One private ``valkey-server`` process, and the process-wide default server."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redkit.embedded._process import (
    HOST,
    START_TIMEOUT,
    STOP_TIMEOUT,
    _poll,
    _quoted,
    _spawn,
    _tail,
    find_binary,
    free_port,
)
from redkit.errors import EmbeddedServerError

_PORT_ATTEMPTS = 5
_NO_RETRY = Retry(NoBackoff(), 0)  # we poll with our own deadline; backoff only slows it


_LIVE: set[EmbeddedServer] = set()  # servers holding a process or a temp dir
_LIVE_LOCK = threading.Lock()


class EmbeddedServer:
    """One private ``valkey-server`` process.

    Args:
        port: TCP port; a free one is picked (and re-picked on a bind race) when omitted.
        unix_socket: Listen on ``<tempdir>/valkey.sock`` (mode 700) instead of TCP.
        persistence: Keep an append-only file in the temp dir, so data survives
            :meth:`kill` + :meth:`restart`. Off by default.
        password: ``requirepass``; written to a private config file, never to argv.
        extra_args: More ``--option value`` arguments for ``valkey-server``.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        unix_socket: bool = False,
        persistence: bool = False,
        password: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._port = None if unix_socket else port
        self._port_fixed = port is not None or unix_socket
        self._unix_socket = unix_socket
        self._persistence = persistence
        self._password = password
        self._extra_args = list(extra_args)
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._owner_pid = os.getpid()
        self._lock = threading.RLock()

    @property
    def host(self) -> str:
        """The loopback address the server binds to."""
        return HOST

    @property
    def port(self) -> int | None:
        """The TCP port; ``None`` for a unix-socket server or before the first start."""
        return self._port

    @property
    def unix_socket_path(self) -> Path | None:
        """The socket of a unix-socket server once started, ``None`` otherwise."""
        return self._dir / "valkey.sock" if self._unix_socket and self._dir else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def url(self) -> str:
        """A redis-py URL for this server, password included."""
        secret = self._password
        return self._url(f":{quote(secret, safe='')}@" if secret is not None else "")

    def _url(self, auth: str) -> str:
        if self._unix_socket:
            return f"unix://{auth}{self.unix_socket_path}"
        return f"redis://{auth}{HOST}:{self._port}"

    def __repr__(self) -> str:
        masked = self._url(":***@" if self._password is not None else "")
        return f"{type(self).__name__}(url={masked!r}, running={self.running})"

    def client(self, **options: Any) -> redis.Redis:
        """A redis-py client for this server with short timeouts; the caller closes it."""
        defaults = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0, "retry": _NO_RETRY}
        return redis.Redis.from_url(self.url, **{**defaults, **options})

    def start(self) -> EmbeddedServer:
        """Start the server and wait until it answers. Does nothing if it already runs.

        After :meth:`kill` or :meth:`stop` it comes back on the same port or socket path.

        Raises:
            EmbeddedServerError: The binary is missing, or the server did not answer
                within ~10 s (the message carries the end of its log).
        """
        with self._lock:
            if self.running:
                return self
            binary = find_binary()
            workdir = self._make_dir()
            with _LIVE_LOCK:
                _LIVE.add(self)
            retries = 0 if self._port_fixed else _PORT_ATTEMPTS - 1
            if self._port is None and not self._unix_socket:
                self._port = free_port()
            error = self._launch(binary, workdir)
            while error is not None and "Address already in use" in error and retries > 0:
                retries -= 1  # someone took the port between free_port() and our bind
                self._port = free_port()
                error = self._launch(binary, workdir)
            if error is not None:
                raise EmbeddedServerError(error)
            self._port_fixed = True  # restarts come back on this port
            return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after ~5 s) and delete its temp dir."""
        with self._lock:
            self._end(signal.SIGTERM)
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)  # keep the path for a restart
            with _LIVE_LOCK:
                _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; its temp dir stays for :meth:`restart`."""
        with self._lock:
            self._end(signal.SIGKILL)

    def restart(self) -> None:
        """Stop the process if it runs, then start it on the same port or socket."""
        with self._lock:
            self._end(signal.SIGTERM)
            self.start()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _make_dir(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="redkit-valkey-"))
        elif not self._dir.exists():
            self._dir.mkdir(mode=0o700)  # fails rather than adopt a path someone else made
        return self._dir

    def _config_lines(self, workdir: Path) -> list[str]:
        lines = [f"dir {_quoted(str(workdir))}", "daemonize no", f"bind {HOST}"]
        if self._persistence:
            lines.append("appendonly yes")
        else:
            lines += ['save ""', "appendonly no"]
        if self._unix_socket:
            sock = _quoted(str(workdir / "valkey.sock"))
            lines += ["port 0", f"unixsocket {sock}", "unixsocketperm 700"]
        else:
            lines.append(f"port {self._port}")
        if self._password is not None:
            lines.append(f"requirepass {_quoted(self._password)}")
        return lines

    def _launch(self, binary: Path, workdir: Path) -> str | None:
        """Make one start attempt; return ``None`` on success, else an error message."""
        config = workdir / "valkey.conf"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(self._config_lines(workdir)) + "\n")
        log = workdir / "valkey.log"
        log.write_bytes(b"")  # so the tail in an error belongs to this attempt
        process = _spawn([str(binary), str(config), *self._extra_args], log)
        self._process = process
        deadline = time.monotonic() + START_TIMEOUT
        _poll(lambda: process.poll() is not None or self._answers(process.pid), deadline)
        if process.poll() is None and self._answers(process.pid):
            return None
        self._end(signal.SIGKILL)
        where = self.unix_socket_path or f"{HOST}:{self._port}"
        return (
            f"valkey-server on {where} did not start (exit code {process.returncode}); "
            f"end of {log}:\n{_tail(log)}"
        )

    def _answers(self, pid: int) -> bool:
        """Whether *our* process answers, done loading (not another server on the port)."""
        try:
            with self.client(socket_timeout=0.25, socket_connect_timeout=0.25) as conn:
                info: dict[str, Any] = conn.info()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False
        return bool(info.get("process_id") == pid and info.get("loading") == 0)

    def _end(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the process, wait (SIGKILL after a deadline) and reap it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait()


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        if server._owner_pid == os.getpid():  # a forked child must not stop our servers
            server.stop()


atexit.register(_stop_all_at_exit)

_default: EmbeddedServer | None = None
_default_lock = threading.Lock()


def default_server() -> EmbeddedServer:
    """The process-wide embedded server: started on first use, stopped at exit.

    Thread-safe. A server that died is started again on the same port.
    """
    global _default
    with _default_lock:
        if _default is None or _default._owner_pid != os.getpid():
            _default = EmbeddedServer()
        return _default.start()


