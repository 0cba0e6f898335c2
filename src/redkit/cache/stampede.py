"""Stampede protection: who loads a key, and what everyone else serves meanwhile.

``get_or_set`` is one flow (:meth:`Loads.get_or_set_flow`) that both facades run; the
loader runs inside it as a :class:`redkit.ops.UserCall` (awaited when it returns an
awaitable; in a worker thread when asked). Two layers decide who loads:

* **In this process**, callers of one key share one load (:mod:`redkit.cache.flights`:
  threads for :class:`~redkit.cache.Cache`, tasks for :class:`~redkit.cache.AsyncCache`):
  the first caller leads, the others wait for its outcome. When there is a value to
  serve (stale, or due for an early refresh), they do not wait: they get it at once
  while the leader refreshes.
* **Across processes**, one caller per key holds the *fill lock* (``cache_acquire``) and
  loads; the others register as waiters and wait for a signal on the key's wake list
  (:func:`redkit.ops.wait_signal`, on a dedicated connection), which the loader's
  ``cache_fill`` pushes one signal per waiter to, in the same step that stores the value
  and releases the lock. If the loader dies, waiters wake when its lock expires and one
  of them loads. A stale entry is refreshed only by whoever takes the lock without
  waiting; everyone else keeps serving it.

A leader that fails gives the fill lock back at once: on an exception (its followers get
the exception, or the stale value with ``stale_on_error``) and on cancellation or any
other ``BaseException`` (its followers then try again themselves rather than inherit
the cancellation).

(Why not :class:`redkit.locks.Lock`? Its fencing counter never expires, which is right for
a named lock and wrong for one lock per cache key; and its release wakes one waiter, while
a fill must wake them all. The wait is the same helper.)
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from redkit import ops
from redkit.cache import envelope
from redkit.cache.envelope import Entry, Found, Versions
from redkit.cache.ops import (
    ACQUIRE,
    FILL,
    SIGNAL_TTL_MS,
    UNREADABLE,
    Begin,
    CacheFlows,
    Key,
    Unchecked,
    ttl_seconds,
)

if TYPE_CHECKING:
    from redkit.cache.failure import CacheFailures
    from redkit.cache.flights import Flight, Flights
    from redkit.durations import Duration

log = logging.getLogger("redkit.cache")
_DOWN: Any = object()
"""What a read that Redis could not answer found (with ``on_error="open"``)."""


# --- the flows -----------------------------------------------------------------------


class Loads:
    """The ``get_or_set`` flow of one cache namespace.

    Args:
        f: the namespace's flows.
        flights: where this process's callers of one key meet (threads or tasks).
        failure: the ``on_error`` policy.
        stale_on_error: serve the stale value when a refresh's loader raises.
    """

    def __init__(
        self, f: CacheFlows, flights: Flights, failure: CacheFailures, stale_on_error: bool
    ) -> None:
        self.f = f
        self.flights = flights
        self.failure = failure
        self.stale_on_error = stale_on_error

    def get_or_set_flow(
        self,
        key: Key,
        loader: Callable[[], Any],
        ttl: Duration | None,
        tags: Sequence[str],
        thread: bool = False,
    ) -> ops.Flow[Any]:
        """The value of ``key``: fresh from Redis, or loaded once (see the module doc)."""
        f = self.f
        if self.failure.policy.down_until and self.failure.cooling():
            yield from self.failure.failed(None)  # raises when failing closed
            ekey = f.keys.entry(key)
            return (yield from self._share(key, ekey, loader, ttl, tags, thread, _DOWN))
        ekey, vkeys, read = f.read(key, tags)
        seq = 0 if f.near is None else f.near.sequence()
        found: Found
        try:  # read_flow, inlined: this is every get_or_set's path
            reply = yield read
            parsed = f.parse_read(ekey, vkeys, reply, seq)
            if isinstance(parsed, Unchecked):
                parsed = yield from f._checked(ekey, parsed.entry, parsed.versions, seq)
            found = parsed
        except UNREADABLE:  # bytes redkit cannot read: a miss, to be overwritten
            yield from f.note("cache.corrupt")
            found = {}
        except Exception as exc:
            if not (yield from self.failure.failed(exc)):
                raise
            found = _DOWN
        if type(found) is Entry and self._fresh(found):
            if f.observers:
                yield f.notes["cache.hit"]
            return found.value
        return (yield from self._share(key, ekey, loader, ttl, tags, thread, found))

    def _share(
        self,
        key: Key,
        ekey: str,
        loader: Callable[[], Any],
        ttl: Duration | None,
        tags: Sequence[str],
        thread: bool,
        found: Found,
    ) -> ops.Flow[Any]:
        """No fresh value: lead this process's load of ``key``, or share the one running."""
        if type(found) is not Entry and found is not _DOWN:
            yield from self.f.note("cache.miss")
        flight, leader = self.flights.join(ekey)
        if leader:
            load = self._load(key, loader, ttl, tags, found, thread)
            return (yield from self._lead(ekey, flight, load))
        if type(found) is Entry:  # being refreshed here: serve it meanwhile
            return (yield from self._serve(found))
        done = yield ops.UserCall(flight.wait)
        if done.retry:  # the leader was cancelled: start over
            return (yield from self.get_or_set_flow(key, loader, ttl, tags, thread))
        return done.result()

    def _fresh(self, entry: Entry) -> bool:
        """Neither stale nor picked for an early refresh (``Entry.stale`` and
        ``Entry.refresh_early``, whose cheap cases are checked here first: every hit)."""
        now = time.time()
        if 0 < entry.soft_expiry <= now:
            return False
        return entry.delta <= 0 or not entry.refresh_early(now, self.f.policy.beta)

    def _serve(self, entry: Entry) -> ops.Flow[Any]:
        yield from self.f.note("cache.stale" if entry.stale(time.time()) else "cache.hit")
        return entry.value

    def _lead(self, ekey: str, flight: Flight, load: ops.Flow[Any]) -> ops.Flow[Any]:
        try:
            value = yield from load
        except BaseException as exc:
            self.flights.land(ekey, flight, None, exc)
            raise
        self.flights.land(ekey, flight, value, None)
        return value

    def _load(
        self,
        key: Key,
        loader: Callable[[], Any],
        ttl: Duration | None,
        tags: Sequence[str],
        found: Found,
        thread: bool,
    ) -> ops.Flow[Any]:
        begin = yield from self._begin(key, tags, found)
        if not begin.load:  # another loader filled it, or is refreshing the stale entry
            entry = begin.entry
            if type(found) is Entry and entry is not None:
                return (yield from self._serve(entry))
            return None if entry is None else entry.value
        started = time.perf_counter()
        try:
            value = yield ops.UserCall(loader, thread=thread)
        except Exception:
            yield from self.f.note("cache.load_error")
            yield from self._release(key, begin)
            if begin.entry is None or not self.stale_on_error:
                raise
            return (yield from self._serve(begin.entry))
        except GeneratorExit:  # the flow was dropped: nothing may be yielded now
            raise
        except BaseException:  # cancelled: give the lock back before going
            yield from self._release(key, begin)
            raise
        yield from self.f.note("cache.load")
        yield from self._fill(key, begin, value, tags, ttl, time.perf_counter() - started)
        return value

    def _begin(self, key: Key, tags: Sequence[str], found: Found) -> ops.Flow[Begin]:
        if found is _DOWN:
            return Begin(None, load=True, down=True)
        try:
            return (yield from begin_flow(self.f, key, tags, found))
        except Exception as exc:
            if not (yield from self.failure.failed(exc)):
                raise
            return Begin(None, load=True, down=True)

    def _fill(
        self,
        key: Key,
        begin: Begin,
        value: object,
        tags: Sequence[str],
        ttl: Duration | None,
        delta: float,
    ) -> ops.Flow[None]:
        if begin.down:
            return
        try:  # (ttl is checked here: a hit never reads it)
            yield from fill_flow(self.f, key, begin, value, tags, ttl_seconds(ttl), delta)
        except GeneratorExit:
            raise
        except BaseException as exc:
            yield from self._release(key, begin)
            if not (yield from self.failure.failed(exc)):
                raise

    def _release(self, key: Key, begin: Begin) -> ops.Flow[None]:
        """Give the fill lock back, best effort: when Redis fails, it expires by itself."""
        if not begin.token or begin.down:
            return
        try:
            yield from release_flow(self.f, key, begin.token)
        except Exception as exc:
            log.debug("cache %r: releasing a fill lock failed: %s", self.f.keys.namespace, exc)


def begin_flow(f: CacheFlows, key: Key, tags: Sequence[str], found: Found) -> ops.Flow[Begin]:
    """Serve the entry ``found``, or become the one loader of ``key`` (waiting if needed)."""
    entry, seen = (found, f.stamp(found)) if isinstance(found, Entry) else (None, found)
    now = time.time()
    if entry is not None and not entry.stale(now) and not entry.refresh_early(now, f.policy.beta):
        return Begin(entry)
    needed = f.version_keys(tags)
    # the versions the load is stamped with: read before it starts (an invalidation during
    # the load makes its entry dead); those the read did not bring back (missing, or tags
    # a stale entry lacks) are read, or created, together with the fill lock's script
    known: Versions = {k: seen.get(k) for k in needed}
    group = f.keys.group(key)
    keys = (group.key(), group.key("lock"), group.key("waiters"))
    token = secrets.token_hex(16)
    ttl_ms = max(1, int(f.policy.lock_ttl * 1000))
    if entry is not None:  # stale or due for early refresh: refresh only if nobody else is
        acquire = ops.Eval(ACQUIRE, keys, (token, ttl_ms, "0"))
        versions, (got, _, _) = yield from f.versions_with_flow(known, acquire)
        return Begin(entry, load=bool(got), token=token if got else "", versions=versions)
    deadline = time.monotonic() + f.policy.wait_timeout
    while True:
        acquire = ops.Eval(ACQUIRE, keys, (token, ttl_ms, "1"))
        versions, (got, raw, holder_ms) = yield from f.versions_with_flow(known, acquire)
        known = dict(versions)
        if got:
            filled = _decode_valid(f, raw, versions)
            if filled is not None:  # filled between our read and the lock
                yield from release_flow(f, key, token)
                return Begin(filled)
            return Begin(None, load=True, token=token, versions=versions)
        remaining = deadline - time.monotonic()
        if remaining <= 0:  # waited long enough: load without the lock (fail open)
            return Begin(None, load=True, versions=versions)
        if holder_ms != -2:  # -2: released since the script ran; try again at once
            holder_left = holder_ms / 1000 if holder_ms > 0 else remaining
            yield from ops.wait_signal(group.key("wake"), min(remaining, holder_left))
        again = yield from _reread(f, keys[0], tags)
        if isinstance(again, Entry):
            return Begin(again)
        known = {k: again.get(k, versions[k]) for k in needed}


def _reread(f: CacheFlows, ekey: str, tags: Sequence[str]) -> ops.Flow[Found]:
    try:
        return (yield from f.read_flow(ekey, tags))
    except UNREADABLE:  # still the bytes being replaced
        return {}


def _decode_valid(
    f: CacheFlows, raw: bytes | None, versions: dict[str, int]
) -> envelope.Entry | None:
    if not raw:
        return None
    try:
        entry = envelope.decode(f.serializer, raw)
    except UNREADABLE:  # the bytes this load is about to replace
        return None
    if not f.valid(entry, dict(versions)) or entry.stale(time.time()):
        return None
    return entry


def fill_flow(
    f: CacheFlows,
    key: Key,
    begin: Begin,
    value: object,
    tags: Sequence[str],
    ttl: float | None,
    delta: float,
) -> ops.Flow[None]:
    """Store what the loader returned, release the fill lock, wake every waiter."""
    if value is None and not f.policy.cache_none:
        if begin.token:
            yield from release_flow(f, key, begin.token)
        return
    data, px = f.encode(value, begin.versions, tags, ttl, delta)
    if not begin.token:
        call = f.set_call(key, data, px)
        yield ops.Batch([call, *f.announce([str(call.args[1])])])
        return
    group = f.keys.group(key)
    f.forget_local(group.key())
    keys = (group.key(), group.key("lock"), group.key("waiters"), group.key("wake"))
    fill = ops.Eval(FILL, keys, (begin.token, data, px or 0, SIGNAL_TTL_MS, "1" if px else "2"))
    yield from f.announcing(fill, [group.key()])


def release_flow(f: CacheFlows, key: Key, token: str) -> ops.Flow[None]:
    """Give up the fill lock without storing (the loader failed, or the value was there)."""
    group = f.keys.group(key)
    keys = (group.key(), group.key("lock"), group.key("waiters"), group.key("wake"))
    yield ops.Eval(FILL, keys, (token, b"", 0, SIGNAL_TTL_MS, "0"))
