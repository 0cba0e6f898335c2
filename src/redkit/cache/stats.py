"""The counters of a cache namespace."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class CacheStats:
    """Counters of one cache (one namespace) in this process.

    ``hits`` and ``near_hits`` served a fresh value (from Redis, from memory); ``misses``
    found nothing valid; ``loads`` ran the loader; ``load_errors`` counts loaders that
    raised; ``stale_serves`` served a value past its soft TTL (while another caller
    refreshed it, or because the loader failed).
    """

    hits: int = 0
    near_hits: int = 0
    misses: int = 0
    loads: int = 0
    load_errors: int = 0
    stale_serves: int = 0

    def snapshot(self) -> dict[str, int]:
        """The counters as a dict."""
        return asdict(self)
