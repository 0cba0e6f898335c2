"""Every algorithm on every target: exact admission under concurrency, all-or-nothing
multi-limits, cost, peek, reset, waiting, NOSCRIPT recovery."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import threading
import time

import pytest
from tests.conftest import ON_SENTINEL_TOO
from tests.flavours import Either

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError, RateLimitExceededError
from redkit.ratelimit import ALGORITHMS, Limit

ALL = sorted(ALGORITHMS)
# long windows (and for the buckets, an emission interval of 72 s) so that no test run can
# straddle a window or see a refill: exactly AMOUNT hits are admissible.
AMOUNT = 50
POLICY = f"{AMOUNT}/hour"
PROCS, THREADS, HITS = 8, 4, 6


def _hammer(url: str, prefix: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with Redkit(url, prefix=prefix) as rk:
        limiters = {a: rk.rate_limiter(POLICY, algorithm=a, name=a) for a in ALL}
        counts = dict.fromkeys(ALL, 0)
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(HITS):
                for algorithm, limiter in limiters.items():
                    if limiter.hit("shared").allowed:
                        with lock:
                            counts[algorithm] += 1

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out.put(counts)


def test_processes_and_threads_admit_exactly_the_limit(
    rk: Redkit, target_url: str, prefix: str
) -> None:
    assert PROCS * THREADS * HITS > 2 * AMOUNT
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_hammer, args=(target_url, prefix, out)) for _ in range(PROCS)]
    for p in procs:
        p.start()
    totals = dict.fromkeys(ALL, 0)
    for _ in procs:
        for algorithm, count in out.get(timeout=50).items():
            totals[algorithm] += count
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    assert totals == dict.fromkeys(ALL, AMOUNT)
    for algorithm in ALL:
        after = rk.rate_limiter(POLICY, algorithm=algorithm, name=algorithm).peek("shared")
        assert not after.allowed, algorithm
        assert after.remaining == 0, algorithm


@pytest.mark.parametrize("algorithm", ALL)
@ON_SENTINEL_TOO
async def test_async_tasks_admit_exactly_the_limit(ark: AsyncRedkit, algorithm: str) -> None:
    # a roomy deadline: 80 connections opened at once on a busy machine must not time out
    limiter = ark.rate_limiter(POLICY, algorithm=algorithm, deadline=10)
    # 80 tasks: redis-py 8 pools refuse a 101st connection ("Too many connections")
    results = await asyncio.gather(*(limiter.hit("k") for _ in range(80)))
    assert sum(r.allowed for r in results) == AMOUNT
    rejected = [r for r in results if not r.allowed]
    assert all(r.retry_after > 0 and r.remaining == 0 for r in rejected)


@pytest.mark.parametrize("algorithm", ALL)
@ON_SENTINEL_TOO
def test_multi_limit_is_all_or_nothing(rk: Redkit, algorithm: str) -> None:
    limiter = rk.rate_limiter("5/hour; 8/day", algorithm=algorithm)
    first = limiter.hit("u", cost=4)
    assert first.allowed
    assert [s.remaining for s in first.states] == [1, 4]
    # the hourly limit has 1 left; the daily one would take 3, but must not be charged
    second = limiter.hit("u", cost=3)
    assert not second.allowed
    assert [s.remaining for s in second.states] == [1, 4]
    assert [s.remaining for s in limiter.peek("u").states] == [1, 4]
    assert second.limit == Limit(5, 3600)
    assert limiter.hit("u", cost=1).allowed
    assert [s.remaining for s in limiter.peek("u").states] == [0, 3]


@pytest.mark.parametrize("algorithm", ALL)
async def test_peek_charges_nothing_and_reset_forgets(kit: Either, algorithm: str) -> None:
    limiter = await kit.rate_limiter("3/minute", algorithm=algorithm)
    for _ in range(5):
        assert (await limiter.peek("p")).remaining == 3
    results = [await limiter.hit("p") for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert results[3].retry_after > 0
    peeked = await limiter.peek("p")
    assert not peeked.allowed
    assert peeked.remaining == 0
    assert 0 < peeked.retry_after <= 120  # the sliding counter may need part of the next window
    assert 0 < peeked.reset_after <= 120
    await limiter.reset("p")
    assert (await limiter.hit("p")).remaining == 2


@pytest.mark.parametrize("algorithm", ALL)
def test_cost_beyond_capacity_never_fits(rk: Redkit, algorithm: str) -> None:
    limiter = rk.rate_limiter("3/minute", algorithm=algorithm)
    result = limiter.hit("c", cost=4)
    assert not result.allowed
    assert math.isinf(result.retry_after)
    assert limiter.peek("c").remaining == 3
    with pytest.raises(RateLimitExceededError):
        limiter.acquire("c", cost=4, timeout=5)


@pytest.mark.parametrize("algorithm", ALL)
def test_keys_and_limiters_are_independent(rk: Redkit, algorithm: str) -> None:
    a = rk.rate_limiter("1/minute", algorithm=algorithm, name="a")
    b = rk.rate_limiter("1/minute", algorithm=algorithm, name="b")
    assert a.hit("x").allowed
    assert not a.hit("x").allowed
    assert a.hit("y").allowed
    assert b.hit("x").allowed
    hostile = ["a:b", "{x}", "*", "line\nbreak", "z" * 5000]
    assert all(a.hit(h).allowed for h in hostile)
    assert not any(a.hit(h).allowed for h in hostile)


@pytest.mark.parametrize("algorithm", ALL)
def test_acquire_waits_for_the_window(rk: Redkit, algorithm: str) -> None:
    limiter = rk.rate_limiter("2/0.4s", algorithm=algorithm)
    assert limiter.hit("w").allowed
    assert limiter.hit("w").allowed
    assert not limiter.hit("w").allowed
    start = time.monotonic()
    result = limiter.acquire("w", timeout=5)
    waited = time.monotonic() - start
    assert result.allowed
    assert 0.05 < waited < 3


async def test_acquire_throttles_to_the_rate_and_gives_up_early(kit: Either) -> None:
    limiter = await kit.rate_limiter("10/second", algorithm="gcra", burst=1)
    start = time.monotonic()
    for _ in range(4):
        assert (await limiter.acquire("api", timeout=5)).allowed
    assert time.monotonic() - start >= 0.25  # 3 intervals of 0.1 s after the first
    slow = await kit.rate_limiter("1/minute", name="slow")
    await slow.hit("t")
    start = time.monotonic()
    with pytest.raises(RateLimitExceededError) as info:
        await slow.acquire("t", timeout=10)
    assert time.monotonic() - start < 5, "it knows the wait is a minute: no point waiting"
    assert 0 < info.value.retry_after <= 60


@pytest.mark.parametrize("algorithm", ALL)
def test_noscript_is_recovered(rk: Redkit, algorithm: str) -> None:
    limiter = rk.rate_limiter("5/minute", algorithm=algorithm)
    assert limiter.hit("n").allowed
    limiter._rk.client.script_flush()
    assert limiter.hit("n").remaining == 3


def test_bursty_algorithms_take_burst(rk: Redkit) -> None:
    limiter = rk.rate_limiter("1/minute burst 3", algorithm="token_bucket")
    assert [limiter.hit("b").allowed for _ in range(4)] == [True, True, True, False]
    gcra = rk.rate_limiter("1/minute", algorithm="gcra", burst=2)
    assert [gcra.hit("b").allowed for _ in range(3)] == [True, True, False]
    with pytest.raises(ConfigError, match="burst"):
        rk.rate_limiter("1/minute burst 3", algorithm="fixed_window")


def test_bad_arguments_are_config_errors(rk: Redkit) -> None:
    with pytest.raises(ConfigError, match="algorithm"):
        rk.rate_limiter("1/minute", algorithm="leaky")
    limiter = rk.rate_limiter("1/minute")
    with pytest.raises(ConfigError):
        limiter.hit("k", cost=-1)
    with pytest.raises(ConfigError):
        rk.rate_limiter("1/minute", deadline=0)
    with pytest.raises(ConfigError):
        rk.rate_limiter("1/minute", on_error="maybe")
