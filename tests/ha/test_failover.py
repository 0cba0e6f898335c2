"""Failover with real traffic: every capability keeps being called while a primary goes.

On a Sentinel topology (``SENTINEL FAILOVER``, and the primary killed outright) and on a
3-primary cluster with replicas (``CLUSTER FAILOVER`` on a replica, and a primary
killed), each test checks, per capability, that the calls that failed raised
``redkit.errors`` (never a redis-py exception), that calls succeed again by themselves
within a stated bound, and that no client is left on the demoted primary. The recovery
times are printed in the terminal summary.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot
from tests.ha.conftest import Capabilities, report
from tests.ha.traffic import Outcome, Traffic

from redkit.connection import SENTINEL_CHECK
from redkit.embedded import EmbeddedCluster, EmbeddedSentinel

# Bounds on how long after the disruption calls may fail (loose: the machine is shared).
# Sentinel, forced: the switch itself is ~1 s, and clients re-ask the sentinels every 1 s.
# Sentinel, killed: down-after (1 s) + agreement and election (~1 s) + client backoff.
# Cluster: a manual failover is ~1 s; a killed primary costs node-timeout (1 s) + election.
# The queue's stream counts a job not done within 6 s as lost, which adds up to 6 s.
BOUND = {"sentinel-forced": 20.0, "sentinel-killed": 20.0, "cluster-forced": 20.0,
         "cluster-killed": 20.0}  # fmt: skip
STABLE = 1.0  # seconds of error-free traffic, for every stream, that end a test


@pytest.fixture
def caps() -> Iterator[Callable[[str], Capabilities]]:
    made: list[Capabilities] = []

    def make(url: str) -> Capabilities:
        made.append(Capabilities(url))
        return made[-1]

    yield make
    while made:
        made.pop().close()


def poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return value


def run_through(
    capabilities: Capabilities,
    disrupt: Callable[[], None],
    switched: Callable[[], bool],
    after_switch: Callable[[], None],
    bound: float,
    settle: float = 0.0,
    events: bool = True,
) -> list[Outcome]:
    """Start the traffic, ``disrupt``, wait for the switch and for every stream to recover.

    ``settle``: how long after the servers switched the clients may take to follow.
    """
    capabilities.start_worker()
    if events:
        capabilities.start_events()
    traffic: Traffic = capabilities.traffic(events)
    traffic.start()
    try:
        assert traffic.wait_all_ok(time.monotonic(), calls=5), "traffic did not start"
        t0 = time.monotonic()
        disrupt()
        poll(switched, bound, "the switch to the new primary")
        recovered = traffic.wait_all_ok(time.monotonic() + settle, calls=5, timeout=bound)
        stable_from = time.monotonic()
        time.sleep(STABLE)  # a measurement window, not a synchronisation
        after_switch()  # checked while the traffic still runs
    finally:
        traffic.stop()
    outcomes = traffic.outcomes(t0)
    for outcome in outcomes:
        assert not outcome.untyped, f"{outcome.name}: errors not from redkit.errors"
        assert outcome.recovery <= bound, outcome.line()
        late = [c for c in traffic.streams[outcome.name].calls if c.error and c.end > stable_from]
        assert not late, (
            f"{outcome.name} failed again after recovering (at {stable_from - t0:.2f} s): "
            + ", ".join(f"at {c.start - t0:.2f} s: {c.error!r}" for c in late[:3])
        )
    stuck = [n for n, stream in traffic.streams.items() if stream.ok_since(stable_from) < 5]
    assert recovered, f"not recovered within {bound} s: {stuck}; " + "; ".join(
        o.line() for o in outcomes if o.name in stuck
    )
    if events:
        check_events(capabilities)
    return outcomes


def check_events(capabilities: Capabilities) -> None:
    """Every message the new primary holds was consumed; the subscriber kept listening."""
    consumer = capabilities.consumer
    assert consumer is not None
    held = {m.data for m in capabilities.durable.replay(count=100_000)}
    poll(lambda: held <= capabilities.consumed, 10, f"unconsumed: {held - capabilities.consumed}")
    subscription = capabilities.subscription
    assert subscription is not None
    assert not subscription.closed


def check_fences(capabilities: Capabilities) -> None:
    """Fencing tokens kept growing across the failover (they follow the server clock)."""
    tokens = [token for _, token in capabilities.fences]
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == len(tokens)


# -- Sentinel -------------------------------------------------------------------------------


def clients_on(node_port: int) -> list[str]:
    """The redis-py connections a data node still has (ours excluded)."""
    with redis.Redis(port=node_port, socket_timeout=2, decode_responses=True) as probe:
        me = probe.client_id()
        return [
            f"{c['addr']} {c.get('cmd')}"
            for c in probe.client_list()
            if c.get("lib-name") == "redis-py" and int(c["id"]) != me
        ]


def closed_by_peer(sock: socket.socket) -> bool:
    """The server closed this socket (redis-py notices on its next use)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def sentinel_pools_point_at(capabilities: Capabilities, port: int) -> bool:
    """No pooled connection is open to another server than ``port``: a connection
    idle in the pool since the switch, which the old primary closed, is left out (the
    pool replaces it when it is next taken)."""
    for client in capabilities.rk.clients():
        pool = client.connection_pool  # a BlockingConnectionPool keeps every connection here
        for conn in list(pool._connections):
            sock = conn._sock
            if sock is not None and conn.port != port and not closed_by_peer(sock):
                return False
    return True


def test_sentinel_forced_failover(
    fresh_sentinel: EmbeddedSentinel, caps: Callable[[str], Capabilities], record_property: Any
) -> None:
    capabilities = caps(fresh_sentinel.url)
    old = fresh_sentinel.primary().port
    assert old is not None

    def new_primary() -> bool:
        return fresh_sentinel.primary_address()[1] != old

    def nothing_on_the_old_primary() -> None:
        new = fresh_sentinel.primary_address()[1]
        poll(lambda: not clients_on(old), 10, f"clients left on {old}: {clients_on(old)}")
        assert sentinel_pools_point_at(capabilities, new)

    outcomes = run_through(
        capabilities, fresh_sentinel.failover, new_primary, nothing_on_the_old_primary,
        BOUND["sentinel-forced"], settle=SENTINEL_CHECK + 0.5,
    )  # fmt: skip
    check_fences(capabilities)
    report("Sentinel: SENTINEL FAILOVER", outcomes, record_property)


def test_sentinel_primary_killed(
    fresh_sentinel: EmbeddedSentinel, caps: Callable[[str], Capabilities], record_property: Any
) -> None:
    capabilities = caps(fresh_sentinel.url)
    old = fresh_sentinel.primary().port

    def new_primary() -> bool:
        return fresh_sentinel.primary_address()[1] != old

    def on_the_new_primary() -> None:
        assert sentinel_pools_point_at(capabilities, fresh_sentinel.primary_address()[1])

    outcomes = run_through(
        capabilities, fresh_sentinel.kill_primary, new_primary, on_the_new_primary,
        BOUND["sentinel-killed"], settle=SENTINEL_CHECK + 0.5,
    )  # fmt: skip
    check_fences(capabilities)
    report("Sentinel: primary killed", outcomes, record_property)


# -- Cluster --------------------------------------------------------------------------------


def slots_routed_to(capabilities: Capabilities, old: int) -> None:
    """The sync facade's slot map sends no slot to the demoted or dead primary."""
    nodes = capabilities.rk.client.nodes_manager
    owners = {nodes.get_node_from_slot(slot).port for slot in range(0, 16384, 97)}
    assert old not in owners


def first_primary(cluster: EmbeddedCluster) -> int:
    return next(port for port, role in cluster.roles().items() if role == "master")


def test_cluster_forced_failover(
    fresh_cluster: EmbeddedCluster, caps: Callable[[str], Capabilities], record_property: Any
) -> None:
    capabilities = caps(fresh_cluster.url)
    old = first_primary(fresh_cluster)
    outcomes = run_through(
        capabilities,
        lambda: fresh_cluster.failover(old),
        lambda: fresh_cluster.roles().get(old) == "slave",
        lambda: slots_routed_to(capabilities, old),
        BOUND["cluster-forced"],
    )
    check_fences(capabilities)
    report("Cluster: CLUSTER FAILOVER", outcomes, record_property)


# redis-py's asyncio RedisCluster leaves the dead node's connections to the collector
# (see pytest_runtest_logfinish in conftest.py)
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_cluster_primary_killed(
    fresh_cluster: EmbeddedCluster, caps: Callable[[str], Capabilities], record_property: Any
) -> None:
    capabilities = caps(fresh_cluster.url)
    # the primary holding the durable topic: its consumer's blocking reads must move over
    stream = capabilities.durable.keys.stream.encode()
    old = capabilities.rk.client.nodes_manager.get_node_from_slot(key_slot(stream)).port
    replica = fresh_cluster.replica_of(old)
    outcomes = run_through(
        capabilities,
        lambda: fresh_cluster.kill(old),
        lambda: fresh_cluster.roles().get(replica) == "master",
        lambda: slots_routed_to(capabilities, old),
        BOUND["cluster-killed"],
    )
    check_fences(capabilities)
    report("Cluster: primary killed", outcomes, record_property)
