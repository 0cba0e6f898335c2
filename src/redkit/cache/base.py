"""What :class:`Cache` and :class:`AsyncCache` share: options, flows, stats, failure policy."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from redkit import ops
from redkit.cache import listener
from redkit.cache.failure import CacheFailures
from redkit.cache.flights import Flights
from redkit.cache.keying import CallKey
from redkit.cache.near import NearCache
from redkit.cache.ops import CacheFlows, CacheKeys, Key, Policy
from redkit.cache.stampede import Loads
from redkit.cache.stats import CacheStats
from redkit.durations import Duration, seconds
from redkit.errors import ConfigError
from redkit.failure import FailureOptions, Guarded
from redkit.serializers import Serializer, get_serializer

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, RedkitCore

T = TypeVar("T")
CoreT = TypeVar("CoreT", "RedkitCore", "AsyncRedkitCore")
Tags = Sequence[str] | Callable[..., Sequence[str]]
_NEAR_MODES = ("tracking", "pubsub")
NOT_NEAR: Any = object()
"""What :meth:`_CacheCore._near_value` returns when memory cannot serve the key."""


class CacheOptions(FailureOptions, total=False):
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
    on_error: str
    serializer: str | Serializer | None
    secret: str | bytes | None
    near: int
    near_mode: str
    near_heartbeat: Duration


class _CacheCore(Guarded, Generic[CoreT]):
    """Options and flows of one cache namespace; ``rk`` is the core its flows run on."""

    def __init__(
        self,
        rk: CoreT,
        namespace: str,
        flights: Flights,
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
        on_error: str = "open",
        deadline: Duration | None = None,
        cooldown: Duration = 1.0,
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
        deadline = seconds(deadline, "deadline", allow_none=True)
        cooldown = seconds(cooldown, "cooldown", allow_zero=True)
        _check(jitter, beta, near, near_mode)
        self.namespace = namespace
        self.stale_on_error = stale_on_error
        self.deadline = deadline
        # the core the flows run on: with a deadline, a sibling whose commands give up then
        self._rk: CoreT = rk if deadline is None else rk.with_timeout(deadline)
        observers = self._rk.observers  # the live list: notes are skipped while it is empty
        self._failures = CacheFailures(namespace, on_error, cooldown, observers)
        self._failure = self._failures.policy  # (Guarded: on_error, failures)
        # near hits never reach a driver; this one reports their notes to the observers
        self._reporter = ops.Driver(None, self._rk.target, observers)
        self._stats: CacheStats | None = None
        self._unobserve: Callable[[], None] | None = None
        self.serializer = (
            rk.serializer
            if serializer is None
            else get_serializer(serializer, secret=rk.settings.secret if secret is None else secret)
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
            near=self.near,
            channel=channel,
            observers=observers,
            failure=self._failures,
        )
        self._loads = Loads(self._f, flights, self._failures, stale_on_error)
        self._listener: listener.NearListener | None = None
        self._near_owner: RedkitCore | AsyncRedkitCore = rk
        if self.near is not None:  # a shared listener: no thread, no connection of its own
            route = tuple(keys.tracking_prefixes())
            self._listener = listener.attach(rk, self.near, route, near_mode, near_heartbeat)

    def __repr__(self) -> str:
        near = f", near={self.near.maxsize}" if self.near is not None else ""
        return f"{type(self).__name__}(namespace={self.namespace!r}{near})"

    @property
    def stats(self) -> CacheStats:
        """This namespace's counters; they count from the first time this is read.

        Reading it registers a :class:`CacheStats` observer with the facade, so a cache
        nobody asks about costs nothing to count. Read it once at start-up to count all.
        """
        if self._stats is None:
            self._stats = CacheStats(self.namespace)
            self._unobserve = self._rk.observe(self._stats)
        return self._stats

    def _near_value(self, key: Key) -> Any:
        """The value served from process memory (noted), or :data:`NOT_NEAR`."""
        near = self.near
        if near is None:
            return NOT_NEAR
        entry = near.lookup(self._f.keys.entry(key))
        if entry is None:
            return NOT_NEAR
        if self._reporter.observers:
            self._reporter.effect(self._f.notes["cache.near_hit"])
        return entry.value

    def _get_many_flow(self, keys: Sequence[Key]) -> ops.Flow[dict[Key, Any]]:
        return self._failures.guarded(self._f.get_many_flow(keys), {})

    def _set_many_flow(
        self, items: Mapping[Key, Any], ttl: Duration | None, tags: Sequence[str]
    ) -> ops.Flow[None]:
        flow = self._f.set_many_flow(list(items.items()), tags, ttl)
        return self._failures.guarded(flow, None)

    def _write(self, flow: ops.Flow[T], fallback: T) -> ops.Flow[T]:
        return self._failures.guarded(flow, fallback)

    def _close(self) -> None:
        self._stop_listener()
        if self._unobserve is not None:
            self._unobserve()
            self._unobserve = None

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


def _check(jitter: float, beta: float, near: int, near_mode: str) -> None:
    if not 0 <= jitter < 1:
        raise ConfigError(f"jitter must be in [0, 1), got {jitter!r}")
    if not 0 <= beta < math.inf:
        raise ConfigError(f"beta must be 0 or more, got {beta!r}")
    if near < 0:
        raise ConfigError(f"near must be 0 (off) or the most entries to keep, got {near!r}")
    if near_mode not in _NEAR_MODES:
        raise ConfigError(f"near_mode must be one of {_NEAR_MODES}, got {near_mode!r}")
