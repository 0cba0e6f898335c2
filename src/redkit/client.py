"""The two entry points: :class:`Redkit` (sync) and :class:`AsyncRedkit` (asyncio).

Both hold one connection pool, one :class:`~redkit.keys.Keyspace` and one serializer, and
build every capability from them, so an application configures Redis exactly once::

    rk = Redkit()                       # REDIS_URL, else the embedded server
    with rk.lock("order:42", ttl=10):
        ...

Capabilities receive the facade and run their flows through :meth:`Redkit.run` or
:meth:`AsyncRedkit.run`; that is the only difference between their sync and async classes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from redkit import connection, ops
from redkit.config import Settings, Target
from redkit.errors import ConfigError
from redkit.keys import Keyspace
from redkit.serializers import Serializer, get_serializer

if TYPE_CHECKING:
    from types import TracebackType

    from redkit.cache import AsyncCache, Cache
    from redkit.locks import AsyncLock, Lock
    from redkit.ratelimit import (
        AsyncConcurrencyLimiter,
        AsyncRateLimiter,
        ConcurrencyLimiter,
        RateLimiter,
    )
    from redkit.sessions import AsyncSessionStore, AsyncTokenRevoker, SessionStore, TokenRevoker

T = TypeVar("T")


@dataclass(frozen=True)
class ServerInfo:
    """What :meth:`Redkit.info` found at the target."""

    target: str
    engine: str
    version: str
    mode: str
    prefix: str
    maxmemory_policy: str | None = None
    persistence: bool | None = None


class _Base:
    """What the sync and async facades share: settings, keys, serializer, target."""

    settings: Settings
    keys: Keyspace
    serializer: Serializer
    target: str
    cluster: bool
    _owns_client: bool

    def _setup(
        self,
        url: str | None,
        settings: Settings | None,
        client: Any,
        prefix: str | None,
        serializer: str | Serializer | None,
        secret: str | bytes | None,
    ) -> Target | None:
        if settings is not None and url is not None:
            raise ConfigError("pass either url= or settings=, not both")
        self.settings = settings or Settings.from_env(url=url, prefix=prefix)
        if settings is not None and prefix is not None:
            self.settings = Settings(**{**settings.__dict__, "prefix": prefix})
        self.keys = Keyspace(self.settings.prefix)
        self.serializer = get_serializer(serializer, secret=secret)
        if client is not None:
            self.target = connection.describe_client(client)
            return None
        target = connection.resolve(self.settings)
        self.target = target.describe()
        return target

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target!r}, prefix={self.keys.prefix!r})"

    def _timeout_settings(self, seconds: float) -> Settings | None:
        """Settings for a sibling that gives up after ``seconds``; None for a handed-in client."""
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ConfigError(f"a timeout must be a positive number of seconds, got {seconds!r}")
        if not self._owns_client:
            return None
        return dataclasses.replace(
            self.settings, socket_timeout=seconds, connect_timeout=seconds, retries=0
        )


class Redkit(_Base):
    """Synchronous redkit: one client, one key scheme, every capability.

    Args:
        url: a Redis URL; overrides ``REDIS_URL``.
        settings: a full :class:`Settings` (instead of ``url``).
        client: an existing redis-py ``Redis`` or ``RedisCluster`` to use as is.
        prefix: the key prefix; overrides ``REDKIT_PREFIX``.
        serializer: ``"json"`` (default), ``"msgpack"``, ``"pickle"`` or an object.
        secret: the signing key, required by the pickle serializer.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        client: Any = None,
        prefix: str | None = None,
        serializer: str | Serializer | None = None,
        secret: str | bytes | None = None,
    ) -> None:
        if client is not None and connection.is_async(client):
            raise ConfigError("Redkit needs a synchronous client; use AsyncRedkit for asyncio")
        target = self._setup(url, settings, client, prefix, serializer, secret)
        self._owns_client = client is None
        self.client = (
            client if client is not None else connection.sync_client(self.settings, target)
        )
        self.cluster = connection.is_cluster(self.client)
        self._siblings: dict[float, Redkit] = {}

    def run(self, flow: ops.Flow[T] | ops.Once[T]) -> T:
        """Run a flow (see :mod:`redkit.ops`) on this client."""
        return ops.run(self.client, flow, self.target)

    def info(self) -> ServerInfo:
        """Engine, version and mode of the server, and the prefix in use."""
        return self.run(_info_flow(self))

    def ping(self) -> bool:
        """True when the server answers."""
        return bool(self.run(ops.command("PING")))

    def lock(self, name: str, **options: Any) -> Lock:
        """A distributed lock; see :class:`redkit.locks.Lock` for the options."""
        from redkit.locks import Lock

        return Lock(self, name, **options)

    def cache(self, namespace: str = "default", **options: Any) -> Cache:
        """A cache namespace; see :class:`redkit.cache.Cache` for the options."""
        from redkit.cache import Cache

        return Cache(self, namespace, **options)

    def sessions(self, **options: Any) -> SessionStore:
        """Server-side sessions; see :class:`redkit.sessions.SessionStore` for the options."""
        from redkit.sessions import SessionStore

        return SessionStore(self, **options)

    def tokens(self, **options: Any) -> TokenRevoker:
        """Token revocation; see :class:`redkit.sessions.TokenRevoker` for the options."""
        from redkit.sessions import TokenRevoker

        return TokenRevoker(self, **options)

    def rate_limiter(self, policy: Any, **options: Any) -> RateLimiter:
        """A rate limiter, e.g. ``rk.rate_limiter("10/second; 1000/hour")``.

        See :class:`redkit.ratelimit.RateLimiter` for the options.
        """
        from redkit.ratelimit import RateLimiter

        return RateLimiter(self, policy, **options)

    def concurrency_limiter(self, limit: int, **options: Any) -> ConcurrencyLimiter:
        """At most ``limit`` holders per key; see :class:`redkit.ratelimit.ConcurrencyLimiter`."""
        from redkit.ratelimit import ConcurrencyLimiter

        return ConcurrencyLimiter(self, limit, **options)

    def with_timeout(self, seconds: float) -> Redkit:
        """This facade's target and prefix, with commands that give up after ``seconds``.

        Connect and reply each get ``seconds`` and nothing is retried, so a dead or stalled
        server costs a caller at most that long: for checks on a request path. Cached per
        value and closed with this facade; with a handed-in client, returns ``self``.
        """
        sibling = self._siblings.get(seconds)
        if sibling is None:
            settings = self._timeout_settings(seconds)
            if settings is None:
                return self
            made = Redkit(settings=settings, serializer=self.serializer)
            sibling = self._siblings.setdefault(seconds, made)
            if sibling is not made:
                made.close()
        return sibling

    def close(self) -> None:
        """Close the connection pool (only when redkit created the client)."""
        for sibling in list(self._siblings.values()):
            sibling.close()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Redkit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRedkit(_Base):
    """asyncio redkit: the same capabilities as :class:`Redkit`, awaited.

    Takes the same arguments as :class:`Redkit`; a handed-in client must be one of
    redis-py's asyncio clients.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        client: Any = None,
        prefix: str | None = None,
        serializer: str | Serializer | None = None,
        secret: str | bytes | None = None,
    ) -> None:
        if client is not None and not connection.is_async(client):
            raise ConfigError("AsyncRedkit needs an asyncio client; use Redkit for sync code")
        target = self._setup(url, settings, client, prefix, serializer, secret)
        self._owns_client = client is None
        self.client = (
            client if client is not None else connection.async_client(self.settings, target)
        )
        self.cluster = connection.is_cluster(self.client)
        self._ready = not self.cluster
        self._siblings: dict[float, AsyncRedkit] = {}

    async def run(self, flow: ops.Flow[T] | ops.Once[T]) -> T:
        """Run a flow (see :mod:`redkit.ops`) on this client."""
        if not self._ready:
            await self._initialize()
        return await ops.arun(self.client, flow, self.target)

    async def _initialize(self) -> None:
        # redis-py >= 7.1's asyncio RedisCluster races when many tasks trigger its lazy
        # initialization at once (connections closed under other tasks' feet); one
        # explicit initialize() before the first command avoids it.
        try:
            await self.client.initialize()
        except Exception as exc:
            raise ops.wrap_error(exc, self.target) from exc
        self._ready = True

    async def info(self) -> ServerInfo:
        """Engine, version and mode of the server, and the prefix in use."""
        return await self.run(_info_flow(self))

    async def ping(self) -> bool:
        """True when the server answers."""
        return bool(await self.run(ops.command("PING")))

    def lock(self, name: str, **options: Any) -> AsyncLock:
        """A distributed lock for ``async with``; see :class:`redkit.locks.AsyncLock`."""
        from redkit.locks import AsyncLock

        return AsyncLock(self, name, **options)

    def cache(self, namespace: str = "default", **options: Any) -> AsyncCache:
        """A cache namespace for asyncio; see :class:`redkit.cache.AsyncCache`."""
        from redkit.cache import AsyncCache

        return AsyncCache(self, namespace, **options)

    def sessions(self, **options: Any) -> AsyncSessionStore:
        """Server-side sessions; see :class:`redkit.sessions.AsyncSessionStore`."""
        from redkit.sessions import AsyncSessionStore

        return AsyncSessionStore(self, **options)

    def tokens(self, **options: Any) -> AsyncTokenRevoker:
        """Token revocation; see :class:`redkit.sessions.AsyncTokenRevoker`."""
        from redkit.sessions import AsyncTokenRevoker

        return AsyncTokenRevoker(self, **options)

    def rate_limiter(self, policy: Any, **options: Any) -> AsyncRateLimiter:
        """A rate limiter for asyncio; see :class:`redkit.ratelimit.AsyncRateLimiter`."""
        from redkit.ratelimit import AsyncRateLimiter

        return AsyncRateLimiter(self, policy, **options)

    def concurrency_limiter(self, limit: int, **options: Any) -> AsyncConcurrencyLimiter:
        """At most ``limit`` holders per key (asyncio); see ``AsyncConcurrencyLimiter``."""
        from redkit.ratelimit import AsyncConcurrencyLimiter

        return AsyncConcurrencyLimiter(self, limit, **options)

    def with_timeout(self, seconds: float) -> AsyncRedkit:
        """This facade's target and prefix, with commands that give up after ``seconds``.

        See :meth:`Redkit.with_timeout`.
        """
        sibling = self._siblings.get(seconds)
        if sibling is None:
            settings = self._timeout_settings(seconds)
            if settings is None:
                return self
            sibling = self._siblings.setdefault(
                seconds, AsyncRedkit(settings=settings, serializer=self.serializer)
            )
        return sibling

    async def aclose(self) -> None:
        """Close the connection pool (only when redkit created the client)."""
        for sibling in list(self._siblings.values()):
            await sibling.aclose()
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncRedkit:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _info_flow(rk: _Base) -> ops.Flow[ServerInfo]:
    raw = yield ops.Call("INFO", "server")
    server = _parse_info(raw)
    persistence = yield ops.Call("INFO", "persistence")
    # INFO, not CONFIG GET: managed servers often disable CONFIG, and redis-py's asyncio
    # RedisCluster cannot route CONFIG GET without a key
    memory = yield ops.Call("INFO", "memory")
    return _server_info(rk, server, _parse_info(persistence), _parse_info(memory))


def _server_info(
    rk: _Base, server: dict[str, str], persist: dict[str, str], memory: dict[str, str]
) -> ServerInfo:
    is_valkey = "valkey_version" in server or server.get("server_name") == "valkey"
    engine = "valkey" if is_valkey else "redis"
    version = server.get("valkey_version") or server.get("redis_version", "?")
    mode = "cluster" if rk.cluster else server.get("redis_mode", "standalone")
    if "sentinel" in rk.target:
        mode = "sentinel"
    policy = memory.get("maxmemory_policy")
    aof = persist.get("aof_enabled") == "1"
    rdb = persist.get("rdb_last_save_time") is not None and persist.get("rdb_saves", "0") != "0"
    return ServerInfo(rk.target, engine, version, mode, rk.keys.prefix, policy, aof or rdb)


def _parse_info(raw: Any) -> dict[str, str]:
    """INFO's reply: text from a standalone server, a per-node dict from a cluster."""
    if isinstance(raw, dict):
        if raw and all(isinstance(v, dict) for v in raw.values()):
            raw = next(iter(raw.values()))  # cluster: one node's view is enough here
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            out[key.strip()] = value.strip()
    return out
