"""Sync and async as one test body: :class:`Either` awaits whatever its object returns.

``kit`` (see conftest.py) is the sync or the async facade wrapped in ``Either``, so a test
written once as ``lock = await kit.lock("x")`` then ``assert await lock.acquire()`` runs
on ``Redkit`` (methods called directly) and on ``AsyncRedkit`` (awaited). What a method
returns is wrapped too when it is a capability object (a ``Lock``/``AsyncLock`` ...) or a
redis-py client, so ``await kit.client.get(key)`` works on both; plain results (data,
enums, dataclasses) come back as they are.

``threaded(kit)`` runs each call of a sync object in a thread of its own, so a test can
have many contenders (coroutines) block at once: threads on the sync facade, tasks on
the async one.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def _wrapped(value: Any) -> bool:
    kind = type(value)
    module = kind.__module__
    if module.startswith("redis."):
        return kind.__name__ in ("Redis", "RedisCluster")
    if not module.startswith("redkit."):
        return False
    name = kind.__name__
    twins = vars(sys.modules[module])
    return name.startswith("Async") or f"Async{name}" in twins


def either(value: Any, threads: bool = False) -> Any:
    """``value`` wrapped in :class:`Either` when it has methods a test awaits."""
    return Either(value, threads=threads) if _wrapped(value) else value


def threaded(value: Either) -> Either:
    """``value`` whose sync calls each run in a thread of their own (see the module doc)."""
    return Either(value.target, threads=True)


async def _in_thread(func: Any, *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)`` in a new thread (not a pool: blocked calls may be many)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, daemon=True).start()
    return await future


class Either:
    """A sync or an async object whose methods are all awaited (results wrapped alike)."""

    def __init__(self, target: Any, *, threads: bool = False) -> None:
        self.target = target
        self.threads = threads
        kind = type(target)
        self.is_async = kind.__name__.startswith("Async") or kind.__module__.startswith(
            "redis.asyncio"
        )

    def __repr__(self) -> str:
        return f"Either({self.target!r})"

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if not (inspect.ismethod(attribute) or inspect.isbuiltin(attribute)):
            return either(attribute, self.threads)
        return self._caller(attribute)

    def _caller(self, method: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.threads and not self.is_async:
                result = await _in_thread(method, *args, **kwargs)
            else:
                result = method(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return either(result, self.threads)

        return call

    async def __aenter__(self) -> Any:
        if hasattr(self.target, "__aenter__"):
            return either(await self.target.__aenter__(), self.threads)
        return await self._caller(self.target.__enter__)()

    async def __aexit__(self, *exc: Any) -> Any:
        if hasattr(self.target, "__aexit__"):
            return await self.target.__aexit__(*exc)
        return await self._caller(self.target.__exit__)(*exc)


def poll(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """``check()``'s first truthy value, polling until ``timeout`` (then AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(interval)


async def until(predicate: Any, seconds: float = 10.0, step: float = 0.01) -> None:
    """Poll ``predicate()`` (awaited when it returns an awaitable) until true, or fail.

    Sleeps with ``asyncio.sleep``, so an async facade's background tasks run meanwhile.
    """
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {seconds} s: {predicate!r}")
        await asyncio.sleep(step)


async def close(kit: Either) -> None:
    """Close the facade behind ``kit`` now (``make_kit`` would at teardown)."""
    await (kit.aclose() if kit.is_async else kit.close())
