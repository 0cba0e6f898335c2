"""The rate limit scripts: one per algorithm, one reply shape, the same state for every check."""

from __future__ import annotations

import struct

import pytest

from redkit import Redkit
from redkit.errors import ScriptError
from redkit.ratelimit import ALGORITHMS

ALL = sorted(ALGORITHMS)
# costs within and beyond what is left, so that both admissions and rejections are seen
COSTS = [1, 2, 1, 3, 1, 1, 2, 1, 1, 4, 1]


@pytest.mark.parametrize("algorithm", ALL)
def test_one_limit_reports_as_the_same_limit_among_others(rk: Redkit, algorithm: str) -> None:
    """A policy of one limit is the multi-limit script with one key: same answers."""
    one = "6/hour burst 8" if algorithm in ("gcra", "token_bucket") else "6/hour"
    alone = rk.rate_limiter(one, algorithm=algorithm, name="alone")
    paired = rk.rate_limiter(f"{one}; 1000000/day", algorithm=algorithm, name="paired")
    for cost in COSTS:
        a, b = alone.hit("k", cost=cost), paired.hit("k", cost=cost)
        assert a.allowed == b.allowed
        assert a.states[0].remaining == b.states[0].remaining
        assert abs(a.states[0].reset_after - b.states[0].reset_after) < 0.25
        assert abs(a.retry_after - b.retry_after) < 0.25
        assert alone.peek("k").remaining == paired.peek("k").states[0].remaining
    assert not alone.hit("k").allowed


def test_fixed_window_rejections_are_never_charged(rk: Redkit) -> None:
    limiter = rk.rate_limiter("3/hour; 5/day", algorithm="fixed_window")
    assert [limiter.hit("f").allowed for _ in range(6)] == [True] * 3 + [False] * 3
    hourly, daily = limiter._plan.keys("f")
    assert int(rk.client.get(hourly)) == 3
    assert int(rk.client.get(daily)) == 3
    assert 3_590_000 < rk.client.pttl(hourly) <= 3_600_000


def test_fixed_window_rejected_first_hit_leaves_no_counter(rk: Redkit) -> None:
    limiter = rk.rate_limiter("1/hour; 5/day", algorithm="fixed_window")
    hourly, daily = limiter._plan.keys("z")
    rk.client.set(hourly, 1, px=3_600_000)  # the hourly window is full, the daily one new
    assert not limiter.hit("z").allowed
    assert rk.client.exists(daily) == 0, "a window starts at its first charged hit"


def test_fixed_window_counter_without_expiry_starts_a_window(rk: Redkit) -> None:
    limiter = rk.rate_limiter("3/hour", algorithm="fixed_window")
    (key,) = limiter._plan.keys("x")
    rk.client.set(key, 2)  # e.g. written by hand: no TTL, so it would never reset
    result = limiter.hit("x")
    assert result.allowed
    assert result.remaining == 2
    assert 0 < rk.client.pttl(key) <= 3_600_000


@pytest.mark.parametrize("algorithm", ALL)
def test_a_reply_of_another_shape_is_a_script_error(rk: Redkit, algorithm: str) -> None:
    plan = rk.rate_limiter("1/second", algorithm=algorithm)._plan
    size = 3 if algorithm == "gcra" else 4
    assert plan.parse(struct.pack(f">{size}q", *[0, 0, 1, 0][:size])).allowed
    for reply in (struct.pack(f">{size}q", *([7] + [0] * (size - 1))), b"OK", [0, 0, 1, 2], None):
        with pytest.raises(ScriptError):
            plan.parse(reply)
