"""The cache facades: :class:`Cache` (sync) and :class:`AsyncCache` (asyncio).

::

    cache = rk.cache("products", ttl=300, stale_ttl=60)

    @cache.cached(tags=lambda product_id: [f"product:{product_id}"])
    def product(product_id: int) -> dict: ...

    cache.invalidate_tags("product:42")     # O(1): one SET, whatever the number of keys

Every method is one call into a flow (:mod:`redkit.cache.ops`, :mod:`redkit.cache.stampede`)
that both facades run; they differ in ``self._rk.run(...)`` versus ``await
self._rk.run(...)``, and in how a process's own callers of one key meet (threads versus
tasks). Near-cache hits are answered before any flow: they need no I/O.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from typing_extensions import Unpack

from redkit.cache.base import NOT_NEAR, CacheOptions, Tags, _CacheCore
from redkit.cache.flights import TaskFlights, ThreadFlights
from redkit.cache.ops import ttl_seconds
from redkit.durations import Duration
from redkit.errors import ConfigError

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, RedkitCore

T = TypeVar("T")
Key = str | bytes | int


class Cache(_CacheCore["RedkitCore"]):
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
        on_error: ``"open"`` (default: a read Redis cannot answer is a miss, a failed
            write is logged and dropped) or ``"closed"`` (raise). Invalidations always
            raise. See docs/cache.md.
        deadline: seconds each Redis command may take (connect and reply, no retries)
            before it fails and ``on_error`` decides; None (default): the facade's own
            timeouts and retries.
        cooldown: seconds after a failure during which the cache does not ask Redis and
            answers by ``on_error`` at once (0: ask again at once).
        serializer: override the facade's serializer (``"pickle"`` needs a secret:
            ``secret``, else the application's).
        near: keep up to this many entries in an in-process near cache (0: off).
        near_mode: ``"tracking"`` (RESP3 client tracking) or ``"pubsub"`` (see docs).
        near_heartbeat: seconds between heartbeats of the near cache's connections.
    """

    def __init__(
        self, rk: RedkitCore, namespace: str = "default", **options: Unpack[CacheOptions]
    ) -> None:
        super().__init__(rk, namespace, ThreadFlights(), **options)

    def get(self, key: Key, default: Any = None, *, tags: Sequence[str] = ()) -> Any:
        """The cached value of ``key``, or ``default``. ``tags`` saves a round trip.

        Raises:
            DataError: the key holds bytes redkit did not write (or that were damaged).
        """
        if self.near is not None and (value := self._near_value(key)) is not NOT_NEAR:
            return value
        return self._rk.run(self._f.get_flow(key, default, tags))

    def get_many(self, keys: Sequence[Key]) -> dict[Key, Any]:
        """The cached values of ``keys`` that are present (one round trip per node)."""
        return self._rk.run(self._get_many_flow(keys))

    def set(
        self, key: Key, value: Any, ttl: Duration | None = None, *, tags: Sequence[str] = ()
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the cache's)."""
        self._rk.run(self._write(self._f.set_many_flow([(key, value)], tags, ttl), None))

    def add(
        self, key: Key, value: Any, ttl: Duration | None = None, *, tags: Sequence[str] = ()
    ) -> bool:
        """Store ``value`` only if ``key`` has no valid entry; True when stored."""
        return self._rk.run(self._write(self._f.add_flow(key, value, tags, ttl), False))

    def set_many(
        self, items: Mapping[Key, Any], ttl: Duration | None = None, *, tags: Sequence[str] = ()
    ) -> None:
        """Store several values (one round trip, on a cluster too)."""
        self._rk.run(self._set_many_flow(items, ttl, tags))

    def delete(self, *keys: Key) -> int:
        """Delete entries; the number that existed."""
        return self._rk.run(self._f.delete_flow(keys))

    def incr(self, key: Key, delta: int = 1) -> int | None:
        """Add ``delta`` to an int entry atomically (ttl kept); None when there is no valid one.

        Raises:
            DataError: the entry is not an int, or not one redkit wrote.
        """
        return self._rk.run(self._write(self._f.incr_flow(key, delta), None))

    def touch(self, key: Key, ttl: Duration | None) -> bool:
        """Make ``key`` expire ``ttl`` seconds from now (None: never); False if absent."""
        return self._rk.run(self._write(self._f.touch_flow(key, ttl), False))

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
        thread: bool = False,
    ) -> T:
        """The cached value of ``key``, else ``loader()``'s, stored; one loader at a time.

        Callers in this process share one load; callers in other processes wait for it
        (woken when it is stored). A stale or early-refresh entry is served at once to
        every caller but the one refreshing it (which runs the loader inline). If the
        loader raises, nothing is stored and the lock is released; the stale value is
        returned when there is one and ``stale_on_error`` is set. An entry redkit cannot
        read counts as a miss and is overwritten. ``thread`` matters to ``AsyncCache``
        only (here the loader always runs in the calling thread).
        """
        if self.near is not None and (value := self._near_value(key)) is not NOT_NEAR:
            return value  # type: ignore[no-any-return]
        return self._rk.run(self._loads.get_or_set_flow(key, loader, ttl, tags, thread))  # type: ignore[no-any-return]

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
        """Detach the near cache from the facade's listener; stop counting ``stats``."""
        self._close()


class AsyncCache(_CacheCore["AsyncRedkitCore"]):
    """A cache namespace for asyncio code. Build it with :meth:`AsyncRedkit.cache`.

    Takes the same options as :class:`Cache`; loaders may be sync or async functions.
    """

    def __init__(
        self, rk: AsyncRedkitCore, namespace: str = "default", **options: Unpack[CacheOptions]
    ) -> None:
        super().__init__(rk, namespace, TaskFlights(), **options)

    async def get(self, key: Key, default: Any = None, *, tags: Sequence[str] = ()) -> Any:
        """The cached value of ``key``, or ``default`` (see :meth:`Cache.get`)."""
        if self.near is not None and (value := self._near_value(key)) is not NOT_NEAR:
            return value
        return await self._rk.run(self._f.get_flow(key, default, tags))

    async def get_many(self, keys: Sequence[Key]) -> dict[Key, Any]:
        """The cached values of ``keys`` that are present (one round trip per node)."""
        return await self._rk.run(self._get_many_flow(keys))

    async def set(
        self, key: Key, value: Any, ttl: Duration | None = None, *, tags: Sequence[str] = ()
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the cache's)."""
        flow = self._f.set_many_flow([(key, value)], tags, ttl)
        await self._rk.run(self._write(flow, None))

    async def add(
        self, key: Key, value: Any, ttl: Duration | None = None, *, tags: Sequence[str] = ()
    ) -> bool:
        """Store ``value`` only if ``key`` has no valid entry; True when stored."""
        flow = self._f.add_flow(key, value, tags, ttl)
        return await self._rk.run(self._write(flow, False))

    async def set_many(
        self, items: Mapping[Key, Any], ttl: Duration | None = None, *, tags: Sequence[str] = ()
    ) -> None:
        """Store several values (one round trip, on a cluster too)."""
        await self._rk.run(self._set_many_flow(items, ttl, tags))

    async def delete(self, *keys: Key) -> int:
        """Delete entries; the number that existed."""
        return await self._rk.run(self._f.delete_flow(keys))

    async def incr(self, key: Key, delta: int = 1) -> int | None:
        """Add ``delta`` to an int entry atomically (see :meth:`Cache.incr`)."""
        return await self._rk.run(self._write(self._f.incr_flow(key, delta), None))

    async def touch(self, key: Key, ttl: Duration | None) -> bool:
        """Make ``key`` expire ``ttl`` seconds from now (None: never); False if absent."""
        return await self._rk.run(self._write(self._f.touch_flow(key, ttl), False))

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
        thread: bool = False,
    ) -> Any:
        """:meth:`Cache.get_or_set` for asyncio.

        ``loader`` may be an async function (awaited) or a sync one, which runs on the
        event loop unless ``thread=True`` runs it in a worker thread.
        """
        if self.near is not None and (value := self._near_value(key)) is not NOT_NEAR:
            return value
        return await self._rk.run(self._loads.get_or_set_flow(key, loader, ttl, tags, thread))

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
        """Detach the near cache from the facade's listener; stop counting ``stats``."""
        self._close()
