"""The cache's hot read path: a standalone server, no near cache, no declared tags.

Reads here are one ``MGET`` of the entry and the namespace version, run as a
:class:`redkit.ops.Once` built once per key and reused (no generator, no per-call
effect), and parsed straight to the value (no Entry): profiling showed the calls and
objects of the general path costing more than the extra key. Anything unusual (foreign
bytes, tags the caller did not declare, a stale entry) falls back to
:func:`~redkit.cache.envelope.decode` and the general checks in
:class:`~redkit.cache.ops.CacheFlows`.

Why the namespace version is read on every hit rather than remembered: a remembered
version can be out of date the moment another instance runs ``clear()``, and a stale
value would then be served; reading it in the same ``MGET`` costs one more key in a
command the server answers anyway (about 2% of a hit here), and keeps ``clear()``
exact: a read that starts after ``clear()`` returns, on any instance, misses.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redkit import ops
from redkit.cache import envelope
from redkit.cache.envelope import Entry, Found, Versions
from redkit.cache.stats import CacheStats

if TYPE_CHECKING:
    from redkit.cache.ops import CacheKeys
    from redkit.serializers import Serializer

_READ_MEMO = 4096
_unpack = envelope.unpack_header
_FORMAT = envelope.FORMAT
_now = time.time
MISS: Any = object()
"""What :meth:`HotReads.value_once` returns when there is no valid entry."""


@dataclass(slots=True)
class Unverified:
    """A hot read found an entry with tags: their versions are still to be read."""

    entry: Entry
    versions: Versions


@dataclass(slots=True)
class Slow:
    """A hot read of ``get_or_set`` found no fresh value: what it found instead."""

    found: Found | Unverified


class HotReads:
    """The hot reads of one namespace (built by :class:`redkit.cache.ops.CacheFlows`)."""

    def __init__(
        self, keys: CacheKeys, serializer: Serializer, beta: float, stats: CacheStats
    ) -> None:
        self._keys = keys
        self._serializer = serializer
        self._loads = serializer.loads
        # fresh and never picked by XFetch before soft - delta * this (envelope.quiet_from)
        self._horizon = max(0.0, beta) * envelope.XFETCH_HORIZON
        self._stats = stats
        self._values: dict[Any, ops.Once[Any]] = {}  # str keys only (see _once)
        self._fresh: dict[Any, ops.Once[Any]] = {}

    def value_once(self, key: str | bytes | int) -> ops.Once[Any]:
        """``get``'s read: the value (counted in the stats), :data:`MISS`, or an
        :class:`Unverified` entry to finish with ``CacheFlows.verify_flow``."""
        try:  # the memo holds str keys only, so 1, True or b"1" never match one
            once = self._values.get(key)
        except TypeError:  # unhashable: the key builder will say why
            once = None
        return self._once(key, self._values, self._hit_value) if once is None else once

    def fresh_once(self, key: str | bytes | int) -> ops.Once[Any]:
        """``get_or_set``'s read: the value of a valid entry that is fresh and far from
        early refresh (counted as a hit), else a :class:`Slow` with what was found."""
        try:
            once = self._fresh.get(key)
        except TypeError:
            once = None
        return self._once(key, self._fresh, self._hit_fresh) if once is None else once

    def _once(
        self, key: str | bytes | int, memo: dict[Any, ops.Once[Any]], finish: Callable[[Any], Any]
    ) -> ops.Once[Any]:
        once = ops.Once(ops.Call("MGET", self._keys.entry(key), self._keys.ns_version), finish)
        if type(key) is str:  # (1 == True == 1.0: other types would share entries)
            if len(memo) >= _READ_MEMO:
                memo.clear()
            memo[key] = once
        return once

    def _hit_value(self, reply: list[Any]) -> Any:
        raw, version = reply
        if raw is not None:
            try:
                fmt, flags, length, soft, _, _, ns_version, count = _unpack(raw)
            except struct.error:
                fmt = -1
            if fmt != _FORMAT or count:  # foreign bytes (raises) or tags to check
                return self._hit(reply)
            if version is not None and ns_version == int(version):
                value = self._loads(raw[length:]) if not flags else self._body(raw, flags, length)
                if 0 < soft <= _now():
                    self._stats.stale_serves += 1
                else:
                    self._stats.hits += 1
                return value
        self._stats.misses += 1
        return MISS

    def _hit_fresh(self, reply: list[Any]) -> Any:
        raw, version = reply
        if raw is not None and version is not None:
            try:
                fmt, flags, length, soft, _, delta, ns_version, count = _unpack(raw)
            except struct.error:
                fmt = -1
            if (
                fmt == _FORMAT
                and not count
                and ns_version == int(version)
                and (soft <= 0 or _now() < soft - delta * self._horizon)
            ):
                self._stats.hits += 1
                return self._loads(raw[length:]) if not flags else self._body(raw, flags, length)
        return Slow(self._hit(reply))

    def _body(self, raw: bytes, flags: int, length: int) -> Any:
        return envelope.body(self._serializer, raw, flags, length)

    def _hit(self, reply: list[Any]) -> Found | Unverified:
        raw, version = reply
        if raw is None:
            return {self._keys.ns_version: None if version is None else int(version)}
        entry = envelope.decode(self._serializer, raw)
        if entry.tags:  # tags the caller did not declare: their versions are one more read
            return Unverified(entry, {self._keys.ns_version: _version(version)})
        if version is None or entry.ns_version != int(version):
            return {self._keys.ns_version: None if version is None else int(version)}
        return entry


def _version(raw: Any) -> int | None:
    return None if raw is None else int(raw)
