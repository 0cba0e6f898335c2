"""Clients for standalone, Sentinel and Cluster servers, sync and async.

Every client gets the connect and socket timeouts from :class:`~redkit.config.Settings`,
retries with exponential backoff and jitter on connection errors and timeouts, and TCP
keepalive, so a dead or hung server gives a :class:`redkit.errors.ConnectionError`
within about ``(retries + 1) * (connect_timeout + socket_timeout) + retries`` seconds,
never a hang.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import ssl
import time
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.connection
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff

from redkit.config import Settings, Target
from redkit.errors import ConfigError
from redkit.ops import Blocker, wrap_error
from redkit.pool import ThreadWaitingPool, WaitingPool

log = logging.getLogger("redkit")

_CLUSTER_MAX = 100  # the asyncio RedisCluster's connections per node, which fail past it
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 1.0
# No periodic PING health check: redis-py runs it under the connection's retry policy
# inside the command's own retry, so against a server that accepts but never answers a
# fresh connection took (retries + 1) ** 2 socket timeouts (80 s with the defaults) to
# fail. A stale pooled connection fails on use instead and the retry takes a new one;
# TCP keepalive (on by default in redis-py) reaps dead idle sockets.
_HEALTH_CHECK_INTERVAL = 0
# RedisClusterException is not a RedisError in redis-py
_CONNECT_ERRORS = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError)
#: what asking a server or a sentinel can raise
CONNECT_ERRORS = _CONNECT_ERRORS


def resolve(settings: Settings) -> Target:
    """The settings' target, starting the embedded server when nothing is configured."""
    target = settings.target()
    if target.mode != "embedded":
        return target
    from redkit.embedded import default_server

    server = default_server()
    log.info(
        "redkit: no REDIS_URL configured; using an embedded Valkey at %s "
        "(set REDIS_URL to use your server, REDKIT_EMBEDDED=0 to forbid this)",
        server.url,
    )
    return Settings(url=server.url, embedded=False).target()


def _common(settings: Settings, target: Target) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": settings.connect_timeout,
        "socket_timeout": settings.socket_timeout,
        "health_check_interval": _HEALTH_CHECK_INTERVAL,
        "username": target.username,
        "password": target.password,
    }
    if target.tls:
        kwargs.update(
            ssl=True,
            ssl_ca_certs=settings.ssl_ca_certs,
            ssl_certfile=settings.ssl_certfile,
            ssl_keyfile=settings.ssl_keyfile,
        )
    return kwargs


class TLSHandshakeError(redis.exceptions.RedisError):
    """The TLS handshake failed or timed out: retrying cannot help, so it is not retried."""


class _SSLConnection(redis.connection.SSLConnection):
    """redis-py's TLS connection, failing at once when the handshake does.

    A ``rediss://`` URL pointing at a server without TLS makes the handshake wait for a
    reply that never comes; redis-py reports a connect timeout, which its retry policy
    repeats. A handshake error is not retried, so the caller hears within one connect
    timeout, with a hint.
    """

    def _wrap_socket_with_ssl(self, sock: Any) -> Any:
        try:
            return super()._wrap_socket_with_ssl(sock)
        except (TimeoutError, ssl.SSLError) as exc:
            raise TLSHandshakeError(
                f"TLS handshake with {self.host}:{self.port} failed ({exc or 'timed out'}); "
                "if the server does not use TLS, use redis:// instead of rediss://"
            ) from exc


def _blocking_pool(
    pool_class: Any, connections: Any, settings: Settings, target: Target, retry: Any
) -> Any:
    """A pool that makes callers wait (up to the socket timeout) when all connections are busy.

    redis-py's default pool raises "Too many connections" at once past its limit, which
    turns a burst of concurrent requests into errors.
    """
    kwargs = _common(settings, target)
    if kwargs.pop("ssl", False):
        sync = connections is redis.connection
        kwargs["connection_class"] = _SSLConnection if sync else connections.SSLConnection
    if target.mode == "unix":
        kwargs = _unix(kwargs)
        kwargs.update(connection_class=connections.UnixDomainSocketConnection, path=target.path)
    else:
        kwargs["host"], kwargs["port"] = target.hosts[0]
    return pool_class(
        max_connections=settings.max_connections,
        timeout=settings.socket_timeout,
        db=target.db,
        retry=retry,
        **kwargs,
    )


def _retry(settings: Settings, module: Any, target: Target | None = None) -> Any:
    errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
    backoff = ExponentialWithJitterBackoff(base=_BACKOFF_BASE, cap=_BACKOFF_CAP)
    if target is not None and target.tls and module is redis.asyncio.retry:
        return _TLSRetry(backoff, settings.retries, supported_errors=errors)
    return module.Retry(backoff, settings.retries, supported_errors=errors)


class _TLSRetry(redis.asyncio.retry.Retry):
    """asyncio retries that give up on a connect timeout over TLS.

    asyncio's TLS connect cannot tell a slow TCP connect from a handshake that never
    completes (``rediss://`` to a server without TLS); retrying the latter only multiplies
    the wait, so a TLS connect timeout fails at once, with the hint in the error.
    """

    async def call_with_retry(
        self,
        do: Any,
        fail: Any,
        is_retryable: Any = None,
        with_failure_count: bool = False,
    ) -> Any:
        def retryable(error: Exception) -> bool:
            connect_timeout = isinstance(error, redis.exceptions.TimeoutError) and (
                "connecting" in str(error)
            )
            return not connect_timeout and (is_retryable is None or is_retryable(error))

        return await super().call_with_retry(do, fail, retryable, with_failure_count)


def sync_client(settings: Settings, target: Target | None = None) -> Any:
    """A synchronous redis-py client (``Redis`` or ``RedisCluster``) for the settings."""
    target = target or resolve(settings)
    kwargs = _common(settings, target)
    retry = _retry(settings, redis.retry)
    if target.mode == "cluster":
        nodes = [redis.cluster.ClusterNode(h, p) for h, p in target.hosts]
        try:  # the sync RedisCluster connects in its constructor
            return redis.cluster.RedisCluster(startup_nodes=nodes, retry=retry, **kwargs)
        except _CONNECT_ERRORS as exc:
            raise wrap_error(exc, target.describe()) from exc
    if target.mode == "sentinel":
        sentinel = _Sentinel(
            list(target.hosts), sentinel_kwargs=_sentinel_kwargs(settings, retry), **kwargs
        )
        return sentinel.master_for(
            target.service_name or "mymaster",
            db=target.db,
            retry=retry,
            connection_pool_class=_SentinelPool,
            max_connections=settings.max_connections,
            timeout=settings.socket_timeout,
        )
    pool = _blocking_pool(ThreadWaitingPool, redis.connection, settings, target, retry)
    return redis.Redis.from_pool(pool)  # owns the pool: close() disconnects it


def async_client(settings: Settings, target: Target | None = None) -> Any:
    """An asyncio redis-py client (``Redis`` or ``RedisCluster``) for the settings."""
    target = target or resolve(settings)
    kwargs = _common(settings, target)
    retry = _retry(settings, redis.asyncio.retry, target)
    if target.mode == "cluster":
        nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.hosts]
        kwargs.pop("health_check_interval")
        if settings.max_connections > _CLUSTER_MAX:  # the waits' client: one per waiter
            kwargs["max_connections"] = settings.max_connections
        return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, retry=retry, **kwargs)
    if target.mode == "sentinel":
        sentinel = _AsyncSentinel(
            list(target.hosts), sentinel_kwargs=_sentinel_kwargs(settings, retry), **kwargs
        )
        return sentinel.master_for(
            target.service_name or "mymaster",
            db=target.db,
            retry=retry,
            connection_pool_class=_AsyncSentinelPool,
            max_connections=settings.max_connections,
            timeout=settings.socket_timeout,
        )
    pool = _blocking_pool(WaitingPool, redis.asyncio.connection, settings, target, retry)
    return redis.asyncio.Redis.from_pool(pool)  # owns the pool: aclose() disconnects it


class _Epochs:
    """Trust no sentinel that still names an older primary than one already seen.

    Right after a failover, the sentinel that ran it names the new primary while the
    others name the old one for a second or two; redis-py takes the first sentinel's
    answer, so a client could switch to the new primary and back. A primary's state
    carries its configuration epoch, which only grows: an answer with a smaller epoch
    than the largest seen is stale, and the next sentinel is asked.
    """

    def check_master_state(self, state: Any, service_name: str) -> bool:
        epochs: dict[str, int] = self.__dict__.setdefault("_redkit_epochs", {})
        epoch = int(state.get("config-epoch") or 0)
        if epoch < epochs.get(service_name, 0):
            return False
        if not super().check_master_state(state, service_name):  # type: ignore[misc]
            return False
        epochs[service_name] = epoch
        return True


class _Sentinel(_Epochs, redis.sentinel.Sentinel):
    pass


class _AsyncSentinel(_Epochs, redis.asyncio.sentinel.Sentinel):
    pass


#: Seconds between two questions to the sentinels about where the primary is.
SENTINEL_CHECK = 1.0


class _SentinelPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """redis-py's Sentinel pool, asking the sentinels for the primary about once a second.

    redis-py asks only when it opens a connection, and a pooled connection leaves a
    deposed primary only when that server answers ``READONLY``: after a ``SENTINEL
    FAILOVER`` the old primary keeps accepting writes (lost when it is demoted) until
    the sentinels reconfigure it, ~8 s later. Asking on checkout, at most once per
    :data:`SENTINEL_CHECK`, moves every connection to the new primary when it is next
    taken from the pool or handed back, within about a second of the switch. A sentinel that
    cannot be asked changes nothing: the call goes on with the connections it has (the
    one call that asks waits for the unreachable sentinels' connect timeouts first).

    Like redkit's other pools, it makes callers wait for a free connection (up to the
    socket timeout) instead of failing at ``max_connections``.
    """

    _checked = 0.0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now - self._checked >= SENTINEL_CHECK:
            self._checked = now
            try:
                self.get_master_address()
            except _CONNECT_ERRORS as exc:
                log.debug("redkit: could not ask the sentinels for the primary (%s)", exc)
        connection = super().get_connection(*args, **kwargs)
        if not self.owns_connection(connection):  # opened to the old primary: ours alone now
            connection.disconnect()
            connection.connect()
        return connection

    def disconnect(self, inuse_connections: bool = True) -> None:
        if not inuse_connections:
            # redis-py drops the idle connections when the primary changes, racing with a
            # thread that takes one at that moment; get_connection replaces them instead
            return
        super().disconnect(inuse_connections)
        for sentinel in self.sentinel_manager.sentinels:  # closing: the sentinels' too
            sentinel.connection_pool.disconnect()


class _AsyncSentinelPool(WaitingPool, redis.asyncio.sentinel.SentinelConnectionPool):
    """The asyncio twin of :class:`_SentinelPool`.

    redis-py's asyncio pool takes back a connection to the old primary as it is (the sync
    pool drops it), so it would serve the next call from there: connections to an address
    that is no longer the primary's are closed when handed back or taken. Callers wait
    for a free connection as with :class:`~redkit.pool.WaitingPool`.
    """

    _checked = 0.0

    def __init__(self, service_name: str, sentinel_manager: Any, **kwargs: Any) -> None:
        timeout = kwargs.pop("timeout", None)
        redis.asyncio.sentinel.SentinelConnectionPool.__init__(
            self, service_name, sentinel_manager, **kwargs
        )
        self.timeout = timeout
        self._waiters = collections.deque()

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now - self._checked >= SENTINEL_CHECK:
            self._checked = now
            try:
                await self.get_master_address()
            except _CONNECT_ERRORS as exc:
                log.debug("redkit: could not ask the sentinels for the primary (%s)", exc)
        connection = await super().get_connection(*args, **kwargs)
        if not self._at_primary(connection):  # opened to the old primary: ours alone now
            await connection.disconnect()
            await connection.connect()
        return connection

    async def release(self, connection: Any) -> None:
        if not self._at_primary(connection):
            await connection.disconnect()
        await super().release(connection)

    def _at_primary(self, connection: Any) -> bool:
        primary = self.master_address
        return primary is None or (connection.host, connection.port) == primary

    async def disconnect(self, inuse_connections: bool = True) -> None:
        if not inuse_connections:  # see _SentinelPool.disconnect
            return
        await super().disconnect(inuse_connections)
        for sentinel in self.sentinel_manager.sentinels:  # closing: the sentinels' too
            await sentinel.connection_pool.disconnect()


def is_cluster(client: Any) -> bool:
    """True for redis-py's sync or async ``RedisCluster``."""
    return isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster))


def is_async(client: Any) -> bool:
    """True for redis-py's asyncio clients."""
    return isinstance(client, (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster))


def describe_client(client: Any) -> str:
    """Where a handed-in client points, password masked."""
    if is_cluster(client):
        nodes = getattr(client, "startup_nodes", None) or {}
        # sync: {"host:port": node}; asyncio: [ClusterNode], whose str() is a long repr
        names = list(nodes)[:3] if isinstance(nodes, dict) else [_node_name(n) for n in nodes][:3]
        return "redis+cluster://" + ",".join(str(n) for n in names)
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", {}) if pool is not None else {}
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def _node_name(node: Any) -> str:
    host, port = getattr(node, "host", None), getattr(node, "port", None)
    return f"{host}:{port}" if host is not None else str(node)


def _sentinel_kwargs(settings: Settings, retry: Any) -> dict[str, Any]:
    # the retry matters: without one, redis-py's sentinel connections back off from 1 s up
    # to 10 s, and an unreachable Sentinel took ~17 s to report instead of ~2 s
    return {
        "socket_connect_timeout": settings.connect_timeout,
        "socket_timeout": settings.socket_timeout,
        "retry": retry,
    }


def _unix(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k != "socket_connect_timeout"}


#: The longest one blocking call (BLPOP ...) waits on a dedicated connection; waits loop.
MAX_BLOCK = 5.0
_SHARED_POOLS = (
    redis.sentinel.SentinelConnectionPool,
    redis.asyncio.sentinel.SentinelConnectionPool,
)
_MAX_WAITERS = 10_000  # one connection per wait: the server's default maxclients (a sync
# BlockingConnectionPool fills a queue of this size up front: 100k slots cost ~0.5 s)


def blocker(client: Any, settings: Settings, target: Target | None) -> Blocker:
    """Where ``client``'s blocking commands run, without taking its pool's connections.

    With a ``target`` (a client redkit made), waits get a client of their own with the
    same settings, a pool that grows with the number of waiters, and a socket timeout
    that leaves room for a block of :data:`MAX_BLOCK`. A handed-in standalone client's
    pool is cloned the same way; a handed-in Cluster or Sentinel client is shared (their
    pools are unbounded), blocking at most half its socket timeout per call.
    """
    timeout = _socket_timeout(client) or settings.socket_timeout
    waits = dataclasses.replace(
        settings, socket_timeout=timeout + MAX_BLOCK, max_connections=_MAX_WAITERS
    )
    if target is not None:
        make_client = async_client if is_async(client) else sync_client
        return Blocker(lambda: make_client(waits, target), MAX_BLOCK)
    pool = getattr(client, "connection_pool", None)
    if is_cluster(client) or pool is None or isinstance(pool, _SHARED_POOLS):
        return Blocker(lambda: client, timeout / 2)
    kwargs = {**pool.connection_kwargs, "socket_timeout": waits.socket_timeout}
    pool_class = redis.asyncio.ConnectionPool if is_async(client) else redis.ConnectionPool

    def make() -> Any:
        dedicated = pool_class(
            connection_class=pool.connection_class, max_connections=_MAX_WAITERS, **kwargs
        )
        module = redis.asyncio if is_async(client) else redis
        return module.Redis.from_pool(dedicated)

    return Blocker(make, MAX_BLOCK)


def _socket_timeout(client: Any) -> float | None:
    """The socket timeout ``client``'s connections use, where redis-py lets us see it."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or getattr(client, "connection_kwargs", None)
    if kwargs is None:  # the sync RedisCluster keeps them on its nodes manager
        kwargs = getattr(getattr(client, "nodes_manager", None), "connection_kwargs", None) or {}
    value = kwargs.get("socket_timeout")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


_CLONABLE_POOLS = (
    redis.asyncio.ConnectionPool,
    redis.asyncio.BlockingConnectionPool,
    WaitingPool,
)


def clone_async(client: Any) -> Any:
    """A new asyncio client like the handed-in standalone ``client``, for another event loop.

    Its pool is made from the original pool's class, size and connection options. A
    Cluster, Sentinel or single-connection client keeps state that cannot be copied
    faithfully, so it raises :class:`~redkit.errors.ConfigError` instead.
    """
    pool = getattr(client, "connection_pool", None)
    if (
        is_cluster(client)
        or pool is None
        or type(pool) not in _CLONABLE_POOLS
        or getattr(client, "single_connection_client", False)
    ):
        raise ConfigError(
            f"this {type(client).__name__} was handed in and is bound to the event loop that "
            "first used it; it cannot be copied for another loop. Pass url= or settings= "
            "instead of client= (redkit then makes a client per event loop), or use the "
            "facade from one event loop only"
        )
    options = {**pool.connection_kwargs}
    if hasattr(pool, "timeout"):  # the blocking pools' wait for a free connection
        options["timeout"] = pool.timeout
    copy = type(pool)(
        connection_class=pool.connection_class, max_connections=pool.max_connections, **options
    )
    return redis.asyncio.Redis.from_pool(copy)


def abandon(client: Any) -> None:
    """Close an asyncio client's sockets after its event loop was closed, without the loop.

    Awaiting ``aclose()`` needs the loop the connections belong to; once that loop is
    closed, the sockets are closed directly, and the connections and transports are marked
    closed so that collecting them later neither touches the dead loop nor warns.
    """
    for conn in _async_connections(client):
        writer = getattr(conn, "_writer", None)
        if writer is not None:
            _drop_transport(writer.transport)
        conn._reader = conn._writer = None


def _async_connections(client: Any) -> list[Any]:
    if is_cluster(client):
        nodes = getattr(getattr(client, "nodes_manager", None), "nodes_cache", {}) or {}
        return [c for node in nodes.values() for c in getattr(node, "_connections", ())]
    pool = getattr(client, "connection_pool", None)
    conns = [getattr(client, "connection", None)]
    if pool is not None:
        conns += [*getattr(pool, "_available_connections", ())]
        conns += [*getattr(pool, "_in_use_connections", ())]
    return [c for c in conns if c is not None]


def _drop_transport(transport: Any) -> None:
    # asyncio offers no public way to close a transport whose loop is closed: close()
    # schedules the socket's close on the loop. These are the stdlib transports' fields.
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    if inner is not None:  # TLS: the transport wraps a socket transport
        _drop_transport(inner)
    if hasattr(transport, "_closed"):
        transport._closed = True
    if hasattr(transport, "_closing"):
        transport._closing = True
    sock = getattr(transport, "_sock", None)
    if sock is not None:
        transport._sock = None
        sock.close()
