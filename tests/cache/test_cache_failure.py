"""on_error and deadline: a stopped or stalled server is a miss (open) or an error (closed)."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from tests.cache.conftest import Either

from redkit import AsyncRedkit, Redkit
from redkit.embedded import EmbeddedServer
from redkit.errors import ConfigError
from redkit.errors import ConnectionError as RedkitConnectionError

DEADLINE = 0.3
SLACK = 0.7  # scheduling noise on a busy 2-core machine


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        yield server


@pytest.fixture(params=["sync", "async"])
async def make_cache(
    request: pytest.FixtureRequest, server: EmbeddedServer
) -> AsyncIterator[Callable[..., Either]]:
    """Caches of this test's kind on the test's own server."""
    facade: Redkit | AsyncRedkit = (
        Redkit(server.url, prefix="cfail")
        if request.param == "sync"
        else AsyncRedkit(server.url, prefix="cfail")
    )

    def factory(namespace: str, **options: Any) -> Either:
        return Either(facade.cache(namespace, **options))

    yield factory
    if isinstance(facade, Redkit):
        facade.close()
    else:
        await facade.aclose()


async def test_open_reads_are_misses_and_writes_are_dropped(
    make_cache: Callable[..., Either], server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache("open", deadline=DEADLINE)
    assert cache.on_error == "open", "the default"
    stats = cache.stats
    await cache.set("k", "cached")
    server.stop()
    loads: list[int] = []

    def loader() -> str:
        loads.append(1)
        return "loaded"

    with caplog.at_level(logging.WARNING, logger="redkit.cache"):
        assert await cache.get("k", "default") == "default"
        assert await cache.get_many(["k"]) == {}
        assert await cache.get_or_set("k", loader) == "loaded"
        assert await cache.set("k", "v") is None
        assert await cache.set_many({"k": "v"}) is None
        assert await cache.add("k", "v") is False
        assert await cache.incr("n") is None
        assert await cache.touch("k", 10) is False
    assert loads == [1]
    assert stats.errors == 8
    logged = [r for r in caplog.records if "failing open" in r.getMessage()]
    assert len(logged) == 1, "an outage logs once per interval, not once per call"
    # an invalidation that failed silently would leave values the caller believes gone
    for invalidate in (cache.delete("k"), cache.invalidate_tags("t"), cache.clear()):
        with pytest.raises(RedkitConnectionError):
            await invalidate


async def test_closed_raises(make_cache: Callable[..., Either], server: EmbeddedServer) -> None:
    cache = make_cache("closed", on_error="closed", deadline=DEADLINE)
    server.stop()
    started = time.monotonic()
    with pytest.raises(RedkitConnectionError):
        await cache.get("k")
    with pytest.raises(RedkitConnectionError):
        await cache.get_or_set("k", lambda: "never")
    with pytest.raises(RedkitConnectionError):
        await cache.set("k", 1)
    assert time.monotonic() - started < 3 * (DEADLINE + SLACK)


async def test_a_stalled_server_costs_at_most_the_deadline(
    make_cache: Callable[..., Either], server: EmbeddedServer
) -> None:
    cache = make_cache("stalled", deadline=DEADLINE)
    await cache.set("k", "cached")
    assert await cache.get("k") == "cached"
    pid = server._process.pid  # type: ignore[union-attr]
    os.kill(pid, signal.SIGSTOP)  # alive, accepting, never answering: the worst case
    try:
        started = time.monotonic()
        got = await cache.get("k", "default")
        read = time.monotonic() - started
        started = time.monotonic()
        loaded = await cache.get_or_set("k", lambda: "loaded")
        load = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (got, loaded) == ("default", "loaded")
    assert read < DEADLINE + SLACK
    assert load < DEADLINE + SLACK, "the read failed; nothing more was asked of Redis"
    deadline = time.monotonic() + 10
    while await cache.get("k") != "cached":  # back once it answers
        assert time.monotonic() < deadline


def test_bad_failure_options_are_config_errors(server: EmbeddedServer) -> None:
    with Redkit(server.url, prefix="cfail") as rk:
        with pytest.raises(ConfigError, match="on_error"):
            rk.cache("x", on_error="local")
        with pytest.raises(ConfigError, match="deadline"):
            rk.cache("x", deadline=0)


async def test_cooldown_skips_the_server(
    make_cache: Callable[..., Either], server: EmbeddedServer
) -> None:
    cache = make_cache("cool", deadline=DEADLINE, cooldown=30)
    eager = make_cache("cool", deadline=DEADLINE, cooldown=0)
    server.stop()
    assert await cache.get("k", "default") == "default"
    assert await eager.get("k", "default") == "default"
    server.start()
    with Redkit(server.url, prefix="cfail") as other:
        other.cache("cool").set("k", "cached")
    # within the cooldown the cache answers by its policy without asking the server
    assert await cache.get("k", "default") == "default"
    assert await cache.get_or_set("k", lambda: "loaded") == "loaded"
    deadline = time.monotonic() + 10
    while await eager.get("k") != "cached":  # no cooldown: asks again at once
        assert time.monotonic() < deadline
    closed = make_cache("cool2", on_error="closed", deadline=DEADLINE, cooldown=30)
    server.stop()
    with pytest.raises(RedkitConnectionError):
        await closed.get("k")
    server.start()
    with pytest.raises(RedkitConnectionError, match="cooldown"):
        await closed.get("k")  # fails closed at once, without asking the (healthy) server
