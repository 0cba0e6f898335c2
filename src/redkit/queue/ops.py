"""The queue's operations: its keys, scripts, flows and reply parsing.

Every key of a queue shares the queue's hash tag, ``{prefix:queue:name}``, so each script
touches one cluster slot. A job is a hash (``…:j:<id>``) with its task name, payload,
state, deliveries, fencing token and outcome; the queue's sorted sets hold ids:

* ``wait``: ready jobs, scored by priority, then enqueue order (lowest claimed first);
* ``delayed``: jobs that wait for a time (a retry's backoff, or ``delay=``), scored by
  when they are due; the claim script promotes the due ones itself;
* ``workers``: live workers, scored by when their lease ends; each worker's claimed jobs
  are in its own set ``…:w:<worker>``, so one renewal covers them all;
* ``done``, ``failed``, ``dead``: finished jobs by when they finished.

A plain job (no priority, delay, group or deduplication, on a queue that keeps no events)
is added with one native command, an ``XADD`` to the queue's inbox, a stream (``…:inbox``);
the scripts take the inbox's jobs in, in order, before they claim, count, look up or add
(``ingest`` in ``_queue_core.lua``). Idle workers block reading the inbox, so the same
``XADD`` wakes them; the scripts leave a wake-up entry there when other jobs get ready.

A partitioned queue (``partitions=N``) is N such queues: partition 0 has the keys above,
partition i the same keys under a hash tag of its own, ``{prefix:queue:name|i}``, so the
partitions spread over a cluster's slots while each script still touches one. A job's
partition follows from its id (:func:`job_partition`), so any handle finds it.
"""

from __future__ import annotations

import functools
import secrets
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redkit import ops
from redkit.errors import ConfigError
from redkit.keys import MAX_PART_BYTES, KeyGroup, Keyspace, escape
from redkit.scripts import script

ADD = script("queue_add")
TAKE = script("queue_take")
RENEW = script("queue_renew")
RELEASE = script("queue_release")
WATCH = script("queue_watch")
CANCEL = script("queue_cancel")
RETRY = script("queue_retry")
PAUSE = script("queue_pause")
COUNTS = script("queue_counts")
LIST = script("queue_list")
PURGE = script("queue_purge")

T = TypeVar("T")

#: States after which a job never changes again.
FINAL = frozenset({"done", "failed", "dead", "cancelled"})
#: Priorities must lie within +-MAX_PRIORITY (scores stay exact integers in a double).
MAX_PRIORITY = 4095


class QueueKeys:
    """Every key of one queue, built from its key group."""

    __slots__ = (
        "adding",
        "base",
        "dead",
        "delayed",
        "done",
        "failed",
        "group",
        "inbox",
        "index",
        "meta",
        "wait",
        "workers",
    )

    def __init__(self, keyspace: Keyspace, name: str, partition: int = 0) -> None:
        group = keyspace.group("queue", name)
        self.group: KeyGroup = group.shard(partition) if partition else group
        self.index = partition
        self.base = self.group.key() + ":"
        self.wait, self.delayed = self.group.key("wait"), self.group.key("delayed")
        self.workers, self.inbox = self.group.key("workers"), self.group.key("inbox")
        self.done, self.failed = self.group.key("done"), self.group.key("failed")
        self.dead, self.meta = self.group.key("dead"), self.group.key("meta")
        #: the keys of the add script, built once (it runs for every enqueue)
        self.adding = (self.wait,)

    def job(self, member: str) -> str:
        """The hash of the job whose (escaped) id is ``member``."""
        return self.group.key("j", member)

    def signal(self, member: str) -> str:
        """The list that wakes producers waiting for the job's outcome."""
        return self.group.key("s", member)

    def worker(self, worker_id: str) -> str:
        """The set of jobs that ``worker_id`` holds."""
        return self.group.key("w", worker_id)

    def cancels(self, worker_id: str) -> str:
        """The list of ``worker_id``'s running jobs whose cancellation was requested."""
        return self.group.key("x", worker_id)

    def worker_wake(self, worker_id: str) -> str:
        """The stream that ends ``worker_id``'s blocking wait early (a stop, a timer)."""
        return self.group.key("ww", worker_id)


def member(job_id: str) -> str:
    """A job id as stored in the queue's sets (escaped, so it cannot leave the key group)."""
    if job_id.isalnum() and job_id.isascii() and len(job_id) <= MAX_PART_BYTES:
        return job_id  # letters and digits only (the ids redkit makes): escaped as they are
    return escape(job_id)


#: How the id of a schedule's job begins (``schedule:<name>:<tick ms>``).
SCHEDULED = "schedule:"


def partition_of(key: str, partitions: int) -> int:
    """The partition that ``key`` (a group, a deduplication key) maps to: a stable hash,
    the same in every process. A job id maps by :func:`job_partition`."""
    if partitions == 1:
        return 0
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


def job_partition(job_id: str, partitions: int) -> int:
    """The partition that holds the job with id ``job_id``: partition 0 for an id that
    begins with ``schedule:``, as a schedule's jobs' ids do (the schedules live in
    partition 0 and add their jobs there), so that a handle finds those by their id too;
    else the hash of :func:`partition_of`. Only ids: a group or a deduplication key that
    begins with ``schedule:`` is hashed like any other."""
    if job_id.startswith(SCHEDULED):
        return 0
    return partition_of(job_id, partitions)


def new_id(partition: int | None = None, partitions: int = 1) -> str:
    """A fresh random job id; with ``partition``, one that maps to that partition (a draw
    in ``partitions`` succeeds, so this takes ``partitions`` draws on average)."""
    while True:
        job_id = secrets.token_hex(16)
        if partition is None or job_partition(job_id, partitions) == partition:
            return job_id


# --- enqueue ------------------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: a frozen dataclass costs several us per job to build
class NewJob:
    """One job to add: its (escaped) id, task name, serialized arguments and schedule."""

    member: str
    task: str
    payload: bytes
    priority: int
    delay_ms: int


def add(keys: QueueKeys, jobs: Sequence[NewJob], events: int = 0) -> ops.Once[int]:
    """Add ``jobs`` in one script call; the number added (a job whose id exists is skipped).

    The jobs share one priority and delay (one enqueue call's); ``events``: the queue's
    event stream length (0: no events). One plain job (priority 0, no delay, no events)
    goes to the queue's inbox with one ``XADD`` instead: 1, though a job with its id may
    exist (the inbox's job is then skipped when it is taken in)."""
    if len(jobs) == 1 and not events:
        job = jobs[0]
        if not (job.priority or job.delay_ms):
            return ops.Once(
                ops.Call("XADD", keys.inbox, "*", job.member, job.task, "p", job.payload), _one
            )
    args: list[ops.EncodableT] = []
    if jobs:
        priority, delay_ms = jobs[0].priority, jobs[0].delay_ms
        if priority or delay_ms or events:  # else the script's defaults: one argument less
            args.append(f"{priority} {delay_ms} {events}")
        for job in jobs:
            if job.priority != priority or job.delay_ms != delay_ms:
                raise ConfigError("jobs added in one call must share their priority and delay")
            args += (job.member, job.task, job.payload)
    return ops.Once(ops.Eval(ADD, keys.adding, args), int)


def _one(reply: Any) -> int:
    return 1


# --- workers ------------------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: one per job, and a frozen init costs twice as much
class Ack:
    """A finished job as a worker reports it: ``outcome`` is ``d``one, ``r``etry, ``f``ailed."""

    member: str
    token: int
    outcome: str
    data: bytes
    delay_ms: int = 0
    part: int = 0  # the partition of a partitioned queue the job belongs to


@dataclass(slots=True)  # not frozen: one per job (see Ack)
class Claimed:
    """A job leased to a worker: ``token`` fences its finish, ``deliveries`` counts runs."""

    member: str
    token: int
    task: str
    payload: bytes
    deliveries: int
    children: tuple[tuple[str, bytes], ...] = ()  # a flow parent's children's outcomes
    part: int = 0  # the partition of a partitioned queue it was claimed from


@dataclass(frozen=True, slots=True)
class Policy:
    """A queue's lease and retention settings, as the take script receives them."""

    lease_ms: int
    dead_after: int
    result_ttl_ms: int
    keep_completed: int
    events: int = 0  # the event stream's length; 0: no events


@dataclass(frozen=True, slots=True)
class Taken:
    """The reply of one take: claimed jobs, stale acks, ms until the next timed event."""

    jobs: list[Claimed]
    stale: int
    next_ms: int


def take(
    keys: QueueKeys, worker_id: str, policy: Policy, want: int, acks: Sequence[Ack]
) -> ops.Once[Taken]:
    """Finish ``acks``, recover dead workers' jobs, promote due ones, claim up to ``want``."""
    return ops.Once(_take(keys, worker_id, policy, want, acks), _taken_parser(keys))


def _take(
    keys: QueueKeys, worker_id: str, policy: Policy, want: int, acks: Sequence[Ack]
) -> ops.Eval:
    args: list[ops.EncodableT] = [
        keys.base, worker_id, policy.lease_ms, want, policy.dead_after,
        policy.result_ttl_ms, policy.keep_completed, policy.events,
    ]  # fmt: skip
    for ack in acks:
        args += [ack.member, ack.token, ack.outcome, ack.data, ack.delay_ms]
    return ops.Eval(
        TAKE,
        (keys.wait, keys.delayed, keys.workers, keys.worker(worker_id), keys.done,
         keys.failed, keys.dead, keys.inbox),
        args,
    )  # fmt: skip


def _taken_parser(keys: QueueKeys) -> Callable[[list[Any]], Taken]:
    if keys.index:
        return functools.partial(parse_taken, part=keys.index)
    return parse_taken


def parse_taken(reply: list[Any], part: int = 0) -> Taken:
    """The take script's reply as a :class:`Taken`."""
    jobs = []
    for i in range(2, len(reply), 5):
        payload = reply[i + 3]
        children: tuple[tuple[str, bytes], ...] = ()
        if isinstance(payload, list):  # a flow's parent: its children's outcomes follow
            children = tuple((_text(payload[j]), payload[j + 1]) for j in range(1, len(payload), 2))
            payload = payload[0]
        jobs.append(Claimed(_text(reply[i]), int(reply[i + 1]), _text(reply[i + 2]), payload,
                            int(reply[i + 4]), children, part))  # fmt: skip
    return Taken(jobs, int(reply[1]), int(reply[0]))


def renew(keys: QueueKeys, worker_id: str, lease_ms: int) -> ops.Once[bool]:
    """Extend the lease of every job the worker holds; False when it had already ended."""
    effect = ops.Eval(RENEW, (keys.workers,), (worker_id, lease_ms))
    return ops.Once(effect, bool)


def release(
    keys: QueueKeys, worker_id: str, running: Sequence[tuple[str, int]] | None = None
) -> ops.Once[int]:
    """Hand the worker's jobs back to the queue at once.

    With ``running`` None the worker is stopping: every job goes back and its lease ends.
    Otherwise ``running`` lists the (job, fencing token) pairs the worker knows of, and
    every other claim goes back (made by a call whose reply was lost, the same job under
    a newer token included); the worker keeps its lease.
    """
    known = [f"{member}:{token}" for member, token in running or ()]
    mode: list[ops.EncodableT] = ["stop"] if running is None else ["sync", *known]
    effect = ops.Eval(
        RELEASE,
        (keys.workers, keys.worker(worker_id), keys.wait, keys.inbox),
        (keys.base, worker_id, *mode),
    )
    return ops.Once(effect, int)


def block(keys: QueueKeys, worker_id: str, seconds: float) -> ops.Flow[Any]:
    """Wait on the queue's inbox (a dedicated connection) for at most ``seconds``.

    The wait reads the inbox from its start, so any entry ends it: a job added since the
    worker's last claim (each claim empties the inbox), or a wake-up. The worker's own
    stream ends the wait early when the worker is asked to stop or a timer is due
    (cancelling a blocked read would cost its connection); its next claim empties it.
    """
    return (yield ops.Block(_reading(keys, worker_id), seconds))


def _reading(keys: QueueKeys, worker_id: str) -> Callable[[float], tuple[ops.EncodableT, ...]]:
    """The blocking read of :func:`block`, for a block of ``s`` seconds."""
    own = keys.worker_wake(worker_id)
    # from the start: any entry ends it; one is enough (not a backlog the wait cannot use)
    streams = ("COUNT", 1, "STREAMS", keys.inbox, own, "0-0", "0-0")
    return lambda s: ("XREAD", "BLOCK", max(1, round(s * 1000)), *streams)


def block_take(
    keys: QueueKeys, worker_id: str, seconds: float, policy: Policy, want: int
) -> ops.Flow[Taken]:
    """:func:`block`, then claim up to ``want`` jobs the moment the wait ends.

    The claim (:func:`take`, reporting nothing) rides behind the wait on its connection,
    so the server runs it as the job that woke the worker arrives: the job comes back
    with the wait's reply, without a round trip from the worker in between. A wait that
    ends otherwise (interrupted, timed out) claims too, as the worker's next round would.
    """
    claim = _take(keys, worker_id, policy, want, ())
    _, reply = yield ops.Block(_reading(keys, worker_id), seconds, then=claim)
    if isinstance(reply, Exception):
        raise reply
    return _taken_parser(keys)(reply)


def interrupt(keys: QueueKeys, worker_id: str) -> ops.Flow[Any]:
    """End the worker's blocking wait (see :func:`block`)."""
    own = keys.worker_wake(worker_id)
    wake = ops.Call("XADD", own, "*", "w", 1)
    return (yield ops.Batch([wake, ops.Call("PEXPIRE", own, 10_000)]))


# --- producers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A job's state as read from the server; ``state`` None when there is no such job."""

    state: str | None
    deliveries: int
    result: bytes | None
    error: bytes | None
    deaths: int


#: A lookup's reply when it did not find its job yet and the inbox holds more jobs to take
#: in (a call takes in 50,000 at the most): look again.
LOOK_AGAIN = -1


def taken_in(once: ops.Once[T]) -> ops.Flow[T]:
    """Run a lookup by id (``once``) again while its script answers :data:`LOOK_AGAIN`."""
    while True:
        reply = yield once.effect
        if reply != LOOK_AGAIN:
            return once.finish(reply)


def watch(keys: QueueKeys, job_member: str, register: bool) -> ops.Flow[Snapshot]:
    """Read a job's state; with ``register``, also ask to be woken when it finishes."""
    effect = ops.Eval(WATCH, (keys.job(job_member),), (1 if register else 0, keys.base))
    return taken_in(ops.Once(effect, _snapshot))


def _snapshot(reply: list[Any]) -> Snapshot:
    state, deliveries, result, error, deaths = reply
    return Snapshot(
        _text(state) if state else None, int(deliveries or 0), result, error, int(deaths or 0)
    )


def wait_final(keys: QueueKeys, job_member: str, timeout: float) -> ops.Flow[Snapshot]:
    """Wait until the job is finished (or ``timeout`` seconds pass) and return its state."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        snap = yield from watch(keys, job_member, register=remaining > 0)
        if snap.state is None or snap.state in FINAL or remaining <= 0:
            return snap
        yield from ops.wait_signal(keys.signal(job_member), remaining)


def cancel(keys: QueueKeys, job_member: str, policy: Policy) -> ops.Flow[int]:
    """Cancel a job: 1 cancelled, 2 cancellation of the running job requested, 0 neither."""
    effect = ops.Eval(
        CANCEL, (keys.job(job_member), keys.wait, keys.delayed),
        (keys.base, job_member, policy.result_ttl_ms, policy.lease_ms, policy.events),
    )  # fmt: skip
    return taken_in(ops.Once(effect, int))


def follow_cancels(keys: QueueKeys, worker_id: str, seconds: float) -> ops.Flow[str | None]:
    """Wait up to ``seconds`` for a cancellation addressed to the worker: a job member,
    ``""`` when the wait was interrupted, or None when nothing came."""
    own = keys.cancels(worker_id)
    reply = yield ops.Block(lambda s: ("BLPOP", own, round(s, 3)), seconds)
    return None if reply is None else _text(reply[1])


def interrupt_cancels(keys: QueueKeys, worker_id: str) -> ops.Flow[Any]:
    """End the worker's wait in :func:`follow_cancels` (it is stopping)."""
    own = keys.cancels(worker_id)
    return (yield ops.Batch([ops.Call("RPUSH", own, ""), ops.Call("PEXPIRE", own, 10_000)]))


def retry(keys: QueueKeys, members: Sequence[str] | None, limit: int = 1000) -> ops.Once[int]:
    """Put failed or dead jobs back in the queue: ``members``, or up to ``limit`` of all."""
    mode: list[ops.EncodableT] = ["all", limit] if members is None else ["one", *members]
    effect = ops.Eval(RETRY, (keys.failed, keys.dead, keys.wait, keys.inbox), (keys.base, *mode))
    return ops.Once(effect, int)


def retry_all(keys: QueueKeys) -> ops.Flow[int]:
    """Put every failed and dead job back in the queue, a thousand per call."""
    total = 0
    while True:
        moved = yield from retry(keys, None)
        total += moved
        if moved == 0:
            return total


def pause(keys: QueueKeys, paused: bool) -> ops.Once[bool]:
    """Pause (or resume) claiming from the queue; True when its state changed."""
    effect = ops.Eval(PAUSE, (keys.meta, keys.wait, keys.inbox), (1 if paused else 0, keys.base))
    return ops.Once(effect, bool)


def is_paused(keys: QueueKeys) -> ops.Once[bool]:
    """Whether the queue is paused."""
    return ops.Once(ops.Call("HEXISTS", keys.meta, "paused"), bool)


#: The states :func:`counts` reports, in table order.
STATES = ("waiting", "delayed", "active", "done", "failed", "dead", "blocked")
#: States whose jobs :func:`purge` may delete (running jobs are left to their workers).
PURGEABLE = ("waiting", "delayed", "done", "failed", "dead", "blocked")


def counts(keys: QueueKeys) -> ops.Once[dict[str, int]]:
    """Jobs per state (:data:`STATES`; ``waiting`` includes grouped jobs, ``blocked`` is
    flows' parents waiting for their children), plus ``workers`` (live) and ``enqueued``
    (ever)."""
    effect = ops.Eval(
        COUNTS,
        (keys.wait, keys.delayed, keys.done, keys.failed, keys.dead, keys.workers, keys.meta),
        (keys.base,),
    )
    names = (*STATES, "workers", "enqueued")
    return ops.Once(effect, lambda reply: {n: int(v) for n, v in zip(names, reply, strict=True)})


@dataclass(frozen=True, slots=True)
class Listed:
    """One job as :func:`jobs` reads it (raw: the payload and error still serialized)."""

    member: str
    score: int
    task: str
    state: str
    deliveries: int
    deaths: int
    added_ms: int
    payload: bytes | None
    error: bytes | None


def _state_set(keys: QueueKeys, state: str) -> tuple[str, str]:
    """The sorted set that holds jobs in ``state``, and the order they are listed in."""
    sets = {
        "waiting": (keys.wait, "waiting"), "delayed": (keys.delayed, "asc"),
        "blocked": (keys.group.key("blocked"), "asc"),
        "active": (keys.workers, "active"), "done": (keys.done, "desc"),
        "failed": (keys.failed, "desc"), "dead": (keys.dead, "desc"),
    }  # fmt: skip
    return sets[state]


def jobs(keys: QueueKeys, state: str, offset: int, count: int) -> ops.Once[list[Listed]]:
    """A page of the jobs in ``state`` (one of :data:`STATES`): the oldest first for
    waiting (grouped or not, by priority, then enqueue order), delayed and blocked, the
    latest first for done, failed and dead."""
    key, mode = _state_set(keys, state)
    effect = ops.Eval(LIST, (key,), (keys.base, mode, offset, count))
    return ops.Once(effect, _listed)


def _listed(reply: list[Any]) -> list[Listed]:
    return [
        Listed(_text(reply[i]), int(float(reply[i + 1])), _text(reply[i + 2]),
               _text(reply[i + 3]), int(reply[i + 4]), int(reply[i + 5]), int(reply[i + 6]),
               reply[i + 7] or None, reply[i + 8] or None)
        for i in range(0, len(reply), 9)
    ]  # fmt: skip


def purge(keys: QueueKeys, states: Sequence[str], batch: int = 1000) -> ops.Flow[int]:
    """Delete every job in ``states`` (of :data:`PURGEABLE`), ``batch`` per script call."""
    total = 0
    for state in states:
        key, _ = _state_set(keys, state)
        while True:
            deleted = yield ops.Eval(PURGE, (key,), (keys.base, batch, state))
            total += int(deleted)
            if int(deleted) < batch:
                break
    return total


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
