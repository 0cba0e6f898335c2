"""Round trips per cache operation (the numbers docs/cache.md states), and the one-trip
write's version check: a write after another process's clear or invalidation, or after a
version key was evicted, stays correct."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from redkit import AsyncRedkit, Redkit, ops
from redkit.cache import envelope

_IO = (ops.Call, ops.Eval, ops.Batch, ops.Block)


@contextmanager
def trips(rk: Redkit) -> Iterator[list[int]]:
    """Count the round trips (commands, scripts, batches, waits) run inside the block."""
    seen: list[ops.Event] = []
    remove = rk.observe(seen.append)
    counted = [0]
    try:
        yield counted
    finally:
        remove()
        counted[0] = sum(1 for event in seen if isinstance(event.effect, _IO))


def _count(rk: Redkit, action: Callable[[], Any]) -> int:
    with trips(rk) as counted:
        action()
    return counted[0]


def test_round_trips_per_operation(rk: Redkit) -> None:
    cache = rk.cache("trips", ttl=60)
    # a write is one round trip on a cluster too: the write and the reads of the versions
    # it is stamped with (in other slots) go out in one batch; also the first time ever,
    # when the versions are made in that batch
    assert _count(rk, lambda: cache.set("a", 1)) == 1
    assert _count(rk, lambda: cache.set("b", 2, tags=["t"])) == 1
    assert _count(rk, lambda: cache.get("a")) == 1
    assert _count(rk, lambda: cache.get("missing")) == 1
    assert _count(rk, lambda: cache.get("b", tags=["t"])) == 1
    assert _count(rk, lambda: cache.set_many({"c": 3, "d": 4})) == 1
    assert _count(rk, lambda: cache.set_many({"g": 3, "h": 4}, tags=["t", "u"])) == 1
    assert _count(rk, lambda: cache.get_many(["a", "c", "d"])) == 1
    assert _count(rk, lambda: cache.add("c", 0)) == 1  # held: not stored
    assert _count(rk, lambda: cache.add("n", 1, tags=["v"])) == 1  # stored, "v" made
    assert _count(rk, lambda: cache.delete("d")) == 1
    assert _count(rk, lambda: cache.invalidate_tags("t")) == 1
    assert _count(rk, lambda: cache.clear()) == 1
    # a hit of get_or_set is one round trip; a miss adds the lock, the load and the fill
    cache.set("e", 5)
    assert _count(rk, lambda: cache.get_or_set("e", lambda: 0)) == 1
    assert _count(rk, lambda: cache.get_or_set("f", lambda: 6)) == 3
    # the first time ever too: the versions are made with the fill lock
    fresh = rk.cache("trips-first", ttl=60)
    assert _count(rk, lambda: fresh.get_or_set("f", lambda: 6, tags=["w"])) == 3
    assert fresh.get("f", tags=["w"]) == 6
    # a cache that has not seen the namespace's version yet (another process, which
    # never read) stamps its first write with a fresh one, which loses: stamped again
    other = rk.cache("trips", ttl=60)
    assert _count(rk, lambda: other.set("x", 1)) == 2
    assert _count(rk, lambda: other.set("y", 1)) == 1
    assert cache.get("x") == 1


async def test_async_writes_are_one_round_trip(ark: AsyncRedkit) -> None:
    cache = ark.cache("trips-async", ttl=60)
    seen: list[ops.Event] = []
    ark.observe(seen.append)

    async def count(action: Awaitable[Any]) -> int:
        seen.clear()
        await action
        return sum(1 for event in seen if isinstance(event.effect, _IO))

    assert await count(cache.set("a", 1, tags=["t"])) == 1
    assert await count(cache.set_many({"b": 2, "c": 3}, tags=["t"])) == 1
    assert await count(cache.add("d", 4, tags=["t"])) == 1
    assert await count(cache.add("d", 5, tags=["t"])) == 1  # held: not stored
    assert await cache.get_many(["a", "b", "c", "d"]) == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert await cache.get("d", tags=["t"]) == 4


def test_a_fresh_process_writes_in_one_round_trip_after_reading(
    make_rk: Callable[..., Redkit],
) -> None:
    make_rk().cache("warm", ttl=60).set("k", 1, tags=["t"])
    rk = make_rk()
    cache = rk.cache("warm", ttl=60)  # has seen no version yet
    assert cache.get("k", tags=["t"]) == 1  # the read brings them back...
    assert _count(rk, lambda: cache.set("k", 2, tags=["t"])) == 1  # ...the write uses them
    assert cache.get("k", tags=["t"]) == 2


def test_a_write_after_another_process_cleared_is_seen(make_rk: Callable[..., Redkit]) -> None:
    rk = make_rk()
    a, b = rk.cache("seen", ttl=60), make_rk().cache("seen", ttl=60)
    a.set("k", 1)  # a remembers the namespace version it stamped
    b.clear()  # b changes it
    # stamped with a's old version: refused (one server) or found dead (cluster), so a
    # stamps it again with the version it was told: a second round trip, then readable
    assert _count(rk, lambda: a.set("k", 2)) == 2
    assert b.get("k") == 2
    assert a.get("k") == 2
    b.set("t", 1, tags=["x"])
    a.invalidate_tags("x")
    b.set("t", 2, tags=["x"])
    assert a.get("t", tags=["x"]) == 2
    assert b.get("t", tags=["x"]) == 2


def test_set_many_and_add_after_another_process_invalidated_are_seen(
    make_rk: Callable[..., Redkit],
) -> None:
    rk = make_rk()
    a, b = rk.cache("seen-many", ttl=60), make_rk().cache("seen-many", ttl=60)
    a.set_many({"k1": 1, "k2": 2}, tags=["x"])
    b.invalidate_tags("x")
    assert _count(rk, lambda: a.set_many({"k1": 3, "k2": 4}, tags=["x"])) == 2
    assert b.get_many(["k1", "k2"]) == {"k1": 3, "k2": 4}
    a.add("n", 1, tags=["x"])
    b.invalidate_tags("x")  # n is dead: add replaces it
    assert _count(rk, lambda: a.add("n", 2, tags=["x"])) == 2  # found dead, then replaced
    assert b.get("n", tags=["x"]) == 2
    assert not a.add("n", 3, tags=["x"])
    b.clear()
    assert a.add("fresh", 1)  # stored, stamped with a's old version: then re-stamped
    assert b.get("fresh") == 1
    assert not b.add("fresh", 2)


def test_an_evicted_version_key_is_not_brought_back(rk: Redkit) -> None:
    cache = rk.cache("evicted", ttl=60)
    cache.set("old", 1)
    flows = cache._f
    rk.run(ops.command("DEL", flows.keys.ns_version))  # as eviction would
    cache.set("new", 2)  # the remembered version is missing: a fresh one is made
    assert cache.get("old") is None  # stamped with the evicted version: never valid again
    assert cache.get("new") == 2


def test_an_evicted_tag_version_is_made_fresh(rk: Redkit) -> None:
    cache = rk.cache("evicted-tag", ttl=60)
    cache.set("old", 1, tags=["t"])
    cache.add("added", 1, tags=["t"])
    tag = cache._f.keys.tag("t")
    before = rk.run(ops.command("GET", tag))
    rk.run(ops.command("DEL", tag))  # as eviction would
    # this process remembers the evicted version: the write finds the key missing, and
    # is stamped again with a fresh version that it creates (never the remembered one)
    assert _count(rk, lambda: cache.set("new", 2, tags=["t"])) == 2
    after = rk.run(ops.command("GET", tag))
    assert after is not None
    assert after != before
    assert cache.get("old", tags=["t"]) is None  # never valid again
    assert cache.get("added", tags=["t"]) is None
    assert cache.get("new", tags=["t"]) == 2
    assert cache.add("added", 2, tags=["t"])  # the dead entry is replaced
    assert cache.get("added", tags=["t"]) == 2


def test_a_write_racing_invalidations_is_never_older_than_one_before_it(
    make_rk: Callable[..., Redkit],
) -> None:
    """Writers (two threads on one instance) and an invalidator (another instance) race;
    every entry written must carry a tag version no older than that of the last
    invalidation that completed before its write began, so it cannot outlive one."""
    writer, other = make_rk(), make_rk()
    cache, invalidator = writer.cache("race", ttl=60), other.cache("race", ttl=60)
    tag = cache._f.keys.tag("t")
    invalidator.set("seed", 0, tags=["t"])  # makes the tag's version
    versions = [int(other.run(ops.command("GET", tag)))]  # versions[j]: after the j-th
    done = [0]  # invalidations completed
    stop = threading.Event()
    written: list[tuple[str, int]] = []  # (key, invalidations completed before its write)
    failed: list[BaseException] = []

    def invalidate() -> None:
        while not stop.is_set():
            invalidator.invalidate_tags("t")
            versions.append(int(other.run(ops.command("GET", tag))))  # (no one else sets it)
            done[0] += 1

    def write(name: str) -> None:
        try:
            for i in range(150):
                key, before = f"{name}{i}", done[0]
                if i % 3 == 0:
                    assert cache.add(key, i, tags=["t"])  # (a new key: always stored)
                elif i % 3 == 1:
                    cache.set_many({key: i, f"{key}+": i}, tags=["t"])
                else:
                    cache.set(key, i, tags=["t"])
                written.append((key, before))
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in ("a", "b")]
    racer = threading.Thread(target=invalidate)
    racer.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    racer.join()
    assert not failed, failed
    assert done[0] > 10, "the invalidator barely ran: no race was tested"
    flows = cache._f
    landed = 0
    for key, before in written:
        raw = writer.run(ops.command("GET", flows.keys.entry(key)))
        if raw is None:  # one server: a write refused every attempt stores nothing (a miss)
            continue
        landed += 1
        entry = envelope.decode(flows.serializer, raw)
        ((_, version),) = entry.tags
        assert versions.index(version) >= before, (key, before)
    assert landed > len(written) // 2
