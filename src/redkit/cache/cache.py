"""The cache facades: :class:`Cache` (sync) and :class:`AsyncCache` (asyncio).

::

    cache = rk.cache("products", ttl=300, stale_ttl=60)

    @cache.cached(tags=lambda product_id: [f"product:{product_id}"])
    def product(product_id: int) -> dict: ...

    cache.invalidate_tags("product:42")     # O(1): one SET, whatever the number of keys

Both run the same flows (:mod:`redkit.cache.ops`, :mod:`redkit.cache.stampede`); they
differ only in ``self._rk.run(...)`` versus ``await self._rk.run(...)`` and in how a
process's own callers are merged (threads versus tasks).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from typing_extensions import Unpack

from redkit.cache import stampede
from redkit.cache.base import (
    AsyncSingleFlight,
    CacheOptions,
    SingleFlight,
    Tags,
    _CacheCore,
    ttl_seconds,
)
from redkit.cache.envelope import Found
from redkit.cache.hot import MISS, Slow, Unverified
from redkit.cache.ops import Begin
from redkit.durations import Duration
from redkit.errors import ConfigError

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, RedkitCore

T = TypeVar("T")
Key = str | bytes | int
_MISSING: Any = object()


class Cache(_CacheCore):
    """A cache namespace for synchronous code. Build it with :meth:`Redkit.cache`.

    Args:
        namespace: the namespace (``clear()`` invalidates exactly this one).
        ttl: default seconds an entry is fresh (None: no expiry); scaled down by ``jitter``.
        stale_ttl: seconds past ``ttl`` that a stale entry may still be served while one
            caller refreshes it, or when the loader fails (``stale_on_error``).
        jitter: fraction of the ttl taken off at random, so keys written together do not
            expire together (0.1: the ttl is 90-100% of the given one).
        beta: XFetch factor for early refresh (0 turns it off; above 1 refreshes earlier).
        lock_ttl: seconds a loader holds the fill lock (other instances wait at most this).
        wait_timeout: seconds to wait for another loader before loading anyway (default
            ``lock_ttl``).
        cache_none: store None results (negative caching) for ``none_ttl`` (default ``ttl``).
        stale_on_error: serve the stale value when a refresh's loader raises.
        serializer: override the facade's serializer (``"pickle"`` needs ``secret``).
        near: keep up to this many entries in an in-process near cache (0: off).
        near_mode: ``"tracking"`` (RESP3 client tracking) or ``"pubsub"`` (see docs).
        near_heartbeat: seconds between heartbeats of the near cache's connections.
    """

    def __init__(
        self, rk: RedkitCore, namespace: str = "default", **options: Unpack[CacheOptions]
    ) -> None:
        super().__init__(rk, namespace, **options)
        self._rk = rk
        self._flights = SingleFlight()

    def get(self, key: Key, default: Any = None, *, tags: Sequence[str] = ()) -> Any:
        """The cached value of ``key``, or ``default``. ``tags`` saves a round trip."""
        if self._hot is not None and not tags:  # one MGET, parsed straight to the value
            value = self._rk.run(self._hot.value_once(key))
            if not isinstance(value, Unverified):
                return default if value is MISS else value
            found = self._rk.run(self._f.verify_flow(value))
        else:
            entry = None if self.near is None else self._near_hit(self._f.keys.entry(key))
            if entry is not None:
                return entry.value
            found = self._rk.run(self._f.read_flow(self._f.keys.entry(key), tags))
        entry = self._count(found)
        return default if entry is None else entry.value

    def get_many(self, keys: Sequence[Key]) -> dict[Key, Any]:
        """The cached values of ``keys`` that are present (one round trip per node)."""
        entries = self._rk.run(self._f.read_many_flow(keys))
        return {k: e.value for k, e in zip(keys, entries, strict=True) if e is not None}

    def set(
        self, key: Key, value: Any, ttl: Duration | None = None, *, tags: Sequence[str] = ()
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the cache's)."""
        self._rk.run(self._f.set_many_flow([(key, value)], tags, ttl_seconds(ttl)))

    def add(
        self, key: Key, value: Any, ttl: Duration | None = None, *, tags: Sequence[str] = ()
    ) -> bool:
        """Store ``value`` only if ``key`` has no valid entry; True when stored."""
        return self._rk.run(self._f.add_flow(key, value, tags, ttl_seconds(ttl)))

    def set_many(
        self, items: Mapping[Key, Any], ttl: Duration | None = None, *, tags: Sequence[str] = ()
    ) -> None:
        """Store several values (one round trip for versions, one for the writes)."""
        self._rk.run(self._f.set_many_flow(list(items.items()), tags, ttl_seconds(ttl)))

    def delete(self, *keys: Key) -> int:
        """Delete entries; the number that existed."""
        return self._rk.run(self._f.delete_flow(keys))

    def incr(self, key: Key, delta: int = 1) -> int | None:
        """Add ``delta`` to an int entry atomically (ttl kept); None when there is none."""
        return self._rk.run(self._f.incr_flow(key, delta))

    def touch(self, key: Key, ttl: Duration | None) -> bool:
        """Make ``key`` expire ``ttl`` seconds from now (None: never); False if absent."""
        return self._rk.run(self._f.touch_flow(key, ttl_seconds(ttl)))

    def invalidate_tags(self, *tags: str) -> None:
        """Invalidate every entry carrying any of ``tags``, in every namespace. O(1) per tag."""
        self._rk.run(self._f.invalidate_flow([self._f.keys.tag(t) for t in tags]))

    def clear(self) -> None:
        """Invalidate every entry of this namespace (one SET; nothing is scanned or flushed)."""
        self._rk.run(self._f.invalidate_flow([self._f.keys.ns_version]))

    def get_or_set(
        self,
        key: Key,
        loader: Callable[[], T],
        ttl: Duration | None = None,
        *,
        tags: Sequence[str] = (),
    ) -> T:
        """The cached value of ``key``, else ``loader()``'s, stored; one loader at a time.

        Callers in this process share one load; callers in other processes wait for it
        (woken when it is stored). A stale or early-refresh entry is served while one caller
        refreshes it. If the loader raises, nothing is stored and the lock is released;
        the stale value is returned when there is one and ``stale_on_error`` is set.
        """
        if self._hot is not None and not tags:  # one MGET, a fresh value parsed straight away
            value = self._rk.run(self._hot.fresh_once(key))
            if not isinstance(value, Slow):
                return value  # type: ignore[no-any-return]
            found = value.found
            if isinstance(found, Unverified):
                found = self._rk.run(self._f.verify_flow(found))
        else:
            entry = None if self.near is None else self._near_hit(self._f.keys.entry(key))
            if entry is not None:
                return entry.value  # type: ignore[no-any-return]
            found = self._rk.run(self._f.read_flow(self._f.keys.entry(key), tags))
        entry = self._fresh_hit(found)
        if entry is not None:
            return entry.value  # type: ignore[no-any-return]
        return self._flights.do(
            self._f.keys.entry(key), lambda: self._load(key, loader, ttl_seconds(ttl), tags, found)
        )

    def _load(
        self,
        key: Key,
        loader: Callable[[], T],
        ttl: float | None,
        tags: Sequence[str],
        found: Found,
    ) -> T:
        begin = self._rk.run(stampede.begin_flow(self._f, key, tags, found))
        if not begin.load:
            return self._served(begin)  # type: ignore[no-any-return]
        started = time.perf_counter()
        try:
            value = loader()
        except Exception:
            if not self._failed(key, begin):
                raise
            return begin.entry.value  # type: ignore[union-attr,no-any-return]
        delta = time.perf_counter() - started
        self.stats.loads += 1
        self._rk.run(stampede.fill_flow(self._f, key, begin, value, tags, ttl, delta))
        return value

    def _failed(self, key: Key, begin: Begin) -> bool:
        """Release after a loader error; True when the stale value should be served."""
        self.stats.load_errors += 1
        if begin.token:
            self._rk.run(stampede.release_flow(self._f, key, begin.token))
        if begin.entry is not None and self.stale_on_error:
            self.stats.stale_serves += 1
            return True
        return False

    def cached(
        self,
        ttl: Duration | None = None,
        *,
        tags: Tags = (),
        key: Callable[..., str] | None = None,
        ignore: Sequence[str] = (),
        name: str | None = None,
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorate a function so its results are cached under a key derived from its arguments.

        Args:
            ttl: seconds or a timedelta (default: the cache's); checked here.
            tags: tags of every result, or a function of the call's arguments returning them.
            key: a function of the call's arguments returning the key, instead of the digest.
            ignore: parameter names left out of the key (e.g. ``("self",)``).
            name: the function's name in its keys; required for a function without a
                stable one (a closure, a lambda, a bound method) unless ``key`` is given.
        """
        ttl = ttl_seconds(ttl)

        def decorate(func: Callable[..., T]) -> Callable[..., T]:
            if inspect.iscoroutinefunction(func):
                raise ConfigError(
                    f"{func.__qualname__} is async: decorate it with an AsyncCache (ark.cache(...))"
                )
            keyer = self._keyer(func, key, ignore, name)

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> T:
                tag_list = self._tags_of(tags, args, kwargs)
                return self.get_or_set(
                    keyer(args, kwargs), lambda: func(*args, **kwargs), ttl, tags=tag_list
                )

            wrapper.cache_key = lambda *a, **kw: keyer(a, kw)  # type: ignore[attr-defined]
            return wrapper

        return decorate

    def close(self) -> None:
        """Stop the near cache's listener (the facade's connection stays open)."""
        self._stop_listener()


class AsyncCache(_CacheCore):
    """A cache namespace for asyncio code. Build it with :meth:`AsyncRedkit.cache`.

    Takes the same options as :class:`Cache`; loaders may be sync or async functions.
    """

    def __init__(
        self, rk: AsyncRedkitCore, namespace: str = "default", **options: Unpack[CacheOptions]
    ) -> None:
        super().__init__(rk, namespace, **options)
        self._rk = rk
        self._flights = AsyncSingleFlight()

    async def get(self, key: Key, default: Any = None, *, tags: Sequence[str] = ()) -> Any:
        """The cached value of ``key``, or ``default``. ``tags`` saves a round trip."""
        if self._hot is not None and not tags:  # one MGET, parsed straight to the value
            value = await self._rk.run(self._hot.value_once(key))
            if not isinstance(value, Unverified):
                return default if value is MISS else value
            found = await self._rk.run(self._f.verify_flow(value))
        else:
            entry = None if self.near is None else self._near_hit(self._f.keys.entry(key))
            if entry is not None:
                return entry.value
            found = await self._rk.run(self._f.read_flow(self._f.keys.entry(key), tags))
        entry = self._count(found)
        return default if entry is None else entry.value

    async def get_many(self, keys: Sequence[Key]) -> dict[Key, Any]:
        """The cached values of ``keys`` that are present (one round trip per node)."""
        entries = await self._rk.run(self._f.read_many_flow(keys))
        return {k: e.value for k, e in zip(keys, entries, strict=True) if e is not None}

    async def set(
        self, key: Key, value: Any, ttl: Duration | None = None, *, tags: Sequence[str] = ()
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the cache's)."""
        await self._rk.run(self._f.set_many_flow([(key, value)], tags, ttl_seconds(ttl)))

    async def add(
        self, key: Key, value: Any, ttl: Duration | None = None, *, tags: Sequence[str] = ()
    ) -> bool:
        """Store ``value`` only if ``key`` has no valid entry; True when stored."""
        return await self._rk.run(self._f.add_flow(key, value, tags, ttl_seconds(ttl)))

    async def set_many(
        self, items: Mapping[Key, Any], ttl: Duration | None = None, *, tags: Sequence[str] = ()
    ) -> None:
        """Store several values (one round trip for versions, one for the writes)."""
        await self._rk.run(self._f.set_many_flow(list(items.items()), tags, ttl_seconds(ttl)))

    async def delete(self, *keys: Key) -> int:
        """Delete entries; the number that existed."""
        return await self._rk.run(self._f.delete_flow(keys))

    async def incr(self, key: Key, delta: int = 1) -> int | None:
        """Add ``delta`` to an int entry atomically (ttl kept); None when there is none."""
        return await self._rk.run(self._f.incr_flow(key, delta))

    async def touch(self, key: Key, ttl: Duration | None) -> bool:
        """Make ``key`` expire ``ttl`` seconds from now (None: never); False if absent."""
        return await self._rk.run(self._f.touch_flow(key, ttl_seconds(ttl)))

    async def invalidate_tags(self, *tags: str) -> None:
        """Invalidate every entry carrying any of ``tags``, in every namespace. O(1) per tag."""
        await self._rk.run(self._f.invalidate_flow([self._f.keys.tag(t) for t in tags]))

    async def clear(self) -> None:
        """Invalidate every entry of this namespace (one SET; nothing is scanned or flushed)."""
        await self._rk.run(self._f.invalidate_flow([self._f.keys.ns_version]))

    async def get_or_set(
        self,
        key: Key,
        loader: Callable[[], Any],
        ttl: Duration | None = None,
        *,
        tags: Sequence[str] = (),
    ) -> Any:
        """:meth:`Cache.get_or_set` for asyncio; ``loader`` may return an awaitable."""
        if self._hot is not None and not tags:  # one MGET, a fresh value parsed straight away
            value = await self._rk.run(self._hot.fresh_once(key))
            if not isinstance(value, Slow):
                return value
            found = value.found
            if isinstance(found, Unverified):
                found = await self._rk.run(self._f.verify_flow(found))
        else:
            entry = None if self.near is None else self._near_hit(self._f.keys.entry(key))
            if entry is not None:
                return entry.value
            found = await self._rk.run(self._f.read_flow(self._f.keys.entry(key), tags))
        entry = self._fresh_hit(found)
        if entry is not None:
            return entry.value
        return await self._flights.do(
            self._f.keys.entry(key), lambda: self._load(key, loader, ttl_seconds(ttl), tags, found)
        )

    async def _load(
        self,
        key: Key,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: Sequence[str],
        found: Found,
    ) -> Any:
        begin = await self._rk.run(stampede.begin_flow(self._f, key, tags, found))
        if not begin.load:
            return self._served(begin)
        started = time.perf_counter()
        try:
            value = loader()
            if inspect.isawaitable(value):
                value = await value
        except Exception:
            self.stats.load_errors += 1
            if begin.token:
                await self._rk.run(stampede.release_flow(self._f, key, begin.token))
            if begin.entry is not None and self.stale_on_error:
                self.stats.stale_serves += 1
                return begin.entry.value
            raise
        self.stats.loads += 1
        await self._rk.run(
            stampede.fill_flow(self._f, key, begin, value, tags, ttl, time.perf_counter() - started)
        )
        return value

    def cached(
        self,
        ttl: Duration | None = None,
        *,
        tags: Tags = (),
        key: Callable[..., str] | None = None,
        ignore: Sequence[str] = (),
        name: str | None = None,
    ) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
        """:meth:`Cache.cached` for async functions (the wrapper is a coroutine function)."""
        ttl = ttl_seconds(ttl)

        def decorate(func: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
            if not inspect.iscoroutinefunction(func):
                raise ConfigError(
                    f"{func.__qualname__} is not async: decorate it with a Cache (rk.cache(...))"
                )
            keyer = self._keyer(func, key, ignore, name)

            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> T:
                tag_list = self._tags_of(tags, args, kwargs)
                return await self.get_or_set(  # type: ignore[no-any-return]
                    keyer(args, kwargs), lambda: func(*args, **kwargs), ttl, tags=tag_list
                )

            wrapper.cache_key = lambda *a, **kw: keyer(a, kw)  # type: ignore[attr-defined]
            return wrapper

        return decorate

    async def aclose(self) -> None:
        """Stop the near cache's listener (the facade's connection stays open)."""
        self._stop_listener()
