"""Round trips per cache operation (the numbers docs/cache.md states), and the one-trip
write's version check: a write after another process's clear or invalidation, or after a
version key was evicted, stays correct."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from redkit import Redkit, ops

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
    write = 2 if rk.cluster else 1  # a cluster reads the versions (other slots) first
    # (and makes them, the first time ever: one more)
    assert _count(rk, lambda: cache.set("a", 1)) == (3 if rk.cluster else 1)
    assert _count(rk, lambda: cache.set("b", 2, tags=["t"])) == (3 if rk.cluster else 1)
    assert _count(rk, lambda: cache.get("a")) == 1
    assert _count(rk, lambda: cache.get("missing")) == 1
    assert _count(rk, lambda: cache.get("b", tags=["t"])) == 1
    assert _count(rk, lambda: cache.set_many({"c": 3, "d": 4})) == write
    assert _count(rk, lambda: cache.get_many(["a", "c", "d"])) == 1
    assert _count(rk, lambda: cache.delete("d")) == 1
    assert _count(rk, lambda: cache.invalidate_tags("t")) == 1
    assert _count(rk, lambda: cache.clear()) == 1
    # a hit of get_or_set is one round trip; a miss adds the lock, the load and the fill
    cache.set("e", 5)
    assert _count(rk, lambda: cache.get_or_set("e", lambda: 0)) == 1
    assert _count(rk, lambda: cache.get_or_set("f", lambda: 6)) == 3


def test_a_write_after_another_process_cleared_is_seen(make_rk: Callable[..., Redkit]) -> None:
    a, b = make_rk().cache("seen", ttl=60), make_rk().cache("seen", ttl=60)
    a.set("k", 1)  # a remembers the namespace version it stamped
    b.clear()  # b changes it
    a.set("k", 2)  # stamped with a's old version: the script refuses, a stamps again
    assert b.get("k") == 2
    assert a.get("k") == 2
    b.set("t", 1, tags=["x"])
    a.invalidate_tags("x")
    b.set("t", 2, tags=["x"])
    assert a.get("t", tags=["x"]) == 2


def test_an_evicted_version_key_is_not_brought_back(rk: Redkit) -> None:
    cache = rk.cache("evicted", ttl=60)
    cache.set("old", 1)
    flows = cache._f
    rk.run(ops.command("DEL", flows.keys.ns_version))  # as eviction would
    cache.set("new", 2)  # the remembered version is missing: a fresh one is made
    assert cache.get("old") is None  # stamped with the evicted version: never valid again
    assert cache.get("new") == 2
