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


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("1/110000 days", "36500 days"),  # microseconds past 2**53: the TAT would be inexact
        ("5/100000000000 days", "36500 days"),  # past any integer the server replies
        ("1/day burst 40000000", "refill"),  # a full burst refills in 110,000 days
        (f"{2**52 + 1}/second", "2**52"),
        ("10000000000000000000/second", "2**52"),  # past int64: negative remaining before
        (f"1/second burst {2**60}", "2**52"),
    ],
)
def test_absurd_policies_fail_when_parsed(spec: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("*", r"\*")):
        parse_policy(spec)


@pytest.mark.parametrize("algorithm", ["fixed_window", "sliding_window"])
def test_the_largest_counts_are_exact(rk: Redkit, algorithm: str) -> None:
    limiter = rk.rate_limiter(f"{2**52}/36500 days", algorithm=algorithm)
    first = limiter.hit("big", cost=2**52 - 1)
    assert first.allowed
    assert first.remaining == 1
    assert limiter.hit("big").remaining == 0
    rejected = limiter.hit("big")
    assert not rejected.allowed
    assert rejected.remaining == 0
    assert 0 < rejected.retry_after <= 36500 * 86400


@pytest.mark.parametrize("algorithm", ["gcra", "token_bucket"])
def test_the_longest_refills_are_exact(rk: Redkit, algorithm: str) -> None:
    amount = 2**36  # one unit back every ~46 ms
    interval = 36500 * 86400 / amount
    limiter = rk.rate_limiter(f"{amount}/36500 days", algorithm=algorithm)
    first = limiter.hit("big", cost=amount - 1)
    assert first.allowed
    assert first.remaining == 1
    assert 36499 * 86400 < first.reset_after <= 36500 * 86400
    # 22 units short: refused unless the two hits are a second apart
    rejected = limiter.hit("big", cost=23)
    assert not rejected.allowed
    assert 22 * interval - 0.5 < rejected.retry_after <= 22 * interval + 0.001


def test_gcra_admits_at_most_one_unit_per_microsecond(rk: Redkit) -> None:
    with pytest.raises(ConfigError, match="token_bucket"):
        rk.rate_limiter("2000000/second", algorithm="gcra")
    assert rk.rate_limiter("2000000/second", algorithm="token_bucket").hit("k").allowed


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


def test_options_are_typed_keywords_and_match_their_typed_dicts() -> None:
    import inspect
    import typing

    from redkit.ratelimit import (
        AsyncConcurrencyLimiter,
        AsyncRateLimiter,
        ConcurrencyLimiter,
        ConcurrencyLimiterOptions,
        RateLimiter,
        RateLimiterOptions,
    )

    for sync, asyn, options in [
        (RateLimiter, AsyncRateLimiter, RateLimiterOptions),
        (ConcurrencyLimiter, AsyncConcurrencyLimiter, ConcurrencyLimiterOptions),
    ]:
        signature = inspect.signature(sync)
        assert signature == inspect.signature(asyn)
        keywords = [p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY]
        assert sorted(keywords) == sorted(typing.get_type_hints(options))
        assert not options.__required_keys__
        assert not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())


def test_a_misspelt_option_fails(rk: Redkit) -> None:
    from redkit.ratelimit import ConcurrencyLimiter, RateLimiter

    with pytest.raises(ConfigError, match="on_eror"):
        rk.rate_limiter("1/second", on_eror="open")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="on_eror"):
        RateLimiter(rk, "1/second", on_eror="open")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="leas"):
        ConcurrencyLimiter(rk, 1, leas=5)  # type: ignore[call-arg]


def test_long_periods_get_distinct_names() -> None:
    from redkit.ratelimit.policy import Limit

    assert Limit(10, 2_000_000).name != Limit(10, 2_000_001).name
    assert Limit(10, 1).name == "10-per-1s"


def test_acquire_of_a_cost_that_can_never_fit_raises(rk: Redkit) -> None:
    from redkit.errors import RateLimitExceededError

    with pytest.raises(RateLimitExceededError):
        rk.rate_limiter("5/second").acquire("k", cost=10)
