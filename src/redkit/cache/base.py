"""What :class:`Cache` and :class:`AsyncCache` share: options, flows, stats, single-flight."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from redkit.cache import listener
from redkit.cache.envelope import Entry, Found
from redkit.cache.keying import CallKey
from redkit.cache.near import NearCache
from redkit.cache.ops import Begin, CacheFlows, CacheKeys, Policy
from redkit.cache.stats import CacheStats
from redkit.durations import Duration, seconds
from redkit.errors import ConfigError
from redkit.serializers import Serializer, get_serializer

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, RedkitCore

T = TypeVar("T")
Tags = Sequence[str] | Callable[..., Sequence[str]]
_NEAR_MODES = ("tracking", "pubsub")


class CacheOptions(TypedDict, total=False):
    """Options of :meth:`Redkit.cache` (see :class:`redkit.cache.Cache`)."""

    ttl: Duration | None
    stale_ttl: Duration
    jitter: float
    beta: float
    lock_ttl: Duration
    wait_timeout: Duration | None
    cache_none: bool
    none_ttl: Duration | None
    stale_on_error: bool
    serializer: str | Serializer | None
    secret: str | bytes | None
    near: int
    near_mode: str
    near_heartbeat: Duration


class _CacheCore:
    """Options and flows of one cache namespace."""

    def __init__(
        self,
        rk: RedkitCore | AsyncRedkitCore,
        namespace: str = "default",
        *,
        ttl: Duration | None = 300.0,
        stale_ttl: Duration = 0.0,
        jitter: float = 0.1,
        beta: float = 1.0,
        lock_ttl: Duration = 10.0,
        wait_timeout: Duration | None = None,
        cache_none: bool = False,
        none_ttl: Duration | None = None,
        stale_on_error: bool = True,
        serializer: str | Serializer | None = None,
        secret: str | bytes | None = None,
        near: int = 0,
        near_mode: str = "tracking",
        near_heartbeat: Duration = 1.0,
    ) -> None:
        ttl = seconds(ttl, "ttl", allow_none=True)
        stale_ttl = seconds(stale_ttl, "stale_ttl", allow_zero=True)
        lock_ttl = seconds(lock_ttl, "lock_ttl")
        wait_timeout = seconds(wait_timeout, "wait_timeout", allow_none=True, allow_zero=True)
        none_ttl = seconds(none_ttl, "none_ttl", allow_none=True)
        near_heartbeat = seconds(near_heartbeat, "near_heartbeat")
        _check(jitter, beta, near, near_mode)
        self.namespace = namespace
        self.stale_on_error = stale_on_error
        self.stats = CacheStats()
        self.serializer = (
            rk.serializer if serializer is None else get_serializer(serializer, secret=secret)
        )
        policy = Policy(
            ttl,
            stale_ttl,
            jitter,
            beta,
            lock_ttl,
            lock_ttl if wait_timeout is None else wait_timeout,
            cache_none,
            none_ttl,
        )
        keys = CacheKeys(rk.keys, namespace)
        self.near = NearCache(near, beta) if near else None
        # in pub/sub mode every writer announces its writes, near cache or not
        channel = rk.keys.group("cacheinval").key() if near_mode == "pubsub" else None
        self._f = CacheFlows(
            keys,
            self.serializer,
            policy,
            cluster=rk.cluster,
            max_block=rk.settings.socket_timeout / 2,
            near=self.near,
            channel=channel,
            stats=self.stats,
        )
        self._hot = self._f.hot
        self._listener: listener.NearListener | None = None
        self._near_owner = rk
        if self.near is not None:  # a shared listener: no thread, no connection of its own
            route = tuple(keys.tracking_prefixes())
            self._listener = listener.attach(rk, self.near, route, near_mode, near_heartbeat)

    def __repr__(self) -> str:
        near = f", near={self.near.maxsize}" if self.near is not None else ""
        return f"{type(self).__name__}(namespace={self.namespace!r}{near})"

    def _near_hit(self, ekey: str) -> Entry | None:
        """The entry served from process memory (counted), or None: ask Redis."""
        near = self.near
        if near is None:
            return None
        entry = near.lookup(ekey)
        if entry is not None:
            self.stats.near_hits += 1
        return entry

    def _count(self, found: Found) -> Entry | None:
        """The entry a Redis read found (counted as a hit or a stale serve), or None."""
        if type(found) is not Entry:
            self.stats.misses += 1
            return None
        if 0 < found.soft_expiry <= time.time():
            self.stats.stale_serves += 1
        else:
            self.stats.hits += 1
        return found

    def _fresh_hit(self, found: Found) -> Entry | None:
        """The entry when it is fresh and not picked for early refresh (counted), else None."""
        if type(found) is not Entry:
            self.stats.misses += 1
            return None
        now = time.time()
        if found.stale(now) or found.refresh_early(now, self._f.policy.beta):
            return None
        self.stats.hits += 1
        return found

    def _served(self, begin: Begin) -> Any:
        """The value of the entry the stampede protocol chose to serve (counted)."""
        entry = self._count(begin.entry) if begin.entry is not None else None
        return None if entry is None else entry.value

    def _stop_listener(self) -> None:
        if self.near is not None and self._listener is not None:
            self._listener = None
            listener.detach(self._near_owner, self.near)

    @staticmethod
    def _tags_of(tags: Tags, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Sequence[str]:
        return tags(*args, **kwargs) if callable(tags) else tags

    @staticmethod
    def _keyer(
        func: Callable[..., Any],
        key: Callable[..., str] | None,
        ignore: Sequence[str],
        name: str | None,
    ) -> CallKey:
        return CallKey(func, key, ignore, name)


def ttl_seconds(ttl: Duration | None) -> float | None:
    """A per-call ``ttl`` in seconds (None: the cache's, or never for ``touch``), checked."""
    return None if ttl is None else seconds(ttl, "ttl")


def _check(jitter: float, beta: float, near: int, near_mode: str) -> None:
    if not 0 <= jitter < 1:
        raise ConfigError(f"jitter must be in [0, 1), got {jitter!r}")
    if not 0 <= beta < math.inf:
        raise ConfigError(f"beta must be 0 or more, got {beta!r}")
    if near < 0:
        raise ConfigError(f"near must be 0 (off) or the most entries to keep, got {near!r}")
    if near_mode not in _NEAR_MODES:
        raise ConfigError(f"near_mode must be one of {_NEAR_MODES}, got {near_mode!r}")


class SingleFlight:
    """At most one call per key at a time in this process; the others share its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call] = {}

    def do(self, key: str, fn: Callable[[], T]) -> T:
        """Run ``fn``, or wait for the call already running under ``key``."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.value  # type: ignore[no-any-return]
        try:
            call.value = fn()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()
        return call.value  # type: ignore[no-any-return]


class _Call:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class AsyncSingleFlight:
    """:class:`SingleFlight` for asyncio tasks (of one event loop)."""

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Future[Any]] = {}

    async def do(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()``, or the call already running under ``key``."""
        running = self._calls.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[key] = future
        try:
            value = await fn()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" noise without followers
            raise
        finally:
            del self._calls[key]
        future.set_result(value)
        return value
