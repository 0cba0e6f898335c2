"""The near cache: invalidated by the server within milliseconds, flushed on disconnect."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.cache import Cache

SEEN_WITHIN = 0.05


def _until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def _live(cache: Any) -> None:
    _until(lambda: cache.near.live, what="the near cache to go live")


def _seen_after(cache: Cache, key: str, expected: object) -> float:
    started = time.monotonic()
    _until(lambda: cache.get(key) == expected, timeout=5, what=f"{key} == {expected!r}")
    return time.monotonic() - started


@pytest.mark.parametrize("mode", ["tracking", "pubsub"])
def test_update_through_b_is_seen_by_a_within_50ms(
    rk: Redkit, make_rk: Callable[..., Redkit], mode: str
) -> None:
    a = rk.cache("near", near=1000, near_mode=mode)
    b = make_rk().cache("near", near_mode=mode)
    try:
        _live(a)
        b.set("k", 1, tags=["t"])
        # once B's own invalidation has passed, A's reads come from memory
        _until(lambda: a.get("k") == 1 and a.stats.near_hits >= 1, what="a near hit")
        b.set("k", 2)
        assert _seen_after(a, "k", 2) < SEEN_WITHIN
        b.set("tagged", "v", tags=["t"])
        assert a.get("tagged") == "v"
        b.invalidate_tags("t")
        assert _seen_after(a, "tagged", None) < SEEN_WITHIN
        b.delete("k")
        assert _seen_after(a, "k", None) < SEEN_WITHIN
    finally:
        a.close()


def _kill(rk: Redkit, name: str) -> int:
    killed = 0
    clients = [rk.client]
    if rk.cluster:
        clients = [n.redis_connection for n in rk.client.get_primaries()]
    for client in clients:
        for entry in client.client_list():
            if entry.get("name") == name:
                killed += client.execute_command("CLIENT", "KILL", "ID", entry["id"]) and 1
    return killed


def test_after_a_disconnect_nothing_stale_is_served(
    rk: Redkit, make_rk: Callable[..., Redkit]
) -> None:
    a = rk.cache("near-drop", near=1000)
    b = make_rk().cache("near-drop")
    try:
        _live(a)
        b.set("k", "old")
        _until(lambda: a.get("k") == "old" and a.stats.near_hits >= 1, what="a near hit")
        assert a.near is not None
        assert len(a.near) == 1
        drops = a.near.disconnects
        assert _kill(rk, a._listener.client_name) >= 1  # type: ignore[union-attr]
        _until(lambda: a.near.disconnects > drops, what="the listener to notice")  # type: ignore[union-attr]
        b.set("k", "new")  # no invalidation can reach A now
        assert a.get("k") == "new", "A served a value it could not verify"
        _live(a)  # it reconnects, and invalidations flow again
        assert a.get("k") == "new"
        b.set("k", "newer")
        assert _seen_after(a, "k", "newer") < 1.0
    finally:
        a.close()


def test_a_server_restart_flushes_the_near_cache(standalone_url: str, prefix: str) -> None:
    from redkit.embedded import EmbeddedServer

    with EmbeddedServer() as server, Redkit(server.url, prefix=prefix) as rk:
        cache = rk.cache("restart", near=100, near_heartbeat=0.2)
        try:
            _live(cache)
            cache.set("k", "v")
            assert cache.get("k") == "v"
            server.restart()  # a fresh, empty server on the same port
            _until(lambda: cache.near.disconnects > 0, what="the drop to be seen")  # type: ignore[union-attr]
            assert cache.get("k") is None
        finally:
            cache.close()


async def test_async_near_cache(ark: AsyncRedkit, make_rk: Callable[..., Redkit]) -> None:
    a = ark.cache("anear", near=100)
    b = make_rk().cache("anear")
    try:
        _live(a)
        b.set("k", 1)
        started = time.monotonic()
        while not (await a.get("k") == 1 and a.stats.near_hits >= 1):
            assert time.monotonic() - started < 5, "no near hit"
        b.set("k", 2)
        started = time.monotonic()
        while await a.get("k") != 2:
            assert time.monotonic() - started < 5
        assert time.monotonic() - started < SEEN_WITHIN
    finally:
        await a.aclose()


def test_near_cache_is_bounded(rk: Redkit) -> None:
    cache = rk.cache("bounded", near=10)
    try:
        _live(cache)
        for i in range(30):
            cache.set(i, i)
            cache.get(i)
        assert cache.near is not None
        assert len(cache.near) <= 10
    finally:
        cache.close()
