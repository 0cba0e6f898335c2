"""Connections: unreachable and hung servers fail fast and clearly; handed-in clients work."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from redkit import AsyncRedkit, Redkit, Settings
from redkit.embedded import EmbeddedCluster, EmbeddedServer, free_port
from redkit.errors import ConfigError, ConnectionError  # noqa: A004

PASSWORD = "pw-n0t-in-messages"
BACKOFF_CAP = 1.0  # redkit.connection's cap on one backoff sleep


def fast(url: str) -> Settings:
    return Settings(url=url, connect_timeout=0.25, socket_timeout=0.5, retries=3)


def bound(settings: Settings) -> float:
    """The documented worst case for one failing call, plus slack for a busy machine."""
    per_attempt = settings.connect_timeout + settings.socket_timeout
    return (settings.retries + 1) * per_attempt + settings.retries * BACKOFF_CAP + 2.0


def assert_clear(exc: BaseException, where: str) -> None:
    message = str(exc)
    assert where in message, message
    assert PASSWORD not in message
    assert PASSWORD not in repr(exc)


@pytest.fixture
def own_server() -> Iterator[EmbeddedServer]:
    """A password-protected server of this test's own, to kill or freeze."""
    with EmbeddedServer(password=PASSWORD) as server:
        yield server


def test_closed_port(tmp_path: object) -> None:
    settings = fast(f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0")
    start = time.monotonic()
    with Redkit(settings=settings) as rk, pytest.raises(ConnectionError) as caught:
        rk.ping()
    assert time.monotonic() - start < bound(settings)
    assert_clear(caught.value, "redis://:***@127.0.0.1:")
    assert "unreachable" in str(caught.value)


async def test_closed_port_async() -> None:
    settings = fast(f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0")
    start = time.monotonic()
    async with AsyncRedkit(settings=settings) as ark:
        with pytest.raises(ConnectionError) as caught:
            await ark.ping()
    assert time.monotonic() - start < bound(settings)
    assert_clear(caught.value, "redis://:***@127.0.0.1:")


def test_killed_server_then_restarted(own_server: EmbeddedServer) -> None:
    settings = fast(own_server.url)
    with Redkit(settings=settings) as rk:
        assert rk.ping()
        own_server.kill()
        start = time.monotonic()
        with pytest.raises(ConnectionError) as caught:
            rk.ping()
        assert time.monotonic() - start < bound(settings)
        assert_clear(caught.value, f"redis://:***@127.0.0.1:{own_server.port}/0")
        own_server.start()
        assert rk.ping(), "the pool reconnects once the server is back"


def _frozen(server: EmbeddedServer) -> int:
    with server.client() as conn:
        pid = int(conn.info()["process_id"])
    os.kill(pid, signal.SIGSTOP)  # accepts connections (the kernel does), never answers
    return pid


@pytest.fixture
def open_server() -> Iterator[EmbeddedServer]:
    """A server without a password: its connection handshake differs (no AUTH first)."""
    with EmbeddedServer() as server:
        yield server


@pytest.fixture(params=["password", "no-password"])
def any_server(
    request: pytest.FixtureRequest, own_server: EmbeddedServer, open_server: EmbeddedServer
) -> EmbeddedServer:
    return own_server if request.param == "password" else open_server


def test_hung_server_times_out(any_server: EmbeddedServer) -> None:
    own_server = any_server
    settings = fast(own_server.url)
    with Redkit(settings=settings) as rk:
        assert rk.ping()
        pid = _frozen(own_server)
        try:
            start = time.monotonic()
            with pytest.raises(ConnectionError, match="timed out") as caught:
                rk.ping()
            assert time.monotonic() - start < bound(settings)
            assert_clear(caught.value, rk.target)
            start = time.monotonic()  # a new connection: its handshake must not retry too
            with Redkit(settings=settings) as fresh, pytest.raises(ConnectionError):
                fresh.ping()
            assert time.monotonic() - start < bound(settings)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert rk.ping()


async def test_hung_server_times_out_async(any_server: EmbeddedServer) -> None:
    own_server = any_server
    settings = fast(own_server.url)
    async with AsyncRedkit(settings=settings) as ark:
        assert await ark.ping()
        pid = _frozen(own_server)
        try:
            start = time.monotonic()
            with pytest.raises(ConnectionError, match="timed out"):
                await ark.ping()
            assert time.monotonic() - start < bound(settings)
            start = time.monotonic()
            async with AsyncRedkit(settings=settings) as fresh:
                with pytest.raises(ConnectionError):
                    await fresh.ping()
            assert time.monotonic() - start < bound(settings)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert await ark.ping()


def test_unreachable_cluster_and_sentinel() -> None:
    port = free_port()
    for url in (
        f"redis+cluster://:{PASSWORD}@127.0.0.1:{port}",
        f"redis+sentinel://:{PASSWORD}@127.0.0.1:{port}/mymaster",
    ):
        settings = fast(url)
        start = time.monotonic()
        with pytest.raises(ConnectionError) as caught:
            Redkit(settings=settings).ping()
        assert time.monotonic() - start < bound(settings), url
        assert_clear(caught.value, url.replace(PASSWORD, "***").split("@")[0])


async def test_unreachable_cluster_and_sentinel_async() -> None:
    port = free_port()
    for url in (
        f"redis+cluster://:{PASSWORD}@127.0.0.1:{port}",
        f"redis+sentinel://:{PASSWORD}@127.0.0.1:{port}/mymaster",
    ):
        settings = fast(url)
        start = time.monotonic()
        async with AsyncRedkit(settings=settings) as ark:
            with pytest.raises(ConnectionError) as caught:
                await ark.ping()
        assert time.monotonic() - start < bound(settings), url
        assert_clear(caught.value, url.replace(PASSWORD, "***").split("@")[0])


def test_unix_socket_server() -> None:
    with EmbeddedServer(unix_socket=True) as server, Redkit(server.url) as rk:
        assert rk.target.startswith("unix://")
        assert rk.ping()
        with rk.lock("over-a-socket", ttl=5) as lock:
            assert lock.fencing_token is not None


def test_nothing_configured_uses_embedded_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for variable in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDKIT_EMBEDDED"):
        monkeypatch.delenv(variable, raising=False)
    with caplog.at_level(logging.INFO, logger="redkit"), Redkit() as rk:
        assert rk.ping()
    lines = [r for r in caplog.records if "embedded" in r.getMessage()]
    assert len(lines) == 1
    assert "REDKIT_EMBEDDED=0" in lines[0].getMessage()


def test_embedded_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("REDKIT_EMBEDDED", "0")
    with pytest.raises(ConfigError, match="REDKIT_EMBEDDED=0"):
        AsyncRedkit()


# --- handed-in redis-py clients -------------------------------------------------------


def _cluster_nodes(cluster: EmbeddedCluster) -> list[redis.cluster.ClusterNode]:
    return [redis.cluster.ClusterNode(host, port) for host, port in cluster.nodes]


def _use(rk: Redkit) -> None:
    with rk.lock("handed-in", ttl=5) as lock:
        assert lock.fencing_token is not None
    assert rk.info().engine == "valkey"


def test_handed_in_sync_clients(
    standalone_server: EmbeddedServer, cluster_server: EmbeddedCluster, prefix: str
) -> None:
    clients = [
        redis.Redis.from_url(standalone_server.url),
        redis.cluster.RedisCluster(startup_nodes=_cluster_nodes(cluster_server)),
    ]
    for client in clients:
        rk = Redkit(client=client, prefix=prefix)
        assert rk.client is client
        _use(rk)
        assert rk.cluster == isinstance(client, redis.cluster.RedisCluster)
        rk.close()
        assert client.ping(), "redkit must not close a client it did not create"
        client.close()


async def test_handed_in_async_clients(
    standalone_server: EmbeddedServer, cluster_server: EmbeddedCluster, prefix: str
) -> None:
    nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in cluster_server.nodes]
    clients = [
        redis.asyncio.Redis.from_url(standalone_server.url),
        redis.asyncio.cluster.RedisCluster(startup_nodes=nodes),
    ]
    for client in clients:
        ark = AsyncRedkit(client=client, prefix=prefix)
        async with ark.lock("handed-in", ttl=5) as lock:
            assert lock.fencing_token is not None
        assert (await ark.info()).mode == ("cluster" if ark.cluster else "standalone")
        await ark.aclose()
        assert await client.ping()
        await client.aclose()


def test_handed_in_client_of_the_wrong_kind(standalone_server: EmbeddedServer) -> None:
    sync_client = redis.Redis.from_url(standalone_server.url)
    async_client = redis.asyncio.Redis.from_url(standalone_server.url)
    with pytest.raises(ConfigError, match="AsyncRedkit"):
        Redkit(client=async_client)
    with pytest.raises(ConfigError, match="Redkit"):
        AsyncRedkit(client=sync_client)
    sync_client.close()


def test_handed_in_client_repr_has_no_password(own_server: EmbeddedServer) -> None:
    client = redis.Redis.from_url(own_server.url)
    rk = Redkit(client=client)
    assert PASSWORD not in repr(rk)
    assert PASSWORD not in rk.target
    assert rk.ping()
    client.close()


def test_dropped_connects_time_out() -> None:
    """A host that drops connection attempts (here: a listener whose queue is full)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued: list[socket.socket] = []
    try:
        while len(queued) < 8:  # fill the accept queue; then the kernel drops SYNs
            sock = socket.socket()
            sock.settimeout(0.3)
            queued.append(sock)
            sock.connect(("127.0.0.1", port))
    except OSError:
        pass
    try:
        settings = fast(f"redis://:{PASSWORD}@127.0.0.1:{port}/0")
        start = time.monotonic()
        with Redkit(settings=settings) as rk, pytest.raises(ConnectionError) as caught:
            rk.ping()
        assert time.monotonic() - start < bound(settings)
        assert_clear(caught.value, f"redis://:***@127.0.0.1:{port}/0")
    finally:
        for sock in queued:
            sock.close()
        listener.close()


def test_tls_against_a_plain_server_says_so(standalone_url: str) -> None:
    """A handshake that cannot succeed is not retried: one connect timeout, not four."""
    url = standalone_url.replace("redis://", "rediss://")
    settings = Settings(url=url, connect_timeout=1, socket_timeout=1, retries=3)
    started = time.monotonic()
    with Redkit(settings=settings) as rk, pytest.raises(ConnectionError, match="TLS"):
        rk.ping()
    assert time.monotonic() - started < 3  # retried, it took over 4 s


def test_a_server_that_is_not_redis_says_so() -> None:
    """An HTTP server on the port: a ConnectionError naming the protocol, not a raw error."""
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"redis://127.0.0.1:{server.server_address[1]}/0"
        settings = Settings(url=url, connect_timeout=1, socket_timeout=1, retries=0)
        with Redkit(settings=settings) as rk, pytest.raises(ConnectionError, match="protocol"):
            rk.ping()
    finally:
        server.shutdown()
        server.server_close()


async def test_async_tls_against_a_plain_server_fails_within_one_connect_timeout(
    standalone_url: str,
) -> None:
    url = standalone_url.replace("redis://", "rediss://")
    settings = Settings(url=url, connect_timeout=1, socket_timeout=1, retries=3)
    started = time.monotonic()
    async with AsyncRedkit(settings=settings) as ark:
        with pytest.raises(ConnectionError, match="TLS"):
            await ark.ping()
    assert time.monotonic() - started < 3  # retried, it took over 4 s
