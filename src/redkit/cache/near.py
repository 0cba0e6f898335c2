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

:func:`endpoints` says where the listener connects: every master, with the client's (or
the settings') credentials, timeouts and TLS.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import redis
from redis.asyncio.connection import SSLConnection as AsyncSSLConnection
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection

from redkit import connection as rkconn
from redkit.cache.envelope import Entry
from redkit.errors import ConfigError

if TYPE_CHECKING:
    from redkit.config import Settings

log = logging.getLogger("redkit.cache")

_RECENT_MAX = 10_000
_CREDENTIAL_KEYS = ("username", "password", "db")
_TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
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


# --- where the listener connects -------------------------------------------------------


def endpoints(client: Any, settings: Settings) -> list[dict[str, Any]]:
    """Connection parameters of every master behind ``client`` (sync or async redis-py).

    Timeouts and TLS come from the client, else from ``settings``; on a cluster the
    masters are listed by a short-lived probe client with the same timeouts and TLS.
    """
    if not rkconn.is_cluster(client):
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        host, port = kwargs.get("host"), kwargs.get("port")
        locate = getattr(pool, "get_master_address", None)  # Sentinel: ask for the master
        if locate is not None and not inspect.iscoroutinefunction(locate):
            host, port = locate()
        return [_endpoint(kwargs, settings, host, port)]
    base = getattr(client, "connection_kwargs", None) or client.nodes_manager.connection_kwargs
    seeds = [(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()]
    return [_endpoint(base, settings, host, port) for host, port in masters(seeds, base, settings)]


def masters(
    seeds: Sequence[tuple[str, int]], base: dict[str, Any], settings: Settings
) -> list[tuple[str, int]]:
    """The (host, port) of every cluster master, asked of the first seed that answers."""
    options = {**_credentials(base), **_timeouts(base, settings), **probe_tls(base, settings)}
    for host, port in seeds:
        try:
            with redis.cluster.RedisCluster(host=host, port=port, **options) as probe:
                return [(n.host, n.port) for n in probe.get_primaries()]
        except (redis.RedisError, redis.exceptions.RedisClusterException, OSError) as exc:
            log.debug("near cache: cluster seed %s:%s did not answer (%s)", host, port, exc)
    raise redis.ConnectionError("no cluster node answered to list the masters")


def probe_tls(kwargs: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """TLS arguments for a redis-py client: on when the client or the settings use TLS."""
    if not _uses_tls(kwargs, settings):
        return {}
    files = {k: kwargs.get(k) or getattr(settings, k) for k in _TLS_FILES}
    return {"ssl": True, **{k: v for k, v in files.items() if v is not None}}


def _uses_tls(kwargs: dict[str, Any], settings: Settings) -> bool:
    cls = kwargs.get("connection_class")
    if kwargs.get("ssl") or any(kwargs.get(k) for k in _TLS_FILES):
        return True
    if isinstance(cls, type) and issubclass(cls, (SSLConnection, AsyncSSLConnection)):
        return True
    try:
        return settings.target().tls
    except ConfigError:  # nothing configured and the embedded server forbidden
        return False


def _credentials(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs[k] for k in _CREDENTIAL_KEYS if kwargs.get(k) is not None}


def _timeouts(kwargs: dict[str, Any], settings: Settings) -> dict[str, float]:
    return {
        "socket_connect_timeout": kwargs.get("socket_connect_timeout") or settings.connect_timeout,
        "socket_timeout": kwargs.get("socket_timeout") or settings.socket_timeout,
    }


def _endpoint(kwargs: dict[str, Any], settings: Settings, host: Any, port: Any) -> dict[str, Any]:
    out: dict[str, Any] = {**_credentials(kwargs), **_timeouts(kwargs, settings)}
    if "path" in kwargs:
        out.pop("socket_connect_timeout")
        return {**out, "path": kwargs["path"], "connection_class": UnixDomainSocketConnection}
    tls = probe_tls(kwargs, settings)
    out.update(host=host, port=port, connection_class=SSLConnection if tls else Connection)
    out.update({k: v for k, v in tls.items() if k != "ssl"})
    return out
