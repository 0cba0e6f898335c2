"""A queue's event stream: what happened to its jobs, for producers and dashboards.

With ``events=N`` on the queue, the scripts that change a job's state add an entry to
the stream ``…:events`` in the same call (so an event is never missing for a change that
happened, nor present for one that did not), trimmed to about N entries. Entries carry
``e`` (the event), ``j`` (the job's id) and, for progress, ``d`` (the value).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from redkit import ops
from redkit.errors import ConfigError
from redkit.queue.ops import QueueKeys

#: Every event a queue's stream may hold.
EVENTS = ("enqueued", "active", "progress", "completed", "failed", "retried", "cancelled", "dead")


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """One entry of a queue's event stream.

    ``id`` is the stream id (pass it as ``after=`` to read on from there), ``event`` one
    of :data:`EVENTS`, ``job_id`` the job's id as stored, ``data`` the progress value
    (``progress`` events only, else None).
    """

    id: str
    event: str
    job_id: str
    data: Any = None


def stream(keys: QueueKeys) -> str:
    """The queue's event stream."""
    return keys.group.key("events")


def replay(keys: QueueKeys, after: str, count: int) -> ops.Once[list[QueueEvent]]:
    """Up to ``count`` events after stream id ``after`` (``"0"``: from the oldest kept)."""
    _check(after, count)
    start = "-" if after in ("0", "0-0") else "(" + after
    effect = ops.Call("XRANGE", stream(keys), start, "+", "COUNT", count)
    return ops.Once(effect, _entries)


def read(keys: QueueKeys, after: str, count: int, timeout: float) -> ops.Flow[list[QueueEvent]]:
    """Events after ``after`` (``"$"``: only new ones), waiting up to ``timeout`` seconds
    for the first (a dedicated connection); an empty list when none came."""
    _check(after, count)
    key = stream(keys)
    if after == "$":  # pin "now" to an id, so a wait in several blocking calls loses nothing
        last = yield ops.Call("XREVRANGE", key, "+", "-", "COUNT", 1)
        after = _text(last[0][0]) if last else "0-0"
    if timeout <= 0:
        reply = yield ops.Call("XREAD", "COUNT", count, "STREAMS", key, after)
    else:
        reply = yield ops.Block(
            lambda s: ("XREAD", "COUNT", count, "BLOCK", max(1, int(s * 1000)), "STREAMS",
                       key, after),
            timeout,
        )  # fmt: skip
    return _xread(reply)


def job_progress(keys: QueueKeys, member: str) -> ops.Once[bytes | None]:
    """The last progress a job's handler reported (serialized), or None."""
    return ops.Once(ops.Call("HGET", keys.job(member), "pg"), lambda reply: reply)


def decoded(events: list[QueueEvent], loads: Callable[[bytes], Any]) -> list[QueueEvent]:
    """``events`` with their progress values deserialized."""
    return [replace(e, data=loads(e.data)) if isinstance(e.data, bytes) else e for e in events]


def _check(after: str, count: int) -> None:
    if not isinstance(after, str):
        raise ConfigError(f"after must be a stream id str, got {after!r}")
    if not (isinstance(count, int) and count >= 1):
        raise ConfigError(f"count must be an int >= 1, got {count!r}")


def _xread(reply: Any) -> list[QueueEvent]:
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3: {stream: [entries]}
        return _entries(next(iter(reply.values())))
    return _entries(reply[0][1])


def _entries(entries: Any) -> list[QueueEvent]:
    out = []
    for entry_id, fields in entries or ():
        if isinstance(fields, list):
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        data = fields.get(b"d", fields.get("d"))
        out.append(
            QueueEvent(
                _text(entry_id), _text(fields.get(b"e", fields.get("e", b""))),
                _text(fields.get(b"j", fields.get("j", b""))),
                data if isinstance(data, bytes) or data is None else str(data).encode(),
            )
        )  # fmt: skip
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
