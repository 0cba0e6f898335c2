"""Locks on every target: exclusion, fencing, waking, loss, renewal, sync and async.

Tests that take ``kit`` run once per flavour (sync, async); the contention tests are
written per concurrency model (threads and processes, asyncio tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
from collections.abc import Callable

import pytest
from tests.flavours import Either, threaded, until

from redkit import AsyncRedkit, Redkit
from redkit.embedded import EmbeddedServer
from redkit.errors import (
    ConfigError,
    DataError,
    LockLostError,
    LockNotAcquiredError,
    LockNotOwnedError,
)

CONTENDERS = 20


async def test_contenders_never_hold_together_and_fences_increase(kit: Either) -> None:
    kit = threaded(kit)  # sync: every contender blocks in a thread of its own
    inside = 0
    fences: list[int] = []

    async def contender() -> None:
        nonlocal inside
        async with await kit.lock("shared", ttl=5, timeout=30) as lock:
            inside += 1
            assert inside == 1, "two holders at once"
            await asyncio.sleep(0)
            assert lock.fencing_token is not None
            fences.append(lock.fencing_token)
            inside -= 1

    await asyncio.gather(*(contender() for _ in range(CONTENDERS)))
    assert fences == sorted(fences)
    assert len(set(fences)) == CONTENDERS


def _process_contender(url: str, prefix: str, name: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with Redkit(url, prefix=prefix) as rk:
        for _ in range(3):
            with rk.lock(name, ttl=5, timeout=60) as lock:
                marker = rk.client.incr(rk.keys.group("test", name).key("inside"))
                out.put(("in", lock.fencing_token, int(marker)))
                rk.client.decr(rk.keys.group("test", name).key("inside"))


def test_processes_never_hold_together(rk: Redkit, target_url: str, prefix: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [
        ctx.Process(target=_process_contender, args=(target_url, prefix, "p", out))
        for _ in range(CONTENDERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    seen = [out.get(timeout=5) for _ in range(CONTENDERS * 3)]
    assert all(inside == 1 for _, _, inside in seen), "a lock was held by two processes"
    fences = [fence for _, fence, _ in seen]
    assert len(set(fences)) == len(fences)


def test_only_owner_releases(rk: Redkit) -> None:
    first = rk.lock("job", ttl=5)
    assert first.acquire()
    second = rk.lock("job", ttl=5, blocking=False)
    assert not second.acquire()
    with pytest.raises(LockNotOwnedError):
        second.release()
    assert first.locked()
    first.release()
    assert not first.locked()


def test_timeout_raises_not_acquired(rk: Redkit) -> None:
    holder = rk.lock("busy", ttl=5)
    holder.acquire()
    start = time.monotonic()
    with pytest.raises(LockNotAcquiredError), rk.lock("busy", timeout=0.3):
        pass
    assert time.monotonic() - start < 3
    holder.release()


def test_waiter_wakes_on_release_not_on_ttl(rk: Redkit) -> None:
    holder = rk.lock("wake", ttl=30)
    holder.acquire()
    acquired = threading.Event()

    def waiter() -> None:
        with rk.lock("wake", ttl=5, timeout=20):
            acquired.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    # the waiter is blocked: the lock has a 30 s ttl, so only the release can wake it
    assert not acquired.wait(0.2)
    released_at = time.monotonic()
    holder.release()
    assert acquired.wait(10)
    thread.join()
    assert time.monotonic() - released_at < 5, "the waiter should wake on release"


def test_waiter_gets_lock_of_dead_holder_after_ttl(rk: Redkit) -> None:
    dead = rk.lock("dead", ttl=0.3)
    dead.acquire()  # and never released: the holder "died"
    first = dead.fencing_token
    assert first is not None
    with rk.lock("dead", ttl=5, timeout=10) as lock:
        assert lock.fencing_token is not None
        assert lock.fencing_token > first


def test_owner_stalling_past_ttl_is_reported_lost(rk: Redkit) -> None:
    lock = rk.lock("stall", ttl=0.2)
    lock.acquire()
    deadline = time.monotonic() + 10
    while rk.client.exists(lock._keys[0]) and time.monotonic() < deadline:
        time.sleep(0.02)  # the stall under test, polling until the lock has expired
    with pytest.raises(LockLostError):
        lock.__exit__(None, None, None)
    assert lock.lost


async def test_a_broken_lock_is_reported_lost(kit: Either) -> None:
    lost: list[str] = []
    lock = await kit.lock("renew", ttl=0.3, auto_renew=True, on_lost=lost.append)
    assert await lock.acquire()
    await kit.client.delete(lock._keys[0])  # someone broke the lock
    await until(lambda: lost)  # the renewer found out
    assert lock.lost
    with pytest.raises(LockLostError):
        await lock.release()
    lock = await kit.lock("broken", ttl=5)
    with pytest.raises(LockLostError):
        async with lock:
            await kit.client.delete(lock._keys[0])
    assert lock.lost


async def test_auto_renew_keeps_the_lock_past_its_ttl(kit: Either) -> None:
    async with await kit.lock("long", ttl=0.3, auto_renew=True) as lock:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # three ttls of work
            assert await kit.client.get(lock._keys[0]) is not None
            await asyncio.sleep(0.05)
        assert not lock.lost


def test_bad_options_are_config_errors(rk: Redkit) -> None:
    with pytest.raises(ConfigError):
        rk.lock("x", ttl=0)
    with pytest.raises(ConfigError):
        rk.lock("x", timeout=-1)


def test_hostile_names_stay_in_their_namespace(rk: Redkit) -> None:
    names = ["a:b", "{x}", "a}b{c", "*", "line\nbreak", "x" * 10_000]
    locks = [rk.lock(name, ttl=5, blocking=False) for name in names]
    assert all(lock.acquire() for lock in locks)
    for lock in locks:
        assert lock._keys[0].startswith("{" + rk.keys.prefix + ":lock:")
        lock.release()


def test_a_retried_acquire_is_idempotent(rk: Redkit) -> None:
    """A retry of an acquire whose reply was lost gets the lock and the same token back."""
    from redkit import ops
    from redkit.scripts import script

    lock = rk.lock("retry", ttl=5)
    owner, fence, _ = lock._keys
    args = ("same-token", 5000)
    first = rk.run(ops.evaluate(script("lock_acquire"), (owner, fence), args))
    again = rk.run(ops.evaluate(script("lock_acquire"), (owner, fence), args))
    assert first == again
    assert first[0] == 1
    other = rk.run(ops.evaluate(script("lock_acquire"), (owner, fence), ("other", 5000)))
    assert other[0] == 0
    assert 0 < other[2] <= 5000


def _server_time_us(rk: Redkit) -> int:
    seconds, micros = rk.client.time()
    return int(seconds) * 1_000_000 + int(micros)


def test_fencing_tokens_follow_the_server_clock(rk: Redkit) -> None:
    before = _server_time_us(rk)
    with rk.lock("clocked", ttl=5) as first:
        pass
    with rk.lock("clocked", ttl=5) as second:
        pass
    assert first.fencing_token is not None
    assert second.fencing_token is not None
    assert before <= first.fencing_token < second.fencing_token


def test_fencing_tokens_keep_growing_after_a_counter_far_ahead_of_the_clock(rk: Redkit) -> None:
    lock = rk.lock("ahead", ttl=5)
    far = _server_time_us(rk) + 10**12  # e.g. a counter carried over from a faster clock
    rk.client.set(lock._keys[1], far)
    with lock:
        assert lock.fencing_token == far + 1


async def test_fencing_tokens_grow_across_a_restart_without_persistence(
    make_kit: Callable[..., Either],
) -> None:
    with EmbeddedServer() as server:
        kit = make_kit(server.url, prefix="fence")
        tokens = []
        for _ in range(50):
            async with await kit.lock("restarted", ttl=5) as lock:
                tokens.append(lock.fencing_token)
        server.restart()  # no persistence: the counter is gone
        assert not await kit.client.exists(lock._keys[1])
        async with await kit.lock("restarted", ttl=5) as after:
            assert after.fencing_token is not None
            assert after.fencing_token > max(t or 0 for t in tokens)


async def test_a_lock_key_of_another_type_is_a_data_error(kit: Either) -> None:
    lock = await kit.lock("typed", ttl=5)
    owner, fence, _ = lock._keys
    await kit.client.hset(owner, "x", "1")
    with pytest.raises(DataError):
        await lock.acquire()
    await kit.client.delete(owner)
    await kit.client.set(fence, "not a number")
    with pytest.raises(DataError):
        await lock.acquire()
    await kit.client.delete(fence)
    await kit.client.rpush(fence, "1")
    with pytest.raises(DataError):
        await lock.acquire()
    assert not lock.held
    await kit.client.delete(fence)
    assert await lock.acquire()  # held, then its key is overwritten with another type
    await kit.client.delete(owner)
    await kit.client.hset(owner, "x", "1")
    with pytest.raises(DataError):
        await lock.extend()
    with pytest.raises(DataError):
        await lock.release()


def test_a_retried_acquire_after_the_counter_was_lost_gets_a_fresh_token(rk: Redkit) -> None:
    from redkit import ops
    from redkit.scripts import script

    lock = rk.lock("lost-counter", ttl=5)
    owner, fence, _ = lock._keys
    first = rk.run(ops.evaluate(script("lock_acquire"), (owner, fence), ("same", 5000)))
    rk.client.delete(fence)
    again = rk.run(ops.evaluate(script("lock_acquire"), (owner, fence), ("same", 5000)))
    assert again[0] == 1
    assert again[1] > first[1]
    assert int(rk.client.get(fence)) == again[1]


async def test_a_cancelled_acquire_leaves_no_lock_behind(ark: AsyncRedkit) -> None:
    """Cancelled while the acquire is in flight: whatever the server did, the lock is free."""
    for spins in range(30):  # the cancel lands at various points of the round trip
        lock = ark.lock("cancelled", ttl=30)
        task = asyncio.create_task(lock.acquire())
        for _ in range(spins % 8):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            if await task:
                await lock.release()
        assert not await ark.lock("cancelled").locked()


def test_a_retried_release_finds_it_was_released_by_this_owner(rk: Redkit) -> None:
    """A release whose reply was lost is retried: the retry must not report a lost lock."""
    from redkit import ops
    from redkit.scripts import script

    lock = rk.lock("retried", ttl=10)
    assert lock.acquire()
    token = lock._token
    assert token is not None
    keys = (*lock._keys[::2], lock._released)  # owner, wake, released
    release = script("lock_release")
    assert rk.run(ops.evaluate(release, keys, (token, 5000))) == 1
    assert rk.run(ops.evaluate(release, keys, (token, 5000))) == 1  # the retry
    assert rk.run(ops.evaluate(release, keys, ("someone-else", 5000))) == 0
