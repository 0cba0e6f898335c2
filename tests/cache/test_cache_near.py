"""The near cache: invalidated by the server within milliseconds, flushed on disconnect."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

import pytest
import redis

from redkit import AsyncRedkit, Redkit, Settings, ops
from redkit.cache import Cache
from redkit.cache.near import masters, probe_tls
from redkit.embedded import EmbeddedCluster, EmbeddedServer, find_binary, free_port

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


def test_pubsub_mode_announces_every_write_in_the_write_s_round_trip(
    rk: Redkit, make_rk: Callable[..., Redkit]
) -> None:
    a = rk.cache("near-pub", near=1000, near_mode="pubsub")
    writer = make_rk()
    b = writer.cache("near-pub", near_mode="pubsub")
    b.set("warm", 0)  # b has seen the namespace's version: its writes are one round trip
    trips: list[ops.Event] = []
    writer.observe(trips.append)
    io = (ops.Call, ops.Eval, ops.Batch)
    writes: list[tuple[Callable[[], object], object, int]] = [
        (lambda: b.set("k", 1), 1, 1),
        (lambda: b.incr("k"), 2, 2),
        (lambda: b.touch("k", 60), 2, 1),
        (lambda: b.delete("k"), None, 1),
        (lambda: b.add("k", 5), 5, 1),
        (lambda: b.delete("k") and b.get_or_set("k", lambda: 7), 7, 4),
    ]
    try:
        _live(a)
        current: object = None
        for write, value, expected_trips in writes:
            if current is not None:  # a holds the value in memory: only an announcement
                hits = a.stats.near_hits  # can make it read the new one
                _until(
                    lambda was=current, hits=hits: a.get("k") == was and a.stats.near_hits > hits,
                    what="a near hit",
                )
            trips.clear()
            write()
            assert sum(isinstance(e.effect, io) for e in trips) == expected_trips, trips
            assert _seen_after(a, "k", value) < SEEN_WITHIN
            current = value
        assert b.stats.errors == 0
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


# --- one listener per facade ------------------------------------------------------------


def _masters(rk: Redkit) -> list[Any]:
    if rk.cluster:
        return [n.redis_connection for n in rk.client.get_primaries()]
    return [rk.client]


def _clients(rk: Redkit) -> list[dict[str, Any]]:
    return [entry for client in _masters(rk) for entry in client.client_list()]


def test_fifty_caches_share_one_listener(rk: Redkit, make_rk: Callable[..., Redkit]) -> None:
    threads_before = set(threading.enumerate())
    connections_before = len(_clients(rk))
    caches = [rk.cache(f"ns{i}", near=100) for i in range(50)]
    b = make_rk()
    try:
        listener = caches[0]._listener
        assert listener is not None
        assert all(cache._listener is listener for cache in caches)
        new = {t.name for t in set(threading.enumerate()) - threads_before}
        assert new <= {f"redkit-{listener.name}", "redkit-heartbeat"}, new
        # its own name: another test's closed listener may still be listed for a moment
        named = _named(rk, listener.client_name)
        assert len(named) == len(_masters(rk)), "one listener connection per master"
        for i, cache in enumerate(caches):
            b.cache(f"ns{i}").set("k", i, tags=["shared"])
            # a read that races the push of B's write is not kept; the next one is
            _until(lambda c=cache, want=i: c.get("k") == want and c.stats.near_hits >= 1)
        growth = len(_clients(rk)) - connections_before
        assert growth <= 2 * len(_masters(rk)) + 1, f"{growth} new connections"
        for i in range(50):  # another facade writes: every near cache hears about it
            b.cache(f"ns{i}").set("k", i + 100)
        for i, cache in enumerate(caches):
            _until(lambda c=cache, want=i + 100: c.get("k") == want, what=f"ns{i} updated")
        for i in range(50):
            b.cache(f"ns{i}").set("tagged", i, tags=["shared"])
            assert caches[i].get("tagged") == i
        b.cache("ns0").invalidate_tags("shared")  # one write, heard by all 50
        for i, cache in enumerate(caches):
            _until(lambda c=cache: c.get("tagged") is None, what=f"ns{i} tag invalidated")
    finally:
        for cache in caches:
            cache.close()
    thread = f"redkit-{listener.name}"
    _until(lambda: not any(t.name == thread for t in threading.enumerate()))


def test_a_near_cache_serves_from_its_first_get(
    target_url: str, prefix: str, make_rk: Callable[..., Redkit]
) -> None:
    make_rk().cache("first").set("k", "v")
    with Redkit(target_url, prefix=prefix) as fresh:  # no listener yet on this facade
        cache = fresh.cache("first", near=10)
        stats = cache.stats  # counting starts here
        try:
            assert cache.get("k") == "v"  # from Redis, and kept
            assert cache.get("k") == "v"
            assert stats.near_hits == 1
        finally:
            cache.close()


async def test_an_async_near_cache_serves_from_its_first_get(
    ark: AsyncRedkit, make_rk: Callable[..., Redkit]
) -> None:
    make_rk().cache("afirst").set("k", "v")
    cache = ark.cache("afirst", near=10)
    stats = cache.stats  # counting starts here
    try:
        assert await cache.get("k") == "v"
        assert await cache.get("k") == "v"
        assert stats.near_hits == 1
    finally:
        await cache.aclose()


def test_a_closed_cache_stops_serving_and_the_others_keep_serving(
    rk: Redkit, make_rk: Callable[..., Redkit]
) -> None:
    a, b = rk.cache("one", near=10), rk.cache("two", near=10)
    stats = b.stats  # counting starts here
    writer = make_rk()
    try:
        writer.cache("one").set("k", 1)
        writer.cache("two").set("k", 2)
        assert a.get("k") == 1
        assert b.get("k") == 2
        a.close()
        assert a.near is not None
        assert not a.near.live
        # the near cache keeps serving (a late invalidation of the earlier write may cost
        # one more read from Redis first)
        deadline = time.monotonic() + 5
        while stats.near_hits == 0 and time.monotonic() < deadline:
            assert b.get("k") == 2
        assert stats.near_hits >= 1
    finally:
        b.close()


# --- the cluster probe ------------------------------------------------------------------


def test_the_cluster_probe_gives_up_on_a_silent_seed(cluster_server: EmbeddedCluster) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings = Settings(connect_timeout=0.3, socket_timeout=0.3, retries=0)
        seeds = [silent.getsockname(), *cluster_server.nodes[:1]]
        began = time.monotonic()
        found = masters(seeds, {}, settings)
        assert len(found) == 3
        assert time.monotonic() - began < 5


def test_the_cluster_probe_takes_tls_from_the_settings() -> None:
    tls = Settings(url="rediss+cluster://h:7000", ssl_ca_certs="/etc/ca.pem")
    assert probe_tls({}, tls) == {"ssl": True, "ssl_ca_certs": "/etc/ca.pem"}
    assert probe_tls({"ssl_ca_certs": "/mine.pem"}, tls)["ssl_ca_certs"] == "/mine.pem"
    assert probe_tls({}, Settings(url="redis+cluster://h:7000")) == {}


def test_caches_built_in_many_threads_share_one_listener(
    rk: Redkit, make_rk: Callable[..., Redkit]
) -> None:
    writer = make_rk()
    stop = threading.Event()

    def churn() -> None:  # invalidations flow while caches attach
        i = 0
        while not stop.is_set():
            writer.cache("busy").set(i % 5, i)
            i += 1

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            caches = list(pool.map(lambda i: rk.cache(f"t{i}", near=10), range(40)))
    finally:
        stop.set()
        churner.join()
    try:
        listeners = {id(cache._listener) for cache in caches}
        assert len(listeners) == 1
        for i, cache in enumerate(caches):
            writer.cache(f"t{i}").set("k", i)
            _until(lambda c=cache, want=i: c.get("k") == want and c.stats.near_hits >= 1)
            writer.cache(f"t{i}").set("k", -i - 1)
            _until(lambda c=cache, want=-i - 1: c.get("k") == want, what=f"t{i} updated")
    finally:
        for cache in caches:
            cache.close()


@pytest.fixture
def sentinel_url(standalone_server: EmbeddedServer, tmp_path: Path) -> Iterator[str]:
    """A Sentinel (the valkey binary in sentinel mode) watching the standalone server."""
    port = free_port()
    config = tmp_path / "sentinel.conf"
    master = f"127.0.0.1 {standalone_server.port}"
    config.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor mymaster {master} 1\n")
    proc = subprocess.Popen([str(find_binary()), str(config), "--sentinel"], stdout=DEVNULL)
    try:
        with redis.Redis(port=port, socket_timeout=1) as probe:
            _until(lambda: _answers(probe), what="the sentinel")
        yield f"redis+sentinel://127.0.0.1:{port}/mymaster"
    finally:
        proc.terminate()
        proc.wait()


def _answers(probe: redis.Redis) -> bool:
    try:
        return bool(probe.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster"))
    except redis.ConnectionError:
        return False


def test_a_near_cache_behind_sentinel_tracks_the_master(
    sentinel_url: str, standalone_url: str, prefix: str
) -> None:
    with Redkit(standalone_url, prefix=prefix) as direct:
        direct.cache("s").set("k", 1)
        with Redkit(sentinel_url, prefix=prefix) as rk:
            cache = rk.cache("s", near=10)
            stats = cache.stats  # counting starts here
            try:
                assert cache.get("k") == 1
                assert cache.get("k") == 1
                assert stats.near_hits == 1
                direct.cache("s").set("k", 2)  # a write on the master reaches the listener
                assert _seen_after(cache, "k", 2) < 1.0
            finally:
                cache.close()


def test_closing_the_last_cache_stops_the_listener_at_once(rk: Redkit) -> None:
    cache = rk.cache("quick", near=10, near_heartbeat=4.0)  # each poll lasts a second
    listener = cache._listener
    assert listener is not None
    thread = f"redkit-{listener.name}"
    assert any(t.name == thread for t in threading.enumerate())
    began = time.monotonic()
    cache.close()
    assert time.monotonic() - began < 0.5
    assert not any(t.name == thread for t in threading.enumerate())
    _until(lambda: not _named(rk, listener.client_name), what="the listener's connections to close")


def _named(rk: Redkit, name: str) -> list[dict[str, Any]]:
    return [c for c in _clients(rk) if c.get("name") == name]
