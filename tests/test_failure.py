"""The core failure policy: what counts as "Redis unavailable", cooldown, logging, deadline."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest
from tests.flavours import Either

from redkit import Redkit, ops
from redkit.embedded import EmbeddedServer
from redkit.errors import ConfigError, DataError, RedisCommandError
from redkit.errors import ConnectionError as RedkitConnectionError
from redkit.failure import FailurePolicy, check_deadline, with_deadline

DEADLINE = 0.3
SLACK = 0.7  # scheduling noise on a busy 2-core machine


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        yield server


def _get(key: str) -> ops.Flow[bytes | None]:
    value = yield ops.Call("GET", key)
    return value  # type: ignore[no-any-return]


def _fallback(exc: RedkitConnectionError | None) -> bytes:
    return b"fallback"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"on_error": "local"}, "on_error"),
        ({"on_error": "Open"}, "on_error"),
        ({"cooldown": -1}, "cooldown"),
        ({"cooldown": float("inf")}, "cooldown"),
        ({"cooldown": "1"}, "cooldown"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FailurePolicy("thing", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("deadline", [0, -1, float("inf"), float("nan"), "1", True])
def test_bad_deadlines_are_config_errors(deadline: object) -> None:
    with pytest.raises(ConfigError, match="deadline"):
        check_deadline(deadline)  # type: ignore[arg-type]


def test_a_policy_may_offer_more_choices() -> None:
    policy = FailurePolicy("limiter", "local", choices=("closed", "open", "local"))
    assert policy.on_error == "local"
    assert check_deadline(None) is None
    assert check_deadline(1) == 1.0


async def test_closed_raises_the_connection_error_and_cools_down(
    server: EmbeddedServer, make_kit: Callable[..., Either]
) -> None:
    policy = FailurePolicy("thing", "closed", cooldown=30)
    kit = make_kit(server.url, prefix="f")
    assert await kit.run(policy.guard(_get("k"), _fallback)) is None
    server.stop()
    with pytest.raises(RedkitConnectionError) as raised:
        await kit.run(policy.guard(_get("k"), _fallback))
    assert isinstance(raised.value, ConnectionError), "also the builtin ConnectionError"
    server.start()
    with pytest.raises(RedkitConnectionError, match="cooldown"):
        await kit.run(policy.guard(_get("k"), _fallback))  # not asked: cooling down
    assert policy.failures == 2


def test_open_answers_by_fallback_logs_once_and_recovers(
    server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    policy = FailurePolicy("thing", "open", cooldown=0, failing={"open": "serving defaults"})
    with Redkit(server.url, prefix="f") as rk:
        server.stop()
        with caplog.at_level(logging.WARNING, logger="redkit"):
            answers = [rk.run(policy.guard(_get("k"), _fallback)) for _ in range(3)]
        assert answers == [b"fallback"] * 3
        assert policy.failures == 3
        logged = [r.getMessage() for r in caplog.records if "Redis unavailable" in r.getMessage()]
        assert len(logged) == 1, "an outage logs once per interval, not once per call"
        assert "thing" in logged[0]
        assert "serving defaults" in logged[0]
        server.start()
        deadline = time.monotonic() + 10
        while rk.run(policy.guard(_get("k"), _fallback)) == b"fallback":
            assert time.monotonic() < deadline, "never recovered"
        assert rk.run(policy.guard(_get("k"), _fallback)) is None


async def test_command_errors_are_never_an_outage(kit: Either) -> None:
    policy = FailurePolicy("thing", "open", cooldown=30)
    key = kit.keys.group("test").key("text")
    await kit.client.set(key, "not a number")
    with pytest.raises(RedisCommandError):
        await kit.run(policy.guard(ops.command("INCR", key), lambda _: 0))
    assert policy.failures == 0
    assert not policy.cooling_down()


def test_data_errors_are_never_an_outage(rk: Redkit) -> None:
    policy = FailurePolicy("thing", "open", cooldown=30)
    lock = rk.lock("typed")
    rk.client.hset(lock._keys[0], "x", "1")
    with pytest.raises(DataError):
        rk.run(policy.guard(lock._acquire_flow(False, None), lambda _: False))
    assert policy.failures == 0


async def test_the_deadline_bounds_a_stalled_server(
    server: EmbeddedServer, make_kit: Callable[..., Either]
) -> None:
    policy = FailurePolicy("thing", "open", cooldown=0)
    base = make_kit(server.url, prefix="f").target
    assert with_deadline(base, None) is base
    kit = Either(with_deadline(base, DEADLINE))
    assert await kit.run(policy.guard(_get("k"), _fallback)) is None
    pid = server._process.pid  # type: ignore[union-attr]
    os.kill(pid, signal.SIGSTOP)  # alive, accepting, never answering
    try:
        start = time.monotonic()
        answer = await kit.run(policy.guard(_get("k"), _fallback))
        elapsed = time.monotonic() - start
    finally:
        os.kill(pid, signal.SIGCONT)
    assert answer == b"fallback"
    assert elapsed < DEADLINE + SLACK
    assert policy.failures == 1


def test_a_read_only_replica_counts_as_unavailable() -> None:
    """READONLY (a failover in progress) is an outage: the policy answers, not an error."""
    with EmbeddedServer() as primary, EmbeddedServer() as replica, replica.client() as admin:
        admin.execute_command("REPLICAOF", primary.host, str(primary.port))
        with Redkit(replica.url, prefix="ro") as rk:
            opened = rk.rate_limiter("5/second", on_error="open", cooldown=0)
            closed = rk.rate_limiter("5/second", cooldown=0)
            assert opened.hit("k").allowed
            assert opened.failures == 1
            with pytest.raises(RedkitConnectionError, match=r"read only|cannot serve"):
                closed.hit("k")


def test_refused_credentials_are_a_config_error_not_an_outage(standalone_url: str) -> None:
    url = standalone_url.replace("redis://", "redis://nobody:wrong@")
    with Redkit(url, prefix="auth") as rk:
        limiter = rk.rate_limiter("5/second", on_error="open", cooldown=0)
        with pytest.raises(ConfigError, match="refused the credentials"):
            limiter.hit("k")
