"""The effects beyond Redis commands: user code, blocking waits, notes and observers."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from redkit import AsyncRedkit, Redkit, errors, ops
from redkit.config import Settings
from redkit.errors import ConfigError, DataError, ScriptError
from redkit.scripts import check, script


class Boom(Exception):
    pass


def load_then_store(key: str, loader: Any) -> ops.Flow[Any]:
    """A flow with user code between two Redis calls, cleaning up when the user code fails."""
    yield ops.Call("SET", f"{key}:lock", "1")
    try:
        value = yield ops.UserCall(loader, key)
    except BaseException:
        yield ops.Call("DEL", f"{key}:lock")
        raise
    yield ops.Call("SET", key, value)
    yield ops.Call("DEL", f"{key}:lock")
    return value


def test_user_call_runs_between_commands(rk: Redkit) -> None:
    key = rk.keys.group("test", "k").key()
    assert rk.run(load_then_store(key, lambda k: f"v:{k}")) == f"v:{key}"
    assert rk.client.get(key) == f"v:{key}".encode()


def test_user_code_errors_reach_the_flow_unwrapped(rk: Redkit) -> None:
    key = rk.keys.group("test", "k").key()

    def fail(_: str) -> str:
        raise FileNotFoundError("not a Redis error")  # an OSError: must not be wrapped

    with pytest.raises(FileNotFoundError):
        rk.run(load_then_store(key, fail))
    assert rk.client.exists(f"{key}:lock") == 0  # the flow cleaned up


async def test_async_user_call_awaits_and_threads(ark: AsyncRedkit) -> None:
    key = ark.keys.group("test", "k").key()

    async def coroutine(k: str) -> str:
        await asyncio.sleep(0)
        return "async"

    assert await ark.run(load_then_store(key, coroutine)) == "async"
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def blocking(_: str) -> str:
        seen.append(threading.get_ident())
        return "thread"

    def threaded(k: str) -> ops.Flow[Any]:
        return (yield ops.UserCall(blocking, k, thread=True))

    assert await ark.run(threaded(key)) == "thread"
    assert seen
    assert seen[0] != loop_thread


async def test_cancelled_user_code_lets_the_flow_clean_up(ark: AsyncRedkit) -> None:
    key = ark.keys.group("test", "k").key()
    started = asyncio.Event()

    async def slow(_: str) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(ark.run(load_then_store(key, slow)))
    await started.wait()
    assert await ark.client.exists(f"{key}:lock") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await ark.client.exists(f"{key}:lock") == 0


def test_wait_signal_wakes_on_push_and_times_out(rk: Redkit) -> None:
    key = rk.keys.group("test", "wake").key()
    assert rk.run(ops.wait_signal(key, 0.05)) is False
    pusher = threading.Timer(0.05, lambda: rk.client.rpush(key, "1"))
    pusher.start()
    try:
        assert rk.run(ops.wait_signal(key, 10)) is True
    finally:
        pusher.cancel()


async def test_200_lock_waiters_do_not_starve_a_pool_of_10(target_url: str, prefix: str) -> None:
    """Waits run on dedicated connections.

    On a cluster redis-py's asyncio pool (100 per node) fails a burst above its size at
    once, waits or not, so there the burst stays below it.
    """
    settings = Settings.from_env(url=target_url, prefix=prefix)
    cluster = "cluster" in target_url
    pool, count = (100, 90) if cluster else (10, 200)
    settings = Settings(**{**settings.__dict__, "max_connections": pool, "socket_timeout": 2.0})
    async with AsyncRedkit(settings=settings) as ark:
        holder = ark.lock("busy", ttl=30)
        assert await holder.acquire()
        waiters = [ark.lock("busy", ttl=30, timeout=30) for _ in range(count)]
        tasks = [asyncio.create_task(w.acquire()) for w in waiters]
        await asyncio.sleep(0)  # let them all start waiting
        # the shared pool still serves other calls while 200 waits block
        for _ in range(20):
            assert await asyncio.wait_for(ark.ping(), timeout=5)
        await holder.release()
        done = 0
        deadline = time.monotonic() + 60
        pending = set(tasks)
        while pending and time.monotonic() < deadline:
            finished, pending = await asyncio.wait(
                pending, timeout=5, return_when="FIRST_COMPLETED"
            )
            for task in finished:
                assert task.result() is True
                done += 1
                owner = waiters[tasks.index(task)]
                await owner.release()
        assert done == count


def test_observers_see_every_effect(rk: Redkit) -> None:
    events: list[ops.Event] = []
    remove = rk.observe(events.append)
    key = rk.keys.group("test", "k").key()
    rk.run(load_then_store(key, lambda k: "v"))

    def noted() -> ops.Flow[None]:
        yield ops.Note("test.note", {"x": 1})

    rk.run(noted())
    with pytest.raises(Exception):  # noqa: B017 - any redkit error; the event is the point
        rk.run(ops.command("INCR", key))  # "v" is not an integer
    remove()
    rk.run(ops.command("GET", key))
    names = [e.name for e in events]
    assert names[:4] == [
        "SET",
        "call test_observers_see_every_effect.<locals>.<lambda>",
        "SET",
        "DEL",
    ]
    assert events[4].name == "test.note"
    assert events[4].data == {"x": 1}
    assert events[5].name == "INCR"
    assert events[5].error is not None
    assert len(events) == 6  # nothing after remove()
    assert all(e.seconds >= 0 for e in events)


def test_a_failing_observer_does_not_break_calls(rk: Redkit) -> None:
    def broken(event: ops.Event) -> None:
        raise RuntimeError("observer bug")

    rk.observe(broken)
    assert rk.ping() is True


def test_misspelt_options_name_the_option(rk: Redkit) -> None:
    with pytest.raises(ConfigError, match=r"'ttll' \(did you mean 'ttl'\?\)"):
        rk.lock("x", ttll=5)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="near_mod"):
        rk.cache("x", near_mod="pubsub")  # type: ignore[call-arg]


def test_eval_checks_the_key_count() -> None:
    with pytest.raises(ConfigError, match="takes 2 keys, was given 1"):
        ops.Eval(script("lock_acquire"), ["only-one"], ["t", 1])


def test_status_codes_map_to_errors() -> None:
    assert check("s", [1, "ok"]) == [1, "ok"]
    with pytest.raises(DataError, match="not an integer"):
        check("s", -2)
    with pytest.raises(DataError):
        check("s", [-1, "x"])
    with pytest.raises(ScriptError, match="unknown status -99"):
        check("s", -99)


def test_includes_are_resolved_at_load() -> None:
    from redkit.scripts import _resolve

    resolved = _resolve(b"--!include _clock.lua\nreturn now_ms()\n", "t.lua")
    assert b"local function now_ms()" in resolved
    assert b"--!include" not in resolved
    with pytest.raises(ConfigError, match="only _-files"):
        _resolve(b"--!include lock_acquire-2.lua\n", "t.lua")


def test_a_snippet_included_twice_is_defined_once() -> None:
    from redkit.scripts import _resolve

    # _queue.lua includes _queue_core.lua itself
    resolved = _resolve(b"--!include _queue_core.lua\n--!include _queue.lua\nreturn 1\n", "t.lua")
    assert resolved.count(b"local function job_key(") == 1
    assert resolved.count(b"local function create_job(") == 1
    assert b"--!include" not in resolved


def test_connection_error_is_the_builtin_too() -> None:
    error = errors.ConnectionError("down")
    assert isinstance(error, OSError)
    with pytest.raises(OSError):
        raise error


def test_a_key_of_another_type_is_a_data_error(rk: Redkit) -> None:
    key = rk.keys.group("test", "hash").key()
    rk.run(ops.command("HSET", key, "f", "v"))
    with pytest.raises(DataError, match="another Redis type"):
        rk.run(ops.command("GET", key))


def test_clients_lists_the_pool_and_the_waits_client(rk: Redkit) -> None:
    assert rk.clients() == [rk.client]  # no wait has run yet
    rk.run(ops.wait_signal(rk.keys.group("test", "w").key(), 0.01))
    clients = rk.clients()
    assert len(clients) == 2  # a facade that made its client makes one for waits too
    assert clients[0] is rk.client
    assert clients[1] is not rk.client


def test_observers_see_the_with_timeout_siblings_too(rk: Redkit) -> None:
    fast = rk.with_timeout(2.0)
    events: list[ops.Event] = []
    remove = rk.observe(events.append)  # registered after the sibling was made
    fast.ping()
    assert [e.name for e in events] == ["PING"]
    assert list(rk.observers) == [events.append]
    remove()
    fast.ping()
    assert len(events) == 1
    assert list(rk.observers) == []


def test_an_observer_leaves_siblings_made_after_it(rk: Redkit) -> None:
    events: list[ops.Event] = []
    remove = rk.observe(events.append)
    fast = rk.with_timeout(3.0)  # made after: copies the observer
    fast.ping()
    assert len(events) == 1
    remove()
    fast.ping()
    assert len(events) == 1
