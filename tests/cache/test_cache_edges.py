"""Sharp edges: foreign entries, cancelled loaders, incr after invalidation, huge values."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from redkit import AsyncRedkit, Redkit, ops
from redkit.cache import envelope
from redkit.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tests.cache.conftest import Either  # a fixture's value, for annotations


def _entry_key(rk: Redkit, namespace: str, key: str) -> str:
    return rk.keys.group("cache", namespace, key).key()


def _foreign_entries(rk: Redkit, namespace: str) -> dict[str, bytes]:
    """Bytes redkit did not write, in the shapes met in use: each raw, under its own key."""
    cache = rk.cache(namespace)
    cache.set("tagged", "v", tags=["colour", "size"])
    tagged = rk.client.get(_entry_key(rk, namespace, "tagged"))
    cache.set("int", 5)
    whole_int = rk.client.get(_entry_key(rk, namespace, "int"))
    head = struct.unpack_from(">H", whole_int, 2)[0]
    return {
        "garbage": b"not a cache entry at all",
        "short": b"\xc1\x00",
        "truncated-tags": tagged[: envelope.NS_VERSION_OFFSET + 12],
        "non-digit-int": whole_int[:head] + b"12a",
        "bad-json": whole_int[:1] + b"\x00" + whole_int[2:head] + b"{nope",
    }


async def test_foreign_entries_are_data_errors_on_get_and_misses_on_get_or_set(
    rk: Redkit, make_cache: Callable[..., Either]
) -> None:
    foreign = _foreign_entries(rk, "foreign")
    cache = make_cache("foreign")
    stats = cache.stats
    for name, raw in foreign.items():
        rk.client.set(_entry_key(rk, "foreign", name), raw)
        with pytest.raises(DataError):
            await cache.get(name)
        # get_or_set: a miss; the loader runs and its value replaces the bytes
        assert await cache.get_or_set(name, lambda name=name: f"fresh {name}") == f"fresh {name}"
        assert await cache.get(name) == f"fresh {name}", name
    assert stats.corrupt == len(foreign)
    assert stats.loads == len(foreign)


async def test_foreign_entries_do_not_block_add_incr_or_touch(
    rk: Redkit, make_cache: Callable[..., Either]
) -> None:
    cache = make_cache("foreign2")
    key = _entry_key(rk, "foreign2", "k")
    rk.client.set(key, b"garbage")
    with pytest.raises(DataError):
        await cache.incr("k")
    with pytest.raises(DataError):
        await cache.touch("k", 10)
    assert await cache.add("k", 1) is True, "foreign bytes are replaced by add"
    assert await cache.incr("k") == 2


async def test_incr_does_not_touch_an_invalidated_entry(
    rk: Redkit, make_cache: Callable[..., Either]
) -> None:
    cache = make_cache("incr-tags")
    await cache.set("n", 5, tags=["stock"])
    assert await cache.incr("n") == 6
    before = rk.client.get(_entry_key(rk, "incr-tags", "n"))
    await cache.invalidate_tags("stock")
    assert await cache.incr("n") is None, "an invalidated entry counts as absent"
    assert rk.client.get(_entry_key(rk, "incr-tags", "n")) == before, "and is not changed"
    await cache.set("m", 1)
    await cache.clear()
    assert await cache.incr("m") is None
    await cache.set("m", 1)
    assert await cache.incr("m", 2) == 3


def test_a_value_over_the_bulk_limit_is_refused_before_sending(rk: Redkit) -> None:
    cache = rk.cache("huge")
    received = _bytes_received(rk)
    with pytest.raises(ConfigError, match="proto-max-bulk-len"):
        cache.set("big", "x" * envelope.MAX_BULK)
    assert _bytes_received(rk) - received < 1_000_000  # the value never went out
    assert cache.get("big") is None


def _bytes_received(rk: Redkit) -> int:
    """What the server (every node of a cluster) has read from its clients so far."""
    if not rk.cluster:
        return int(rk.client.info("stats")["total_net_input_bytes"])
    nodes = rk.client.info("stats", target_nodes=rk.client.ALL_NODES).values()
    return sum(int(node["total_net_input_bytes"]) for node in nodes)


def test_cancelled_sync_leader_releases_the_lock_and_followers_retry(rk: Redkit) -> None:
    class Abort(BaseException):
        """Like KeyboardInterrupt: not an Exception, so not an outcome to share."""

    cache = rk.cache("abort", lock_ttl=30, wait_timeout=30)
    stats = cache.stats
    gate, started = threading.Event(), threading.Event()
    loads: list[int] = []

    def aborted() -> str:
        started.set()
        gate.wait(5)
        raise Abort

    def loader() -> str:
        loads.append(1)
        return "value"

    with ThreadPoolExecutor(6) as pool:
        leader = pool.submit(cache.get_or_set, "k", aborted)
        assert started.wait(5)
        followers = [pool.submit(cache.get_or_set, "k", loader) for _ in range(5)]
        _until(lambda: stats.misses == 6, "followers joined the load")
        gate.set()
        with pytest.raises(Abort):
            leader.result(timeout=5)
        # the lock was released in the leader's finally: no 30 s wait for its ttl
        assert [f.result(timeout=5) for f in followers] == ["value"] * 5
    assert len(loads) == 1, "one follower led the retry; the others shared it"


async def test_cancelled_async_leader_releases_the_lock_and_followers_retry(
    ark: AsyncRedkit,
) -> None:
    cache = ark.cache("acancel", lock_ttl=30, wait_timeout=30)
    stats = cache.stats
    started = asyncio.Event()
    loads: list[int] = []

    async def forever() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    async def loader() -> str:
        loads.append(1)
        return "value"

    leader = asyncio.create_task(cache.get_or_set("k", forever))
    await asyncio.wait_for(started.wait(), 5)
    followers = [asyncio.create_task(cache.get_or_set("k", loader)) for _ in range(5)]
    deadline = time.monotonic() + 5
    while stats.misses < 6:  # every follower waits on the leader's load
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    lock = ark.keys.group("cache", "acancel", "k").key("lock")
    assert await ark.client.exists(lock) == 1
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await asyncio.wait_for(asyncio.gather(*followers), 5) == ["value"] * 5
    assert len(loads) == 1
    assert await ark.client.exists(lock) == 0


async def test_async_cache_runs_sync_loaders_inline_or_in_a_thread(ark: AsyncRedkit) -> None:
    cache = ark.cache("threads")
    seen: list[int] = []

    def loader() -> str:
        seen.append(threading.get_ident())
        return "v"

    assert await cache.get_or_set("inline", loader) == "v"
    assert await cache.get_or_set("thread", loader, thread=True) == "v"
    assert seen[0] == threading.get_ident(), "inline: on the event loop's thread"
    assert seen[1] != threading.get_ident(), "thread=True: in a worker thread"


async def test_observers_see_the_cache_notes(
    rk: Redkit, ark: AsyncRedkit, make_cache: Callable[..., Either]
) -> None:
    cache = make_cache("noted")
    events: list[ops.Event] = []
    facade: Any = ark if cache.is_async else rk
    facade.observe(events.append)
    await cache.get("k")
    await cache.get_or_set("k", lambda: 1)
    await cache.get_or_set("k", lambda: 2)
    notes = [(e.name, e.data) for e in events if e.name.startswith("cache.")]
    assert notes == [
        ("cache.miss", "noted"),
        ("cache.miss", "noted"),
        ("cache.load", "noted"),
        ("cache.hit", "noted"),
    ]


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


def test_a_bad_ttl_fails_the_store_and_gives_the_lock_back(rk: Redkit) -> None:
    cache = rk.cache("badttl", lock_ttl=30, wait_timeout=30)
    with pytest.raises(ConfigError, match="ttl"):
        cache.get_or_set("k", lambda: 1, ttl=-1)
    lock = rk.keys.group("cache", "badttl", "k").key("lock")
    assert rk.client.exists(lock) == 0, "released at once, not after lock_ttl"
    assert cache.get_or_set("k", lambda: 2) == 2
    assert cache.get_or_set("k", lambda: 3, ttl=-1) == 2, "a hit never reads ttl"
