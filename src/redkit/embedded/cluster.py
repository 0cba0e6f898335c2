"""A local Valkey cluster for tests and development."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from redkit.embedded._process import HOST, START_TIMEOUT, _poll, free_port
from redkit.embedded.server import EmbeddedServer
from redkit.errors import EmbeddedServerError

CLUSTER_SLOTS = 16384


class _ClusterNode(EmbeddedServer):
    """A server with ``cluster-enabled yes`` and a bus port of its own."""

    bus_port = 0
    node_timeout = 5.0

    def _config_lines(self, workdir: Path) -> list[str]:
        if not self._port_fixed:  # port + 10000 may be taken or above 65535: pick one
            self.bus_port = free_port()
        return [
            *super()._config_lines(workdir),
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-port {self.bus_port}",
            f"cluster-node-timeout {max(1, int(self.node_timeout * 1000))}",
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
        node_timeout: Seconds before an unreachable node is deemed failing
            (``cluster-node-timeout``); with replicas, a dead primary's replica takes
            over a second or two after it. Lower it to try failover quickly.
    """

    def __init__(self, masters: int = 3, replicas: int = 0, node_timeout: float = 5.0) -> None:
        if masters < 1 or replicas < 0 or not node_timeout > 0:
            raise EmbeddedServerError(
                "a cluster needs masters >= 1, replicas >= 0 and node_timeout > 0"
            )
        self._masters = masters
        self._replicas = replicas
        self._node_timeout = node_timeout
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
                node.node_timeout = self._node_timeout
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

    # -- failover, for tests and trying it by hand ------------------------------------------

    def roles(self) -> dict[int, str]:
        """Each running node's port and role (``"master"`` or ``"slave"``), from ``ROLE``."""
        roles = {}
        for node in self._nodes:
            with contextlib.suppress(redis.RedisError, OSError):
                roles[node.port or 0] = str(node.command("ROLE")[0])
        return roles

    def replica_of(self, port: int) -> int:
        """The port of a linked replica of the primary on ``port``."""
        for node in self._nodes:
            with contextlib.suppress(redis.RedisError, OSError):
                role = node.command("ROLE")
                if role[0] == "slave" and int(role[2]) == port and role[3] == "connected":
                    return node.port or 0
        raise EmbeddedServerError(f"no linked replica of the primary on port {port}")

    def failover(self, port: int) -> int:
        """``CLUSTER FAILOVER`` on a replica of the primary on ``port``; returns its port.

        The replica waits until it has all the primary's writes, then takes its slots
        over; returns once the old primary reports being a replica.
        """
        replica = self._node(self.replica_of(port))
        replica.command("CLUSTER", "FAILOVER")
        deadline = time.monotonic() + START_TIMEOUT
        self._wait(lambda: self.roles().get(port) == "slave", deadline, "the failover")
        return replica.port or 0

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``, as a crash would (:meth:`restart` brings it back)."""
        self._node(port).kill()

    def restart(self, port: int) -> None:
        """Start a killed node again; it rejoins with its ``nodes.conf``."""
        self._node(port).start()

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every node is up, reports ``cluster_state:ok`` and replicas are linked."""
        self._wait(self._healthy, time.monotonic() + timeout, "cluster_state:ok")

    def _node(self, port: int) -> _ClusterNode:
        for node in self._nodes:
            if node.port == port:
                return node
        raise EmbeddedServerError(f"no node of this cluster on port {port}")

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
            states = [f"{port}: {role}" for port, role in self.roles().items()]
            raise EmbeddedServerError(f"the cluster did not reach {what} in time: {states}")

    def _healthy(self) -> bool:
        expected = {
            "cluster_state": "ok",
            "cluster_slots_ok": str(CLUSTER_SLOTS),
            "cluster_known_nodes": str(len(self._nodes)),
        }
        try:
            for node in self._nodes:
                info = node.cluster_info()
                if any(info.get(key) != value for key, value in expected.items()):
                    return False
            roles = [node.command("ROLE") for node in self._nodes]
        except (redis.RedisError, OSError):
            return False
        replicas = [role for role in roles if role[0] == "slave"]
        linked = all(role[3] == "connected" for role in replicas)
        return linked and len(replicas) == len(self._nodes) - self._masters


def _replicate(replica: _ClusterNode, master_id: str) -> bool:
    """Make ``replica`` follow ``master_id`` once gossip has introduced them."""
    with contextlib.suppress(redis.ResponseError):  # "Unknown node": not gossiped yet
        replica.command("CLUSTER", "REPLICATE", master_id)
        return True
    return False
