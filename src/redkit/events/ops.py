"""The events' operations: keys, scripts, flows and reply parsing.

Every key of a topic shares the topic's hash tag, ``{prefix:events:name}``, so each script
touches one cluster slot, and the fan-out channel (the bare tag) lives in that slot too:

* ``…:seq``: the fan-out sequence counter; a publish increments it and publishes
  ``"<seq> <payload>"`` in one script (``SPUBLISH`` on a cluster);
* ``…:stream``: a durable topic's stream, one field ``d`` (the payload) per entry;
* ``…:dead``: its dead-letter stream: ``d``, the original ``id``, the ``group`` and the
  ``reason``.

``{prefix:events}:topics`` lists the topics that were published to, for admin tools.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from redkit import ops
from redkit.errors import ConfigError, RedisCommandError
from redkit.keys import Keyspace, escape
from redkit.scripts import script

PUBLISH = script("events_publish")
ADD = script("events_add")
CLAIM = script("events_claim")
DEAD = script("events_dead")

#: the dead-letter stream keeps about this many entries
DEAD_MAXLEN = 10_000


class TopicKeys:
    """Every key of one topic."""

    __slots__ = ("channel", "dead", "name", "registry", "seq", "stream")

    def __init__(self, keyspace: Keyspace, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a topic name must be a non-empty str, got {name!r}")
        group = keyspace.group("events", name)
        self.name = name
        self.channel = group.key()
        self.seq, self.stream, self.dead = group.key("seq"), group.key("stream"), group.key("dead")
        self.registry = keyspace.group("events").key("topics")


def channel_prefix(keyspace: Keyspace) -> str:
    """What every fan-out channel of ``keyspace`` starts with."""
    return "{" + keyspace.group("events").tag + ":"


def pattern_channel(keyspace: Keyspace, pattern: str) -> str:
    """The ``PSUBSCRIBE`` pattern for a topic pattern (``*`` and ``?`` are wildcards)."""
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(f"a topic pattern must be a non-empty str, got {pattern!r}")
    out: list[str] = []
    part: list[str] = []
    for char in pattern:
        if char in "*?":
            out.append(escape("".join(part)) if part else "")
            out.append(char)
            part = []
        else:
            part.append(char)
    out.append(escape("".join(part)) if part else "")
    return channel_prefix(keyspace) + "".join(out) + "}"


def topic_of(channel: str, prefix: str) -> str:
    """The topic name behind a fan-out channel (``prefix`` from :func:`channel_prefix`)."""
    return unquote(channel[len(prefix) : -1])


# --- fan-out ----------------------------------------------------------------------------


def publish(keys: TopicKeys, payload: bytes, sharded: bool) -> ops.Once[int]:
    """Publish one payload with the topic's next sequence number; returns that number."""
    effect = ops.Eval(PUBLISH, (keys.seq,), (keys.channel, payload, "1" if sharded else "0"))
    return ops.Once(effect, lambda reply: int(reply[0]))


def split(data: bytes) -> tuple[int, bytes]:
    """A fan-out message's sequence number and payload."""
    cut = data.index(b" ")
    return int(data[:cut]), data[cut + 1 :]


# --- durable ------------------------------------------------------------------------------


def add(
    keys: TopicKeys, payloads: Sequence[bytes], maxlen: int, age_ms: int
) -> ops.Once[list[str]]:
    """Append payloads to the stream (trimmed in the same script); returns their ids."""
    effect = ops.Eval(ADD, (keys.stream,), (maxlen, age_ms, *payloads))
    return ops.Once(effect, lambda reply: [text(i) for i in reply])


@dataclass(slots=True)
class Entry:
    """A stream entry as read: its id, payload (None when the entry has no ``d`` field),
    how many times it was delivered to the group (1 for a first delivery) and its other
    fields (a dead letter's ``reason`` ...)."""

    id: str
    payload: bytes | None
    deliveries: int = 1
    fields: dict[str, str] | None = None


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return {text(k): v for k, v in raw.items()}
    if isinstance(raw, (list, tuple)):
        return {text(raw[i]): raw[i + 1] for i in range(0, len(raw) - 1, 2)}
    return {}


def entries(raw: Any) -> list[Entry]:
    """Entries from an ``XRANGE`` reply, or from ``XREAD``/``XREADGROUP`` on one stream."""
    if raw is None:
        return []
    if isinstance(raw, dict):  # RESP3 XREAD: {stream: [entries]}
        raw = next(iter(raw.values()), [])
        if raw and isinstance(raw[0], list) and len(raw) == 1 and isinstance(raw[0][0], list):
            raw = raw[0]
    elif raw and isinstance(raw[0], (list, tuple)) and len(raw[0]) == 2 and _is_stream(raw[0]):
        raw = raw[0][1]  # RESP2 XREAD: [[stream, [entries]]]
    out = []
    for entry_id, values in raw:
        if type(values) is dict and len(values) == 1 and b"d" in values:  # the common case
            out.append(Entry(entry_id.decode(), values[b"d"]))
            continue
        data = _fields(values)
        payload = data.pop("d", None)
        out.append(Entry(text(entry_id), payload, 1, {k: text(v) for k, v in data.items()}))
    return out


def _is_stream(first: Any) -> bool:
    """True for ``[stream name, [entries]]`` (an XREAD reply), not ``[id, fields]``."""
    return isinstance(first[1], list) and (not first[1] or isinstance(first[1][0], (list, tuple)))


@dataclass(slots=True)
class Cursor:
    """What one consumer remembers between reads."""

    claim_cursor: str = "0-0"
    claim_at: float = 0.0
    history: str | None = "0"  # read our own pending entries first (a restarted consumer)
    acks: list[str] = field(default_factory=list)
    acked: int = 0


@dataclass(frozen=True, slots=True)
class Group:
    """A consumer group's settings, as one consumer uses them."""

    keys: TopicKeys
    name: str
    consumer: str
    count: int
    claim_idle_ms: int
    dead_after: int
    start: str


def _nogroup(exc: BaseException) -> bool:
    return isinstance(exc, RedisCommandError) and str(exc).startswith("NOGROUP")


def create_group(group: Group, start: str | None = None) -> ops.Flow[bool]:
    """Create the group (and the stream); False when it existed already."""
    keys = group.keys
    try:
        yield ops.Call(
            "XGROUP", "CREATE", keys.stream, group.name, start or group.start, "MKSTREAM"
        )
    except RedisCommandError as exc:
        if str(exc).startswith("BUSYGROUP"):
            return False
        raise
    return True


def _xreadgroup(group: Group, entry_id: str, block_ms: int | None = None) -> tuple[Any, ...]:
    block: tuple[Any, ...] = () if block_ms is None else ("BLOCK", block_ms)
    return (
        "XREADGROUP", "GROUP", group.name, group.consumer, "COUNT", group.count, *block,
        "STREAMS", group.keys.stream, entry_id,
    )  # fmt: skip


def _ack_call(group: Group, ids: Sequence[str]) -> ops.Call:
    return ops.Call("XACK", group.keys.stream, group.name, *ids)


def flush_acks(group: Group, cursor: Cursor) -> ops.Flow[int]:
    """Send the queued acks (one ``XACK``); returns how many were pending."""
    ids, cursor.acks = cursor.acks, []
    if not ids:
        return 0
    try:
        acked = int((yield _ack_call(group, ids)))
    except BaseException:
        cursor.acks = ids + cursor.acks
        raise
    cursor.acked += acked
    return acked


def read(group: Group, cursor: Cursor, timeout: float) -> ops.Flow[list[Entry]]:
    """The next batch for this consumer, sending the queued acks on the way.

    In order: messages other consumers left idle past ``claim_idle`` (checked every half
    of it; those delivered more than ``dead_after`` times go to the dead letters), then
    this consumer's own unacknowledged ones (once, after a restart), then new ones,
    waiting up to ``timeout`` seconds on a dedicated connection. A missing group or
    stream (deleted) is created again and the read retried.
    """
    for _ in range(3):
        try:
            return (yield from _read_once(group, cursor, timeout))
        except RedisCommandError as exc:
            if not _nogroup(exc):
                raise
            cursor.history, cursor.claim_cursor = "0", "0-0"
            yield from create_group(group, "0")
    raise RedisCommandError(f"NOGROUP: the group {group.name!r} keeps disappearing")


def _read_once(group: Group, cursor: Cursor, timeout: float) -> ops.Flow[list[Entry]]:
    older = yield from _older(group, cursor)
    if older:
        return older
    ids, cursor.acks = cursor.acks, []
    if ids:
        found = yield from _ack_and_read(group, cursor, ids)
        if found or timeout <= 0:
            return found
    elif timeout <= 0:
        return entries((yield ops.Call(*_xreadgroup(group, ">"))))
    raw = yield ops.Block(lambda s: _xreadgroup(group, ">", max(1, int(s * 1000))), timeout)
    return entries(raw)


def _older(group: Group, cursor: Cursor) -> ops.Flow[list[Entry]]:
    """Idle entries to take over (every half ``claim_idle``), then our own pending ones."""
    now = time.monotonic()
    if now >= cursor.claim_at:
        cursor.claim_at = now + group.claim_idle_ms / 2000
        yield from flush_acks(group, cursor)
        claimed = yield from claim(group, cursor)
        if claimed:
            return claimed
    if cursor.history is None:
        return []
    yield from flush_acks(group, cursor)
    own = entries((yield ops.Call(*_xreadgroup(group, cursor.history))))
    cursor.history = own[-1].id if own else None
    return [Entry(e.id, e.payload, 2, e.fields) for e in own if e.payload is not None]


def _ack_and_read(group: Group, cursor: Cursor, ids: list[str]) -> ops.Flow[list[Entry]]:
    """The queued acks and a read of new entries, pipelined in one round trip."""
    try:
        acked, raw = yield ops.Batch([_ack_call(group, ids), ops.Call(*_xreadgroup(group, ">"))])
    except BaseException:
        cursor.acks = ids + cursor.acks
        raise
    if isinstance(acked, Exception):
        cursor.acks = ids + cursor.acks
        raise acked
    cursor.acked += int(acked)
    if isinstance(raw, Exception):
        raise raw
    return entries(raw)


def claim(group: Group, cursor: Cursor) -> ops.Flow[list[Entry]]:
    """Take over entries idle past ``claim_idle`` (see ``events_claim``)."""
    keys = group.keys
    reply = yield ops.Eval(
        CLAIM,
        (keys.stream, keys.dead),
        (
            group.name, group.consumer, group.claim_idle_ms, group.count, cursor.claim_cursor,
            group.dead_after, DEAD_MAXLEN,
        ),
    )  # fmt: skip
    cursor.claim_cursor = text(reply[0])
    if cursor.claim_cursor != "0-0":
        cursor.claim_at = 0.0  # more to scan: look again on the next read
    rest = reply[2:]
    return [Entry(text(rest[i]), rest[i + 1], int(rest[i + 2])) for i in range(0, len(rest), 3)]


def dead_letter(group: Group, items: Sequence[tuple[str, bytes, str]]) -> ops.Flow[int]:
    """Move ``(id, payload, reason)`` items to the dead letters (acknowledged in the group)."""
    if not items:
        return 0
    args: list[ops.EncodableT] = [group.name, DEAD_MAXLEN]
    for entry_id, payload, reason in items:
        args += [entry_id, payload, reason]
    return int((yield ops.Eval(DEAD, (group.keys.stream, group.keys.dead), args)))


# --- replay and tail ----------------------------------------------------------------------


def stream_id(value: str | int | float | dt.datetime | None, default: str) -> str:
    """An entry id from an id, a ``datetime`` or a Unix time in seconds."""
    if value is None:
        return default
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ConfigError("replay times must be timezone-aware datetimes")
        return f"{int(value.timestamp() * 1000)}-0"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{int(value * 1000)}-0"
    if isinstance(value, str) and value:
        return value
    raise ConfigError(f"expected a stream id, a datetime or a Unix time, got {value!r}")


def replay(stream: str, start: str, end: str, count: int) -> ops.Flow[list[Entry]]:
    """Entries from ``start`` to ``end`` (inclusive), oldest first, at most ``count``."""
    return entries((yield ops.Call("XRANGE", stream, start, end, "COUNT", count)))


def tail(stream: str, after: str, count: int, timeout: float) -> ops.Flow[list[Entry]]:
    """Entries after ``after`` (``$``: only new ones), waiting up to ``timeout`` seconds."""
    if timeout <= 0:
        return entries((yield ops.Call("XREAD", "COUNT", count, "STREAMS", stream, after)))
    raw = yield ops.Block(
        lambda s: (
            "XREAD",
            "COUNT",
            count,
            "BLOCK",
            max(1, int(s * 1000)),
            "STREAMS",
            stream,
            after,
        ),
        timeout,
    )
    return entries(raw)


def last_id(stream: str) -> ops.Flow[str]:
    """The id of the newest entry (``0-0`` for an empty or missing stream)."""
    raw = yield ops.Call("XREVRANGE", stream, "+", "-", "COUNT", 1)
    found = entries(raw)
    return found[0].id if found else "0-0"


# --- admin -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupInfo:
    """One consumer group of a durable topic."""

    name: str
    consumers: int
    pending: int
    lag: int | None
    last_delivered: str


@dataclass(frozen=True)
class TopicInfo:
    """A topic as admin tools and dashboards see it.

    ``sequence``: the last fan-out sequence number (0: never published fan-out);
    ``length``, ``groups`` and ``dead_letters`` describe the durable stream (0 and
    empty when there is none).
    """

    name: str
    sequence: int
    length: int
    groups: list[GroupInfo]
    dead_letters: int


def info(keys: TopicKeys) -> ops.Flow[TopicInfo]:
    """The topic's sequence number, stream length, groups (pending, lag) and dead letters."""
    seq, length, dead = yield ops.Batch(
        [ops.Call("GET", keys.seq), ops.Call("XLEN", keys.stream), ops.Call("XLEN", keys.dead)]
    )
    groups: list[GroupInfo] = []
    if (isinstance(length, int) and length > 0) or not isinstance(length, int):
        try:
            raw = yield ops.Call("XINFO", "GROUPS", keys.stream)
        except RedisCommandError:  # no stream
            raw = []
        groups = [_group_info(item) for item in raw]
    return TopicInfo(
        keys.name,
        int(seq or 0),
        length if isinstance(length, int) else 0,
        groups,
        dead if isinstance(dead, int) else 0,
    )


def _group_info(raw: Any) -> GroupInfo:
    data = _fields(raw) if not isinstance(raw, dict) else {text(k): v for k, v in raw.items()}
    lag = data.get("lag")
    return GroupInfo(
        text(data.get("name", "")),
        int(data.get("consumers", 0)),
        int(data.get("pending", 0)),
        None if lag is None else int(lag),
        text(data.get("last-delivered-id", "0-0")),
    )


def register(keys: TopicKeys) -> ops.Flow[Any]:
    """Remember the topic's name for :func:`topics` (once per topic object)."""
    return (yield ops.Call("SADD", keys.registry, keys.name))


def topics(keyspace: Keyspace) -> ops.Flow[list[str]]:
    """Every topic published to under this prefix, sorted."""
    raw = yield ops.Call("SMEMBERS", keyspace.group("events").key("topics"))
    return sorted(text(name) for name in raw)
