"""The near cache: a bounded in-process LRU in front of Redis, kept correct by the server.

One listener per facade (:mod:`redkit.cache.listener`) holds one RESP3 connection per
master with ``CLIENT TRACKING ON BCAST PREFIX ...`` for the cache entry, namespace-version
and tag-version keys of the facade's prefix, so every write to those keys, by any client,
pushes an invalidation to every instance; it hands each near cache the keys of its
namespace. Where ``CLIENT TRACKING`` is unavailable, ``mode="pubsub"`` has redkit's own
writers publish the keys they change on a channel the listener subscribes to (writes that
bypass redkit are then not seen: use tracking where you can).

What it guarantees (see docs/cache.md for the full model):

* An entry is served from memory only while every listener connection is up and answered
  its last heartbeat within ``max_silence`` seconds; otherwise lookups go to Redis.
* On any disconnect the LRU and the version book are flushed before anything is served
  again, so entries whose invalidations might have been missed are never served.
* A read that raced with an invalidation never installs its (possibly older) result: each
  read remembers the invalidation sequence number it started at.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from redkit.cache.envelope import Entry

_RECENT_MAX = 10_000
Stamp = tuple[tuple[str, int | None], ...]


class Liveness:
    """Whether near caches may serve: shared by every near cache of one listener.

    ``live`` is True while every listener connection tracks; ``verified_until`` is the
    monotonic time until which the last heartbeat vouches for them, 0 while dark (so a
    lookup checks one number).
    """

    __slots__ = ("live", "verified_until")

    def __init__(self) -> None:
        self.live = False
        self.verified_until = 0.0


class NearCache:
    """The in-process tier: LRU of decoded entries + the versions they were checked against.

    Args:
        maxsize: the most entries kept; the least recently used go first.
        beta: the XFetch factor (entries near their soft expiry fall through to Redis).
        state: the listener's :class:`Liveness` (a new, dark one when omitted).
    """

    def __init__(self, maxsize: int, beta: float, state: Liveness | None = None) -> None:
        self.maxsize = maxsize
        self.beta = beta
        # key -> (entry, its stamp, the time before which it needs no expiry check)
        self._lru: OrderedDict[str, tuple[Entry, Stamp, float]] = OrderedDict()
        self._book: dict[str, int | None] = {}
        self._recent: dict[str, int] = {}
        self._lock = threading.Lock()
        self._seq = 0
        self._floor = 0
        self.state = Liveness() if state is None else state
        self.disconnects = 0

    # --- the request path ------------------------------------------------------------

    def lookup(self, key: str) -> Entry | None:
        """The fresh, verified entry of ``key``, or None (then ask Redis).

        Without the lock: every step is one atomic operation on a dict, and a lookup that
        races an invalidation is ordered before it, exactly as it would be with the lock
        (the push that triggers an invalidation is asynchronous anyway).
        """
        if time.monotonic() > self.state.verified_until:  # 0 while dark
            return None
        item = self._lru.get(key)
        if item is None:
            return None
        entry, stamp, quiet_until = item
        book = self._book
        for vkey, version in stamp:
            if book.get(vkey) != version:
                self._drop(key, item)
                return None
        now = time.time()
        if now >= quiet_until and not self._servable(entry, now):
            return None
        # (not contextlib.suppress: this is the near hit's path, and it costs more)
        try:  # noqa: SIM105
            self._lru.move_to_end(key)
        except KeyError:  # invalidated since the get: this lookup came first
            pass
        return entry

    def _servable(self, entry: Entry, now: float) -> bool:
        if (entry.hard_expiry and entry.hard_expiry <= now) or entry.stale(now):
            return False
        return not entry.refresh_early(now, self.beta)

    def _drop(self, key: str, item: tuple[Entry, Stamp, float]) -> None:
        with self._lock:
            if self._lru.get(key) is item:
                del self._lru[key]

    def sequence(self) -> int:
        """The invalidation count now; pass it to :meth:`store` after the read."""
        return self._seq

    def store(self, key: str, entry: Entry, stamp: Stamp, seq: int) -> None:
        """Keep ``entry`` unless ``key`` or a version it depends on changed since ``seq``.

        ``stamp`` is the (version key, version) pairs the entry was checked against.
        """
        if not self.state.live:
            return
        with self._lock:
            if seq < self._floor or self._recent.get(key, 0) > seq:
                return
            if any(self._recent.get(vkey, 0) > seq for vkey, _ in stamp):
                return
            self._book.update(stamp)
            self._lru[key] = (entry, stamp, entry.quiet_until(self.beta))
            self._lru.move_to_end(key)
            while len(self._lru) > self.maxsize:
                self._lru.popitem(last=False)

    def discard(self, key: str) -> None:
        """Forget ``key`` locally (this process wrote it; the push will follow)."""
        self.invalidate([key])

    def forget_versions(self, keys: Iterable[str]) -> None:
        """Forget versions locally (this process bumped them)."""
        self.invalidate(list(keys))

    def __len__(self) -> int:
        return len(self._lru)

    # --- the listener side -----------------------------------------------------------

    def invalidate(self, keys: Sequence[str] | None) -> None:
        """Drop ``keys`` (entries or versions); None drops everything (FLUSHDB, resync)."""
        with self._lock:
            self._seq += 1
            if keys is None:
                self._clear()
                return
            for key in keys:
                self._lru.pop(key, None)
                self._book.pop(key, None)
                self._recent[key] = self._seq
            if len(self._recent) > _RECENT_MAX:
                self._clear()

    def _clear(self) -> None:
        self._lru.clear()
        self._book.clear()
        self._recent.clear()
        self._floor = self._seq

    def reset(self, *, dropped: bool) -> None:
        """Flush, and refuse reads that started before now (``dropped``: count a disconnect).

        The listener calls it before going live (start from empty) and after going dark
        (entries whose invalidations might have been missed are never served).
        """
        with self._lock:
            self._seq += 1
            self._clear()
            if dropped:
                self.disconnects += 1

    @property
    def live(self) -> bool:
        """True while entries may be served from memory."""
        return self.state.live and time.monotonic() <= self.state.verified_until
