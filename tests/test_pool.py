"""A burst of callers beyond the pool's size waits for a connection instead of failing."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from redkit import AsyncRedkit, Redkit, Settings, ops

BURST = 12


def test_sync_burst_beyond_max_connections_waits(standalone_url: str, prefix: str) -> None:
    settings = Settings(url=standalone_url, prefix=prefix, max_connections=2)
    with Redkit(settings=settings) as rk, ThreadPoolExecutor(BURST) as pool:
        # each call holds its connection for 50 ms, so most callers must wait for one
        replies = list(
            pool.map(lambda i: rk.run(ops.command("BLPOP", f"{prefix}:{i}", 0.05)), range(BURST))
        )
    assert replies == [None] * BURST


async def test_async_burst_beyond_max_connections_waits(standalone_url: str, prefix: str) -> None:
    settings = Settings(url=standalone_url, prefix=prefix, max_connections=2)
    async with AsyncRedkit(settings=settings) as ark:
        replies = await asyncio.gather(
            *(ark.run(ops.command("BLPOP", f"{prefix}:{i}", 0.05)) for i in range(BURST))
        )
    assert replies == [None] * BURST


async def test_async_waiter_times_out_with_a_clear_error(standalone_url: str, prefix: str) -> None:
    from redkit.errors import ConnectionError as RedkitConnectionError

    settings = Settings(  # without auto-pipelining, every command takes a pool connection
        url=standalone_url,
        prefix=prefix,
        max_connections=1,
        socket_timeout=0.5,
        auto_pipeline=False,
    )
    async with AsyncRedkit(settings=settings) as ark:
        pool = ark.client.connection_pool
        held = await pool.get_connection()  # the only connection, held by "someone"
        try:
            with pytest.raises(RedkitConnectionError, match="no free connection"):
                await ark.run(ops.command("PING"))
        finally:
            await pool.release(held)
        assert await ark.ping()  # and the released connection serves the next caller


async def test_a_cancelled_waiter_passes_its_wake_up_on(standalone_url: str, prefix: str) -> None:
    """A release that woke a waiter which was cancelled meanwhile still serves the next one."""
    settings = Settings(url=standalone_url, prefix=prefix, max_connections=1, socket_timeout=5)
    async with AsyncRedkit(settings=settings) as ark:
        pool = ark.client.connection_pool
        held = await pool.get_connection()
        first = asyncio.create_task(pool.get_connection())
        second = asyncio.create_task(pool.get_connection())
        for _ in range(100):  # until both are queued behind the held connection
            if len(pool._waiters) == 2:
                break
            await asyncio.sleep(0)
        assert len(pool._waiters) == 2
        await pool.release(held)  # hands the slot to `first` ...
        first.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        connection = await asyncio.wait_for(second, timeout=2)  # not after the next release
        await pool.release(connection)


def test_sync_waiter_times_out_with_a_clear_error(standalone_url: str, prefix: str) -> None:
    from redkit.errors import ConnectionError as RedkitConnectionError

    settings = Settings(url=standalone_url, prefix=prefix, max_connections=1, socket_timeout=0.5)
    with Redkit(settings=settings) as rk:
        pool = rk.client.connection_pool
        held = pool.get_connection()  # the only connection, held by another thread
        try:
            with pytest.raises(RedkitConnectionError, match="no free connection"):
                rk.run(ops.command("PING"))
        finally:
            pool.release(held)
        assert rk.ping()  # and the released connection serves the next caller
