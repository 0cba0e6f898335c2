"""The counters of a cache namespace, kept by an observer of the cache's notes.

The cache's flows report what they decided as :class:`redkit.ops.Note` events named
``cache.<what>`` with the namespace as data (``Note("cache.hit", "products")``). Any
observer registered with ``rk.observe`` sees them (metrics, tracing); :class:`CacheStats`
is one such observer that counts the notes of one namespace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redkit.ops import Event

#: Note name -> the counter it increments.
NOTES = {
    "cache.hit": "hits",
    "cache.near_hit": "near_hits",
    "cache.miss": "misses",
    "cache.load": "loads",
    "cache.load_error": "load_errors",
    "cache.stale": "stale_serves",
    "cache.corrupt": "corrupt",
    "cache.error": "errors",
}


@dataclass
class CacheStats:
    """Counters of one cache namespace in this process, fed by the cache's notes.

    ``hits`` and ``near_hits`` served a fresh value (from Redis, from memory); ``misses``
    found nothing valid; ``loads`` ran the loader; ``load_errors`` counts loaders that
    raised; ``stale_serves`` served a value past its soft TTL (while another caller
    refreshed it, or because the loader failed); ``corrupt`` counts entries that redkit
    did not write (or that were damaged), replaced by ``get_or_set``; ``errors`` counts
    calls answered by ``on_error="open"`` because Redis was unavailable (or cooling down).
    """

    namespace: str = field(default="default", repr=False, compare=False)
    hits: int = 0
    near_hits: int = 0
    misses: int = 0
    loads: int = 0
    load_errors: int = 0
    stale_serves: int = 0
    corrupt: int = 0
    errors: int = 0

    def __call__(self, event: Event) -> None:
        """Count ``event`` if it is a note of this namespace (the observer protocol)."""
        counter = NOTES.get(event.name)
        if counter is not None and event.data == self.namespace:
            setattr(self, counter, getattr(self, counter) + 1)

    def snapshot(self) -> dict[str, int]:
        """The counters as a dict."""
        out = asdict(self)
        del out["namespace"]
        return out
