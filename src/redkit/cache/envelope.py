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
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass
from typing import Any

from redkit.errors import ConfigError, SerializationError
from redkit.serializers import Serializer

FORMAT = 0xC1
FLAG_NONE = 1
FLAG_INT = 2
_FIXED = struct.Struct(">BBHddfqB")
_TAG = struct.Struct(">q")
unpack_header = _FIXED.unpack_from
"""The raw fields of :func:`header`, unchecked (for a caller that checks the format)."""
NS_VERSION_OFFSET = 24  # where the namespace version sits (cache_incr compares it)
MAX_TAG_BYTES = 200
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
    namespace version, tag count. Raises SerializationError on foreign bytes."""
    try:
        head = unpack_header(data)
    except struct.error:
        raise SerializationError("cache entry is truncated or not written by redkit") from None
    if head[0] != FORMAT:
        raise SerializationError("cache entry was not written by redkit (unknown format)")
    return head


def body(serializer: Serializer, data: bytes, flags: int, length: int) -> Any:
    """The value stored after a header of ``length`` bytes with ``flags``."""
    if flags & FLAG_NONE:
        return None
    if flags & FLAG_INT:
        return int(data[length:])
    return serializer.loads(data[length:])


def decode(serializer: Serializer, data: bytes) -> Entry:
    """The entry stored in ``data``; raises SerializationError on foreign bytes."""
    _, flags, length, soft, hard, delta, ns_version, count = header(data)
    value = body(serializer, data, flags, length)
    tags = _decode_tags(data, _FIXED.size, count) if count else ()
    return Entry(value, soft, hard, delta, ns_version, tags)


def _decode_tags(data: bytes, offset: int, count: int) -> tuple[tuple[str, int], ...]:
    out = []
    for _ in range(count):
        size = data[offset]
        name = data[offset + 1 : offset + 1 + size].decode()
        offset += 1 + size
        (version,) = _TAG.unpack_from(data, offset)
        offset += _TAG.size
        out.append((name, version))
    return tuple(out)
