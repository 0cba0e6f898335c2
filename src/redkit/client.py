"""The core of the two facades: :class:`RedkitCore` (sync) and :class:`AsyncRedkitCore`.

Each holds one client (one connection pool), one :class:`~redkit.keys.Keyspace`, one
serializer, the observers and the dedicated connections for blocking waits, and runs
flows (:mod:`redkit.ops`) on them. Capabilities are given a core and run their flows
through :meth:`RedkitCore.run` or :meth:`AsyncRedkitCore.run`; that is the only
difference between their sync and async classes. The user-facing ``Redkit`` and
``AsyncRedkit`` (:mod:`redkit.facade`) add one factory per capability on top.
"""

from __future__ import annotations

import dataclasses
import math
from asyncio import get_running_loop
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from redkit import connection, direct, ops
from redkit.config import Settings, Target
from redkit.errors import ConfigError
from redkit.keys import Keyspace
from redkit.loops import LoopClients
from redkit.serializers import Serializer, get_serializer

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import TracebackType

T = TypeVar("T")
SelfT = TypeVar("SelfT", bound="RedkitCore")
AsyncSelfT = TypeVar("AsyncSelfT", bound="AsyncRedkitCore")


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


class CoreBase:
    """What the sync and async cores share: settings, keys, serializer, target, observers."""

    settings: Settings
    keys: Keyspace
    serializer: Serializer
    target: str
    cluster: bool
    _owns_client: bool
    _observers: list[ops.Observer]
    _siblings: Mapping[float, CoreBase]

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
        if secret is not None:  # one secret: signs pickles and keys idempotency digests
            self.settings = dataclasses.replace(self.settings, secret=secret)
        self.keys = Keyspace(self.settings.prefix)
        self.serializer = get_serializer(serializer, secret=self.settings.secret)
        self._observers = []
        if client is not None:
            self.target = connection.describe_client(client)
            return None
        target = connection.resolve(self.settings)
        self.target = target.describe()
        return target

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target!r}, prefix={self.keys.prefix!r})"

    @property
    def owns_client(self) -> bool:
        """True when redkit made the client (from settings), False for a handed-in one."""
        return self._owns_client

    def observe(self, observer: ops.Observer) -> Callable[[], None]:
        """Call ``observer`` with an :class:`~redkit.ops.Event` for every effect run here.

        Every command, script, batch, blocking wait and call into user code reports its
        name, duration and error, and capabilities report what they decided
        (``cache.hit`` ...); metrics and tracing plug in here. Observers run inline, so
        keep them fast; one that raises is logged and ignored. Returns a function that
        removes the observer again.
        """
        for core in [self, *self._siblings.values()]:  # with_timeout's siblings report too
            core._observers.append(observer)

        def remove() -> None:  # from the siblings made since, which copied it, too
            for core in [self, *self._siblings.values()]:
                if observer in core._observers:
                    core._observers.remove(observer)

        return remove

    @property
    def observers(self) -> Sequence[ops.Observer]:
        """The registered observers (the live list: empty means effects report nothing)."""
        return self._observers

    def _timeout_settings(self, seconds: float) -> Settings | None:
        """Settings for a sibling that gives up after ``seconds``; None for a handed-in client."""
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ConfigError(f"a timeout must be a positive number of seconds, got {seconds!r}")
        if not self._owns_client:
            return None
        return dataclasses.replace(
            self.settings, socket_timeout=seconds, connect_timeout=seconds, retries=0
        )


class RedkitCore(CoreBase):
    """Synchronous core: one client, one key scheme; runs flows.

    Args:
        url: a Redis URL; overrides ``REDIS_URL``.
        settings: a full :class:`Settings` (instead of ``url``).
        client: an existing redis-py ``Redis`` or ``RedisCluster`` to use as is.
        prefix: the key prefix; overrides ``REDKIT_PREFIX``.
        serializer: ``"json"`` (default), ``"msgpack"``, ``"pickle"`` or an object.
        secret: the application's secret (overrides ``REDKIT_SECRET``): it signs values
            of the pickle serializer (which requires it) and keys idempotency digests.
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
        self._client = (
            client if client is not None else connection.sync_client(self.settings, target)
        )
        self.cluster = connection.is_cluster(self.client)
        self._siblings: dict[float, RedkitCore] = {}
        self._blocker = connection.blocker(self.client, self.settings, target)
        execute = direct.DirectExecute(self.client) if direct.supports(self.client) else None
        self._driver = ops.Driver(self.client, self.target, self._observers, self._blocker, execute)

    @property
    def client(self) -> Any:
        """The redis-py client."""
        return self._client

    def run(self, flow: ops.Flow[T] | ops.Once[T]) -> T:
        """Run a flow (see :mod:`redkit.ops`) on this client."""
        return self._driver.run(flow)

    def info(self) -> ServerInfo:
        """Engine, version and mode of the server, and the prefix in use."""
        return self.run(info_flow(self))

    def ping(self) -> bool:
        """True when the server answers."""
        return bool(self.run(ops.command("PING")))

    def with_timeout(self: SelfT, seconds: float) -> SelfT:
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
            made = type(self)(settings=settings, serializer=self.serializer)
            made._observers.extend(self._observers)
            sibling = self._siblings.setdefault(seconds, made)
            if sibling is not made:
                made.close()
        return sibling  # type: ignore[return-value]

    def clients(self) -> list[Any]:
        """The redis-py clients behind this facade: the pool's and, once made, the waits'.

        For dropping connections after a failover (``client.connection_pool.disconnect()``)
        or inspecting them; commands go through :meth:`run`.
        """
        dedicated = self._blocker.made
        return [self.client] + ([dedicated] if dedicated not in (None, self.client) else [])

    def close(self) -> None:
        """Close the connection pool (only when redkit created the client)."""
        for sibling in list(self._siblings.values()):
            sibling.close()
        dedicated = self._blocker.made
        if dedicated is not None and dedicated is not self.client:
            dedicated.close()
        if self._owns_client:
            self.client.close()

    def __enter__(self: SelfT) -> SelfT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRedkitCore(CoreBase):
    """asyncio core: the same as :class:`RedkitCore`, awaited.

    Takes the same arguments as :class:`RedkitCore`; a handed-in client must be one of
    redis-py's asyncio clients.

    Works from any event loop: each loop that uses the facade gets a client of its own on
    first use (:mod:`redkit.loops`), closed by :meth:`aclose` or when that loop shuts
    down. A handed-in client serves the first loop; other loops get a copy of a standalone
    client's pool, and a handed-in Cluster or Sentinel client raises
    :class:`~redkit.errors.ConfigError` there.
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
        first = client if client is not None else connection.async_client(self.settings, target)
        self.cluster = connection.is_cluster(first)
        self._siblings: dict[float, AsyncRedkitCore] = {}
        self._loops = LoopClients(
            first, client is None, self.settings, target, self.target, self._observers
        )
        self._by_loop = self._loops.by_loop

    @property
    def client(self) -> Any:
        """The redis-py client of the running event loop (outside a loop: the first one)."""
        state = self._loops.current()
        return self._loops.first if state is None else state.client

    @property
    def _blocker(self) -> ops.Blocker | None:
        """The running loop's dedicated wait connections (None outside a loop)."""
        state = self._loops.current()
        return None if state is None else state.blocker

    def clients(self) -> list[Any]:
        """The running loop's redis-py clients: the pool's and, once made, the waits'.

        See :meth:`RedkitCore.clients`.
        """
        blocker = self._blocker
        dedicated = None if blocker is None else blocker.made
        return [self.client] + ([dedicated] if dedicated not in (None, self.client) else [])

    async def run(self, flow: ops.Flow[T] | ops.Once[T]) -> T:
        """Run a flow (see :mod:`redkit.ops`) on this event loop's client."""
        state = self._by_loop.get(get_running_loop())
        if state is None or not state.ready:
            state = await self._loops.ready()
        return await state.driver.run(flow)

    async def info(self) -> ServerInfo:
        """Engine, version and mode of the server, and the prefix in use."""
        return await self.run(info_flow(self))

    async def ping(self) -> bool:
        """True when the server answers."""
        return bool(await self.run(ops.command("PING")))

    def with_timeout(self: AsyncSelfT, seconds: float) -> AsyncSelfT:
        """This facade's target and prefix, with commands that give up after ``seconds``.

        See :meth:`RedkitCore.with_timeout`.
        """
        sibling = self._siblings.get(seconds)
        if sibling is None:
            settings = self._timeout_settings(seconds)
            if settings is None:
                return self
            made = type(self)(settings=settings, serializer=self.serializer)
            made._observers.extend(self._observers)
            sibling = self._siblings.setdefault(seconds, made)
        return sibling  # type: ignore[return-value]

    async def aclose(self) -> None:
        """Close every event loop's connections (a handed-in client itself stays open)."""
        for sibling in list(self._siblings.values()):
            await sibling.aclose()
        await self._loops.aclose()

    async def __aenter__(self: AsyncSelfT) -> AsyncSelfT:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def check_options(where: str, given: Mapping[str, object], allowed: type) -> None:
    """Raise ConfigError naming any key of ``given`` that the TypedDict ``allowed`` lacks."""
    known: frozenset[str] = allowed.__optional_keys__ | allowed.__required_keys__  # type: ignore[attr-defined]
    unknown = sorted(set(given) - known)
    if unknown:
        import difflib  # here: only a misspelt option pays for it

        hints = [
            f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            for name in unknown
            for close in [difflib.get_close_matches(name, known, n=1)]
        ]
        raise ConfigError(
            f"{where}() got unknown option {', '.join(hints)}; "
            f"its options are: {', '.join(sorted(known))}"
        )


def info_flow(rk: CoreBase) -> ops.Flow[ServerInfo]:
    """Engine, version, mode, eviction policy and persistence of the server."""
    raw = yield ops.Call("INFO", "server")
    server = _parse_info(raw)
    persistence = yield ops.Call("INFO", "persistence")
    # INFO, not CONFIG GET: managed servers often disable CONFIG, and redis-py's asyncio
    # RedisCluster cannot route CONFIG GET without a key
    memory = yield ops.Call("INFO", "memory")
    return _server_info(rk, server, _parse_info(persistence), _parse_info(memory))


def _server_info(
    rk: CoreBase, server: dict[str, str], persist: dict[str, str], memory: dict[str, str]
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
