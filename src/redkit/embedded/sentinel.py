"""A local Sentinel topology: a primary, its replicas and three sentinels.

Every process is the same ``valkey-server`` binary; a sentinel is that binary started
with ``--sentinel``. The failure detection is tuned for tests and trying failover by
hand (a primary is declared down after ``down_after`` seconds, not Sentinel's default
30 s), so a failover completes in a few seconds.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from redkit.embedded._process import HOST, START_TIMEOUT, _poll
from redkit.embedded.server import EmbeddedServer
from redkit.errors import EmbeddedServerError

SERVICE = "mymaster"
_FAILOVER_TIMEOUT = 30.0


class _DataNode(EmbeddedServer):
    """A primary or a replica; a replica starts following ``primary_port``."""

    primary_port: int | None = None

    def _config_lines(self, workdir: Path) -> list[str]:
        lines = [
            *super()._config_lines(workdir),
            "repl-diskless-sync yes",
            "repl-diskless-sync-delay 0",  # replicas sync at once, not after 5 s
            "repl-ping-replica-period 1",
        ]
        if self.primary_port is not None:
            lines.append(f"replicaof {HOST} {self.primary_port}")
        return lines

    def command(self, *args: str | int) -> Any:
        with self.client(decode_responses=True) as conn:
            return conn.execute_command(*args)


class _SentinelNode(EmbeddedServer):
    """``valkey-server --sentinel`` watching one primary."""

    def __init__(self, primary_port: int, quorum: int, down_after: float) -> None:
        super().__init__(extra_args=["--sentinel"])
        self.primary_port = primary_port
        self.quorum = quorum
        self.down_after = down_after

    def _config_lines(self, workdir: Path) -> list[str]:
        if (workdir / "valkey.conf").exists() and self._port_fixed:
            # a restart keeps what this sentinel learnt (the current primary, its peers)
            text = (workdir / "valkey.conf").read_text()
            return [line for line in text.splitlines() if line.strip()]
        ms = max(1, int(self.down_after * 1000))
        return [
            f"port {self._port}",
            f"bind {HOST}",
            "daemonize no",
            f"sentinel monitor {SERVICE} {HOST} {self.primary_port} {self.quorum}",
            f"sentinel down-after-milliseconds {SERVICE} {ms}",
            f"sentinel failover-timeout {SERVICE} {int(_FAILOVER_TIMEOUT * 1000)}",
            f"sentinel parallel-syncs {SERVICE} 2",
        ]

    def _answers(self, pid: int) -> bool:
        try:
            with self.client(socket_timeout=0.25, socket_connect_timeout=0.25) as conn:
                info: dict[str, Any] = conn.info("server")
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        return bool(info.get("process_id") == pid)

    def command(self, *args: str | int) -> Any:
        with self.client(decode_responses=True) as conn:
            return conn.execute_command(*args)


class EmbeddedSentinel:
    """A local Sentinel deployment: one primary, ``replicas`` replicas, ``sentinels`` sentinels.

    The sentinels monitor the primary under the service name ``mymaster`` with a quorum
    of a majority; :attr:`url` is the ``redis+sentinel://`` URL that names them all.

    Args:
        replicas: Replicas of the primary (at least 1, so that a failover has a target).
        sentinels: Sentinel processes (3 by default: a quorum of 2 survives losing one).
        down_after: Seconds without a reply before a sentinel deems the primary down
            (Sentinel's ``down-after-milliseconds``; its default is 30 s).
    """

    def __init__(self, replicas: int = 1, sentinels: int = 3, down_after: float = 1.0) -> None:
        if replicas < 1 or sentinels < 1 or not down_after > 0:
            raise EmbeddedServerError("a Sentinel topology needs replicas >= 1, sentinels >= 1")
        self._replicas = replicas
        self._sentinels_count = sentinels
        self._down_after = down_after
        self.data_nodes: list[_DataNode] = []
        self.sentinels: list[_SentinelNode] = []

    @property
    def service_name(self) -> str:
        """The name the sentinels monitor the primary under."""
        return SERVICE

    @property
    def url(self) -> str:
        """A ``redis+sentinel://`` URL listing every sentinel and the service name."""
        hosts = ",".join(f"{HOST}:{node.port}" for node in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    @property
    def running(self) -> bool:
        """Whether the topology was started and every process is alive."""
        nodes = [*self.data_nodes, *self.sentinels]
        return bool(nodes) and all(node.running for node in nodes)

    def __repr__(self) -> str:
        return f"EmbeddedSentinel(url={self.url!r}, running={self.running})"

    def start(self) -> EmbeddedSentinel:
        """Start the primary, its replicas and the sentinels; wait until all agree.

        Raises:
            EmbeddedServerError: A process did not start, or the replicas or sentinels
                were not linked within ~10 s. Processes already started are stopped.
        """
        if self.running:
            return self
        self.stop()
        try:
            primary = _DataNode()
            self.data_nodes = [primary]
            primary.start()
            for _ in range(self._replicas):
                replica = _DataNode()
                replica.primary_port = primary.port
                self.data_nodes.append(replica)
                replica.start()
            quorum = self._sentinels_count // 2 + 1
            for _ in range(self._sentinels_count):
                sentinel = _SentinelNode(primary.port or 0, quorum, self._down_after)
                self.sentinels.append(sentinel)
                sentinel.start()
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process and delete their temp dirs."""
        for node in [*self.sentinels, *self.data_nodes]:
            node.stop()
        self.sentinels, self.data_nodes = [], []

    def __enter__(self) -> EmbeddedSentinel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- inspecting and disturbing the topology --------------------------------------------

    def primary_address(self) -> tuple[str, int]:
        """``(host, port)`` of the primary, as the first sentinel that answers reports it."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError):
                host, port = sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                return str(host), int(port)
        raise EmbeddedServerError("no sentinel answered")

    def primary(self) -> _DataNode:
        """The data node the sentinels currently name as primary."""
        _, port = self.primary_address()
        for node in self.data_nodes:
            if node.port == port:
                return node
        raise EmbeddedServerError(f"the sentinels name a primary on {port}, not one of ours")

    def failover(self) -> None:
        """Ask a sentinel for a failover (``SENTINEL FAILOVER``); returns once it started.

        Use :meth:`wait_healthy` to wait until the new primary is in place everywhere.
        """
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.sentinels[0].command("SENTINEL", "FAILOVER", SERVICE)
                return
            except redis.ResponseError as exc:  # INPROG, NOGOODSLAVE while replicas sync
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(f"SENTINEL FAILOVER failed: {exc}") from exc
                time.sleep(0.1)

    def kill_primary(self) -> _DataNode:
        """SIGKILL the current primary, as a crash would; returns the dead node."""
        node = self.primary()
        node.kill()
        return node

    def wait_healthy(self, timeout: float = START_TIMEOUT, *, exclude: int | None = None) -> None:
        """Restart dead data nodes, then wait until the topology is whole again.

        Whole: every sentinel names the same primary, which answers as a primary (not
        ``exclude``, a port that was just demoted), every other data node is its linked
        replica, and every sentinel knows all replicas and the other sentinels.
        """
        deadline = time.monotonic() + timeout
        if exclude is not None:  # restart a crashed primary only once another took over
            _poll(lambda: self._named_port() not in (None, exclude), deadline, interval=0.05)
        for node in self.data_nodes:
            if not node.running:
                node.primary_port = self._named_port()  # rejoins as a replica
                node.start()
        if not _poll(lambda: self._whole(exclude), deadline, interval=0.05):
            raise EmbeddedServerError(f"the Sentinel topology did not settle: {self._state()}")

    def _named_port(self) -> int | None:
        with contextlib.suppress(EmbeddedServerError):
            return self.primary_address()[1]
        return None

    def _whole(self, exclude: int | None) -> bool:
        try:
            addresses = {
                tuple(s.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE))
                for s in self.sentinels
            }
            if len(addresses) != 1:
                return False
            port = int(next(iter(addresses))[1])
            if port == exclude:
                return False
            for node in self.data_nodes:
                role = node.command("ROLE")
                if node.port == port and role[0] != "master":
                    return False
                if node.port != port and not (
                    role[0] == "slave" and role[2] == port and role[3] == "connected"
                ):
                    return False
            return all(self._sentinel_knows_all(s) for s in self.sentinels)
        except (redis.RedisError, OSError, StopIteration):
            return False

    def _sentinel_knows_all(self, sentinel: _SentinelNode) -> bool:
        master = _pairs(sentinel.command("SENTINEL", "MASTER", SERVICE))
        if "s_down" in master.get("flags", "") or "failover" in master.get("flags", ""):
            return False
        replicas = [_pairs(r) for r in sentinel.command("SENTINEL", "REPLICAS", SERVICE)]
        good = [r for r in replicas if "down" not in r.get("flags", "")]
        others = int(master.get("num-other-sentinels", 0))
        return len(good) >= len(self.data_nodes) - 1 and others >= len(self.sentinels) - 1

    def _state(self) -> list[str]:
        states = []
        for node in self.data_nodes:
            try:
                states.append(f"{node.port}: {node.command('ROLE')[:4]}")
            except (redis.RedisError, OSError):
                states.append(f"{node.port}: down")
        return states


def _pairs(flat: Any) -> dict[str, Any]:
    if isinstance(flat, dict):  # redis-py parses some SENTINEL replies into dicts
        return {str(k): v for k, v in flat.items()}
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
