"""The concurrency limiter: at most N holders, leases that free a dead holder's slot."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError, RateLimitExceededError


def test_threads_never_exceed_the_limit(rk: Redkit) -> None:
    slots = rk.concurrency_limiter(3, lease=10)
    inside, peak = 0, 0
    guard = threading.Lock()

    def worker() -> None:
        nonlocal inside, peak
        for _ in range(3):
            with slots.acquire("job", timeout=30):
                with guard:
                    inside += 1
                    peak = max(peak, inside)
                time.sleep(0.01)  # hold the slot a moment, so that holders overlap
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3
    assert slots.in_flight("job") == 0


def _hold_forever(url: str, prefix: str, ready: multiprocessing.Event) -> None:  # type: ignore[valid-type]
    rk = Redkit(url, prefix=prefix)
    rk.concurrency_limiter(1, lease=1.0).acquire("gpu")
    ready.set()  # type: ignore[attr-defined]
    time.sleep(60)  # killed long before this ends


def test_killed_holder_frees_its_slot_after_the_lease(
    rk: Redkit, target_url: str, prefix: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_forever, args=(target_url, prefix, ready))
    proc.start()
    assert ready.wait(30)
    proc.kill()
    proc.join(10)
    slots = rk.concurrency_limiter(1, lease=1.0)
    assert slots.try_acquire("gpu") is None, "the dead holder's lease is still running"
    assert slots.in_flight("gpu") == 1
    with slots.acquire("gpu", timeout=10) as lease:
        assert not lease.degraded
    assert slots.in_flight("gpu") == 0


def test_extend_keeps_and_expiry_loses_the_slot(rk: Redkit) -> None:
    slots = rk.concurrency_limiter(1, lease=0.3)
    lease = slots.acquire("x")
    for _ in range(4):
        time.sleep(0.1)  # the work under the lease
        assert lease.extend()
    assert slots.try_acquire("x") is None
    assert lease.extend(0.05)
    deadline = time.monotonic() + 5
    while slots.in_flight("x") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not lease.extend(), "an expired lease cannot be renewed"
    assert not lease.release()
    other = slots.try_acquire("x")
    assert other is not None
    assert other.release()


def test_acquire_times_out(rk: Redkit) -> None:
    slots = rk.concurrency_limiter(1, lease=30)
    held = slots.acquire("t")
    start = time.monotonic()
    with pytest.raises(RateLimitExceededError):
        slots.acquire("t", timeout=0.3)
    assert 0.25 < time.monotonic() - start < 3
    held.release()


def test_bad_options(rk: Redkit) -> None:
    with pytest.raises(ConfigError):
        rk.concurrency_limiter(0)
    with pytest.raises(ConfigError):
        rk.concurrency_limiter(1, lease=0)


async def test_async_tasks_never_exceed_the_limit(ark: AsyncRedkit) -> None:
    slots = ark.concurrency_limiter(2, lease=10)
    inside, peak = 0, 0

    async def worker() -> None:
        nonlocal inside, peak
        async with await slots.acquire("a", timeout=30):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(worker() for _ in range(12)))
    assert peak == 2
    assert await slots.in_flight("a") == 0
