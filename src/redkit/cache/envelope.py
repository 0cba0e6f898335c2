"""The bytes a cache entry is stored as: a small binary header, then the serialized value.

Layout (big-endian)::

    0   u8   format (0xC1)
    1   u8   flags: 1 = the value is None (negative caching), 2 = a plain int
    2   u16  header length (so Lua can find the body: see cache_incr)
    4   f64  soft expiry, unix seconds (refresh after this; 0 = never)
    12  f64  hard expiry, unix seconds (Redis deletes the key then; 0 = never)
    20  f32  delta: seconds the loader took (XFetch scales early refresh by it)
    24  i64  namespace version the entry was written under
    32  u8   number of tags, then per tag: u8 name length, name, i64 version

The header is outside the serializer's signature (pickle signs only the body): it holds
nothing that is ever unpickled or executed, only times and version numbers.

Plain ints are stored as decimal text whatever the serializer, so ``incr`` can run
atomically in Lua on any cache.

Bytes that do not parse as an entry (written by something else, truncated, a body the
serializer cannot read) raise :class:`~redkit.errors.DataError`; a value that fails its
signature raises :class:`~redkit.errors.TamperedDataError`. An entry larger than the
server accepts (:data:`MAX_BULK`) is refused before it is sent.
"""

from __future__ import annotations

import math
import random
import re
import struct
from dataclasses import dataclass
from typing import Any

from redkit.errors import ConfigError, DataError, SerializationError, TamperedDataError
from redkit.serializers import Serializer

FORMAT = 0xC1
FLAG_NONE = 1
FLAG_INT = 2
_FIXED = struct.Struct(">BBHddfqB")
_TAG = struct.Struct(">q")
_HEAD = _FIXED.size
_INT = re.compile(rb"-?[0-9]+")
unpack_header = _FIXED.unpack_from
"""The raw fields of :func:`header`, unchecked (for a caller that checks the format)."""
NS_VERSION_OFFSET = 24  # where the namespace version sits (cache_incr compares it)
MAX_TAG_BYTES = 200
#: The largest value a server accepts by default (``proto-max-bulk-len``, 512 MB).
MAX_BULK = 512 * 1024 * 1024
# -ln(U) for U uniform in (0,1] exceeds this with probability e^-25 (~1e-11): beyond it,
# XFetch would never fire, so the random draw is skipped (the common, far-from-expiry case).
XFETCH_HORIZON = 25.0


@dataclass(slots=True)
class Entry:
    """One decoded cache entry (not frozen: a frozen dataclass is slower to build, and
    this is built on every Redis hit)."""

    value: Any
    soft_expiry: float
    hard_expiry: float
    delta: float
    ns_version: int
    tags: tuple[tuple[str, int], ...]

    def stale(self, now: float) -> bool:
        """Past its soft expiry (still servable as stale until the hard expiry)."""
        return 0 < self.soft_expiry <= now

    def quiet_until(self, beta: float) -> float:
        """Before this time neither expiry nor XFetch can apply: no need to check them."""
        until = self.hard_expiry if self.hard_expiry > 0 else math.inf
        if self.soft_expiry > 0:
            until = min(until, quiet_from(self.soft_expiry, self.delta, beta))
        return until

    def refresh_early(self, now: float, beta: float) -> bool:
        """XFetch: refresh with a probability that grows as the soft expiry nears.

        Vattani, Chierichetti and Lowenstein, "Optimal Probabilistic Cache Stampede
        Prevention" (VLDB 2015): recompute when ``now - delta * beta * ln(U) >= expiry``.
        """
        if self.soft_expiry <= 0 or beta <= 0 or self.delta <= 0:
            return False
        gap = self.soft_expiry - now
        scale = self.delta * beta
        if gap > scale * XFETCH_HORIZON:
            return False
        return -scale * math.log(1.0 - random.random()) >= gap


Versions = dict[str, int | None]
"""Version key -> version (None: the key is missing)."""
Found = Entry | Versions
"""What a read found: the valid entry, or (none valid) the versions read alongside."""


def quiet_from(soft_expiry: float, delta: float, beta: float) -> float:
    """Before this time an entry with this soft expiry is fresh and XFetch cannot pick it."""
    return soft_expiry - max(0.0, delta * beta) * XFETCH_HORIZON


def encode(
    serializer: Serializer,
    value: Any,
    *,
    soft_expiry: float,
    hard_expiry: float,
    delta: float,
    ns_version: int,
    tags: tuple[tuple[str, int], ...] = (),
) -> bytes:
    """The stored bytes of ``value`` with its expiry and version stamp."""
    flags = 0
    if value is None:
        flags, body = FLAG_NONE, b""
    elif type(value) is int:
        flags, body = FLAG_INT, str(value).encode()
    else:
        body = serializer.dumps(value)
    tag_bytes = b"".join(_encode_tag(name, version) for name, version in tags)
    length = _FIXED.size + len(tag_bytes)
    if length + len(body) > MAX_BULK:
        raise ConfigError(
            f"the cache entry would be {length + len(body):,} bytes, over the server's limit "
            f"on one value (proto-max-bulk-len, {MAX_BULK:,} bytes by default); store it "
            "in pieces, compress it, or keep it out of Redis"
        )
    head = _FIXED.pack(
        FORMAT, flags, length, soft_expiry, hard_expiry, delta, ns_version, len(tags)
    )
    return head + tag_bytes + body


def _encode_tag(name: str, version: int) -> bytes:
    raw = name.encode()
    if len(raw) > MAX_TAG_BYTES:
        raise ConfigError(f"tag {name[:40]!r}... is longer than {MAX_TAG_BYTES} bytes")
    return bytes((len(raw),)) + raw + _TAG.pack(version)


def header(data: bytes) -> tuple[int, int, int, float, float, float, int, int]:
    """The fixed header: format, flags, header length, soft and hard expiry, delta,
    namespace version, tag count. Raises DataError on bytes redkit did not write."""
    try:
        head = unpack_header(data)
    except struct.error:
        raise DataError("cache entry is truncated or was not written by redkit") from None
    if head[0] != FORMAT or not _HEAD <= head[2] <= len(data):
        raise DataError("cache entry was not written by redkit (unknown format)")
    return head


def body(serializer: Serializer, data: bytes, flags: int, length: int) -> Any:
    """The value stored after a header of ``length`` bytes with ``flags``."""
    if flags & FLAG_NONE:
        return None
    if flags & FLAG_INT:
        text = data[length:]
        if not _INT.fullmatch(text):
            raise DataError("cache entry flagged as an integer holds no integer")
        return int(text)
    try:
        return serializer.loads(data[length:])
    except SerializationError as exc:
        raise _unreadable(exc) from exc


def decode(serializer: Serializer, data: bytes) -> Entry:
    """The entry stored in ``data``; raises DataError on bytes redkit did not write.

    (On every hit's path: the checks of :func:`header` and :func:`body` are inlined.)
    """
    try:
        fmt, flags, length, soft, hard, delta, ns_version, count = unpack_header(data)
    except struct.error:
        raise DataError("cache entry is truncated or was not written by redkit") from None
    if fmt != FORMAT or not _HEAD <= length <= len(data):
        raise DataError("cache entry was not written by redkit (unknown format)")
    if flags:
        value = body(serializer, data, flags, length)
    else:  # the usual entry: the serialized value
        try:
            value = serializer.loads(data[length:])
        except SerializationError as exc:
            raise _unreadable(exc) from exc
    tags = _decode_tags(data, _HEAD, count, length) if count else ()
    return Entry(value, soft, hard, delta, ns_version, tags)


def _unreadable(exc: SerializationError) -> SerializationError | DataError:
    """A body the serializer refused: DataError, unless it failed its signature."""
    if isinstance(exc, TamperedDataError):
        return exc
    return DataError(f"cache entry cannot be read: {exc}")


def _decode_tags(data: bytes, offset: int, count: int, end: int) -> tuple[tuple[str, int], ...]:
    out = []
    try:
        for _ in range(count):
            size = data[offset]
            name = data[offset + 1 : offset + 1 + size].decode()
            offset += 1 + size
            (version,) = _TAG.unpack_from(data, offset)
            offset += _TAG.size
            out.append((name, version))
    except (IndexError, UnicodeDecodeError, struct.error):
        raise DataError("cache entry has a truncated or corrupt tag list") from None
    if offset != end:
        raise DataError("cache entry's tag list does not match its header")
    return tuple(out)
