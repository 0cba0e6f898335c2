"""The queue's administrative operations: listing jobs and workers, deleting, promoting, purging.

For operators and the dashboard, not for a request path: listings read a page of a state's
sorted set and the jobs' hashes in one pipeline each. Every key is in the queue's hash tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from redkit import ops
from redkit.errors import ConfigError
from redkit.queue.ops import QueueKeys, member
from redkit.scripts import script

DELETE = script("queue_delete")
PROMOTE = script("queue_promote")
PURGE = script("queue_purge")

#: The states a job can be listed by; ``active`` jobs are read from the workers' sets.
STATES = ("waiting", "delayed", "active", "done", "failed", "dead")
#: The states :func:`purge` empties (a worker holds active jobs: they are never purged).
PURGEABLE = ("waiting", "delayed", "done", "failed", "dead")
_FIELDS = ("st", "t", "p", "n", "c", "at", "ft", "wk", "e", "r")
_PURGE_BATCH = 500


@dataclass(frozen=True, slots=True)
class JobInfo:
    """What the server holds about one job (raw payload, error and result bytes).

    ``enqueued_ms`` and ``finished_ms`` are the server's clock in milliseconds; ``worker``
    is the worker that last claimed it; ``deaths`` counts workers that died holding it.
    """

    id: str
    state: str | None
    task: str | None
    payload: bytes | None
    deliveries: int
    deaths: int
    enqueued_ms: int | None
    finished_ms: int | None
    worker: str | None
    error: bytes | None
    result: bytes | None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker holding a lease on the queue: its id, when the lease ends, its jobs' ids."""

    id: str
    lease_ends_ms: int
    alive: bool
    jobs: list[str] = field(default_factory=list)


def _set_of(keys: QueueKeys, state: str) -> str:
    sets = {
        "waiting": keys.wait, "delayed": keys.delayed, "done": keys.done,
        "failed": keys.failed, "dead": keys.dead,
    }  # fmt: skip
    if state not in sets:
        raise ConfigError(f"state must be one of {', '.join(STATES)}; got {state!r}")
    return sets[state]


def job_id(stored: str) -> str:
    """A job's id from its stored (escaped) form, as the producer gave it."""
    return unquote(stored, errors="surrogatepass")


def job_info(keys: QueueKeys, id_: str) -> ops.Flow[JobInfo | None]:
    """One job's hash, or None when there is no such job."""
    reply = yield ops.Call("HMGET", keys.job(member(id_)), *_FIELDS)
    return _info(id_, reply)


def _info(id_: str, reply: Sequence[Any]) -> JobInfo | None:
    st, task, payload, n, deaths, at, ft, wk, error, result = reply
    if st is None and task is None:
        return None
    return JobInfo(
        id_, _text(st), _text(task), payload, int(n or 0), int(deaths or 0),
        int(at) if at else None, int(ft) if ft else None, _text(wk), error, result,
    )  # fmt: skip


def jobs(keys: QueueKeys, state: str, start: int = 0, count: int = 50) -> ops.Flow[list[JobInfo]]:
    """A page of the jobs in ``state``: waiting in claim order, delayed by due time, finished
    ones newest first, active ones by worker."""
    if not (isinstance(start, int) and start >= 0 and isinstance(count, int) and count >= 1):
        raise ConfigError(f"start must be >= 0 and count >= 1, got {start!r}, {count!r}")
    if state == "active":
        held = [job for w in (yield from workers(keys)) for job in w.jobs][start : start + count]
        ids = [member(job) for job in held]
    else:
        newest_first = state in ("done", "failed", "dead")
        command = "ZREVRANGE" if newest_first else "ZRANGE"
        raw = yield ops.Call(command, _set_of(keys, state), start, start + count - 1)
        ids = [_text(x) or "" for x in raw]
    if not ids:
        return []
    replies = yield ops.Batch([ops.Call("HMGET", keys.job(i), *_FIELDS) for i in ids])
    found = (_info(job_id(m), reply) for m, reply in zip(ids, replies, strict=True))
    return [info for info in found if info is not None]


def workers(keys: QueueKeys) -> ops.Flow[list[WorkerInfo]]:
    """The workers holding a lease on the queue (or whose lease ended and no claim has
    recovered their jobs yet: ``alive`` False), with the ids of the jobs each holds."""
    now, raw = yield ops.Batch(
        [ops.Call("TIME"), ops.Call("ZRANGE", keys.workers, 0, -1, "WITHSCORES")]
    )
    now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
    pairs = [(wid, int(score)) for wid, score in _scored(raw)]
    if not pairs:
        return []
    held = yield ops.Batch([ops.Call("SMEMBERS", keys.worker(wid)) for wid, _ in pairs])
    return [
        WorkerInfo(wid, ends, ends > now_ms, sorted(job_id(_text(j) or "") for j in members))
        for (wid, ends), members in zip(pairs, held, strict=True)
    ]


def delete(keys: QueueKeys, id_: str) -> ops.Once[bool]:
    """Delete a job no worker holds; False when there is none or a worker holds it."""
    m = member(id_)
    effect = ops.Eval(
        DELETE,
        (keys.job(m), keys.wait, keys.delayed, keys.done, keys.failed, keys.dead),
        (keys.base, m),
    )
    return ops.Once(effect, lambda reply: reply == 1)


def promote(keys: QueueKeys, id_: str) -> ops.Once[bool]:
    """Make a delayed job ready now; False when it was not delayed."""
    m = member(id_)
    effect = ops.Eval(PROMOTE, (keys.job(m), keys.delayed, keys.wait, keys.wake), (m,))
    return ops.Once(effect, bool)


def purge(keys: QueueKeys, state: str) -> ops.Flow[int]:
    """Delete every job in ``state`` (not ``active``), a few hundred per call; how many."""
    if state not in PURGEABLE:
        raise ConfigError(f"state must be one of {', '.join(PURGEABLE)}; got {state!r}")
    target, total = _set_of(keys, state), 0
    while True:
        deleted = yield ops.Eval(PURGE, (target,), (keys.base, _PURGE_BATCH))
        total += int(deleted)
        if not deleted:
            return total


def _scored(raw: Sequence[Any]) -> list[tuple[str, float]]:
    """A WITHSCORES reply as (member, score) pairs (RESP3 nests them, RESP2 is flat)."""
    if raw and isinstance(raw[0], (list, tuple)):
        return [(_text(pair[0]) or "", float(pair[1])) for pair in raw]
    return [(_text(raw[i]) or "", float(raw[i + 1])) for i in range(0, len(raw), 2)]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class Stats:
    """A queue at a glance: jobs per state, what finished in the last minute, and the time
    from enqueue to finish of the latest finished jobs (ms percentiles, None when none)."""

    counts: dict[str, int]
    done_last_minute: int
    failed_last_minute: int
    latency_ms: dict[str, float | None]
    workers: int


def stats(keys: QueueKeys, sample: int = 200) -> ops.Flow[Stats]:
    """Counts per state (``active``: jobs held by workers), throughput and latency, in three
    pipelines whatever the queue's size (latency from the latest ``sample`` finished jobs)."""
    now, *cards, recent = yield ops.Batch(
        [
            ops.Call("TIME"),
            *(ops.Call("ZCARD", _set_of(keys, s)) for s in PURGEABLE),
            ops.Call("ZREVRANGE", keys.done, 0, sample - 1, "WITHSCORES"),
        ]
    )
    now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
    counts = dict(zip(PURGEABLE, (int(n) for n in cards), strict=True))
    held = yield from workers(keys)
    counts["active"] = sum(len(w.jobs) for w in held)
    done = _scored(recent)
    done_last_minute = sum(1 for _, us in done if us / 1000 >= now_ms - 60_000)
    failed_last_minute = yield ops.Call("ZCOUNT", keys.failed, now_ms - 60_000, "+inf")
    times = []
    if done:
        times = yield ops.Batch([ops.Call("HMGET", keys.job(m), "at", "ft") for m, _ in done])
    latencies = sorted(int(ft) - int(at) for at, ft in times if at and ft)
    return Stats(
        counts, done_last_minute, int(failed_last_minute), _percentiles(latencies),
        sum(1 for w in held if w.alive),
    )  # fmt: skip


def _percentiles(values: Sequence[int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        out[name] = float(values[min(len(values) - 1, int(q * len(values)))]) if values else None
    return out
