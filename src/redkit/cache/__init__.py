"""Caching: cache-aside that survives stampedes, O(1) invalidation, an optional near cache.

See :class:`Cache` / :class:`AsyncCache` (built with ``rk.cache(...)`` / ``ark.cache(...)``)
and docs/cache.md for the guarantees.
"""

from __future__ import annotations

from redkit.cache.cache import AsyncCache, Cache
from redkit.cache.stats import CacheStats

__all__ = ["AsyncCache", "Cache", "CacheStats"]
