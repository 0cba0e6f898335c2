"""Failure policies: a stopped or stalled server answers by policy within the deadline."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest
from tests.flavours import Either

from redkit import Redkit
from redkit.embedded import EmbeddedServer
from redkit.errors import ConnectionError as RedkitConnectionError
from redkit.errors import DataError, RedisCommandError
from redkit.ratelimit.failure import unavailable

DEADLINE = 0.3
SLACK = 0.7  # scheduling noise on a busy 2-core machine


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        yield server


@pytest.fixture
def rk(server: EmbeddedServer) -> Iterator[Redkit]:
    with Redkit(server.url, prefix="fail") as rk:
        yield rk


def test_closed_raises_within_the_deadline(rk: Redkit, server: EmbeddedServer) -> None:
    limiter = rk.rate_limiter("5/minute", deadline=DEADLINE, cooldown=0)
    assert limiter.hit("k").allowed
    server.stop()
    start = time.monotonic()
    with pytest.raises(RedkitConnectionError):
        limiter.hit("k")
    assert time.monotonic() - start < DEADLINE + SLACK
    assert limiter.failures == 1


def test_open_admits_flags_logs_and_counts(
    rk: Redkit, server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = rk.rate_limiter("1/minute", on_error="open", deadline=DEADLINE, name="open")
    server.kill()
    with caplog.at_level(logging.WARNING, logger="redkit.ratelimit"):
        results = [limiter.hit("k") for _ in range(3)]
    assert all(r.allowed and r.degraded for r in results)
    assert limiter.failures == 3
    logged = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(logged) == 1, "an outage logs once per interval, not once per request"
    assert "failing open" in logged[0].getMessage()


def test_local_fallback_still_limits(rk: Redkit, server: EmbeddedServer) -> None:
    limiter = rk.rate_limiter("2/minute; 100/hour", on_error="local", deadline=DEADLINE)
    server.stop()
    results = [limiter.hit("k") for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert all(r.degraded for r in results)
    assert results[2].retry_after > 0
    assert [s.remaining for s in results[1].states] == [0, 98]


async def test_stalled_server_answers_by_policy_within_the_deadline(
    server: EmbeddedServer, make_kit: Callable[..., Either]
) -> None:
    kit = make_kit(server.url, prefix="fail")
    limiter = await kit.rate_limiter("5/minute", on_error="open", deadline=DEADLINE, cooldown=0)
    assert (await limiter.hit("k")).allowed
    pid = server._process.pid  # type: ignore[union-attr]
    os.kill(pid, signal.SIGSTOP)  # alive, accepting, never answering: the worst case
    try:
        start = time.monotonic()
        result = await limiter.hit("k")
        elapsed = time.monotonic() - start
    finally:
        os.kill(pid, signal.SIGCONT)
    assert result.allowed
    assert result.degraded
    assert elapsed < DEADLINE + SLACK
    assert not (await limiter.hit("k")).degraded, "back once it answers"


def test_cooldown_skips_the_server(rk: Redkit, server: EmbeddedServer) -> None:
    limiter = rk.rate_limiter("5/minute", deadline=DEADLINE, cooldown=30)
    server.stop()
    with pytest.raises(RedkitConnectionError):
        limiter.hit("k")
    server.start()
    with pytest.raises(RedkitConnectionError, match="cooldown"):
        limiter.hit("k")  # fails closed at once, without asking the (now healthy) server
    assert limiter.failures == 2


def test_recovers_after_a_restart(rk: Redkit, server: EmbeddedServer) -> None:
    limiter = rk.rate_limiter("5/minute", on_error="open", deadline=DEADLINE, cooldown=0)
    assert not limiter.hit("k").degraded
    server.restart()  # the pooled connection is now dead: the next check must reconnect
    deadline = time.monotonic() + 10
    while limiter.hit("k").degraded and time.monotonic() < deadline:
        pass
    assert not limiter.hit("k").degraded


def test_concurrency_limiter_fails_by_policy(rk: Redkit, server: EmbeddedServer) -> None:
    local = rk.concurrency_limiter(1, on_error="local", deadline=DEADLINE, name="l")
    opened = rk.concurrency_limiter(1, on_error="open", deadline=DEADLINE, name="o")
    closed = rk.concurrency_limiter(1, deadline=DEADLINE, name="c", cooldown=0)
    server.stop()
    with local.acquire("k", timeout=1) as lease:
        assert lease.degraded
        assert local.try_acquire("k") is None
    assert local.try_acquire("k") is not None
    assert opened.acquire("k").degraded
    assert opened.acquire("k").degraded
    with pytest.raises(RedkitConnectionError):
        closed.acquire("k", timeout=1)


def test_a_command_error_is_not_an_outage(standalone_url: str) -> None:
    """A refused command raises as it is, even failing open: it is not a dead server.

    (Another Redis type at the key is a DataError: data of the wrong shape.)
    """
    with Redkit(standalone_url, prefix="cmderr") as rk:
        limiter = rk.rate_limiter("5/minute", on_error="open", name="wrongtype")
        (key,) = limiter._plan.keys("k")
        rk.client.rpush(key, "not a limiter's value")  # another Redis type at the key
        with pytest.raises(DataError):
            limiter.hit("k")
        assert limiter.failures == 0
        assert limiter.hit("other").allowed, "no cooldown was started"
        slots = rk.concurrency_limiter(1, on_error="open", name="wrongtype")
        rk.client.set(slots._group_keys("k")[0], "a string where a sorted set belongs")
        with pytest.raises(DataError):
            slots.try_acquire("k")
        assert slots.failures == 0


@pytest.mark.parametrize(
    ("reply", "outage"),
    [
        ("LOADING Redis is loading the dataset in memory", True),
        ("READONLY You can't write against a read only replica.", True),
        ("MASTERDOWN Link with MASTER is down", True),
        ("OOM command not allowed when used memory > 'maxmemory'.", True),
        ("WRONGTYPE Operation against a key holding the wrong kind of value", False),
        ("ERR value is not an integer or out of range", False),
    ],
)
def test_which_error_replies_are_outages(reply: str, outage: bool) -> None:
    down = unavailable(RedisCommandError(reply))
    assert (down is not None) == outage
    if down is not None:
        assert isinstance(down, RedkitConnectionError)
        assert reply in str(down)
