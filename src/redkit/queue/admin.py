"""The queue's operations for operators and the dashboard: workers, one job's detail,
deleting and promoting a job, and a queue's throughput and latency.

Not for a request path: each reads in a few pipelines. Every key is in the queue's hash tag.
(Listing jobs by state and purging are :meth:`Queue.jobs` and :meth:`Queue.purge`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from redkit import ops
from redkit.queue.ops import Listed, QueueKeys, counts, member, taken_in, watch
from redkit.scripts import script

DELETE = script("queue_delete")
PROMOTE = script("queue_promote")

_FIELDS = ("t", "st", "n", "c", "at", "p", "e", "ft", "r", "wk")


@dataclass(frozen=True, slots=True)
class Detail:
    """One job as :func:`detail` reads it: as a listing shows it, plus its result (raw,
    once done) and the worker that last claimed it."""

    listed: Listed
    result: bytes | None
    worker: str | None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker holding a lease on the queue: its id, when the lease ends, its jobs' ids."""

    id: str
    lease_ends_ms: int
    alive: bool
    jobs: list[str] = field(default_factory=list)


def job_id(stored: str) -> str:
    """A job's id from its stored (escaped) form, as the producer gave it."""
    return stored if stored.startswith("#") else unquote(stored, errors="surrogatepass")


def detail(keys: QueueKeys, id_: str) -> ops.Flow[Detail | None]:
    """Everything the server holds about one job, or None when there is no such job."""
    m = member(id_)
    read = ops.Batch(
        [ops.Call("HMGET", keys.job(m), *_FIELDS), ops.Call("ZSCORE", keys.delayed, m)]
    )
    reply, due = yield read
    if reply[1] is None:  # a plain job may still wait in the inbox: the lookup takes it in
        found = yield from watch(keys, m, register=False)
        if found.state is None:
            return None
        reply, due = yield read
    task, st, n, deaths, at, payload, error, ft, result, wk = reply
    state = _text(st) or ""
    finished = int(ft) if ft else 0
    score = {"delayed": float(due or 0), "done": finished * 1000}.get(state, finished)
    listed = Listed(
        m, int(score), _text(task) or "", state, int(n or 0), int(deaths or 0), int(at or 0),
        payload or None, error or None,
    )  # fmt: skip
    return Detail(listed, result if state == "done" else None, _text(wk))


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


def delete(keys: QueueKeys, id_: str) -> ops.Flow[bool]:
    """Delete a job no worker holds; False when there is none or a worker holds it."""
    m = member(id_)
    effect = ops.Eval(
        DELETE,
        (keys.job(m), keys.wait, keys.delayed, keys.done, keys.failed, keys.dead),
        (keys.base, m),
    )
    return taken_in(ops.Once(effect, lambda reply: reply == 1))


def promote(keys: QueueKeys, id_: str) -> ops.Once[bool]:
    """Make a delayed job ready now; False when it was not delayed."""
    m = member(id_)
    effect = ops.Eval(PROMOTE, (keys.job(m), keys.delayed, keys.wait, keys.inbox), (m, keys.base))
    return ops.Once(effect, bool)


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
    """Counts per state (see :meth:`Queue.counts`), throughput and latency, in four round
    trips whatever the queue's size (latency from the latest ``sample`` finished jobs)."""
    found = yield from counts(keys)
    now, recent = yield ops.Batch(
        [ops.Call("TIME"), ops.Call("ZREVRANGE", keys.done, 0, sample - 1, "WITHSCORES")]
    )
    now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
    done = _scored(recent)
    done_last_minute = sum(1 for _, us in done if us / 1000 >= now_ms - 60_000)
    failed_last_minute = yield ops.Call("ZCOUNT", keys.failed, now_ms - 60_000, "+inf")
    times = []
    if done:
        times = yield ops.Batch([ops.Call("HMGET", keys.job(m), "at", "ft") for m, _ in done])
    latencies = sorted(int(ft) - int(at) for at, ft in times if at and ft)
    workers_alive = found.pop("workers", 0)
    found.pop("enqueued", None)
    return Stats(
        found, done_last_minute, int(failed_last_minute), _percentiles(latencies), workers_alive
    )


def _percentiles(values: Sequence[int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        out[name] = float(values[min(len(values) - 1, int(q * len(values)))]) if values else None
    return out
