"""Auto-pipelining in the async driver: batching, ordering, error isolation, cancellation,
a killed connection, and what never goes through a lane."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from redkit import AsyncRedkit, Settings, autopipe, errors, ops
from redkit.scripts import Script


def _script(name: str, text: str) -> Script:
    source = text.encode()
    return Script(name, source, hashlib.sha1(source).hexdigest(), 1)


ECHO = _script("test_echo", "return ARGV[1]")
FAIL = _script("test_fail", "return redis.error_reply('ERR asked to fail')")
CALLS = 1000


def _pipeline(ark: AsyncRedkit) -> autopipe.AutoPipeline:
    state = ark._loops.current()
    assert state is not None
    assert state.pipeline is not None
    return state.pipeline


async def _until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.001)


async def _mixed(ark: AsyncRedkit, tag: str, calls: int) -> None:
    """``calls`` concurrent flows, each checking its own replies; some fail, some are
    cancelled while their command is in flight."""
    key = ark.keys.group("pipe", tag)
    await ark.run(ops.command("SET", key.key("str"), "not a number"))

    async def one(i: int) -> Any:
        kind, own = i % 5, ark.keys.group("pipe", tag, i)  # on a cluster: spread over nodes
        if kind == 0:  # write then read back this flow's own value
            await ark.run(ops.command("SET", own.key("k"), f"v{i}"))
            return await ark.run(ops.command("GET", own.key("k")))
        if kind == 1:  # an error reply for this call only
            return await ark.run(ops.command("INCR", key.key("str")))
        if kind == 2:
            return await ark.run(ops.evaluate(ECHO, [own.key("k")], [f"echo{i}"]))
        if kind == 3:
            return await ark.run(ops.evaluate(FAIL, [own.key("k")]))
        return await ark.run(ops.command("INCR", own.key("k")))  # some cancelled below

    tasks = [asyncio.create_task(one(i)) for i in range(calls)]
    await asyncio.sleep(0)  # every task queued its first command ...
    await asyncio.sleep(0)  # ... and the lanes wrote them
    for i in range(4, calls, 10):  # half of the fifth kind, while their INCR is in flight
        tasks[i].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for i, result in enumerate(results):
        kind = i % 5
        if kind == 0:
            assert result == f"v{i}".encode(), (i, result)
        elif kind in (1, 3):
            assert isinstance(result, errors.RedisCommandError), (i, result)
            assert ("asked to fail" in str(result)) == (kind == 3)
        elif kind == 2:
            assert result == f"echo{i}".encode(), (i, result)
        elif i % 10 == 4:
            assert isinstance(result, asyncio.CancelledError), (i, result)
        else:
            assert result == 1, (i, result)


async def test_concurrent_mixed_calls_each_get_their_own_reply(
    target_url: str, prefix: str
) -> None:
    async with AsyncRedkit(target_url, prefix=prefix) as ark:
        await ark.ping()
        await _mixed(ark, "first", CALLS)
        pipeline = _pipeline(ark)
        assert pipeline.commands >= CALLS  # they went through the lanes ...
        assert pipeline.writes * 5 < pipeline.commands  # ... many to a write
        assert pipeline.lanes() <= (3 if ark.cluster else 1)
        # the stream stayed in step: a second round on the same lanes checks every reply
        await _mixed(ark, "second", CALLS)


async def test_cancelled_calls_in_flight_never_shift_the_replies(
    standalone_url: str, prefix: str
) -> None:
    async with AsyncRedkit(standalone_url, prefix=prefix) as ark:
        key = ark.keys.group("pipe")
        await ark.ping()
        pipeline = _pipeline(ark)
        # hold the lane's writes on the server, so that every call below is in flight
        await ark.client.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        try:
            tasks = [
                asyncio.create_task(ark.run(ops.command("SET", key.key(f"k{i}"), i)))
                for i in range(200)
            ]
            await _until(lambda: sum(lane.inflight.__len__() for lane in pipeline._all) == 200)
            for task in tasks[::2]:
                task.cancel()
        finally:
            await ark.client.execute_command("CLIENT", "UNPAUSE")
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results[::2])
        assert results[1::2] == [True] * 100
        gets = [ark.run(ops.command("GET", key.key(f"k{i}"))) for i in range(200)]
        assert await asyncio.gather(*gets) == [str(i).encode() for i in range(200)]


async def _in_flight_then_kill(ark: AsyncRedkit, calls: int) -> list[Any]:
    """``calls`` SETs held on the server by a write pause, their connection killed."""
    key = ark.keys.group("kill")
    await ark.ping()
    pipeline = _pipeline(ark)
    await ark.client.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
    try:
        tasks = [
            asyncio.create_task(ark.run(ops.command("SET", key.key(f"k{i}"), i)))
            for i in range(calls)
        ]
        await _until(lambda: sum(len(lane.inflight) for lane in pipeline._all) == calls)
        (lane,) = [lane for lane in pipeline._all if lane.inflight]
        host, port = lane._transport.get_extra_info("sockname")[:2]
        killed = await ark.client.execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")
        assert killed
    finally:
        await ark.client.execute_command("CLIENT", "UNPAUSE")
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_killed_connection_fails_only_the_calls_in_flight(
    standalone_url: str, prefix: str
) -> None:
    settings = Settings(url=standalone_url, prefix=prefix, retries=0)
    async with AsyncRedkit(settings=settings) as ark:
        results = await _in_flight_then_kill(ark, 100)
        assert all(isinstance(r, errors.ConnectionError) for r in results), results[:3]
        # the next calls succeed, on a new lane
        key = ark.keys.group("kill")
        replies = await asyncio.gather(
            *(ark.run(ops.command("SET", key.key(f"n{i}"), i)) for i in range(100))
        )
        assert replies == [True] * 100
        assert _pipeline(ark).lanes() == 1


async def test_a_killed_connection_is_retried_when_the_client_retries(
    standalone_url: str, prefix: str
) -> None:
    async with AsyncRedkit(standalone_url, prefix=prefix) as ark:  # retries=3 by default
        results = await _in_flight_then_kill(ark, 100)
        assert results == [True] * 100


async def test_noscript_is_handled_per_call(target_url: str, prefix: str) -> None:
    async with AsyncRedkit(target_url, prefix=prefix) as ark:
        fresh = _script(f"test_fresh_{prefix}", f"return '{prefix}' .. ARGV[1]")
        key = ark.keys.group("noscript")
        flows = [ark.run(ops.evaluate(fresh, [key.key(f"k{i}")], [i])) for i in range(300)]
        assert await asyncio.gather(*flows) == [f"{prefix}{i}".encode() for i in range(300)]


async def test_a_lone_caller_is_written_at_once(standalone_url: str, prefix: str) -> None:
    async with AsyncRedkit(standalone_url, prefix=prefix) as ark:
        await ark.ping()
        pipeline = _pipeline(ark)
        writes = pipeline.writes
        for _ in range(20):
            await ark.ping()
        assert pipeline.writes == writes + 20  # one write per call: nothing waited for company


async def test_blocking_commands_and_batches_never_go_through_a_lane(
    standalone_url: str, prefix: str
) -> None:
    async with AsyncRedkit(standalone_url, prefix=prefix) as ark:
        key = ark.keys.group("never")
        await ark.ping()
        pipeline = _pipeline(ark)
        sent = pipeline.commands
        blpop = asyncio.create_task(ark.run(ops.command("BLPOP", key.key("list"), 60)))
        batch = await ark.run(
            _batch(ops.Batch([ops.Call("SET", key.key("a"), 1), ops.Call("GET", key.key("a"))]))
        )
        assert batch == [True, b"1"]
        assert pipeline.commands == sent  # neither the wait nor the batch
        # a GET behind the blocked BLPOP is answered at once (queued behind it, it would
        # wait the minute out): the wait has its own connection
        started = time.monotonic()
        assert await ark.run(ops.command("GET", key.key("a"))) == b"1"
        assert time.monotonic() - started < 10
        assert not blpop.done()
        assert pipeline.commands == sent + 1
        await ark.run(ops.command("RPUSH", key.key("list"), "x"))  # ends the wait
        assert (await asyncio.wait_for(blpop, 10))[1] == b"x"


def _batch(batch: ops.Batch) -> ops.Flow[Any]:
    return (yield batch)


async def test_auto_pipelining_can_be_switched_off(
    standalone_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(url=standalone_url, prefix=prefix, auto_pipeline=False)
    async with AsyncRedkit(settings=settings) as ark:
        assert await ark.ping()
        state = ark._loops.current()
        assert state is not None
        assert state.pipeline is None
    monkeypatch.setenv("REDKIT_AUTO_PIPELINE", "0")
    assert Settings.from_env().auto_pipeline is False


async def _gather_each(make: Callable[[int], Awaitable[Any]], count: int) -> list[Any]:
    return list(await asyncio.gather(*(make(i) for i in range(count))))


async def test_a_closed_facade_leaves_no_lane_open(standalone_url: str, prefix: str) -> None:
    ark = AsyncRedkit(standalone_url, prefix=prefix)
    assert await _gather_each(lambda i: ark.ping(), 50) == [True] * 50
    pipeline = _pipeline(ark)
    assert pipeline.lanes() == 1
    await ark.aclose()
    assert pipeline.lanes() == 0


def test_a_lane_packs_commands_as_redis_py_does() -> None:
    from redis.asyncio.connection import Connection
    from redis.exceptions import DataError

    conn = Connection()
    pack = autopipe._packer(conn)
    cases: list[tuple[Any, ...]] = [
        ("SET", "k", "é\u2603"), ("SET", "k", b"\x00\xff"), ("SET", "k", 0.1),
        ("SET", "k", -7), ("SET", "k", 2**70), ("SET", "k", float("inf")),
        ("EVALSHA", "a" * 40, 1, "k", memoryview(b"ab"), 1e300), ("CONFIG GET", "maxmemory"),
    ]  # fmt: skip
    for args in cases:
        assert b"".join(pack(*args)) == b"".join(conn.pack_command(*args)), args
    for bad in (True, None):  # redis-py's own error, as without hiredis
        with pytest.raises(DataError):
            pack("SET", "k", bad)
    with pytest.raises(UnicodeEncodeError):
        pack("SET", "k", "\ud800")
