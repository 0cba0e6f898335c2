"""Schedules: enqueue a task's job at every tick of a cron expression or a fixed interval.

A queue's schedules live in two keys in its hash slot: ``…:schedules`` (a hash: name ->
definition) and ``…:schedule_next`` (a sorted set: name -> the next tick, ms). Every worker
of the queue runs a schedule loop; there is no leader. A worker that finds a schedule
due computes the tick after it (cron in Python, with the schedule's time zone) and calls
one script that moves the schedule to that tick *only if it is still at the one it saw*
and enqueues the tick's job (id ``schedule:<name>:<tick ms>``): whichever worker gets
there first enqueues the tick, the others find it moved. A tick missed while no worker
ran is enqueued late when it is at most ``catch_up`` seconds old, and skipped otherwise.
"""

from __future__ import annotations

import base64
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypedDict

import orjson

from redkit import ops
from redkit._lazy import require
from redkit.errors import ConfigError
from redkit.queue.ops import MAX_PRIORITY, SCHEDULED, QueueKeys, member
from redkit.scripts import script

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

PUT = script("queue_sched_put")
REMOVE = script("queue_sched_remove")
DUE = script("queue_sched_due")
TICK = script("queue_sched_tick")


class ScheduleOptions(TypedDict, total=False):
    """Options of :meth:`Queue.schedule` and :meth:`Queue.add_schedule`."""

    cron: str
    every: float
    tz: str
    args: tuple[Any, ...] | list[Any]
    kwargs: dict[str, Any]
    priority: int
    catch_up: float


@dataclass(frozen=True, slots=True)
class Schedule:
    """One schedule: the task it enqueues, when, and with which (serialized) arguments.

    Exactly one of ``cron`` (a five-field cron expression, read in the time zone ``tz``)
    and ``every`` (seconds; ticks fall on multiples of it since the Unix epoch) is set.
    """

    name: str
    task: str
    cron: str | None
    every: float | None
    tz: str
    payload: bytes
    priority: int
    catch_up: float

    def next_after(self, ms: int) -> int:
        """The first tick strictly after ``ms`` (Unix ms)."""
        if self.every is not None:
            step = round(self.every * 1000)
            return (ms // step + 1) * step
        croniter = require("croniter", "cron").croniter
        start = datetime.fromtimestamp(ms / 1000, _zone(self.tz))
        following: datetime = croniter(self.cron, start).get_next(datetime)
        return math.floor(following.timestamp() * 1000)

    def plan(self, due_ms: int, now_ms: int) -> tuple[bool, int]:
        """For a schedule found due at ``due_ms``: enqueue that tick?, and the next tick."""
        if due_ms == 0:  # new or changed: the first tick after now, nothing to enqueue
            return False, self.next_after(now_ms)
        window = round(self.catch_up * 1000)
        if now_ms - due_ms <= window:
            return True, self.next_after(due_ms)
        return False, self.next_after(now_ms - window - 1)  # skip what is too old

    def encode(self) -> bytes:
        """The definition as stored (JSON; the payload in base64)."""
        return orjson.dumps(
            {
                "task": self.task, "cron": self.cron, "every": self.every, "tz": self.tz,
                "payload": base64.b64encode(self.payload).decode(), "priority": self.priority,
                "catch_up": self.catch_up,
            },
            option=orjson.OPT_SORT_KEYS,
        )  # fmt: skip

    @classmethod
    def decode(cls, name: str, data: bytes) -> Schedule:
        """A stored definition (see :meth:`encode`)."""
        d = orjson.loads(data)
        return cls(
            name, d["task"], d["cron"], d["every"], d["tz"], base64.b64decode(d["payload"]),
            int(d["priority"]), float(d["catch_up"]),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A stored schedule and its next run, in the schedule's time zone (until a worker
    has computed the first tick of a new schedule, by this machine's clock)."""

    schedule: Schedule
    next_run: datetime

    @property
    def name(self) -> str:
        """The schedule's name."""
        return self.schedule.name


def build(name: str, task: str, payload: bytes, options: ScheduleOptions) -> Schedule:
    """A checked :class:`Schedule` from :class:`ScheduleOptions`."""
    if not name or not isinstance(name, str):
        raise ConfigError(f"a schedule needs a name (a non-empty str), got {name!r}")
    cron, every = options.get("cron"), options.get("every")
    if (cron is None) == (every is None):
        raise ConfigError(f"schedule {name!r}: give exactly one of cron= and every=")
    tz = options.get("tz", "UTC")
    _zone(tz)
    if cron is not None:
        croniter = require("croniter", "cron").croniter
        if not (isinstance(cron, str) and len(cron.split()) == 5 and croniter.is_valid(cron)):
            raise ConfigError(f"schedule {name!r}: not a five-field cron expression: {cron!r}")
    elif not (isinstance(every, (int, float)) and every >= 0.001 and math.isfinite(every)):
        raise ConfigError(f"schedule {name!r}: every must be at least 0.001 s, got {every!r}")
    catch_up = options.get("catch_up", 60.0)
    if not (isinstance(catch_up, (int, float)) and catch_up >= 0 and math.isfinite(catch_up)):
        raise ConfigError(f"schedule {name!r}: catch_up must be 0 or more s, got {catch_up!r}")
    priority = options.get("priority", 0)
    if not (isinstance(priority, int) and -MAX_PRIORITY <= priority <= MAX_PRIORITY):
        raise ConfigError(f"schedule {name!r}: priority out of range: {priority!r}")
    return Schedule(
        name, task, cron, float(every) if every is not None else None, tz, payload, priority,
        float(catch_up),
    )  # fmt: skip


def _zone(tz: str) -> ZoneInfo | timezone:
    if tz == "UTC":
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(
            f"unknown time zone {tz!r} (an IANA name such as 'Europe/Paris')"
        ) from None


# --- keys and operations -------------------------------------------------------------------


def _keys(keys: QueueKeys) -> tuple[str, str]:
    return keys.group.key("schedules"), keys.group.key("schedule_next")


def put(keys: QueueKeys, schedule: Schedule) -> ops.Once[bool]:
    """Store ``schedule``; True when new or changed (its next run is then recomputed)."""
    return ops.Once(ops.Eval(PUT, _keys(keys), (schedule.name, schedule.encode())), bool)


def remove(keys: QueueKeys, name: str) -> ops.Once[bool]:
    """Remove the schedule ``name``; False when there was none."""
    return ops.Once(ops.Eval(REMOVE, _keys(keys), (name,)), bool)


@dataclass(frozen=True, slots=True)
class Due:
    """The due schedules (name, tick ms, definition), the server's time, the next tick."""

    now_ms: int
    next_ms: int
    items: list[tuple[str, int, Schedule | None]]


def due(keys: QueueKeys, limit: int = 100) -> ops.Once[Due]:
    """The schedules due now by the server's clock (at most ``limit``)."""
    return ops.Once(ops.Eval(DUE, _keys(keys), (limit,)), _parse_due)


def _parse_due(reply: list[Any]) -> Due:
    items: list[tuple[str, int, Schedule | None]] = []
    for i in range(2, len(reply), 3):
        name = _text(reply[i])
        try:
            schedule: Schedule | None = Schedule.decode(name, reply[i + 2])
        except (ValueError, KeyError, TypeError):
            schedule = None  # not a definition redkit wrote
        items.append((name, int(float(reply[i + 1])), schedule))
    return Due(int(reply[0]), int(reply[1]), items)


def tick(
    keys: QueueKeys, schedule: Schedule, due_ms: int, now_ms: int, events: int = 0
) -> ops.Once[bool]:
    """Move ``schedule`` on from ``due_ms`` and enqueue that tick's job if it is not too
    old; False when another worker had moved it already."""
    enqueue, following = schedule.plan(due_ms, now_ms)
    job_id = member(f"{SCHEDULED}{schedule.name}:{due_ms}")  # job_partition: partition 0
    effect = ops.Eval(
        TICK, (_keys(keys)[1], keys.wait, keys.inbox, keys.meta),
        (keys.base, schedule.name, due_ms, following, 1 if enqueue else 0, job_id,
         schedule.task, schedule.payload, schedule.priority, events),
    )  # fmt: skip
    return ops.Once(effect, bool)


def run_due(keys: QueueKeys, events: int = 0) -> ops.Flow[int]:
    """One pass of a worker's schedule loop: enqueue every due tick that is still due.

    Returns ms until the next tick (-1: no schedule), 0 when more may be due at once.
    """
    found = yield from due(keys)
    ticked = False
    for name, due_ms, schedule in found.items:
        if schedule is None:
            yield ops.Note("queue.schedule.invalid", name)
            continue
        yield from tick(keys, schedule, due_ms, found.now_ms, events)
        ticked = True
    if ticked:
        return 0
    if found.items or found.next_ms < 0:
        return -1
    return max(found.next_ms - found.now_ms, 0)


def listing(keys: QueueKeys) -> ops.Flow[list[ScheduleInfo]]:
    """Every stored schedule with its next run, by name."""
    defs_key, next_key = _keys(keys)
    defs, nexts = yield ops.Batch(
        [ops.Call("HGETALL", defs_key), ops.Call("ZRANGE", next_key, 0, -1, "WITHSCORES")]
    )
    pairs = (
        nexts
        if nexts and isinstance(nexts[0], (list, tuple))
        else zip(nexts[::2], nexts[1::2], strict=True)
    )
    runs = {_text(name): float(score) for name, score in pairs}
    out = []
    for raw_name, data in sorted(defs.items()):
        name = _text(raw_name)
        schedule = Schedule.decode(name, data)
        at = runs.get(name) or schedule.next_after(int(time.time() * 1000))  # 0: estimate
        out.append(ScheduleInfo(schedule, datetime.fromtimestamp(at / 1000, _zone(schedule.tz))))
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
