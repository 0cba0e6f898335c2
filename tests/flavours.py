"""Sync and async as one test body: :class:`Either` awaits whatever its object returns.

``kit`` (see conftest.py) is the sync or the async facade wrapped in ``Either``, so a test
written once as ``lock = await kit.lock("x")`` then ``assert await lock.acquire()`` runs
on ``Redkit`` (methods called directly) and on ``AsyncRedkit`` (awaited). What a method
returns is wrapped too when it is a capability object (a ``Lock``/``AsyncLock`` ...) or a
redis-py client, so ``await kit.client.get(key)`` works on both; plain results (data,
enums, dataclasses) come back as they are.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
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


def either(value: Any) -> Any:
    """``value`` wrapped in :class:`Either` when it has methods a test awaits."""
    return Either(value) if _wrapped(value) else value


class Either:
    """A sync or an async object whose methods are all awaited (results wrapped alike)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        kind = type(target)
        self.is_async = kind.__name__.startswith("Async") or kind.__module__.startswith(
            "redis.asyncio"
        )

    def __repr__(self) -> str:
        return f"Either({self.target!r})"

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.target, name)
        if not (inspect.ismethod(attribute) or inspect.isbuiltin(attribute)):
            return either(attribute)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return either(result)

        return call

    async def __aenter__(self) -> Any:
        if hasattr(self.target, "__aenter__"):
            return either(await self.target.__aenter__())
        return either(self.target.__enter__())

    async def __aexit__(self, *exc: Any) -> Any:
        if hasattr(self.target, "__aexit__"):
            return await self.target.__aexit__(*exc)
        return self.target.__exit__(*exc)


async def until(predicate: Any, seconds: float = 5.0, step: float = 0.01) -> None:
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
