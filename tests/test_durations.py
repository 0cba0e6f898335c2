"""Durations: seconds or a timedelta, checked where they are given."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redkit import AsyncRedkit, Redkit
from redkit.durations import MAX_SECONDS, seconds
from redkit.errors import ConfigError

positive = st.floats(min_value=1e-6, max_value=MAX_SECONDS)


@given(positive)
def test_numbers_and_timedeltas_give_seconds(value: float) -> None:
    assert seconds(value, "ttl") == value
    delta = dt.timedelta(seconds=min(value, 8.6e13))  # timedelta.max is ~8.64e13 s
    assert seconds(delta, "ttl") == delta.total_seconds()


@given(st.floats(max_value=0, exclude_max=True) | st.integers(max_value=-1))
def test_negative_durations_are_refused(value: float) -> None:
    with pytest.raises(ConfigError, match="ttl must be"):
        seconds(value, "ttl")
    with pytest.raises(ConfigError, match="ttl must be"):
        seconds(value, "ttl", allow_zero=True, allow_none=True)


def test_ints_and_timedeltas() -> None:
    assert seconds(5, "ttl") == 5.0
    assert type(seconds(5, "ttl")) is float
    assert seconds(dt.timedelta(minutes=2), "ttl") == 120.0
    assert seconds(dt.timedelta.max, "ttl") == dt.timedelta.max.total_seconds()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "positive"),
        (-0.0, "positive"),
        (dt.timedelta(0), "positive"),
        (dt.timedelta(seconds=-1), "positive"),
        (math.nan, "nan"),
        (math.inf, "at most"),
        (MAX_SECONDS * 2, "at most"),
        (10**400, "at most"),
        (None, "None"),
        (True, "bool"),
        ("5", "str '5'"),
        (b"5", "bytes"),
    ],
)
def test_bad_values_name_the_parameter(value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^lock_ttl must be") as caught:
        seconds(value, "lock_ttl")
    assert message in str(caught.value)
    assert len(str(caught.value)) < 200


def test_options() -> None:
    assert seconds(None, "ttl", allow_none=True) is None
    assert seconds(0, "delay", allow_zero=True) == 0.0
    assert seconds(dt.timedelta(0), "delay", allow_zero=True) == 0.0
    assert seconds(math.inf, "timeout", allow_inf=True) == math.inf
    with pytest.raises(ConfigError, match="or None"):
        seconds(-1, "ttl", allow_none=True)
    with pytest.raises(ConfigError, match="0 or more"):
        seconds(math.nan, "delay", allow_zero=True)


# --- where the cache takes durations


def test_cache_options_take_timedeltas(rk: Redkit) -> None:
    cache = rk.cache(
        "durations",
        ttl=dt.timedelta(minutes=5),
        stale_ttl=dt.timedelta(seconds=30),
        lock_ttl=dt.timedelta(seconds=5),
        wait_timeout=dt.timedelta(0),
        none_ttl=dt.timedelta(seconds=10),
        near_heartbeat=dt.timedelta(seconds=1),
    )
    cache.set("a", [1], ttl=dt.timedelta(seconds=60))
    assert cache.get("a") == [1]
    assert cache.add("b", [2], ttl=dt.timedelta(seconds=60)) is True
    cache.set_many({"c": [3]}, ttl=dt.timedelta(seconds=60))
    assert cache.touch("a", dt.timedelta(seconds=90)) is True
    assert 85_000 < rk.client.pttl(rk.keys.group("cache", "durations", "a").key()) <= 120_000
    assert cache.get_or_set("d", lambda: [4], ttl=dt.timedelta(seconds=60)) == [4]

    @cache.cached(ttl=dt.timedelta(seconds=60), name="double")
    def double(x: int) -> int:
        return 2 * x

    assert double(2) == 4


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("ttl", -5),
        ("ttl", 0),
        ("ttl", math.inf),
        ("stale_ttl", math.nan),
        ("stale_ttl", -1),
        ("lock_ttl", "10"),
        ("wait_timeout", -1),
        ("none_ttl", 0),
        ("near_heartbeat", 0),
    ],
)
def test_bad_cache_options_are_refused_when_given(rk: Redkit, option: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"^{option} must be"):
        rk.cache("bad", **{option: value})


def test_bad_ttls_are_refused_where_given(rk: Redkit) -> None:
    cache = rk.cache("durations2")
    with pytest.raises(ConfigError, match=r"^ttl must be"):
        cache.cached(ttl=-5)  # at decoration, not at the first call
    with pytest.raises(ConfigError, match=r"^ttl must be"):
        cache.cached(ttl="60")  # type: ignore[arg-type]
    for call in (
        lambda: cache.set("k", 1, ttl=-1),
        lambda: cache.add("k", 1, ttl=math.nan),
        lambda: cache.set_many({"k": 1}, ttl=dt.timedelta(seconds=-1)),
        lambda: cache.touch("k", 0),
        lambda: cache.get_or_set("k", lambda: 1, ttl=-1),
    ):
        with pytest.raises(ConfigError, match=r"^ttl must be"):
            call()
    assert cache.get("k") is None, "nothing was written"


async def test_async_cache_checks_ttls_too(ark: AsyncRedkit) -> None:
    cache = ark.cache("durations3", ttl=dt.timedelta(minutes=1))
    with pytest.raises(ConfigError, match=r"^ttl must be"):
        cache.cached(ttl=-5)
    with pytest.raises(ConfigError, match=r"^ttl must be"):
        await cache.set("k", 1, ttl=-1)
    await cache.set("k", 1, ttl=dt.timedelta(seconds=30))
    assert await cache.get("k") == 1
