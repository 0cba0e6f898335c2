"""The near cache: a bounded in-process LRU in front of Redis, kept correct by the server.

A listener thread holds one RESP3 connection per master with ``CLIENT TRACKING ON BCAST
PREFIX ...`` for the namespace's entry, namespace-version and tag-version keys, so every
write to those keys, by any client, pushes an invalidation to every instance. Where
``CLIENT TRACKING`` is unavailable, ``mode="pubsub"`` has redkit's own writers publish the
keys they change on a channel the listener subscribes to (writes that bypass redkit are
then not seen: use tracking where you can).

What it guarantees (see docs/cache.md for the full model):

* An entry is served from memory only while every listener connection is up and answered
  its last heartbeat within ``max_silence`` seconds; otherwise lookups go to Redis.
* On any disconnect the LRU and the version book are flushed before anything is served
  again, so entries whose invalidations might have been missed are never served.
* A read that raced with an invalidation never installs its (possibly older) result: each
  read remembers the invalidation sequence number it started at.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection

from redkit import connection as rkconn
from redkit.cache.envelope import Entry

log = logging.getLogger("redkit.cache")

_RECENT_MAX = 10_000
_CREDENTIAL_KEYS = ("username", "password", "db", "socket_connect_timeout")
_RECONNECT_DELAY = 0.2
Stamp = tuple[tuple[str, int | None], ...]


class NearCache:
    """The in-process tier: LRU of decoded entries + the versions they were checked against.

    Args:
        maxsize: the most entries kept; the least recently used go first.
        beta: the XFetch factor (entries near their soft expiry fall through to Redis).
    """

    def __init__(self, maxsize: int, beta: float) -> None:
        self.maxsize = maxsize
        self.beta = beta
        # key -> (entry, its stamp, the time before which it needs no expiry check)
        self._lru: OrderedDict[str, tuple[Entry, Stamp, float]] = OrderedDict()
        self._book: dict[str, int | None] = {}
        self._recent: dict[str, int] = {}
        self._lock = threading.Lock()
        self._seq = 0
        self._floor = 0
        self._live = False
        self._verified_until = 0.0
        self.disconnects = 0

    # --- the request path ------------------------------------------------------------

    def lookup(self, key: str) -> Entry | None:
        """The fresh, verified entry of ``key``, or None (then ask Redis).

        Without the lock: every step is one atomic operation on a dict, and a lookup that
        races an invalidation is ordered before it, exactly as it would be with the lock
        (the push that triggers an invalidation is asynchronous anyway).
        """
        if not self._live or time.monotonic() > self._verified_until:
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
        if not self._live:
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

    def go_live(self, max_silence: float) -> None:
        """All listener connections track: start from empty and serve from memory."""
        with self._lock:
            self._seq += 1
            self._clear()
            self._verified_until = time.monotonic() + max_silence
            self._live = True

    def go_dark(self) -> None:
        """A listener connection dropped: flush, and serve nothing until resynced."""
        with self._lock:
            self._live = False
            self._seq += 1
            self._clear()
            self.disconnects += 1

    def heard(self, until: float) -> None:
        """A heartbeat answered: memory stays trustworthy until ``until`` (monotonic)."""
        self._verified_until = until

    @property
    def live(self) -> bool:
        """True while entries may be served from memory."""
        return self._live and time.monotonic() <= self._verified_until


def endpoints(client: Any) -> list[dict[str, Any]]:
    """Connection parameters of every master behind ``client`` (sync or async redis-py)."""
    if not rkconn.is_cluster(client):
        kwargs = dict(client.connection_pool.connection_kwargs)
        return [_endpoint(kwargs, kwargs.get("host"), kwargs.get("port"))]
    base = getattr(client, "connection_kwargs", None) or client.nodes_manager.connection_kwargs
    seeds = [(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()]
    creds = {k: base[k] for k in ("username", "password") if base.get(k) is not None}
    for host, port in seeds:
        try:
            with redis.cluster.RedisCluster(host=host, port=port, **creds) as probe:
                return [_endpoint(base, n.host, n.port) for n in probe.get_primaries()]
        except redis.RedisError:
            continue
    raise redis.ConnectionError("no cluster node answered to list the masters")


def _endpoint(kwargs: dict[str, Any], host: Any, port: Any) -> dict[str, Any]:
    out: dict[str, Any] = {k: kwargs[k] for k in _CREDENTIAL_KEYS if kwargs.get(k) is not None}
    if "path" in kwargs:
        out["path"] = kwargs["path"]
        out.pop("socket_connect_timeout", None)
        out["connection_class"] = UnixDomainSocketConnection
        return out
    out.update(host=host, port=port)
    ssl = {k: v for k, v in kwargs.items() if k.startswith("ssl_") and v is not None}
    out["connection_class"] = SSLConnection if ssl else Connection
    out.update(ssl)
    return out


class Listener:
    """The background thread(s) that keep one :class:`NearCache` correct.

    Args:
        near: the cache to invalidate.
        discover: returns the connection parameters of every master (see :func:`endpoints`).
        prefixes: key prefixes to track (BCAST mode).
        channel: the pub/sub channel used in ``"pubsub"`` mode.
        mode: ``"tracking"`` (RESP3 client tracking) or ``"pubsub"``.
        heartbeat: seconds between PINGs on an idle connection.
    """

    def __init__(
        self,
        near: NearCache,
        discover: Callable[[], list[dict[str, Any]]],
        prefixes: Sequence[str],
        channel: str,
        mode: str = "tracking",
        heartbeat: float = 1.0,
    ) -> None:
        self.near = near
        self._discover = discover
        self._prefixes = list(prefixes)
        self._channel = channel
        self.mode = mode
        self._heartbeat = heartbeat
        self._max_silence = heartbeat * 3
        self._stop = threading.Event()
        self.client_name = f"redkit-near-{secrets.token_hex(4)}"
        self._thread = threading.Thread(
            target=self._supervise, name="redkit-near-cache", daemon=True
        )

    def start(self) -> None:
        """Start listening (returns at once; the near cache goes live when tracking is on)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the listener threads and flush the near cache."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._heartbeat * 3)
        self.near.go_dark()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            failed = threading.Event()
            try:
                conns = [self._open(ep) for ep in self._discover()]
            except Exception as exc:  # the server is down: keep the near cache dark, retry
                log.debug("near cache: cannot connect (%s); retrying", exc)
                self._stop.wait(_RECONNECT_DELAY)
                continue
            self.near.go_live(self._max_silence)
            last = [time.monotonic()] * len(conns)
            workers = [
                threading.Thread(target=self._listen, args=(c, i, last, failed), daemon=True)
                for i, c in enumerate(conns)
            ]
            for worker in workers:
                worker.start()
            while not failed.wait(self._heartbeat) and not self._stop.is_set():
                pass
            failed.set()
            self.near.go_dark()
            for worker in workers:
                worker.join(self._heartbeat * 2)
            for conn in conns:
                conn.disconnect()
            if not self._stop.is_set():
                log.info("near cache: invalidation connection lost; flushed, reconnecting")
                self._stop.wait(_RECONNECT_DELAY)

    def _open(self, params: dict[str, Any]) -> Any:
        params = dict(params)
        cls = params.pop("connection_class")
        conn: Any = cls(protocol=3, client_name=self.client_name, **params)
        conn.connect()
        conn._parser.set_invalidation_push_handler(_push_keys)
        if self.mode == "pubsub":
            conn.send_command("SUBSCRIBE", self._channel)
        else:
            flags: list[str] = []
            for prefix in self._prefixes:
                flags += ["PREFIX", prefix]
            conn.send_command("CLIENT", "TRACKING", "ON", "BCAST", *flags)
        conn.read_response(push_request=True)  # SUBSCRIBE answers with a push in RESP3
        return conn

    def _listen(self, conn: Any, index: int, last: list[float], failed: threading.Event) -> None:
        ping_at: float | None = None
        next_ping = time.monotonic() + self._heartbeat
        try:
            while not failed.is_set():
                now = time.monotonic()
                if ping_at is not None and now - ping_at > self._heartbeat:
                    raise redis.TimeoutError("near cache heartbeat unanswered")
                if ping_at is None and now >= next_ping:
                    conn.send_command("PING")
                    ping_at = now
                if not conn.can_read(timeout=self._heartbeat / 4):
                    continue
                if self._handle(conn.read_response(push_request=True)):
                    ping_at, next_ping = None, time.monotonic() + self._heartbeat
                last[index] = time.monotonic()
                self.near.heard(min(last) + self._max_silence)
        except Exception as exc:
            if not failed.is_set():
                self.near.go_dark()  # before anything else: never serve what we cannot verify
                log.debug("near cache listener stopped: %r", exc)
        finally:
            failed.set()

    def _handle(self, reply: Any) -> bool:
        """Apply an invalidation; True when ``reply`` was the answer to our PING."""
        if isinstance(reply, _Invalidation):
            self.near.invalidate(reply.keys)
            return False
        if isinstance(reply, list) and len(reply) >= 3 and _text(reply[0]) == "message":
            self.near.invalidate([k for k in _text(reply[2]).split("\n") if k])
            return False
        return True


class _Invalidation:
    __slots__ = ("keys",)

    def __init__(self, keys: list[str] | None) -> None:
        self.keys = keys


def _push_keys(response: Any) -> _Invalidation:
    keys = response[1] if len(response) > 1 else None
    return _Invalidation(None if keys is None else [_text(k) for k in keys])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
