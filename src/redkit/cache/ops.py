"""The cache's operations: its keys, its scripts and the flows both facades run.

Keys (``p`` is the prefix, ``ns`` the namespace)::

    {p:cache:ns:KEY}            the entry (see :mod:`redkit.cache.envelope`)
    {p:cache:ns:KEY}:lock       the fill lock: one loader per key across all instances
    {p:cache:ns:KEY}:waiters    how many callers wait for the fill (so all are woken)
    {p:cache:ns:KEY}:wake       the list waiters block on (BLPOP); the fill pushes to it
    {p:cachev:ns}               the namespace version (a random 63-bit number)
    {p:cachetag:TAG}            the version of one tag, shared by every namespace

An entry is valid while the versions stamped in it equal the current ones, so
``invalidate_tags`` and ``clear`` are one ``SET`` whatever the number of entries, and the
old entries age out by their TTL. A version key that is missing (never written, or
evicted) matches no entry: eviction can only cause misses, never resurrect old entries.

Reads fetch the entry and the versions it depends on in one round trip: one ``MGET``
on a standalone server; on a cluster the version keys live in other slots, so the read
is one pipelined batch (a round trip per node, sent together). Writes are stamped with
the versions this process saw last and checked in the same round trip: by the
``cache_set`` script on one server, by reads of the versions sent in the write's batch
on a cluster (see :meth:`CacheFlows._set_batched`); only a stamp found stale costs a
second round trip.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redkit import ops
from redkit.cache import envelope
from redkit.cache.envelope import Entry, Found, Versions
from redkit.cache.failure import CacheFailures
from redkit.cache.stats import NOTES
from redkit.durations import Duration, seconds
from redkit.errors import (
    ConfigError,
    DataError,
    RedisCommandError,
    RedkitError,
    SerializationError,
)
from redkit.keys import KeyGroup, Keyspace, escape
from redkit.scripts import check, script

if TYPE_CHECKING:
    from redkit.cache.near import NearCache
    from redkit.serializers import Serializer

Key = str | bytes | int
ACQUIRE = script("cache_acquire")
ADD = script("cache_add")
FILL = script("cache_fill")
SET = script("cache_set")
INCR = script("cache_incr")
TOUCH = script("cache_touch")
SIGNAL_TTL_MS = 5_000
_VERSION_BITS = 63
_TAG_KEY_MEMO = 4096
_ENTRY_KEY_MEMO = 4096
_ADD_ATTEMPTS = 3
_OUT_OF_RANGE = -4  # cache_incr's status for a sum it cannot make exactly
#: What a read that found bytes redkit cannot read raises (DataError, TamperedDataError).
UNREADABLE = (DataError, SerializationError)


def new_version() -> int:
    """A fresh version number: random, so an evicted counter never repeats an old one."""
    return secrets.randbits(_VERSION_BITS) or 1


class CacheKeys:
    """Key builder for one namespace (all through :class:`~redkit.keys.Keyspace`)."""

    __slots__ = ("_entry_base", "_entry_memo", "_keys", "_tag_memo", "namespace", "ns_version")

    def __init__(self, keys: Keyspace, namespace: str) -> None:
        self._keys = keys
        self.namespace = namespace
        self.ns_version = keys.group("cachev", namespace).key()
        self._tag_memo: dict[str, str] = {}
        # entry(key) == keys.group("cache", namespace, key).key(), built without the
        # per-call group object, and remembered for str keys: this is on every read's path
        self._entry_base = "{" + keys.group("cache", namespace).tag + ":"
        self._entry_memo: dict[str, str] = {}

    def group(self, key: str | bytes | int) -> KeyGroup:
        """The group of one entry (entry, lock, waiters, wake share its slot)."""
        return self._keys.group("cache", self.namespace, key)

    def entry(self, key: str | bytes | int) -> str:
        """The Redis key of one entry."""
        if type(key) is not str:  # 1 == True == 1.0: only str keys may share the memo
            return self._entry_base + escape(key) + "}"
        found = self._entry_memo.get(key)
        if found is None:
            if len(self._entry_memo) >= _ENTRY_KEY_MEMO:
                self._entry_memo.clear()
            found = self._entry_memo[key] = self._entry_base + escape(key) + "}"
        return found

    def tag(self, name: str) -> str:
        """The version key of one tag."""
        found = self._tag_memo.get(name)
        if found is None:
            if len(self._tag_memo) >= _TAG_KEY_MEMO:
                self._tag_memo.clear()
            found = self._tag_memo[name] = self._keys.group("cachetag", name).key()
        return found

    def tracking_prefixes(self) -> list[str]:
        """Key prefixes a near cache of this namespace must hear about."""
        entries = "{" + self._keys.group("cache", self.namespace).tag + ":"
        tags = "{" + self._keys.group("cachetag").tag + ":"
        return [entries, self.ns_version, tags]


@dataclass(slots=True)
class Begin:
    """The outcome of the stampede protocol: serve ``entry``, or load (holding ``token``).

    ``down``: Redis failed and the policy is to fail open; load, and store nothing.
    """

    entry: Entry | None
    load: bool = False
    token: str = ""
    versions: dict[str, int] = field(default_factory=dict)
    down: bool = False


@dataclass(slots=True)
class Unchecked:
    """A read found an entry whose stamp names versions the read did not fetch."""

    entry: Entry
    versions: Versions


@dataclass(frozen=True, slots=True)
class Policy:
    """How long entries live and how loads are coordinated."""

    ttl: float | None
    stale_ttl: float
    jitter: float
    beta: float
    lock_ttl: float
    wait_timeout: float
    cache_none: bool
    none_ttl: float | None


class CacheFlows:
    """The flows of one cache namespace; :class:`Cache` and :class:`AsyncCache` run them."""

    def __init__(
        self,
        keys: CacheKeys,
        serializer: Serializer,
        policy: Policy,
        *,
        cluster: bool,
        near: NearCache | None = None,
        channel: str | None = None,
        observers: Sequence[ops.Observer] = (),
        failure: CacheFailures | None = None,
    ) -> None:
        self.keys = keys
        self.serializer = serializer
        self.policy = policy
        self.cluster = cluster
        self.near = near
        self.channel = channel
        # one Note object per kind, made once; yielded only while someone observes (the
        # facade's live list of observers), so an unobserved cache pays nothing for them
        self.notes = {name: ops.Note(name, keys.namespace) for name in NOTES}
        self.observers = observers
        self.failure = (
            CacheFailures(keys.namespace, "closed", 0, ()) if failure is None else failure
        )
        self._ns_only = [keys.ns_version]
        self._reads: dict[str, ops.Call] = {}
        #: the versions this process saw last (None: seen missing), which writes are
        #: stamped with; every write checks them, so a stale one costs a retry only
        self._seen: dict[str, int | None] = {}

    def announce(self, keys: Sequence[str]) -> list[ops.Call]:
        """The PUBLISH that tells pub/sub-mode near caches about ``keys`` (else nothing)."""
        if self.channel is None or not keys:
            return []
        return [ops.Call("PUBLISH", self.channel, "\n".join(keys))]

    def announcing(self, write: ops.Eval, keys: Sequence[str]) -> ops.Flow[Any]:
        """Run ``write`` and, in the same round trip, :meth:`announce`'s PUBLISH (if any:
        it runs after the write, in order on the write's connection); ``write``'s reply.
        """
        if self.channel is None:
            return (yield write)
        reply = (yield ops.Batch([write, *self.announce(keys)]))[0]
        if isinstance(reply, RedisCommandError):
            raise reply
        return reply

    def forget_local(self, key: str) -> None:
        """Drop ``key`` from this process's near cache (before writing it)."""
        if self.near is not None:
            self.near.discard(key)

    # --- reads ------------------------------------------------------------------------

    def _mget(self, keys: Sequence[str]) -> ops.Flow[list[Any]]:
        if not self.cluster:
            return list((yield ops.Call("MGET", *keys)))
        replies = yield ops.Batch([ops.Call("GET", k) for k in keys])
        for reply in replies:
            if isinstance(reply, RedisCommandError):
                raise reply
        return list(replies)

    def version_keys(self, tags: Iterable[str]) -> list[str]:
        """The namespace version key followed by the version keys of ``tags``."""
        if not tags:
            return self._ns_only
        return [self.keys.ns_version, *(self.keys.tag(t) for t in tags)]

    def note(self, name: str) -> tuple[ops.Note, ...]:
        """What to ``yield from`` to report ``name``: its note, or nothing when unobserved."""
        return (self.notes[name],) if self.observers else ()

    def get_flow(self, key: Key, default: Any, tags: Sequence[str]) -> ops.Flow[Any]:
        """The value of ``key``'s valid entry (stale or not), else ``default``."""
        if self.failure.policy.down_until and self.failure.cooling():
            yield from self.failure.failed(None)  # raises when failing closed
            return default
        memo = self._reads.get(key) if not tags and type(key) is str else None
        read: ops.Call | ops.Batch
        ekey: str
        if memo is not None:  # self.read(), inlined for the usual read
            ekey, vkeys, read = memo.args[1], self._ns_only, memo  # type: ignore[assignment]
        else:
            ekey, vkeys, read = self.read(key, tags)
        seq = 0 if self.near is None else self.near.sequence()
        try:  # read_flow, inlined: this is every get's path
            found = self.parse_read(ekey, vkeys, (yield read), seq)
            if isinstance(found, Unchecked):
                found = yield from self._checked(ekey, found.entry, found.versions, seq)
        except RedkitError as exc:
            if not (yield from self.failure.failed(exc)):  # raises when failing closed
                raise
            return default
        if type(found) is not Entry:
            yield from self.note("cache.miss")
            return default
        if self.observers:
            yield self.notes["cache.stale" if found.stale(time.time()) else "cache.hit"]
        return found.value

    def read_flow(self, ekey: str, tags: Sequence[str] = ()) -> ops.Flow[Found]:
        """The valid entry at ``ekey`` or, when there is none, the versions read with it.

        One ``MGET`` of the entry and its versions (a batch on a cluster), any tags; a
        valid entry is also stored in the near cache. Bytes redkit did not write raise
        :class:`~redkit.errors.DataError`.
        """
        vkeys = self.version_keys(tags)
        seq = 0 if self.near is None else self.near.sequence()
        found = self.parse_read(ekey, vkeys, (yield self.read_effect(ekey, vkeys)), seq)
        if isinstance(found, Unchecked):
            found = yield from self._checked(ekey, found.entry, found.versions, seq)
        return found

    def read(self, key: Key, tags: Sequence[str]) -> tuple[str, list[str], ops.Call | ops.Batch]:
        """The entry key, version keys and read effect of ``key`` (see :meth:`parse_read`)."""
        read = self._reads.get(key) if not tags and type(key) is str else None
        if read is not None:  # the usual read, remembered by the caller's key
            return read.args[1], self._ns_only, read  # type: ignore[return-value]
        ekey, vkeys = self.keys.entry(key), self.version_keys(tags)
        return ekey, vkeys, self.read_effect(ekey, vkeys, key)

    def read_effect(
        self, ekey: str, vkeys: list[str], key: Key | None = None
    ) -> ops.Call | ops.Batch:
        """The read of an entry and its version keys (for :meth:`parse_read`).

        The usual read (a str key, no tags, not a cluster) is remembered by ``key``.
        """
        if self.cluster:  # the version keys live in other slots
            return ops.Batch([ops.Call("GET", k) for k in (ekey, *vkeys)])
        call = ops.Call("MGET", ekey, *vkeys)
        if vkeys is self._ns_only and type(key) is str:  # (1 == True: str keys only)
            if len(self._reads) >= _ENTRY_KEY_MEMO:
                self._reads.clear()
            self._reads[key] = call
        return call

    def parse_read(
        self, ekey: str, vkeys: list[str], reply: list[Any], seq: int
    ) -> Found | Unchecked:
        """What :meth:`read_effect` found: the valid entry, the versions (no valid entry),
        or an entry whose tag versions are still to be read (:meth:`_checked`)."""
        if self.cluster or len(reply) != 2:
            return self._parse_read_any(ekey, vkeys, reply, seq)
        raw, version = reply  # the usual read (the namespace version only): every get's path
        ns = None if version is None else int(version)
        self._seen[vkeys[0]] = ns
        if raw is None:
            return {vkeys[0]: ns}
        entry = envelope.decode(self.serializer, raw)
        if entry.ns_version == ns and not entry.tags:
            if self.near is not None:  # (the usual entry: valid by its namespace alone)
                self.near.store(ekey, entry, ((vkeys[0], ns),), seq)
            return entry
        return Unchecked(entry, {vkeys[0]: ns})

    def _parse_read_any(
        self, ekey: str, vkeys: list[str], reply: list[Any], seq: int
    ) -> Found | Unchecked:
        """:meth:`parse_read` of a batch (cluster) or of a read with tag versions."""
        if self.cluster:
            for part in reply:
                if isinstance(part, RedisCommandError):
                    raise part
        read = dict(zip(vkeys, map(_version, reply[1:]), strict=True))
        self.remember(read)  # what the next write is stamped with (saves it a round trip)
        raw = reply[0]
        if raw is None:
            return read
        entry = envelope.decode(self.serializer, raw)
        version = reply[1]
        if not entry.tags and version is not None and entry.ns_version == int(version):
            if self.near is not None:
                self.near.store(ekey, entry, ((vkeys[0], entry.ns_version),), seq)
            return entry
        return Unchecked(entry, read)

    def _checked(
        self, ekey: str | None, entry: Entry, versions: Versions, seq: int
    ) -> ops.Flow[Found]:
        """``entry`` if its stamp matches (reading versions not read yet), else ``versions``.

        A valid entry is stored in the near cache under ``ekey`` (unless None).
        """
        stamp_keys = self._stamp_keys(entry)
        missing = [k for k in stamp_keys if k not in versions]
        if missing:
            more = yield from self._mget(missing)
            versions.update(zip(missing, map(_version, more), strict=True))
        if not self.valid(entry, versions):
            return versions
        if self.near is not None and ekey is not None:
            self.near.store(ekey, entry, tuple((k, versions[k]) for k in stamp_keys), seq)
        return entry

    def stamp(self, entry: Entry) -> Versions:
        """The versions a valid ``entry`` was checked against (its own stamp)."""
        out: Versions = {self.keys.ns_version: entry.ns_version}
        for name, version in entry.tags:
            out[self.keys.tag(name)] = version
        return out

    def _stamp_keys(self, entry: Entry) -> list[str]:
        return [self.keys.ns_version, *(self.keys.tag(name) for name, _ in entry.tags)]

    def valid(self, entry: Entry, versions: Versions) -> bool:
        """True when the entry (read from Redis) has the version stamp ``versions``.

        Its hard expiry is not checked: Redis deletes the entry then (its PX is the same
        span), by the server's clock, so a reader's skewed clock cannot drop it early.
        """
        if entry.ns_version != versions.get(self.keys.ns_version):
            return False
        return all(versions.get(self.keys.tag(name)) == version for name, version in entry.tags)

    def get_many_flow(self, keys: Sequence[Key]) -> ops.Flow[dict[Key, Any]]:
        """The values of the valid entries among ``keys``."""
        entries = yield from self.read_many_flow(keys)
        return {k: e.value for k, e in zip(keys, entries, strict=True) if e is not None}

    def read_many_flow(self, keys: Sequence[str | bytes | int]) -> ops.Flow[list[Entry | None]]:
        """Entries of several keys: one round trip (per node on a cluster) plus tag versions."""
        ekeys = [self.keys.entry(k) for k in keys]
        reply = yield from self._mget([*ekeys, self.keys.ns_version])
        versions: Versions = {self.keys.ns_version: _version(reply[-1])}
        self.remember(versions)
        entries = [
            None if raw is None else envelope.decode(self.serializer, raw) for raw in reply[:-1]
        ]
        wanted = {k for e in entries if e is not None for k in self._stamp_keys(e)}
        missing = sorted(wanted - versions.keys())
        if missing:
            more = yield from self._mget(missing)
            versions.update(zip(missing, map(_version, more), strict=True))
        return [e if e is not None and self.valid(e, versions) else None for e in entries]

    # --- versions and writes ----------------------------------------------------------

    def ensure_versions_flow(self, versions: Versions) -> ops.Flow[dict[str, int]]:
        """``versions`` with every missing version created (SET NX, keeping a racer's)."""
        if all(v is not None for v in versions.values()):
            return versions  # type: ignore[return-value]  # (checked: no None)
        out, _ = yield from self.versions_with_flow(versions, None)
        return out

    def versions_with_flow(
        self, versions: Versions, effect: ops.Eval | None
    ) -> ops.Flow[tuple[dict[str, int], Any]]:
        """Run ``effect`` (if any) and create the missing ``versions`` in one round trip.

        Returns ``versions`` completed (a missing one created fresh with SET NX, or a
        racer's) and ``effect``'s reply.
        """
        missing = [k for k, v in versions.items() if v is None]
        if not missing:
            reply = None if effect is None else (yield effect)
            return versions, reply  # type: ignore[return-value]  # (checked: no None)
        stamp, checks = self.stamp_checks(missing, {})
        first = [] if effect is None else [effect]
        replies = yield ops.Batch([*first, *checks])
        if first and isinstance(replies[0], RedisCommandError):
            raise replies[0]
        current = self.confirmed(missing, checks, replies[len(first) :])
        out = {k: v or current[k] or stamp[k] for k, v in versions.items()}
        # (None: deleted again at once; a write stamped with the fresh one is dead: a miss)
        return out, replies[0] if first else None

    def current_versions_flow(self, tags: Sequence[str]) -> ops.Flow[dict[str, int]]:
        """The versions to stamp a write with (created when missing)."""
        vkeys = self.version_keys(tags)
        reply = yield from self._mget(vkeys)
        return (
            yield from self.ensure_versions_flow(
                dict(zip(vkeys, map(_version, reply), strict=True))
            )
        )

    def stamp_checks(
        self, vkeys: Sequence[str], known: Versions | None = None
    ) -> tuple[dict[str, int], list[ops.Call]]:
        """The versions to stamp a write with, and the calls that read the current ones.

        Each version is the one in ``known`` (default: the ones this process saw last);
        one never seen, or seen missing, is a fresh random one, which the calls create
        (``SET NX``, persistent like every version key) when the key is missing. A missing
        key is never created from a remembered version: an evicted version must not bring
        back the old entries stamped with it. The calls go in the same batch as the write;
        :meth:`confirmed` reads their replies. (``SET NX`` then ``GET``, not ``SET NX
        GET``: redis-py's reply callback for SET turns a value into a bool.)
        """
        seen = self._seen if known is None else known
        versions: dict[str, int] = {}
        checks: list[ops.Call] = []
        for k in vkeys:
            version = seen.get(k)
            if version is None:
                version = new_version()
                checks.append(ops.Call("SET", k, version, "NX"))
            versions[k] = version
            checks.append(ops.Call("GET", k))
        return versions, checks

    def confirmed(
        self, vkeys: Sequence[str], checks: Sequence[ops.Call], replies: Sequence[Any]
    ) -> Versions:
        """The current versions of ``vkeys`` that :meth:`stamp_checks`' calls read
        (``replies`` may go on past them), remembered for the next writes."""
        current: Versions = {}
        at = 0
        for call, reply in zip(checks, replies, strict=False):
            if isinstance(reply, RedisCommandError):
                raise reply
            if call.args[0] == "GET":
                current[vkeys[at]] = _version(reply)
                at += 1
        self.remember(current)
        return current

    def remember(self, versions: Mapping[str, int | None]) -> None:
        """Keep ``versions`` as the ones to stamp the next writes with."""
        if len(self._seen) >= _TAG_KEY_MEMO:
            self._seen.clear()
        self._seen.update(versions)

    def encode(
        self,
        value: Any,
        versions: dict[str, int],
        tags: Sequence[str],
        ttl: float | None,
        delta: float = 0.0,
    ) -> tuple[bytes, int | None]:
        """The entry bytes and the Redis TTL in ms for ``value`` (TTL jittered)."""
        ttl = self.policy.ttl if ttl is None else ttl
        if value is None and self.policy.none_ttl is not None:
            ttl = self.policy.none_ttl
        soft = hard = 0.0
        px: int | None = None
        if ttl is not None:
            if ttl <= 0:
                raise ConfigError(f"cache ttl must be a positive number of seconds, got {ttl!r}")
            ttl *= 1.0 - self.policy.jitter * _uniform()
            now = time.time()
            soft, hard = now + ttl, now + ttl + self.policy.stale_ttl
            px = max(1, int((ttl + self.policy.stale_ttl) * 1000))
        stamp = tuple((t, versions[self.keys.tag(t)]) for t in sorted(set(tags)))
        data = envelope.encode(
            self.serializer,
            value,
            soft_expiry=soft,
            hard_expiry=hard,
            delta=delta,
            ns_version=versions[self.keys.ns_version],
            tags=stamp,
        )
        return data, px

    def set_call(self, key: str | bytes | int, data: bytes, px: int | None) -> ops.Call:
        """The SET of one entry (forgetting it locally first)."""
        ekey = self.keys.entry(key)
        self.forget_local(ekey)
        return ops.Call("SET", ekey, data) if px is None else ops.Call("SET", ekey, data, "PX", px)

    def set_many_flow(
        self,
        items: Sequence[tuple[str | bytes | int, Any]],
        tags: Sequence[str],
        ttl: Duration | None,
    ) -> ops.Flow[None]:
        """Write several entries, stamped with the current versions: one round trip.

        The stamp is the versions this process saw last (a fresh one for a version never
        seen); only when they changed meanwhile does the write take a second round trip.
        On one server the ``cache_set`` script checks them (all keys are in its KEYS). On
        a cluster the version keys live in other slots, so the writes and the reads of the
        current versions go out in one batch (see :meth:`_set_batched`).
        """
        ttl = ttl_seconds(ttl)
        if not items:
            return
        if self.cluster:
            yield from self._set_batched(items, tags, ttl)
        else:
            yield from self._set_checked(items, tags, ttl)

    def _set_batched(
        self, items: Sequence[tuple[Key, Any]], tags: Sequence[str], ttl: float | None
    ) -> ops.Flow[None]:
        """The writes, stamped with the remembered versions, in one batch with the reads
        of the current versions; written again when those differ.

        Why a write checked after the fact is correct: an entry is valid only while its
        stamp equals the current versions, and a version never takes an old value again
        (each is fresh and random). The reads in the batch are the write's point in time.
        When they equal the stamp, an invalidation that completed before them (before
        the write began, in particular) would show in them, so there was none since the
        stamped versions; one that comes after them makes the entry dead, as it would
        any entry written before it. When they differ, the entry just written can never
        be valid: it is written again, stamped with the versions read. An evicted (missing)
        version reads as None and is made fresh by the next attempt, never from memory.
        """
        vkeys = self.version_keys(tags)
        ekeys = [self.keys.entry(key) for key, _ in items]
        for _ in range(_ADD_ATTEMPTS):
            versions, checks = self.stamp_checks(vkeys)
            calls = []
            for (_, value), ekey in zip(items, ekeys, strict=True):
                data, px = self.encode(value, versions, tags, ttl)
                self.forget_local(ekey)
                calls.append(ops.Call("SET", ekey, data, *(("PX", px) if px else ())))
            replies = yield ops.Batch([*calls, *checks, *self.announce(ekeys)])
            for reply in replies[: len(calls)]:
                if isinstance(reply, RedisCommandError):
                    raise reply
            if self.confirmed(vkeys, checks, replies[len(calls) :]) == versions:
                return

    def _set_checked(
        self, items: Sequence[tuple[Key, Any]], tags: Sequence[str], ttl: float | None
    ) -> ops.Flow[None]:
        vkeys = self.version_keys(tags)
        seen = self._seen
        ekeys = [self.keys.entry(key) for key, _ in items]
        for _ in range(_ADD_ATTEMPTS):
            versions: dict[str, int] = {}
            wanted: list[str] = []
            for k in vkeys:  # a version never seen (or seen missing) is created fresh
                version = seen.get(k)
                if version is None:
                    version = new_version()
                    wanted.append(f"+{version}")
                else:
                    wanted.append(str(version))
                versions[k] = version
            args: list[ops.EncodableT] = [len(vkeys), *wanted]
            for _, value in items:
                data, px = self.encode(value, versions, tags, ttl)
                args += [data, px or 0]
            for ekey in ekeys:
                self.forget_local(ekey)
            reply = yield from self.announcing(ops.Eval(SET, (*vkeys, *ekeys), args), ekeys)
            if reply == 1:
                self.remember(versions)
                return
            for k, current in zip(vkeys, reply, strict=True):  # changed meanwhile: again
                seen[k] = _version(current)

    def add_flow(
        self, key: str | bytes | int, value: Any, tags: Sequence[str], ttl: Duration | None
    ) -> ops.Flow[bool]:
        """Store ``value`` unless ``key`` has a valid entry; an invalid one is replaced.

        One round trip: it stores into an empty key (or else gets the bytes the key holds)
        and reads the current versions: in ``cache_add`` on one server (which also stores
        only under the current versions, as ``cache_set``); on a cluster with ``SET NX``
        and ``GET`` in one batch with the version reads (as :meth:`_set_batched`), and
        ``cache_add`` in their place when it replaces bytes. Validity of the bytes in
        the way depends on those versions, so it is checked here, and a replacement is a
        compare-and-set on the bytes found invalid (an entry written meanwhile is checked
        again). An entry this call stored under versions that had changed (a cluster) is
        dead: it is replaced the same way, re-stamped. Bytes redkit did not write count
        as invalid (they are replaced, exactly as read).
        """
        ttl = ttl_seconds(ttl)
        ekey = self.keys.entry(key)
        vkeys = self.version_keys(tags)
        expected = ""  # the bytes (SHA-1) this call may replace; "": an empty key only
        for _ in range(_ADD_ATTEMPTS):
            seq = 0 if self.near is None else self.near.sequence()
            versions, checks = self.stamp_checks(vkeys)
            data, px = self.encode(value, versions, tags, ttl)
            self.forget_local(ekey)
            stored, raw, current = yield from self._add_once(
                ekey, vkeys, (expected, data, px), versions, checks
            )
            if stored:
                if current == versions:
                    return True
                raw = data  # stamped with versions that changed: dead, to be replaced
            elif raw is None:  # one server: the versions changed, nothing was stored
                continue
            elif (yield from self._holds_valid(ekey, raw, dict(current), seq)):
                return False
            expected = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
        # every attempt met a change made during this call (an invalidation, or another
        # writer's dead entry) and none found a valid entry: as if stored, then
        # invalidated (what the key holds, if anything, is dead: a miss)
        return True

    def _add_once(
        self,
        ekey: str,
        vkeys: list[str],
        args: tuple[str, bytes, int | None],
        versions: dict[str, int],
        checks: list[ops.Call],
    ) -> ops.Flow[tuple[bool, bytes | None, Versions]]:
        """One attempt: whether it stored, the bytes in its way, the versions read."""
        expected, data, px = args
        if not self.cluster:  # cache_add reads (and makes) the versions itself
            fresh = {c.args[1] for c in checks if c.args[0] == "SET"}
            wanted = [f"+{v}" if k in fresh else str(v) for k, v in versions.items()]
            add = ops.Eval(ADD, (ekey, *vkeys), (expected, data, px or 0, *wanted))
            reply = yield from self.announcing(add, [ekey])
            current: Versions = dict(zip(vkeys, map(_version, reply[2:]), strict=True))
            self.remember(current)
            return reply[0] == 1, reply[1], current
        # into an empty key, SET NX and a GET of what the key then holds do what cache_add
        # does, with plain commands (a script in a batch is sent with its source)
        ttl = ("PX", px) if px else ()
        writes: list[ops.Call | ops.Eval] = (
            [ops.Call("SET", ekey, data, "NX", *ttl), ops.Call("GET", ekey)]
            if not expected
            else [ops.Eval(ADD, (ekey,), (expected, data, px or 0))]
        )
        replies = yield ops.Batch([*writes, *checks, *self.announce([ekey])])
        for reply in replies[: len(writes)]:
            if isinstance(reply, RedisCommandError):
                raise reply
        current = self.confirmed(vkeys, checks, replies[len(writes) :])
        if not expected:
            raw = replies[1]
            return raw == data, raw, current
        return replies[0][0] == 1, replies[0][1], current

    def _holds_valid(self, ekey: str, raw: bytes, versions: Versions, seq: int) -> ops.Flow[bool]:
        try:
            entry = envelope.decode(self.serializer, raw)
        except UNREADABLE:
            return False
        return isinstance((yield from self._checked(ekey, entry, versions, seq)), Entry)

    def delete_flow(self, keys: Sequence[str | bytes | int]) -> ops.Flow[int]:
        """Delete entries (one round trip per node); the number deleted."""
        ekeys = [self.keys.entry(k) for k in keys]
        for ekey in ekeys:
            self.forget_local(ekey)
        replies = yield ops.Batch([*(ops.Call("DEL", k) for k in ekeys), *self.announce(ekeys)])
        return sum(r for r in replies[: len(ekeys)] if isinstance(r, int))

    def invalidate_flow(self, version_keys: Sequence[str]) -> ops.Flow[None]:
        """Give each version key a new value: every entry stamped with the old one is dead."""
        if self.near is not None:
            self.near.forget_versions(version_keys)
        calls = [ops.Call("SET", k, new_version()) for k in version_keys]
        replies = yield ops.Batch([*calls, *self.announce(list(version_keys))])
        for call, reply in zip(calls, replies, strict=False):
            self._seen[str(call.args[1])] = None if reply is not True else int(call.args[2])

    def incr_flow(self, key: str | bytes | int, delta: int) -> ops.Flow[int | None]:
        """Add ``delta`` to an int entry atomically; None when there is no valid entry.

        An entry invalidated by ``clear()`` or a tag counts as absent: it is not changed.
        Its validity depends on version keys in other slots, so it is checked here and the
        script adds only to an entry that still carries the stamp that was checked.
        """
        ekey = self.keys.entry(key)
        for _ in range(_ADD_ATTEMPTS):
            reply = yield from self._mget([ekey, self.keys.ns_version])
            raw = reply[0]
            if raw is None:
                return None
            entry = envelope.decode(self.serializer, raw)
            versions = {self.keys.ns_version: _version(reply[1])}
            if not isinstance((yield from self._checked(None, entry, versions, 0)), Entry):
                return None
            self.forget_local(ekey)
            stamp = raw[envelope.NS_VERSION_OFFSET : envelope.header(raw)[2]]
            reply = yield from self.announcing(ops.Eval(INCR, (ekey,), (delta, stamp)), [ekey])
            if reply[0] == _OUT_OF_RANGE:
                raise ConfigError(
                    f"cache entry {key!r}: the value or the result would be beyond "
                    "+-(2**53 - 1), which incr cannot add exactly"
                )
            done, value = check("cache_incr", reply)
            if done:
                return int(value)
        return None

    def touch_flow(self, key: str | bytes | int, ttl: Duration | None) -> ops.Flow[bool]:
        """Give an entry a new expiry ``ttl`` seconds from now (None: never expires)."""
        ttl = ttl_seconds(ttl)
        ekey = self.keys.entry(key)
        self.forget_local(ekey)
        expiry, px = b"\0" * 16, 0
        if ttl is not None:
            now = time.time()
            expiry = struct.pack(">dd", now + ttl, now + ttl + self.policy.stale_ttl)
            px = max(1, int((ttl + self.policy.stale_ttl) * 1000))
        touch = ops.Eval(TOUCH, (ekey,), (expiry, px))
        touched = check("cache_touch", (yield from self.announcing(touch, [ekey])))
        return bool(touched)


def ttl_seconds(ttl: Duration | None) -> float | None:
    """A per-call ``ttl`` in seconds (None: the cache's, or never for ``touch``), checked."""
    return None if ttl is None else seconds(ttl, "ttl")


def _version(raw: Any) -> int | None:
    return None if raw is None else int(raw)


def _uniform() -> float:
    import random

    return random.random()


Loader = Callable[[], Any]
