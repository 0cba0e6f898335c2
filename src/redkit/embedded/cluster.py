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
