"""redkit: the Redis patterns every multi-instance Python service needs, done right once.

The capabilities' names (``Cache``, ``Queue``, ``SessionStore`` ...) are imported on first
use (PEP 562), so ``import redkit`` costs only the core: a queue worker never loads the
cache or the sessions. ``from redkit import Cache`` works as with any other name.
"""

from __future__ import annotations

import typing

from redkit import _lazy
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

if typing.TYPE_CHECKING:
    from redkit.cache import AsyncCache, Cache
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

if not typing.TYPE_CHECKING:  # mypy reads the imports above, and flags a misspelt name
    __getattr__, __dir__ = _lazy.exports(
        __name__,
        {
            "redkit.cache": "AsyncCache Cache",
            "redkit.locks": "AsyncLock Lock",
            "redkit.queue": "AsyncQueue Queue Worker",
            "redkit.ratelimit": "AsyncConcurrencyLimiter AsyncRateLimiter ConcurrencyLimiter "
            "Limit RateLimitResult RateLimiter",
            "redkit.sessions": "AsyncSessionStore AsyncTokenRevoker CookieConfig RefreshResult "
            "Revocation Session SessionStore TokenRevoker",
        },
    )
