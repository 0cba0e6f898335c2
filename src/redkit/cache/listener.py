"""The near caches' listener: one per facade, one loop on the runtime, shared by every cache.

The listener holds one RESP3 connection per master with ``CLIENT TRACKING ON BCAST`` for
the facade prefix's cache entry, namespace-version and tag-version keys (or, in pub/sub
mode, subscribed to redkit's invalidation channel). Each near cache registers the
prefixes of its namespace and gets exactly the invalidations that concern it, so building
a cache costs no thread and no connection. The first cache of a facade opens the
connections before it returns: the near cache serves from its first call.

Each step of the loop answers heartbeats and applies what arrived within a quarter of a
heartbeat. On any failure the near caches are flushed and dark before the error reaches
the runtime, which reconnects with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import select
import socket
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import redis

from redkit import connection as rkconn
from redkit import runtime
from redkit.cache.near import Liveness, NearCache, endpoints

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, RedkitCore
    from redkit.runtime import LoopContext

log = logging.getLogger("redkit.cache")

Route = tuple[str, ...]


class _Link:
    """One listener connection and its heartbeat bookkeeping."""

    __slots__ = ("conn", "heard", "next_ping", "ping_at")

    def __init__(self, conn: Any, heartbeat: float) -> None:
        self.conn = conn
        self.ping_at: float | None = None
        self.heard = time.monotonic()
        self.next_ping = self.heard + heartbeat


class NearListener:
    """Keeps every near cache of one facade correct (see the module docstring).

    Args:
        discover: returns the connection parameters of every master (see :func:`endpoints`).
        prefixes: key prefixes to track (BCAST mode).
        channel: the pub/sub channel used in ``"pubsub"`` mode.
        mode: ``"tracking"`` (RESP3 client tracking) or ``"pubsub"``.
        heartbeat: seconds between PINGs on each connection.
    """

    def __init__(
        self,
        discover: Callable[[], list[dict[str, Any]]],
        prefixes: Sequence[str],
        channel: str,
        mode: str = "tracking",
        heartbeat: float = 1.0,
    ) -> None:
        self._discover = discover
        self._prefixes = list(prefixes)
        self._channel = channel
        self.mode = mode
        self.heartbeat = heartbeat
        self._max_silence = heartbeat * 3
        self.state = Liveness()
        self.client_name = f"redkit-near-{secrets.token_hex(4)}"
        self.name = f"near-cache-{self.client_name[-8:]}"
        # copied on write, so the listener thread iterates a snapshot without a lock; weak,
        # so a cache dropped without close() does not keep its memory
        self._caches: tuple[tuple[weakref.ref[NearCache], Route], ...] = ()
        self._links: list[_Link] = []
        self._connect_lock = threading.Lock()
        self._attach_lock = threading.Lock()
        self._wake, self._waker = socket.socketpair()  # interrupt() ends a poll at once
        self._wake.setblocking(False)
        self.runtime: runtime.Runtime | None = None

    def attach(self, near: NearCache, route: Route) -> None:
        """Serve ``near``: it gets invalidations for keys starting with one of ``route``."""
        near.state = self.state
        with self._attach_lock:
            self._caches = (*self._kept(), (weakref.ref(near), route))

    def detach(self, near: NearCache) -> int:
        """Stop serving ``near`` (flushed); the number of caches left."""
        with self._attach_lock:
            self._caches = tuple(item for item in self._kept() if item[0]() is not near)
            left = len(self._caches)
        near.state = Liveness()
        near.reset(dropped=False)
        return left

    def serves(self, near: NearCache) -> bool:
        """True while ``near`` is attached."""
        return any(ref() is near for ref, _ in self._caches)

    def _kept(self) -> list[tuple[weakref.ref[NearCache], Route]]:
        return [item for item in self._caches if item[0]() is not None]

    def connect(self) -> None:
        """Open the connections and go live (no-op when connected). Raises on failure."""
        with self._connect_lock:
            if self._links:
                return
            links: list[_Link] = []
            try:
                for params in self._discover():
                    links.append(_Link(self._open(params), self.heartbeat))
            except BaseException:
                for link in links:
                    link.conn.disconnect()
                raise
            for near in self._nears():
                near.reset(dropped=False)
            self.state.verified_until = time.monotonic() + self._max_silence
            self._links = links
            self.state.live = True

    def step(self, ctx: LoopContext) -> None:
        """One unit for the runtime: connect if needed, ping, apply what arrives."""
        try:
            self.connect()
            self._poll(self.heartbeat / 4)
        except BaseException:
            self._drop()  # before anything else: never serve what we cannot verify
            raise

    def interrupt(self) -> None:
        """End the current poll now (the runtime calls it when asked to stop)."""
        with contextlib.suppress(OSError):
            self._waker.send(b"!")

    def close(self) -> None:
        """Go dark and close everything (the runtime's cleanup)."""
        self._drop()
        self._wake.close()
        self._waker.close()

    def _drop(self) -> None:
        """Flush and go dark, and close the connections."""
        self.state.verified_until = 0.0  # first: lookups check only this
        was_live, self.state.live = self.state.live, False
        for near in self._nears():
            near.reset(dropped=was_live)
        links, self._links = self._links, []
        for link in links:
            link.conn.disconnect()

    def _nears(self) -> list[NearCache]:
        return [near for ref, _ in self._caches if (near := ref()) is not None]

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

    def _poll(self, timeout: float) -> None:
        now = time.monotonic()
        for link in self._links:
            if link.ping_at is not None and now - link.ping_at > self.heartbeat:
                raise redis.TimeoutError("near cache heartbeat unanswered")
            if link.ping_at is None and now >= link.next_ping:
                link.conn.send_command("PING")
                link.ping_at = now
            self._drain(link)
        readable, _, _ = select.select(
            [self._wake, *(li.conn._sock for li in self._links)], [], [], timeout
        )
        if self._wake in readable:
            with contextlib.suppress(OSError):
                self._wake.recv(64)

    def _drain(self, link: _Link) -> None:
        conn = link.conn
        while conn.can_read(timeout=0):
            if self._handle(conn.read_response(push_request=True)):
                link.ping_at, link.next_ping = None, time.monotonic() + self.heartbeat
            link.heard = time.monotonic()
        heard = min(other.heard for other in self._links)
        self.state.verified_until = heard + self._max_silence

    def _handle(self, reply: Any) -> bool:
        """Apply an invalidation; True when ``reply`` was the answer to our PING."""
        if isinstance(reply, _Invalidation):
            self._route(reply.keys)
            return False
        if isinstance(reply, list) and len(reply) >= 3 and _text(reply[0]) == "message":
            self._route([k for k in _text(reply[2]).split("\n") if k])
            return False
        return True

    def _route(self, keys: list[str] | None) -> None:
        for ref, route in self._caches:
            near = ref()
            if near is None:
                continue
            if keys is None:
                near.invalidate(None)
                continue
            mine = [key for key in keys if key.startswith(route)]
            if mine:
                near.invalidate(mine)


class _Invalidation:
    __slots__ = ("keys",)

    def __init__(self, keys: list[str] | None) -> None:
        self.keys = keys


def _push_keys(response: Any) -> _Invalidation:
    keys = response[1] if len(response) > 1 else None
    return _Invalidation(None if keys is None else [_text(k) for k in keys])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- one listener per facade -----------------------------------------------------------
# Kept here until the facade can hold it: facade -> {(mode, heartbeat): listener}.
_LISTENERS: weakref.WeakKeyDictionary[Any, dict[tuple[str, float], NearListener]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def attach(
    rk: RedkitCore | AsyncRedkitCore, near: NearCache, route: Route, mode: str, heartbeat: float
) -> NearListener:
    """Serve ``near`` from the facade's listener for ``mode``, starting it if needed.

    The first cache opens the listener's connections in the calling thread, so it serves
    from its first call; if the server does not answer, the listener keeps trying.
    """
    with _LOCK:
        per_facade = _LISTENERS.setdefault(rk, {})
        listener = per_facade.get((mode, heartbeat))
        fresh = listener is None
        if listener is None:
            listener = per_facade[(mode, heartbeat)] = _new_listener(rk, mode, heartbeat)
        listener.attach(near, route)
        if fresh:
            listener.runtime = _run(rk, listener)
    if fresh:
        try:  # outside the lock: other facades do not wait for this connect
            listener.connect()
        except Exception as exc:
            log.info("near cache: cannot connect yet (%s); retrying in the background", exc)
    return listener


def detach(rk: RedkitCore | AsyncRedkitCore, near: NearCache) -> None:
    """Stop serving ``near``; the facade's listener stops with its last cache."""
    with _LOCK:
        per_facade = _LISTENERS.get(rk, {})
        for key, listener in list(per_facade.items()):
            if listener.serves(near) and listener.detach(near) == 0:
                del per_facade[key]
                _stop(rk, listener)


def _new_listener(rk: RedkitCore | AsyncRedkitCore, mode: str, heartbeat: float) -> NearListener:
    settings, client = rk.settings, rk.client
    return NearListener(
        lambda: endpoints(client, settings),
        tracking_prefixes(rk),
        rk.keys.group("cacheinval").key(),
        mode,
        heartbeat,
    )


def tracking_prefixes(rk: RedkitCore | AsyncRedkitCore) -> list[str]:
    """What the listener tracks: every cache entry, namespace version and tag version."""
    return ["{" + rk.keys.group(name).tag + ":" for name in ("cache", "cachev", "cachetag")]


def _run(rk: RedkitCore | AsyncRedkitCore, listener: NearListener) -> runtime.Runtime:
    hooks: dict[str, Any] = {"cleanup": listener.close, "interrupt": listener.interrupt}
    if rkconn.is_async(rk.client):  # a thread runtime of its own, without a heartbeat
        private = runtime.Runtime(rk, heartbeat=None, drain_timeout=listener.heartbeat)
        private.add(listener.name, listener.step, **hooks)
        private.start()
        return private
    return runtime.share(cast("RedkitCore", rk), listener.name, listener.step, **hooks)


def _stop(rk: RedkitCore | AsyncRedkitCore, listener: NearListener) -> None:
    if rkconn.is_async(rk.client) and listener.runtime is not None:
        listener.runtime.stop(listener.heartbeat)
    else:
        runtime.unshare(cast("RedkitCore", rk), listener.name, listener.heartbeat)
