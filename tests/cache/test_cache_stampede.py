"""Stampede protection: one loader per key across processes, errors, stale serving, XFetch."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
from tests.flavours import poll

from redkit import AsyncRedkit, Redkit
from redkit.cache import CacheStats
from redkit.config import Settings

if TYPE_CHECKING:
    from tests.cache.conftest import Either  # a fixture's value, for annotations

PROCESSES = 4
CALLERS_PER_PROCESS = 50


def _stampede_process(url: str, prefix: str, start_at: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def main() -> list[object]:
        async with AsyncRedkit(url, prefix=prefix) as ark:
            cache = ark.cache("cold", ttl=60)
            runs = ark.keys.group("test", "loader").key("runs")

            async def loader() -> dict[str, int]:
                await ark.client.incr(runs)
                await asyncio.sleep(0.3)  # a slow query: every caller arrives while it runs
                return {"answer": 42}

            await ark.ping()
            await asyncio.sleep(max(0.0, start_at - time.time()))
            got = await asyncio.gather(
                *(cache.get_or_set("hot", loader) for _ in range(CALLERS_PER_PROCESS))
            )
            return list(got)

    out.put(asyncio.run(main()))


def test_200_callers_in_4_processes_run_the_loader_once(
    rk: Redkit, target_url: str, prefix: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    start_at = time.time() + 2.0  # all processes start calling together, once imported
    procs = [
        ctx.Process(target=_stampede_process, args=(target_url, prefix, start_at, out))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    assert all(r == {"answer": 42} for batch in results for r in batch)
    assert sum(len(batch) for batch in results) == PROCESSES * CALLERS_PER_PROCESS
    assert int(rk.client.get(rk.keys.group("test", "loader").key("runs"))) == 1


def _all_missed(stats: CacheStats, callers: int) -> None:
    """Wait (in the loader) until ``callers`` callers have missed: each joins the load
    right after its miss, before the load can end (its fill is a round trip away)."""
    poll(lambda: stats.misses >= callers, timeout=30, interval=0.001)


def test_threads_share_one_load(rk: Redkit) -> None:
    cache = rk.cache("threads")
    stats = cache.stats  # counting starts here
    runs = []

    def loader() -> int:
        runs.append(1)
        _all_missed(stats, 20)  # every caller has missed and met this load
        return 7

    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(cache.get_or_set, "k", loader) for _ in range(20)]
        assert [f.result() for f in futures] == [7] * 20
    assert len(runs) == 1
    assert stats.loads == 1


def test_a_raising_loader_does_not_poison_the_key(rk: Redkit) -> None:
    cache = rk.cache("poison")
    stats = cache.stats

    def broken() -> int:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        cache.get_or_set("k", broken)
    assert stats.load_errors == 1
    # the fill lock was released at once: the next caller loads without waiting for it
    started = time.monotonic()
    assert cache.get_or_set("k", lambda: 5) == 5
    assert time.monotonic() - started < 2
    assert cache.get("k") == 5


def test_waiters_in_this_process_get_the_loaders_error(rk: Redkit) -> None:
    cache = rk.cache("shared-error")
    stats = cache.stats

    def broken() -> int:
        _all_missed(stats, 8)  # no caller can come late and start a second load
        raise ValueError("boom")

    def call() -> object:
        try:
            return cache.get_or_set("k", broken)
        except ValueError as exc:
            return exc

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(call) for _ in range(8)]
        outcomes = [f.result() for f in futures]
    assert all(isinstance(o, ValueError) for o in outcomes)
    assert stats.load_errors == 1


async def _stale(make_cache: Callable[..., Either], name: str, **options: object) -> Either:
    """A cache whose entry "k" holds "old", past its soft expiry (servable as stale)."""
    cache = make_cache(name, ttl=0.2, stale_ttl=30, jitter=0, beta=0, **options)
    await cache.set("k", "old")
    _wait_past(time.time() + 0.2)
    return cache


def _wait_past(moment: float) -> None:
    deadline = time.monotonic() + 5
    while time.time() <= moment:
        assert time.monotonic() < deadline
        time.sleep(0.01)


async def test_stale_value_is_served_when_the_refresh_fails(
    make_cache: Callable[..., Either],
) -> None:
    cache = await _stale(make_cache, "swr-error")
    stats = cache.stats

    def broken() -> str:
        raise RuntimeError("down")

    assert await cache.get_or_set("k", broken) == "old"
    assert stats.stale_serves == 1
    assert stats.load_errors == 1
    # the lock was released: the next caller refreshes at once
    assert await cache.get_or_set("k", lambda: "new") == "new"
    strict = await _stale(make_cache, "swr-strict", stale_on_error=False)
    with pytest.raises(RuntimeError):
        await strict.get_or_set("k", broken)


async def test_stale_value_is_served_when_an_async_refresh_fails(ark: AsyncRedkit) -> None:
    cache = ark.cache("aswr-error", ttl=0.2, stale_ttl=30, jitter=0, beta=0)
    await cache.set("k", "old")
    _wait_past(time.time() + 0.2)

    async def broken() -> str:
        await asyncio.sleep(0)
        raise RuntimeError("down")

    assert await cache.get_or_set("k", broken) == "old"
    assert await cache.get("k") == "old", "nothing was stored"


def test_stale_while_revalidate_one_refreshes_others_serve_stale(
    rk: Redkit, make_rk: Callable[..., Redkit]
) -> None:
    options: dict[str, Any] = {"ttl": 0.2, "stale_ttl": 30, "jitter": 0, "beta": 0}
    cache = rk.cache("swr", **options)
    cache.set("k", "old")
    _wait_past(time.time() + 0.2)
    other = make_rk().cache("swr", **options)  # another instance
    gate, started = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        gate.wait(5)
        return "new"

    with ThreadPoolExecutor(9) as pool:
        refreshing = pool.submit(cache.get_or_set, "k", slow)
        assert started.wait(5)
        # while the refresh runs, every other caller gets the stale value at once:
        # threads of the refreshing process (same cache object) and another instance
        here = [pool.submit(cache.get_or_set, "k", lambda: "never") for _ in range(8)]
        assert [f.result(timeout=5) for f in here] == ["old"] * 8
        assert other.get_or_set("k", lambda: "never") == "old"
        assert not refreshing.done()
        gate.set()
        assert refreshing.result() == "new"
    assert other.get("k") == "new"


async def test_stale_while_revalidate_tasks_get_stale_at_once(ark: AsyncRedkit) -> None:
    cache = ark.cache("aswr", ttl=0.2, stale_ttl=30, jitter=0, beta=0)
    await cache.set("k", "old")
    _wait_past(time.time() + 0.2)
    gate, started = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        started.set()
        await gate.wait()
        return "new"

    refreshing = asyncio.create_task(cache.get_or_set("k", slow))
    await asyncio.wait_for(started.wait(), 5)
    served = await asyncio.wait_for(
        asyncio.gather(*(cache.get_or_set("k", lambda: "never") for _ in range(20))), 5
    )
    assert served == ["old"] * 20
    assert not refreshing.done()
    gate.set()
    assert await refreshing == "new"
    assert await cache.get("k") == "new"


def test_xfetch_refreshes_a_hot_key_before_it_expires(rk: Redkit) -> None:
    cache = rk.cache("xfetch", ttl=1.0, jitter=0, beta=50)
    loads = []

    def loader() -> int:
        loads.append(time.time())
        time.sleep(0.02)  # delta: the refresh window scales with the load time
        return len(loads)

    cache.get_or_set("k", loader)
    first_expiry = time.time() + 1.0
    deadline = time.monotonic() + 5
    while len(loads) < 2:
        assert time.monotonic() < deadline, "no early refresh happened"
        cache.get_or_set("k", loader)
        time.sleep(0.005)
    assert loads[1] < first_expiry, "the refresh should come before the expiry"


async def test_async_callers_share_one_load(ark: AsyncRedkit) -> None:
    cache = ark.cache("aflight")
    runs = []

    async def loader() -> int:
        runs.append(1)
        await asyncio.sleep(0.1)
        return 3

    assert await asyncio.gather(*(cache.get_or_set("k", loader) for _ in range(50))) == [3] * 50
    assert len(runs) == 1


async def test_fill_waiters_do_not_starve_a_pool_of_10(
    target_url: str, prefix: str, make_rk: Callable[..., Redkit]
) -> None:
    """Callers waiting for another instance's fill block on dedicated connections.

    Each cache object shares loads only among its own callers, so 60 objects are 60
    waiters on the fill lock, as 60 processes would be. (On a cluster, redis-py's asyncio
    pool fails a burst above its size at once, waits or not, so there the pool is 100.)
    """
    settings = Settings.from_env(url=target_url, prefix=prefix)
    pool = 100 if "cluster" in target_url else 10
    settings = Settings(**{**settings.__dict__, "max_connections": pool, "socket_timeout": 2.0})
    holder = make_rk().cache("starve", lock_ttl=30)  # another instance, loading slowly
    gate, started = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        gate.wait(20)
        return "filled"

    with ThreadPoolExecutor(1) as thread:
        loading = thread.submit(holder.get_or_set, "k", slow)
        assert started.wait(5)
        async with AsyncRedkit(settings=settings) as ark:
            waiters = [ark.cache("starve", lock_ttl=30) for _ in range(60)]
            stats = waiters[0].stats  # counts the namespace's notes on this facade
            tasks = [asyncio.create_task(w.get_or_set("k", lambda: "never")) for w in waiters]
            deadline = time.monotonic() + 10
            while stats.misses < len(waiters):  # every one of them found nothing
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            for _ in range(20):  # the shared pool still serves other calls
                assert await asyncio.wait_for(ark.ping(), timeout=5)
            assert not any(t.done() for t in tasks)
            gate.set()
            assert await asyncio.wait_for(asyncio.gather(*tasks), 20) == ["filled"] * 60
        assert loading.result(timeout=5) == "filled"


def test_an_async_cache_shared_by_two_event_loops(target_url: str, prefix: str) -> None:
    """Each loop's tasks share a load; the loops meet through the fill lock in Redis."""
    ark = AsyncRedkit(target_url, prefix=prefix)
    cache = ark.cache("loops")
    runs: list[int] = []
    barrier = threading.Barrier(2)

    async def loader() -> str:
        runs.append(1)
        await asyncio.sleep(0.3)
        return "v"

    def in_a_loop() -> list[Any]:
        async def main() -> list[Any]:
            barrier.wait(5)
            return list(await asyncio.gather(*(cache.get_or_set("k", loader) for _ in range(10))))

        return asyncio.run(main())

    with ThreadPoolExecutor(2) as pool:
        results = [f.result(timeout=20) for f in [pool.submit(in_a_loop) for _ in range(2)]]
    assert results == [["v"] * 10] * 2
    assert len(runs) == 1
