"""Policy strings: what parses, what does not, and what the error says."""

from __future__ import annotations

import pytest

from redkit import Redkit
from redkit.errors import ConfigError
from redkit.ratelimit import Limit, Policy, parse_policy


@pytest.mark.parametrize(
    ("spec", "limits"),
    [
        ("100/minute", [Limit(100, 60)]),
        ("10/second; 1000/hour", [Limit(10, 1), Limit(1000, 3600)]),
        ("10 per second, 5 per 10 minutes", [Limit(10, 1), Limit(5, 600)]),
        ("5/10s", [Limit(5, 10)]),
        ("1/day", [Limit(1, 86400)]),
        ("3 / 2 hours", [Limit(3, 7200)]),
        ("20/min burst 40", [Limit(20, 60, 40)]),
        ("7/0.5sec", [Limit(7, 0.5)]),
        ("2/HOURS", [Limit(2, 7200 / 2)]),
    ],
)
def test_valid_policies(spec: str, limits: list[Limit]) -> None:
    assert parse_policy(spec).limits == tuple(limits)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "ten/second",
        "10/fortnight",
        "10/ms",
        "10",
        "10/",
        "0/second",
        "-1/second",
        "10/0s",
        "10/second burst",
    ],
)
def test_invalid_policies_say_what_was_expected(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(spec)
    message = str(info.value)
    assert "expected" in message or "positive" in message or "at least" in message


def test_other_forms() -> None:
    policy = parse_policy([Limit(1, 1), "5/minute"], burst=3)
    assert policy.limits == (Limit(1, 1, 3), Limit(5, 60, 3))
    assert parse_policy(policy) is not None
    assert parse_policy(Limit(2, 1)).limits == (Limit(2, 1),)
    assert str(parse_policy("10/second; 1000/hour")) == "10/1s; 1000/3600s"
    with pytest.raises(ConfigError, match="twice"):
        Policy((Limit(1, 1), Limit(1, 1)))
    with pytest.raises(ConfigError):
        parse_policy(42)  # type: ignore[arg-type]
    assert Limit(10, 1).name == "10-per-1s"
    assert Limit(3, 0.5, 6).name == "3-per-0_5s-b6"


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_sync_and_async_classes_expose_the_same_api() -> None:
    from redkit.ratelimit import (
        AsyncConcurrencyLimiter,
        AsyncLease,
        AsyncRateLimiter,
        ConcurrencyLimiter,
        Lease,
        RateLimiter,
    )

    assert _public(RateLimiter) == _public(AsyncRateLimiter)
    assert _public(ConcurrencyLimiter) == _public(AsyncConcurrencyLimiter)
    assert _public(Lease) == _public(AsyncLease)


def test_long_periods_get_distinct_names() -> None:
    from redkit.ratelimit.policy import Limit

    assert Limit(10, 2_000_000).name != Limit(10, 2_000_001).name
    assert Limit(10, 1).name == "10-per-1s"


def test_acquire_of_a_cost_that_can_never_fit_raises(rk: Redkit) -> None:
    from redkit.errors import RateLimitExceededError

    with pytest.raises(RateLimitExceededError):
        rk.rate_limiter("5/second").acquire("k", cost=10)
