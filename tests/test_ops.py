"""The flow drivers and the script registry: NOSCRIPT recovery, batches, error wrapping.

SCRIPT FLUSH runs on the embedded targets (on every node of the cluster). The external
server is shared, so there each test uses a script it has never seen instead: the first
EVALSHA meets NOSCRIPT exactly as after a flush.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from redkit import AsyncRedkit, Redkit, errors, ops
from redkit.errors import ConfigError, RedisCommandError
from redkit.scripts import Script, names, script

EXTERNAL_URL = os.environ.get("REDKIT_TEST_REDIS_URL") or None


def fresh_script() -> Script:
    """INCRBY as a script whose source (and so SHA) no server has seen before."""
    source = f"-- {secrets.token_hex(8)}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])".encode()
    return Script("test_incrby", source, hashlib.sha1(source).hexdigest(), 1)


def flush_scripts(rk: Redkit, external: bool) -> None:
    """SCRIPT FLUSH on every node (not on the shared external server: see the docstring)."""
    if external:
        return
    if isinstance(rk.client, RedisCluster):
        for node in rk.client.get_nodes():
            rk.client.execute_command("SCRIPT", "FLUSH", target_nodes=node)
    else:
        rk.client.script_flush()


async def aflush_scripts(ark: AsyncRedkit, external: bool) -> None:
    if external:
        return
    if isinstance(ark.client, AsyncRedisCluster):
        for node in ark.client.get_nodes():
            await ark.client.execute_command("SCRIPT", "FLUSH", target_nodes=node)
    else:
        await ark.client.script_flush()


def cached(rk: Redkit, sha: str, key: str) -> bool:
    """Whether the node that owns ``key`` has the script cached."""
    if isinstance(rk.client, RedisCluster):
        node = rk.client.get_node_from_key(key)
        reply = rk.client.execute_command("SCRIPT", "EXISTS", sha, target_nodes=node)
    else:
        reply = rk.client.script_exists(sha)
    return bool(reply[0])


async def acached(ark: AsyncRedkit, sha: str, key: str) -> bool:
    if isinstance(ark.client, AsyncRedisCluster):
        node = ark.client.get_node_from_key(key)
        reply = await ark.client.execute_command("SCRIPT", "EXISTS", sha, target_nodes=node)
    else:
        reply = await ark.client.script_exists(sha)
    return bool(reply[0])


def test_noscript_recovery_after_flush(rk: Redkit, target_url: str) -> None:
    external = target_url == EXTERNAL_URL
    incr = fresh_script()
    key = rk.keys.group("ops", "n").key("count")
    assert rk.run(ops.evaluate(incr, [key], [1])) == 1
    assert cached(rk, incr.sha, key)
    flush_scripts(rk, external)
    if external:
        incr = fresh_script()
    assert not cached(rk, incr.sha, key)
    assert rk.run(ops.evaluate(incr, [key], [2])) == 3
    assert cached(rk, incr.sha, key)  # reloaded, so the next call is a plain EVALSHA
    assert rk.run(ops.evaluate(incr, [key], [3])) == 6


def test_capability_keeps_working_after_flush(rk: Redkit, target_url: str) -> None:
    with rk.lock("flushed", ttl=5) as lock:
        first = lock.fencing_token
    flush_scripts(rk, target_url == EXTERNAL_URL)
    with rk.lock("flushed", ttl=5) as lock:
        assert (lock.fencing_token or 0) > (first or 0)
        assert lock.extend()


async def test_async_noscript_recovery_after_flush(ark: AsyncRedkit, target_url: str) -> None:
    external = target_url == EXTERNAL_URL
    incr = fresh_script()
    key = ark.keys.group("ops", "n").key("count")
    assert await ark.run(ops.evaluate(incr, [key], [1])) == 1
    await aflush_scripts(ark, external)
    if external:
        incr = fresh_script()
    assert not await acached(ark, incr.sha, key)
    assert await ark.run(ops.evaluate(incr, [key], [2])) == 3
    assert await acached(ark, incr.sha, key)


def _batch_flow(incr: Script, key: str, other: str) -> ops.Flow[list[Any]]:
    replies = yield ops.Batch(
        [
            ops.Eval(incr, [key], [1]),
            ops.Call("GET", key),
            ops.Eval(incr, [key], [10]),
            ops.Call("HGET", key, "field"),  # WRONGTYPE: an error value, not raised
            ops.Eval(incr, [other], [5]),
        ]
    )
    return list(replies)


def _check_batch(replies: list[Any], start: int, other: int) -> None:
    assert replies[0] == start + 1
    assert replies[1] == str(start + 1).encode(), "the batch ran out of order"
    assert replies[2] == start + 11
    assert isinstance(replies[3], RedisCommandError)
    assert "WRONGTYPE" in str(replies[3])
    assert replies[4] == other


def test_batch_after_flush_runs_in_order(rk: Redkit, target_url: str) -> None:
    incr = fresh_script()
    key = rk.keys.group("ops", "batch").key("n")
    other = rk.keys.group("ops", "other").key("n")  # another slot (and node) on a cluster
    _check_batch(rk.run(_batch_flow(incr, key, other)), 0, 5)
    flush_scripts(rk, target_url == EXTERNAL_URL)
    _check_batch(rk.run(_batch_flow(incr, key, other)), 11, 10)


async def test_async_batch_after_flush_runs_in_order(ark: AsyncRedkit, target_url: str) -> None:
    incr = fresh_script()
    key = ark.keys.group("ops", "batch").key("n")
    other = ark.keys.group("ops", "other").key("n")
    _check_batch(await ark.run(_batch_flow(incr, key, other)), 0, 5)
    await aflush_scripts(ark, target_url == EXTERNAL_URL)
    _check_batch(await ark.run(_batch_flow(incr, key, other)), 11, 10)


def _recovering_flow(key: str) -> ops.Flow[str]:
    yield ops.Call("SET", key, "text")
    try:
        yield ops.Call("INCR", key)
    except RedisCommandError as exc:
        return f"caught: {exc}"
    return "not reached"


def test_errors_are_thrown_into_the_flow(rk: Redkit) -> None:
    key = rk.keys.group("ops", "err").key("v")
    assert rk.run(_recovering_flow(key)).startswith("caught: ")
    with pytest.raises(RedisCommandError, match="not an integer"):
        rk.run(ops.command("INCR", key))


async def test_async_errors_are_thrown_into_the_flow(ark: AsyncRedkit) -> None:
    key = ark.keys.group("ops", "err").key("v")
    assert (await ark.run(_recovering_flow(key))).startswith("caught: ")
    with pytest.raises(RedisCommandError):
        await ark.run(ops.command("INCR", key))


def _sleep_flow(seconds: float) -> ops.Flow[float]:
    start = time.monotonic()
    yield ops.Sleep(seconds)
    return time.monotonic() - start


def test_sleep_effect(rk: Redkit) -> None:
    assert rk.run(_sleep_flow(0.05)) >= 0.05


async def test_async_sleep_effect(ark: AsyncRedkit) -> None:
    assert await ark.run(_sleep_flow(0.05)) >= 0.05


def test_mapped_flow(rk: Redkit) -> None:
    key = rk.keys.group("ops", "m").key("v")
    assert rk.run(ops.mapped(ops.command("INCRBY", key, 4), lambda r: r * 10)) == 40


def test_script_key_count_is_checked(rk: Redkit) -> None:
    with pytest.raises(ConfigError, match="takes 2 keys"):
        rk.run(ops.evaluate(script("lock_acquire"), ["only-one"], []))
    with pytest.raises(ConfigError, match="no Lua script"):
        script("no_such_script")


@pytest.mark.parametrize("name", names())
def test_every_script_has_its_header(name: str) -> None:
    """Each .lua opens with comments naming its KEYS, ARGV and return value."""
    loaded = script(name)
    source = loaded.source.decode()
    header = "\n".join(line for line in source.splitlines() if line.startswith("--"))
    assert source.startswith("--"), f"{name}: the header comment comes first"
    assert re.search(r"return", header, re.IGNORECASE), f"{name}: say what it returns"
    used = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", source)}
    if used:
        assert "KEYS" in header, f"{name}: list its KEYS"
    if loaded.numkeys is not None:
        assert used <= set(range(1, loaded.numkeys + 1)), f"{name}: uses more keys than its name"
    assert "ARGV" in header or "ARGV" not in source.replace(header, ""), f"{name}: list ARGV"


def test_the_waits_client_is_made_once_by_threads_arriving_together() -> None:
    made: list[object] = []
    arrived = threading.Barrier(16)

    def make() -> object:
        time.sleep(0.05)  # a slow constructor (a Sentinel client asks the sentinels)
        made.append(object())
        return made[-1]

    blocker = ops.Blocker(make, 1.0)

    def first_use() -> object:
        arrived.wait()
        return blocker.client

    with ThreadPoolExecutor(16) as pool:
        clients = list(pool.map(lambda _: first_use(), range(16)))
    assert len(made) == 1  # a second one would never be closed
    assert all(client is made[0] for client in clients)


def _attribute_error_from(filename: str) -> AttributeError:
    code = compile("None.writelines([b'x'])", filename, "exec")
    try:
        exec(code, {})
    except AttributeError as exc:
        return exc
    raise AssertionError("no AttributeError")


def test_a_stream_closed_under_a_call_is_a_connection_error() -> None:
    """redis-py's asyncio cluster client can close a connection another task is using
    (during a failover): that call sees the server unreachable, as a typed error."""
    closed = _attribute_error_from(os.path.join(os.sep, "x", "redis", "asyncio", "connection.py"))
    wrapped = ops.wrap_error(closed, "redis://h")
    assert isinstance(wrapped, errors.ConnectionError)
    assert "closed while in use" in str(wrapped)
    bug = _attribute_error_from("app.py")
    with pytest.raises(AttributeError):
        ops.wrap_error(bug, "redis://h")
