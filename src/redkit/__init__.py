"""redkit: the Redis patterns every multi-instance Python service needs, done right once."""

from __future__ import annotations

from redkit.cache import AsyncCache, Cache
from redkit.client import ServerInfo
from redkit.config import Settings
from redkit.errors import (
    ConfigError,
    ConnectionError,  # noqa: A004 - redkit.ConnectionError, as in redis-py
    LockError,
    LockLostError,
    LockNotAcquiredError,
    LockNotOwnedError,
    RateLimitExceededError,
    RedkitError,
    SerializationError,
)
from redkit.facade import AsyncRedkit, Redkit
from redkit.locks import AsyncLock, Lock
from redkit.queue import AsyncQueue, Queue, Worker
from redkit.ratelimit import (
    AsyncConcurrencyLimiter,
    AsyncRateLimiter,
    ConcurrencyLimiter,
    Limit,
    RateLimiter,
    RateLimitResult,
)
from redkit.sessions import (
    AsyncSessionStore,
    AsyncTokenRevoker,
    CookieConfig,
    RefreshResult,
    Revocation,
    Session,
    SessionStore,
    TokenRevoker,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncCache",
    "AsyncConcurrencyLimiter",
    "AsyncLock",
    "AsyncQueue",
    "AsyncRateLimiter",
    "AsyncRedkit",
    "AsyncSessionStore",
    "AsyncTokenRevoker",
    "Cache",
    "ConcurrencyLimiter",
    "ConfigError",
    "ConnectionError",
    "CookieConfig",
    "Limit",
    "Lock",
    "LockError",
    "LockLostError",
    "LockNotAcquiredError",
    "LockNotOwnedError",
    "Queue",
    "RateLimitExceededError",
    "RateLimitResult",
    "RateLimiter",
    "Redkit",
    "RedkitError",
    "RefreshResult",
    "Revocation",
    "SerializationError",
    "ServerInfo",
    "Session",
    "SessionStore",
    "Settings",
    "TokenRevoker",
    "Worker",
    "__version__",
]
