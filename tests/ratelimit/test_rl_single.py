"""The lean one-limit hits (rl_<algorithm>_one) answer exactly as the general scripts do."""

from __future__ import annotations

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.ratelimit import ALGORITHMS, Limit, RateLimiter, RateLimitResult
from redkit.ratelimit.single import FixedOne

ALL = sorted(ALGORITHMS)
# costs within and beyond what is left, so that both admissions and rejections are compared
COSTS = [1, 2, 1, 3, 1, 1, 2, 1, 1, 4, 1]


def _general(limiter: RateLimiter) -> RateLimiter:
    """The same limiter forced onto the general script (as a policy of several limits is)."""
    plan = limiter._plan
    plan._single = None
    plan._finish_one = plan._general
    plan._cache.clear()
    return limiter


def _same(lean: RateLimitResult, general: RateLimitResult, slack: float = 0.25) -> None:
    assert lean.allowed == general.allowed
    assert lean.remaining == general.remaining
    assert abs(lean.reset_after - general.reset_after) < slack
    assert abs(lean.retry_after - general.retry_after) < slack


@pytest.mark.parametrize("algorithm", ALL)
def test_lean_hits_report_as_the_general_script(rk: Redkit, algorithm: str) -> None:
    policy = "6/hour burst 8" if algorithm in ("gcra", "token_bucket") else "6/hour"
    lean = rk.rate_limiter(policy, algorithm=algorithm, name="lean")
    general = _general(rk.rate_limiter(policy, algorithm=algorithm, name="general"))
    assert lean._plan._single is not None
    for cost in COSTS:
        a, b = lean.hit("k", cost=cost), general.hit("k", cost=cost)
        _same(a, b)
        _same(lean.peek("k"), general.peek("k"))
    assert not lean.hit("k").allowed


@pytest.mark.parametrize("algorithm", ALL)
def test_lean_and_general_share_one_state(rk: Redkit, algorithm: str) -> None:
    lean = rk.rate_limiter("4/hour", algorithm=algorithm)
    general = _general(rk.rate_limiter("4/hour", algorithm=algorithm))
    assert lean.hit("s", cost=3).allowed
    assert general.peek("s").remaining == 1
    assert not general.hit("s", cost=2).allowed
    assert general.hit("s").allowed
    rejected = lean.hit("s")
    assert not rejected.allowed
    assert rejected.remaining == 0
    # a sliding window counter can ask for more than one period: a full current window
    # only counts for less once the next window has run part of its way
    assert 0 < rejected.retry_after <= 2 * 3600


def test_fixed_window_rejections_are_never_charged(rk: Redkit) -> None:
    limiter = rk.rate_limiter("3/hour", algorithm="fixed_window")
    assert [limiter.hit("f").allowed for _ in range(6)] == [True] * 3 + [False] * 3
    (key,) = limiter._plan.keys("f")
    assert int(rk.client.get(key)) == 3
    assert 3_590_000 < rk.client.pttl(key) <= 3_600_000


def test_fixed_window_counter_without_expiry_starts_a_window(rk: Redkit) -> None:
    limiter = rk.rate_limiter("3/hour", algorithm="fixed_window")
    (key,) = limiter._plan.keys("x")
    rk.client.set(key, 2)  # e.g. written by hand: no TTL, so it would never reset
    result = limiter.hit("x")
    assert result.allowed
    assert result.remaining == 2
    assert 0 < rk.client.pttl(key) <= 3_600_000


def test_fixed_window_too_large_to_pack_uses_the_general_script(rk: Redkit) -> None:
    huge = Limit(10**9, 10**8)  # period_ms * (amount + 1) exceeds 2^53
    assert not FixedOne.fits(huge)
    limiter = rk.rate_limiter(huge, algorithm="fixed_window")
    assert limiter._plan._single is None
    assert limiter.hit("h", cost=5).remaining == 10**9 - 5


@pytest.mark.parametrize("algorithm", ALL)
async def test_async_lean_hits(ark: AsyncRedkit, algorithm: str) -> None:
    limiter = ark.rate_limiter("2/hour", algorithm=algorithm)
    results = [await limiter.hit("a") for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert [r.remaining for r in results] == [1, 0, 0]
    assert results[2].retry_after > 0
