"""Cache fixtures: the sync and the async cache as parameters of one test."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.cache import AsyncCache, Cache


class Either:
    """A :class:`Cache` or an :class:`AsyncCache` whose methods are all awaited.

    So one test body covers both facades: ``await cache.get("k")`` calls the sync method
    directly and awaits the async one.
    """

    def __init__(self, cache: Cache | AsyncCache) -> None:
        self.cache = cache
        self.is_async = isinstance(cache, AsyncCache)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.cache, name)
        if not inspect.ismethod(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return call


@pytest.fixture(params=["sync", "async"])
def make_cache(
    request: pytest.FixtureRequest, rk: Redkit, ark: AsyncRedkit
) -> Callable[..., Either]:
    """Build a cache of this test's kind (sync or async): ``make_cache("ns", ttl=5)``."""
    facade: Redkit | AsyncRedkit = rk if request.param == "sync" else ark

    def factory(namespace: str, **options: Any) -> Either:
        return Either(facade.cache(namespace, **options))

    return factory
