"""The two entry points: :class:`Redkit` (sync) and :class:`AsyncRedkit` (asyncio).

Both hold one connection pool, one :class:`~redkit.keys.Keyspace` and one serializer (the
core, :mod:`redkit.client`) and build every capability from them, so an application
configures Redis exactly once::

    rk = Redkit()                       # REDIS_URL, else the embedded server
    with rk.lock("order:42", ttl=10):
        ...

Each factory takes the capability's name first and its options as typed keywords: a
misspelt option fails in mypy and, at run time, with a :class:`~redkit.errors.ConfigError`
that names it.

Each factory imports its capability when first called, not when this module loads: a
process pays in memory and start-up time only for what it uses (a queue worker never loads
the cache, the sessions or the rate limiters).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from typing_extensions import Unpack

from redkit.client import AsyncRedkitCore, RedkitCore, check_options

if TYPE_CHECKING:
    from collections.abc import Iterable

    from redkit.cache import AsyncCache, Cache
    from redkit.cache.base import CacheOptions
    from redkit.events import AsyncEvents, Events
    from redkit.idempotency import AsyncIdempotency, Idempotency, IdempotencyOptions
    from redkit.locks import AsyncLock, Lock, LockOptions
    from redkit.queue import AsyncQueue, Queue, QueueOptions
    from redkit.ratelimit import (
        AsyncConcurrencyLimiter,
        AsyncRateLimiter,
        ConcurrencyLimiter,
        ConcurrencyLimiterOptions,
        Limit,
        RateLimiter,
        RateLimiterOptions,
    )
    from redkit.ratelimit.policy import Policy
    from redkit.sessions import AsyncSessionStore, AsyncTokenRevoker, SessionStore, TokenRevoker
    from redkit.sessions.revocation import TokenOptions
    from redkit.sessions.store import SessionOptions


class Redkit(RedkitCore):
    """Synchronous redkit: one client, one key scheme, every capability.

    Args:
        url: a Redis URL; overrides ``REDIS_URL``.
        settings: a full :class:`~redkit.config.Settings` (instead of ``url``).
        client: an existing redis-py ``Redis`` or ``RedisCluster`` to use as is.
        prefix: the key prefix; overrides ``REDKIT_PREFIX``.
        serializer: ``"json"`` (default), ``"msgpack"``, ``"pickle"`` or an object.
        secret: the application's secret (overrides ``REDKIT_SECRET``): it signs values
            of the pickle serializer (which requires it) and keys idempotency digests.
    """

    def lock(self, name: str, **options: Unpack[LockOptions]) -> Lock:
        """A distributed lock; see :class:`redkit.locks.Lock` for the options."""
        from redkit.locks import Lock, LockOptions

        check_options("lock", options, LockOptions)
        return Lock(self, name, **options)

    def cache(self, name: str = "default", **options: Unpack[CacheOptions]) -> Cache:
        """A cache namespace; see :class:`redkit.cache.Cache` for the options."""
        from redkit.cache import Cache
        from redkit.cache.base import CacheOptions

        check_options("cache", options, CacheOptions)
        return Cache(self, name, **options)

    def sessions(self, **options: Unpack[SessionOptions]) -> SessionStore:
        """Server-side sessions; see :class:`redkit.sessions.SessionStore` for the options."""
        from redkit.sessions import SessionStore
        from redkit.sessions.store import SessionOptions

        check_options("sessions", options, SessionOptions)
        return SessionStore(self, **options)

    def tokens(self, **options: Unpack[TokenOptions]) -> TokenRevoker:
        """Token revocation; see :class:`redkit.sessions.TokenRevoker` for the options."""
        from redkit.sessions import TokenRevoker
        from redkit.sessions.revocation import TokenOptions

        check_options("tokens", options, TokenOptions)
        return TokenRevoker(self, **options)

    def rate_limiter(
        self,
        policy: str | Limit | Policy | Iterable[Limit | str],
        **options: Unpack[RateLimiterOptions],
    ) -> RateLimiter:
        """A rate limiter, e.g. ``rk.rate_limiter("10/second; 1000/hour", name="api")``.

        See :class:`redkit.ratelimit.RateLimiter` for the options.
        """
        from redkit.ratelimit import RateLimiter, RateLimiterOptions

        check_options("rate_limiter", options, RateLimiterOptions)
        return RateLimiter(self, policy, **options)

    def concurrency_limiter(
        self, limit: int, **options: Unpack[ConcurrencyLimiterOptions]
    ) -> ConcurrencyLimiter:
        """At most ``limit`` holders per key; see :class:`redkit.ratelimit.ConcurrencyLimiter`."""
        from redkit.ratelimit import ConcurrencyLimiter, ConcurrencyLimiterOptions

        check_options("concurrency_limiter", options, ConcurrencyLimiterOptions)
        return ConcurrencyLimiter(self, limit, **options)

    def queue(self, name: str, **options: Unpack[QueueOptions]) -> Queue:
        """A job queue, e.g. ``rk.queue("emails")``; see :class:`redkit.queue.Queue`."""
        from redkit.queue import Queue, QueueOptions

        check_options("queue", options, QueueOptions)
        return Queue(self, name, **options)

    def idempotency(self, name: str, **options: Unpack[IdempotencyOptions]) -> Idempotency:
        """Idempotency keys, e.g. ``rk.idempotency("payments")``; see
        :class:`redkit.idempotency.Idempotency` for the options."""
        from redkit.idempotency import Idempotency, IdempotencyOptions

        check_options("idempotency", options, IdempotencyOptions)
        return Idempotency(self, name, **options)

    @cached_property
    def events(self) -> Events:
        """Fan-out and durable events, e.g. ``rk.events.publish("order:created", data)``;
        see :class:`redkit.events.Events`."""
        from redkit.events import Events

        return Events(self)


class AsyncRedkit(AsyncRedkitCore):
    """asyncio redkit: the same capabilities as :class:`Redkit`, awaited.

    Takes the same arguments as :class:`Redkit`; a handed-in client must be one of
    redis-py's asyncio clients.
    """

    def lock(self, name: str, **options: Unpack[LockOptions]) -> AsyncLock:
        """A distributed lock for ``async with``; see :class:`redkit.locks.AsyncLock`."""
        from redkit.locks import AsyncLock, LockOptions

        check_options("lock", options, LockOptions)
        return AsyncLock(self, name, **options)

    def cache(self, name: str = "default", **options: Unpack[CacheOptions]) -> AsyncCache:
        """A cache namespace for asyncio; see :class:`redkit.cache.AsyncCache`."""
        from redkit.cache import AsyncCache
        from redkit.cache.base import CacheOptions

        check_options("cache", options, CacheOptions)
        return AsyncCache(self, name, **options)

    def sessions(self, **options: Unpack[SessionOptions]) -> AsyncSessionStore:
        """Server-side sessions; see :class:`redkit.sessions.AsyncSessionStore`."""
        from redkit.sessions import AsyncSessionStore
        from redkit.sessions.store import SessionOptions

        check_options("sessions", options, SessionOptions)
        return AsyncSessionStore(self, **options)

    def tokens(self, **options: Unpack[TokenOptions]) -> AsyncTokenRevoker:
        """Token revocation; see :class:`redkit.sessions.AsyncTokenRevoker`."""
        from redkit.sessions import AsyncTokenRevoker
        from redkit.sessions.revocation import TokenOptions

        check_options("tokens", options, TokenOptions)
        return AsyncTokenRevoker(self, **options)

    def rate_limiter(
        self,
        policy: str | Limit | Policy | Iterable[Limit | str],
        **options: Unpack[RateLimiterOptions],
    ) -> AsyncRateLimiter:
        """A rate limiter for asyncio; see :class:`redkit.ratelimit.AsyncRateLimiter`."""
        from redkit.ratelimit import AsyncRateLimiter, RateLimiterOptions

        check_options("rate_limiter", options, RateLimiterOptions)
        return AsyncRateLimiter(self, policy, **options)

    def concurrency_limiter(
        self, limit: int, **options: Unpack[ConcurrencyLimiterOptions]
    ) -> AsyncConcurrencyLimiter:
        """At most ``limit`` holders per key (asyncio); see ``AsyncConcurrencyLimiter``."""
        from redkit.ratelimit import AsyncConcurrencyLimiter, ConcurrencyLimiterOptions

        check_options("concurrency_limiter", options, ConcurrencyLimiterOptions)
        return AsyncConcurrencyLimiter(self, limit, **options)

    def queue(self, name: str, **options: Unpack[QueueOptions]) -> AsyncQueue:
        """A job queue for asyncio producers; see :class:`redkit.queue.AsyncQueue`."""
        from redkit.queue import AsyncQueue, QueueOptions

        check_options("queue", options, QueueOptions)
        return AsyncQueue(self, name, **options)

    def idempotency(self, name: str, **options: Unpack[IdempotencyOptions]) -> AsyncIdempotency:
        """Idempotency keys for asyncio; see :class:`redkit.idempotency.AsyncIdempotency`."""
        from redkit.idempotency import AsyncIdempotency, IdempotencyOptions

        check_options("idempotency", options, IdempotencyOptions)
        return AsyncIdempotency(self, name, **options)

    @cached_property
    def events(self) -> AsyncEvents:
        """Fan-out and durable events for asyncio; see :class:`redkit.events.AsyncEvents`."""
        from redkit.events import AsyncEvents

        return AsyncEvents(self)
