"""Cache fixtures: the sync and the async cache as parameters of one test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tests.flavours import Either

from redkit import AsyncRedkit, Redkit

__all__ = ["Either", "make_cache"]


@pytest.fixture
def make_cache(kit: Either) -> Callable[..., Either]:
    """Build a cache of this test's flavour (sync or async): ``make_cache("ns", ttl=5)``."""
    facade: Redkit | AsyncRedkit = kit.target

    def factory(namespace: str, **options: Any) -> Either:
        return Either(facade.cache(namespace, **options))

    return factory
