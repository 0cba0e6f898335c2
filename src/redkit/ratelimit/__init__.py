"""Rate limiting: every algorithm in one atomic round trip, on the server's clock.

See :mod:`redkit.ratelimit.limiter` (rate limits) and :mod:`redkit.ratelimit.concurrency`
(at most N in flight), and docs/ratelimit.md.

The names below are imported on first use (PEP 562): the queue, which parses limits with
:mod:`redkit.ratelimit.policy`, does not load the limiters.
"""

from __future__ import annotations

import typing

from redkit import _lazy

if typing.TYPE_CHECKING:
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

if not typing.TYPE_CHECKING:  # mypy reads the imports above, and flags a misspelt name
    __getattr__, __dir__ = _lazy.exports(
        __name__,
        {
            "redkit.ratelimit.concurrency": "AsyncConcurrencyLimiter AsyncLease "
            "ConcurrencyLimiter ConcurrencyLimiterOptions Lease",
            "redkit.ratelimit.limiter": "AsyncRateLimiter RateLimiter RateLimiterOptions",
            "redkit.ratelimit.ops": "ALGORITHMS LimitState RateLimitResult",
            "redkit.ratelimit.policy": "Limit Policy parse_policy",
        },
    )
