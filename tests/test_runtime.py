"""The runtime for long-running loops, against real servers that stop, restart and fail over."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from redkit import AsyncRedkit, Redkit, Settings, ops
from redkit.embedded import EmbeddedServer
from redkit.errors import ConfigError, RedisCommandError
from redkit.errors import ConnectionError as RedkitConnectionError
from redkit.runtime import (
    AsyncLoopContext,
    AsyncRuntime,
    Backoff,
    LoopContext,
    Runtime,
    classify,
)

SRC = Path(__file__).resolve().parents[1] / "src"
FAST = Backoff(base=0.01, cap=0.1)


def until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


async def auntil(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def quick(url: str, prefix: str) -> Settings:
    """Settings that notice a dead server in well under a second."""
    return Settings(url=url, prefix=prefix, retries=0, connect_timeout=0.3, socket_timeout=0.3)


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as srv:
        yield srv


# --- reconnect -------------------------------------------------------------------------


def test_a_loop_keeps_running_through_a_server_restart(server: EmbeddedServer, prefix: str) -> None:
    with Redkit(settings=quick(server.url, prefix)) as rk:
        rt = Runtime(rk, heartbeat=0.2, backoff=FAST)
        rt.add("counter", lambda ctx: rk.run(ops.command("INCR", "n")) and None)
        rt.start()
        try:
            until(lambda: rt.health().loops["counter"].steps > 5, what="steps")
            server.stop()
            until(lambda: rt.health().loops["counter"].state == "reconnecting", what="reconnect")
            assert rt.health().state == "reconnecting"
            assert "Connection" in (rt.health().loops["counter"].last_error or "")
            server.start()  # same port, empty
            until(lambda: rt.health().loops["counter"].state == "running", what="recovery")
            until(lambda: int(rk.client.get("n") or 0) > 5, what="work after the restart")
            until(lambda: rk.client.exists(rt.heartbeat_key) == 1, what="heartbeat rewritten")
        finally:
            assert rt.stop(deadline=5)
        assert rt.health().state == "stopped"


async def test_an_async_loop_keeps_running_through_a_server_restart(
    server: EmbeddedServer, prefix: str
) -> None:
    async with AsyncRedkit(settings=quick(server.url, prefix)) as ark:

        async def step(ctx: AsyncLoopContext) -> None:
            await ark.run(ops.command("INCR", "n"))

        rt = AsyncRuntime(ark, heartbeat=0.2, backoff=FAST)
        rt.add("counter", step)
        await rt.start()
        loop = lambda: rt.health().loops["counter"]  # noqa: E731
        await auntil(lambda: loop().steps > 5, what="steps")
        await asyncio.to_thread(server.stop)
        await auntil(lambda: loop().state == "reconnecting", what="reconnect")
        await asyncio.to_thread(server.start)
        await auntil(lambda: loop().state == "running", what="recovery")
        steps = loop().steps
        await auntil(lambda: loop().steps > steps + 5, what="work after the restart")
        assert await rt.stop(deadline=5)
        assert await ark.client.exists(rt.heartbeat_key) == 0


def test_readonly_after_a_failover_drops_the_pool_and_resumes(prefix: str) -> None:
    """The loop writes to a server that becomes a replica, then is promoted again."""
    with EmbeddedServer() as primary, EmbeddedServer() as node:
        rk = Redkit(settings=quick(node.url, prefix))
        with rk:
            ids: list[int] = []

            def step(ctx: LoopContext) -> None:
                ids.append(rk.run(ops.command("CLIENT", "ID")))
                rk.run(ops.command("SET", "k", "v"))

            rt = Runtime(rk, heartbeat=None, backoff=FAST)
            rt.add("writer", step)
            rt.start()
            try:
                until(lambda: rt.health().loops["writer"].steps > 2, what="writes")
                with node.client() as admin:
                    admin.execute_command("REPLICAOF", primary.host, str(primary.port))
                    until(lambda: rt.health().loops["writer"].state == "reconnecting")
                    before = ids[-1]
                    assert "read only" in (rt.health().loops["writer"].last_error or "")
                    admin.execute_command("REPLICAOF", "NO", "ONE")
                until(lambda: rt.health().loops["writer"].state == "running", what="recovery")
                assert ids[-1] != before, "the pooled connection was not dropped"
            finally:
                rt.stop(deadline=5)


async def test_an_async_loop_resumes_after_readonly(prefix: str) -> None:
    with EmbeddedServer() as primary, EmbeddedServer() as node, node.client() as admin:
        async with AsyncRedkit(settings=quick(node.url, prefix)) as ark:
            ids: list[int] = []

            async def step(ctx: AsyncLoopContext) -> None:
                ids.append(await ark.run(ops.command("CLIENT", "ID")))
                await ark.run(ops.command("SET", "k", "v"))

            rt = AsyncRuntime(ark, heartbeat=None, backoff=FAST)
            rt.add("writer", step)
            await rt.start()
            state = lambda: rt.health().loops["writer"].state  # noqa: E731
            await auntil(lambda: rt.health().loops["writer"].steps > 2, what="writes")
            admin.execute_command("REPLICAOF", primary.host, str(primary.port))
            await auntil(lambda: state() == "reconnecting", what="READONLY seen")
            before = ids[-1]
            admin.execute_command("REPLICAOF", "NO", "ONE")
            await auntil(lambda: state() == "running", what="recovery")
            assert ids[-1] != before, "the pooled connection was not dropped"
            assert await rt.stop(deadline=5)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (redis.ConnectionError("reset"), "unavailable"),
        (redis.TimeoutError("slow"), "unavailable"),
        (redis.BusyLoadingError("Redis is loading the dataset in memory"), "unavailable"),
        (
            redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
            "failover",
        ),
        (redis.exceptions.MasterDownError("Link with MASTER is down"), "unavailable"),
        (redis.exceptions.ClusterDownError("The cluster is down"), "unavailable"),
        (redis.exceptions.TryAgainError("Multiple keys request during rehashing"), "unavailable"),
        (RedkitConnectionError("Redis at x is unreachable"), "unavailable"),
        (RedisCommandError("READONLY You can't write against a read only replica."), "failover"),
        (RedisCommandError("LOADING Redis is loading"), "unavailable"),
        (
            redis.ResponseError(
                "UNBLOCKED force unblock from blocking operation, instance state changed "
                "(master -> replica?)"
            ),
            "failover",
        ),
        (RedisCommandError("WRONGTYPE Operation against a key"), "error"),
        (ValueError("a bug"), "error"),
    ],
)
def test_errors_are_classified(error: Exception, kind: str) -> None:
    assert classify(error) == kind


def test_a_wrapped_error_is_classified_by_its_cause(rk: Redkit) -> None:
    rk.run(ops.command("SET", "text", "abc"))
    with pytest.raises(RedisCommandError) as info:
        rk.run(ops.command("INCR", "text"))
    assert classify(info.value) == "error"
    wrapped = RedisCommandError("You can't write against a read only replica.")
    wrapped.__cause__ = redis.exceptions.ReadOnlyError("You can't write")
    assert classify(wrapped) == "failover"


def test_other_errors_are_logged_counted_and_retried(rk: Redkit) -> None:
    calls: list[int] = []

    def step(ctx: LoopContext) -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError("a bug in the handler")

    rt = Runtime(rk, heartbeat=None, backoff=FAST)
    rt.add("flaky", step)
    rt.start()
    until(lambda: len(calls) > 3, what="retries")
    assert rt.stop(deadline=5)
    health = rt.health().loops["flaky"]
    assert health.errors == 2
    assert health.last_error == "ValueError: a bug in the handler"
    assert health.last_error_at is not None


# --- drain and cancel ------------------------------------------------------------------


def test_drain_finishes_the_current_unit_then_stops(rk: Redkit) -> None:
    started, release = threading.Event(), threading.Event()
    units: list[str] = []

    def step(ctx: LoopContext) -> None:
        units.append("started")
        started.set()
        assert release.wait(10)  # a unit of work that outlives the stop request
        units.append("finished")

    rt = Runtime(rk, heartbeat=None)
    rt.add("worker", step)
    rt.start()
    assert started.wait(5)
    result: list[bool] = []
    stopper = threading.Thread(target=lambda: result.append(rt.stop(deadline=10)))
    stopper.start()
    until(lambda: rt.health().state == "draining", what="draining")
    assert rt.health().loops["worker"].state == "draining"
    release.set()
    stopper.join(10)
    assert result == [True]
    assert units == ["started", "finished"], "a unit was cut short or a new one started"
    assert rt.health().loops["worker"].state == "stopped"
    assert not rt.health().loops["worker"].cancelled


def test_the_deadline_cancels_a_thread_loop(rk: Redkit) -> None:
    entered, cleaned = threading.Event(), threading.Event()

    def step(ctx: LoopContext) -> None:
        entered.set()
        while True:  # ignores the stop request
            time.sleep(0.005)

    rt = Runtime(rk, heartbeat=None)
    rt.add("stuck", step, cleanup=cleaned.set)
    rt.start()
    assert entered.wait(5)
    began = time.monotonic()
    assert rt.stop(deadline=0.2) is False
    assert time.monotonic() - began < 2.0
    assert cleaned.is_set()
    health = rt.health().loops["stuck"]
    assert health.cancelled
    assert health.state == "stopped"


async def test_the_deadline_cancels_an_async_loop(ark: AsyncRedkit) -> None:
    entered, cleaned = asyncio.Event(), asyncio.Event()

    async def step(ctx: AsyncLoopContext) -> None:
        entered.set()
        await asyncio.sleep(3600)

    async def cleanup() -> None:
        cleaned.set()

    rt = AsyncRuntime(ark, heartbeat=None)
    rt.add("stuck", step, cleanup=cleanup)
    await rt.start()
    await asyncio.wait_for(entered.wait(), 5)
    assert await rt.stop(deadline=0.1) is False
    assert cleaned.is_set()
    assert rt.health().loops["stuck"].cancelled


async def test_async_drain_finishes_the_current_unit(ark: AsyncRedkit) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    units: list[str] = []

    async def step(ctx: AsyncLoopContext) -> None:
        units.append("started")
        started.set()
        await release.wait()
        units.append("finished")

    rt = AsyncRuntime(ark, heartbeat=None)
    rt.add("worker", step)
    await rt.start()
    await asyncio.wait_for(started.wait(), 5)
    stopping = asyncio.create_task(rt.stop(deadline=10))
    await auntil(lambda: rt.health().state == "draining", what="draining")
    release.set()
    assert await stopping
    assert units == ["started", "finished"]


def test_an_idle_loop_drains_at_once(rk: Redkit) -> None:
    rt = Runtime(rk, heartbeat=None)
    rt.add("idle", lambda ctx: ctx.wait(3600) and None)
    rt.start()
    began = time.monotonic()
    assert rt.stop(deadline=30)
    assert time.monotonic() - began < 1.0


# --- health and heartbeat ----------------------------------------------------------------


def test_health_moves_through_its_states(rk: Redkit) -> None:
    first, go = threading.Event(), threading.Event()

    def step(ctx: LoopContext) -> None:
        first.set()
        go.wait(10)
        ctx.wait(0.01)

    rt = Runtime(rk, heartbeat=None)
    rt.add("loop", step)
    assert rt.health().state == "starting"
    rt.start()
    assert first.wait(5)
    assert rt.health().loops["loop"].state == "starting"  # no unit finished yet
    go.set()
    until(lambda: rt.health().state == "running", what="running")
    since = rt.health().loops["loop"].since
    assert rt.stop(deadline=5)
    health = rt.health()
    assert health.state == "stopped"
    assert health.loops["loop"].state == "stopped"
    assert health.loops["loop"].since >= since
    assert health.started_at is not None


def test_the_heartbeat_lists_the_loops_and_is_gone_after_stop(rk: Redkit) -> None:
    rt = Runtime(rk, heartbeat=0.2)
    rt.add("emails", lambda ctx: ctx.wait(0.05) and None)
    rt.start()
    try:
        until(lambda: rk.client.exists(rt.heartbeat_key) == 1, what="the heartbeat key")
        beat = json.loads(rk.client.get(rt.heartbeat_key))
        assert beat["process"] == rt.process
        assert set(beat["loops"]) == {"emails", "heartbeat"}
        assert 0 < rk.client.pttl(rt.heartbeat_key) <= 600
        assert rt.heartbeat_key.startswith("{" + rk.keys.prefix + ":runtime}")
    finally:
        assert rt.stop(deadline=5)
    assert rk.client.exists(rt.heartbeat_key) == 0


# --- arguments and signals -----------------------------------------------------------------


def test_bad_arguments_raise_config_errors(rk: Redkit, ark: AsyncRedkit) -> None:
    rt = Runtime(rk, heartbeat=None)
    rt.add("a", lambda ctx: None)
    with pytest.raises(ConfigError):
        rt.add("a", lambda ctx: None)
    with pytest.raises(ConfigError):
        rt.add("heartbeat", lambda ctx: None)
    with pytest.raises(ConfigError):
        rt.add("b", "not callable")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        AsyncRuntime(ark).add("sync", lambda ctx: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError):
        Runtime(rk, heartbeat=0)
    with pytest.raises(ConfigError):
        Runtime(ark)  # a heartbeat needs a sync facade  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Backoff(base=0)
    rt.stop()
    with pytest.raises(ConfigError):
        rt.add("late", lambda ctx: None)


def test_no_signal_handler_is_installed_by_default(rk: Redkit) -> None:
    before = signal.getsignal(signal.SIGTERM)
    rt = Runtime(rk, heartbeat=None)
    rt.add("a", lambda ctx: ctx.wait(0.01) and None)
    rt.start()
    assert signal.getsignal(signal.SIGTERM) is before
    rt.stop()


WORKER = textwrap.dedent(
    """
    import sys, time
    from redkit import Redkit, ops
    from redkit.runtime import Runtime

    rk = Redkit(sys.argv[1], prefix=sys.argv[2])

    def step(ctx):
        rk.run(ops.command("INCR", sys.argv[2] + ":started"))
        time.sleep(0.2)  # work that must not be cut short by SIGTERM
        rk.run(ops.command("INCR", sys.argv[2] + ":finished"))

    rt = Runtime(rk, heartbeat=float(sys.argv[3]))
    rt.add("worker", step)
    rt.start()
    rt.install_signal_handlers()
    print(rt.heartbeat_key, flush=True)
    rt.join()
    print("stopped", rt.health().state, rt.health().loops["worker"].cancelled, flush=True)
    """
)


AWORKER = textwrap.dedent(
    """
    import asyncio, sys
    from redkit import AsyncRedkit, ops
    from redkit.runtime import AsyncRuntime

    async def main():
        async with AsyncRedkit(sys.argv[1], prefix=sys.argv[2]) as ark:
            async def step(ctx):
                await ark.run(ops.command("INCR", sys.argv[2] + ":started"))
                await asyncio.sleep(0.2)  # work that must not be cut short by SIGTERM
                await ark.run(ops.command("INCR", sys.argv[2] + ":finished"))

            rt = AsyncRuntime(ark, heartbeat=float(sys.argv[3]))
            rt.add("worker", step)
            await rt.start()
            rt.install_signal_handlers()
            print(rt.heartbeat_key, flush=True)
            await rt.join()
            health = rt.health()
            print("stopped", health.state, health.loops["worker"].cancelled, flush=True)

    asyncio.run(main())
    """
)


def _worker(url: str, prefix: str, heartbeat: float, script: str = WORKER) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    argv = [sys.executable, "-c", script, url, prefix, str(heartbeat)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, text=True)


def _reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.mark.parametrize("script", [WORKER, AWORKER], ids=["threads", "asyncio"])
def test_sigterm_drains_a_worker_process(standalone_url: str, prefix: str, script: str) -> None:
    proc = _worker(standalone_url, prefix, 0.5, script)
    try:
        assert proc.stdout is not None
        key = proc.stdout.readline().strip()
        # the test's own counters: a worker killed mid-unit in another test leaves its own
        started, finished = f"{prefix}:started", f"{prefix}:finished"
        with Redkit(standalone_url, prefix=prefix) as rk:
            until(lambda: int(rk.client.get(finished) or 0) >= 1, what="a finished unit")
            until(lambda: rk.client.exists(key) == 1, what="the worker's heartbeat")
            until(lambda: rk.client.get(started) != rk.client.get(finished), what="mid-unit")
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=10)
            assert proc.returncode == 0
            assert out.split() == ["stopped", "stopped", "False"]
            assert rk.client.get(started) == rk.client.get(finished), "a unit was cut short"
            assert rk.client.exists(key) == 0
    finally:
        _reap(proc)


def test_the_heartbeat_of_a_killed_process_expires(standalone_url: str, prefix: str) -> None:
    proc = _worker(standalone_url, prefix, 0.2)
    try:
        assert proc.stdout is not None
        key = proc.stdout.readline().strip()
        with Redkit(standalone_url, prefix=prefix) as rk:
            until(lambda: rk.client.exists(key) == 1, what="the worker's heartbeat")
            proc.kill()  # no drain, no delete: only the TTL is left
            proc.wait()
            assert rk.client.exists(key) == 1
            until(lambda: rk.client.exists(key) == 0, timeout=2, what="the key to expire")
    finally:
        _reap(proc)


def test_the_two_flavours_have_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(Runtime) == public(AsyncRuntime)
    assert public(LoopContext) == public(AsyncLoopContext)


def test_a_step_may_stop_its_own_runtime(rk: Redkit) -> None:
    outcome: list[bool] = []
    rt = Runtime(rk, heartbeat=None)
    rt.add("once", lambda ctx: outcome.append(rt.stop(deadline=5)))
    rt.start()
    assert rt.join(5)
    assert outcome == [True]
    until(lambda: rt.health().loops["once"].state == "stopped", what="the loop to end")


async def test_an_async_heartbeat_lists_the_loops(ark: AsyncRedkit) -> None:
    async def step(ctx: AsyncLoopContext) -> None:
        await ctx.wait(0.05)

    rt = AsyncRuntime(ark, heartbeat=0.2)
    rt.add("emails", step)
    await rt.start()
    deadline = time.monotonic() + 5
    while not await ark.client.exists(rt.heartbeat_key):
        assert time.monotonic() < deadline, "no heartbeat"
        await asyncio.sleep(0.005)
    beat = json.loads(await ark.client.get(rt.heartbeat_key))
    assert set(beat["loops"]) == {"emails", "heartbeat"}
    assert await rt.stop(deadline=5)
    assert await ark.client.exists(rt.heartbeat_key) == 0


def test_the_interrupt_hook_cuts_a_blocking_read_short(rk: Redkit) -> None:
    reader, writer = socket.socketpair()
    with reader, writer:

        def step(ctx: LoopContext) -> None:
            reader.recv(1)  # blocks in C until something arrives

        rt = Runtime(rk, heartbeat=None)
        rt.add("blocked", step, interrupt=lambda: writer.send(b"!"))
        rt.start()
        began = time.monotonic()
        assert rt.stop(deadline=30)  # drained, not cancelled
        assert time.monotonic() - began < 1.0
