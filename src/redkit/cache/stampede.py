"""Stampede protection: the flows that decide who loads a key and what everyone else serves.

Across processes, one caller per key holds the *fill lock* (``cache_acquire``) and loads;
the others register as waiters and block on the key's wake list (``BLPOP``), which the
loader's ``cache_fill`` pushes one signal per waiter to, in the same step that stores the
value and releases the lock. So waiters wake when the value is there, not on a polling
interval; if the loader dies, they wake when its lock expires and one of them loads.

A key that is soft-expired (stale-while-revalidate) or picked for early refresh (XFetch)
is refreshed by whoever takes the lock without waiting; everyone else keeps serving the
current value meanwhile.

(Why not :class:`redkit.locks.Lock`? Its fencing counter never expires, which is right for
a named lock and wrong for one lock per cache key; and its release wakes one waiter, while
a fill must wake them all. The wake-list protocol is the same.)
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from redkit import ops
from redkit.cache import envelope
from redkit.cache.envelope import Entry, Found
from redkit.cache.ops import ACQUIRE, FILL, SIGNAL_TTL_MS, Begin, CacheFlows

_MIN_BLOCK = 0.01


def begin_flow(
    f: CacheFlows, key: str | bytes | int, tags: Sequence[str], found: Found
) -> ops.Flow[Begin]:
    """Serve the entry ``found``, or become the one loader of ``key`` (waiting if needed)."""
    entry, seen = (found, f.stamp(found)) if isinstance(found, Entry) else (None, found)
    now = time.time()
    if entry is not None and not entry.stale(now) and not entry.refresh_early(now, f.policy.beta):
        return Begin(entry)
    needed = f.version_keys(tags)
    if all(k in seen for k in needed):
        versions = yield from f.ensure_versions_flow({k: seen[k] for k in needed})
    else:
        versions = yield from f.current_versions_flow(tags)
    group = f.keys.group(key)
    keys = (group.key(), group.key("lock"), group.key("waiters"))
    token = secrets.token_hex(16)
    ttl_ms = max(1, int(f.policy.lock_ttl * 1000))
    if entry is not None:  # stale or due for early refresh: refresh only if nobody else is
        got, _ = yield ops.Eval(ACQUIRE, keys, (token, ttl_ms, "0"))
        return Begin(entry, load=bool(got), token=token if got else "", versions=versions)
    deadline = time.monotonic() + f.policy.wait_timeout
    while True:
        got, extra = yield ops.Eval(ACQUIRE, keys, (token, ttl_ms, "1"))
        if got:
            filled = _decode_valid(f, extra, versions)
            if filled is not None:  # filled between our read and the lock
                yield from release_flow(f, key, token)
                return Begin(filled)
            return Begin(None, load=True, token=token, versions=versions)
        remaining = deadline - time.monotonic()
        if remaining <= 0:  # waited long enough: load without the lock (fail open)
            return Begin(None, load=True, versions=versions)
        holder_left = extra / 1000 if extra > 0 else f.max_block
        wait = max(_MIN_BLOCK, min(remaining, holder_left, f.max_block))
        yield ops.Call("BLPOP", group.key("wake"), round(wait, 3))
        again = yield from f.read_flow(keys[0], tags)
        if isinstance(again, Entry):
            return Begin(again)
        versions = yield from f.ensure_versions_flow({k: again.get(k, versions[k]) for k in needed})


def _decode_valid(
    f: CacheFlows, raw: bytes | None, versions: dict[str, int]
) -> envelope.Entry | None:
    if not raw:
        return None
    entry = envelope.decode(f.serializer, raw)
    if not f.valid(entry, dict(versions)) or entry.stale(time.time()):
        return None
    return entry


def fill_flow(
    f: CacheFlows,
    key: str | bytes | int,
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
    yield ops.Eval(FILL, keys, (begin.token, data, px or 0, SIGNAL_TTL_MS, "1" if px else "2"))
    yield from f.announce([group.key()])


def release_flow(f: CacheFlows, key: str | bytes | int, token: str) -> ops.Flow[None]:
    """Give up the fill lock without storing (the loader failed, or the value was there)."""
    group = f.keys.group(key)
    keys = (group.key(), group.key("lock"), group.key("waiters"), group.key("wake"))
    yield ops.Eval(FILL, keys, (token, b"", 0, SIGNAL_TTL_MS, "0"))
