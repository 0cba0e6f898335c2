"""A blocking wait with a script behind it (``ops.Block(..., then=...)``): the server runs
the script the moment the wait ends, on the wait's own connection, and the reply is the
pair of both replies."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tests.flavours import Either, poll

from redkit import AsyncRedkit, Redkit, ops
from redkit.embedded import EmbeddedServer
from redkit.errors import RedisCommandError
from redkit.scripts import Script


def count_script(body: str = "return redis.call('LLEN', KEYS[1])") -> Script:
    """A script no server has seen (its first EVALSHA meets NOSCRIPT)."""
    source = f"-- {secrets.token_hex(8)}\n{body}".encode()
    return Script("test_count", source, hashlib.sha1(source).hexdigest(), 1)


def pop_then(key: str, then: ops.Eval, seconds: float = 5.0) -> ops.Flow[Any]:
    return (yield ops.Block(lambda s: ("BLPOP", key, round(s, 3)), seconds, then=then))


@pytest.fixture
def own_url() -> Iterator[str]:
    """A server of this test's own: the tests below count its blocked clients, and other
    tests' waits on the shared server would count too."""
    with EmbeddedServer() as server:
        yield server.url


async def test_the_script_runs_after_the_wait(kit: Either) -> None:
    key = kit.keys.group("test", "then").key("list")
    script = count_script()
    await kit.client.rpush(key, "a", "b")
    popped, left = await kit.run(pop_then(key, ops.Eval(script, [key])))  # NOSCRIPT: loaded
    assert popped[1] == b"a"
    assert left == 1
    popped, left = await kit.run(pop_then(key, ops.Eval(script, [key])))  # EVALSHA now
    assert popped[1] == b"b"
    assert left == 0
    # a wait that times out runs the script too
    assert await kit.run(pop_then(key, ops.Eval(script, [key]), 0.05)) == (None, 0)


async def test_the_scripts_error_reply_is_a_value(kit: Either) -> None:
    key = kit.keys.group("test", "then").key("list")
    await kit.client.rpush(key, "a")
    failing = count_script("return redis.error_reply('BOOM no luck')")
    popped, error = await kit.run(pop_then(key, ops.Eval(failing, [key])))
    assert popped[1] == b"a"
    assert isinstance(error, RedisCommandError)
    assert "BOOM" in str(error)


async def test_observers_see_the_wait_then_the_script(kit: Either) -> None:
    key = kit.keys.group("test", "then").key("list")
    await kit.client.rpush(key, "a")
    seen: list[ops.Event] = []
    await kit.observe(seen.append)
    then = ops.Eval(count_script(), [key])
    await kit.run(pop_then(key, then))
    assert [e.name for e in seen] == ["BLPOP", "script test_count"]
    assert seen[1].effect is then
    assert seen[1].seconds == 0.0
    assert seen[1].error is None
    # the script's error reply is the script's event's error (the wait itself went well)
    await kit.client.rpush(key, "b")
    failing = ops.Eval(count_script("return redis.error_reply('BOOM no luck')"), [key])
    await kit.run(pop_then(key, failing))
    assert seen[2].error is None
    assert isinstance(seen[3].error, RedisCommandError)


def test_a_push_while_waiting_runs_the_script_at_the_wake_up(own_url: str, prefix: str) -> None:
    with Redkit(own_url, prefix=prefix) as rk:
        key = rk.keys.group("test", "then").key("list")
        replies: list[Any] = []
        waiter = threading.Thread(
            target=lambda: replies.append(rk.run(pop_then(key, ops.Eval(count_script(), [key]))))
        )
        waiter.start()
        try:
            poll(lambda: int(rk.client.info("clients")["blocked_clients"]) >= 1)
            rk.client.rpush(key, "a", "b", "c")
        finally:
            waiter.join(10)
        ((popped, left),) = replies
        assert popped[1] == b"a"
        assert left == 2


async def test_a_cancelled_wait_never_runs_its_script(own_url: str, prefix: str) -> None:
    async with AsyncRedkit(own_url, prefix=prefix) as ark:
        key = ark.keys.group("test", "then").key("list")
        ran = ark.keys.group("test", "then").key("ran")
        then = ops.Eval(count_script(f"return redis.call('INCR', '{ran}')"), [key])
        wait = asyncio.ensure_future(ark.run(pop_then(key, then)))
        await apoll(lambda: blocked(ark), True)
        wait.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await wait
        await apoll(lambda: blocked(ark), False)  # the server dropped the waiting client
        await ark.client.rpush(key, "a", "b")
        assert await ark.client.get(ran) is None  # the script behind the wait never ran
        # the next wait gets a sound connection: its own replies, in order
        popped, count = await ark.run(pop_then(key, then))
        assert popped[1] == b"a"
        assert count == 1


async def blocked(ark: AsyncRedkit) -> bool:
    return int((await ark.client.info("clients"))["blocked_clients"]) > 0


async def apoll(check: Any, want: bool, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await check() is not want:
        assert asyncio.get_running_loop().time() < deadline, "not within the deadline"
        await asyncio.sleep(0.01)
