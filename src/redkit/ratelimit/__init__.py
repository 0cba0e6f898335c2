"""Rate limiting: every algorithm in one atomic round trip, on the server's clock.

See :mod:`redkit.ratelimit.limiter` (rate limits) and :mod:`redkit.ratelimit.concurrency`
(at most N in flight), and docs/ratelimit.md.
"""

from __future__ import annotations

from redkit.ratelimit.concurrency import (
    AsyncConcurrencyLimiter,
    AsyncLease,
    ConcurrencyLimiter,
    ConcurrencyLimiterOptions,
    Lease,
)
from redkit.ratelimit.limiter import AsyncRateLimiter, RateLimiter, RateLimiterOptions
from redkit.ratelimit.ops import ALGORITHMS, LimitState, RateLimitResult
from redkit.ratelimit.policy import Limit, Policy, parse_policy

__all__ = [
    "ALGORITHMS",
    "AsyncConcurrencyLimiter",
    "AsyncLease",
    "AsyncRateLimiter",
    "ConcurrencyLimiter",
    "ConcurrencyLimiterOptions",
    "Lease",
    "Limit",
    "LimitState",
    "Policy",
    "RateLimitResult",
    "RateLimiter",
    "RateLimiterOptions",
    "parse_policy",
]
