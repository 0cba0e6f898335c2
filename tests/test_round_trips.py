"""Round trips per operation, as the docs pages state them (counted from the driver's
events: every command, script, pipelined batch or blocking wait is one round trip)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis.cluster

from redkit import Redkit, ops

_IO = (ops.Call, ops.Eval, ops.Batch, ops.Block)


def trips(rk: Redkit, action: Callable[[], Any]) -> int:
    seen: list[ops.Event] = []
    remove = rk.observe(seen.append)
    try:
        action()
    finally:
        remove()
    return sum(1 for event in seen if isinstance(event.effect, _IO))


def test_locks(rk: Redkit) -> None:
    lock = rk.lock("trips", ttl=10)
    assert trips(rk, lock.acquire) == 1
    assert trips(rk, lock.extend) == 1
    assert trips(rk, lock.locked) == 1
    assert trips(rk, lock.release) == 1


@pytest.mark.parametrize(
    "algorithm", ["fixed_window", "gcra", "token_bucket", "sliding_window", "sliding_log"]
)
def test_rate_limits(rk: Redkit, algorithm: str) -> None:
    one = rk.rate_limiter("10/second", algorithm=algorithm, name=f"one-{algorithm}")
    two = rk.rate_limiter("10/second; 1000/hour", algorithm=algorithm, name=f"two-{algorithm}")
    assert trips(rk, lambda: one.hit("u")) == 1
    assert trips(rk, lambda: two.hit("u")) == 1  # every limit of a policy in one script


def test_concurrency_limits(rk: Redkit) -> None:
    limiter = rk.concurrency_limiter(5, name="trips")
    held: list[Any] = []
    assert trips(rk, lambda: held.append(limiter.acquire("u", timeout=1))) == 1
    assert trips(rk, held[0].release) == 1


def test_queue(rk: Redkit) -> None:
    queue = rk.queue("trips")

    @queue.task
    def job(x: int) -> int:
        return x

    assert trips(rk, lambda: job.enqueue(1)) == 1
    assert trips(rk, lambda: job.enqueue_many([(i,) for i in range(10)])) == 1
    assert trips(rk, queue.counts) == 1


def test_idempotency(rk: Redkit) -> None:
    idem = rk.idempotency("trips")
    assert trips(rk, lambda: idem.do("k", lambda: 1)) == 2  # claim, then complete
    assert trips(rk, lambda: idem.do("k", lambda: 1)) == 1  # a replay: the claim answers


def test_sessions(rk: Redkit) -> None:
    store = rk.sessions()
    session = store.new()
    session["a"] = 1
    assert trips(rk, lambda: store.save(session)) == 1
    store.load(session.id)  # (the first load also checks the server's persistence, once)
    loaded = store.load(session.id)
    assert loaded is not None
    assert trips(rk, lambda: store.load(session.id)) == 1
    loaded["b"] = 2
    assert trips(rk, lambda: store.save(loaded)) == 1
    assert trips(rk, lambda: store.destroy(loaded)) == 1
    user = store.new()
    assert trips(rk, lambda: store.login(user, 7)) == 2  # the generation, then the session
    assert trips(rk, lambda: store.rotate(user)) == 1  # take, create and index at once
    assert trips(rk, lambda: store.destroy(user)) == 1
    anonymous = store.new()
    anonymous["a"] = 1
    store.save(anonymous)
    assert trips(rk, lambda: store.login(anonymous, 8)) == 2
    assert trips(rk, lambda: store.login(anonymous, 9)) == 2  # another user: also 2
    assert trips(rk, lambda: store.list_sessions(9)) == 2  # the index, then each session
    other = store.load(anonymous.id)
    other["b"] = 2
    store.save(other)  # another request changed the session since `anonymous` was loaded
    assert trips(rk, lambda: store.rotate(anonymous)) == 2  # the new one takes that in
    assert trips(rk, lambda: store.end(9, "no such handle")) == 1
    assert trips(rk, lambda: store.end(9, anonymous.handle or "")) == 2
    kept = store.new()
    kept["a"] = 1
    store.login(kept, 9)
    store.login(store.new(), 9)
    assert trips(rk, lambda: store.end_all(9)) == 3  # generation, the sessions, the index
    store.login(kept, 9)
    assert trips(rk, lambda: store.end_all(9, keep=kept)) == 5  # and a login for `keep`


def test_tokens(rk: Redkit) -> None:
    tokens = rk.tokens()
    claims = tokens.new_claims("u", ttl=60)
    tokens.is_revoked(claims)  # (the first use also checks the server's persistence, once)
    assert trips(rk, lambda: tokens.is_revoked(claims)) == 1
    assert trips(rk, lambda: tokens.revoke(claims["jti"], claims["exp"])) == 1
    assert trips(rk, lambda: tokens.revoke_all("u")) == 1
    family: list[str] = []
    assert trips(rk, lambda: family.append(tokens.start_family("u", "r1", claims["exp"]))) == 1
    presented = {"sub": "u", "jti": "r1", "fam": family[0]}
    assert trips(rk, lambda: tokens.is_revoked(presented)) == 1
    assert trips(rk, lambda: tokens.rotate_refresh(presented, "r2", claims["exp"])) == 1
    assert trips(rk, lambda: tokens.revoke_family("u", family[0])) == 1


def _getkeys(rk: Redkit) -> int:
    """How many COMMAND GETKEYS the server (every primary of a cluster) has answered."""
    client = rk.client
    primaries = (
        [client.get_redis_connection(node) for node in client.get_primaries()]
        if isinstance(client, redis.cluster.RedisCluster)
        else [client]
    )
    stats = [primary.info("commandstats") for primary in primaries]
    return sum(s.get("cmdstat_command|getkeys", {}).get("calls", 0) for s in stats)


def test_a_batch_of_scripts_is_one_round_trip_on_the_server_too(rk: Redkit) -> None:
    # redis-py's sync cluster pipeline would first ask the server for each script's keys
    # (COMMAND GETKEYS, one round trip per script): the driver names each script's node
    store = rk.sessions(check=False)
    tokens = rk.tokens(check=False)
    session = store.new()
    session["a"] = 1
    store.save(session)
    before = _getkeys(rk)
    store.login(session, 7)
    store.rotate(session)
    tokens.is_revoked(tokens.new_claims(7, ttl=60))
    assert _getkeys(rk) == before
