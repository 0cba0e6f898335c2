"""What the dashboard reads and does, on one :class:`~redkit.AsyncRedkit`: no web code here.

Reads go through the capabilities' public operations (the queue's admin flows, the
recorded counters of :mod:`redkit.metrics.recorder`); finding queues and counting
sessions uses ``SCAN`` (an admin tool's privilege, never on a request path of the app),
cached for a few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson

from redkit import ops
from redkit.cache.stats import NOTES as CACHE_NOTES
from redkit.errors import ConfigError
from redkit.metrics.recorder import Recorder, read_series, read_top_keys
from redkit.queue import AsyncQueue, admin
from redkit.queue import partitions as qparts
from redkit.queue.jobs import JobInfo, job_info

if TYPE_CHECKING:
    from redkit.facade import AsyncRedkit

HISTORY = 360  # samples of queue counts kept per queue (30 min at one per 5 s)
SAMPLE_EVERY = 5.0
SCAN_CACHE = 10.0
SCAN_LIMIT = 100_000
DEAD_SHOWN = 20  # dead letters listed per topic


class Dashboard:
    """The dashboard's state and operations for one facade (one per app: no globals).

    Args:
        ark: the application's asyncio facade.
        queues: queue names to show besides those found in Redis.
        read_only: refuse every action (retry, delete, purge ...).
        record: observe ``ark`` with a :class:`~redkit.metrics.Recorder` (started on the
            first request, or by :meth:`start`).
        minutes: how far back the charts reach.
        sample_every: seconds between two samples of a queue's counts (its chart).
    """

    def __init__(
        self,
        ark: AsyncRedkit,
        *,
        queues: Sequence[str] = (),
        read_only: bool = False,
        record: bool = True,
        minutes: int = 30,
        sample_every: float = SAMPLE_EVERY,
    ) -> None:
        if not (isinstance(minutes, int) and 1 <= minutes <= 1440):
            raise ConfigError(f"minutes must be an int from 1 to 1440, got {minutes!r}")
        if not (isinstance(sample_every, (int, float)) and 0.1 <= sample_every <= 3600):
            raise ConfigError(f"sample_every must be 0.1 to 3600 seconds, got {sample_every!r}")
        self.app_ark, self.read_only, self.minutes = ark, read_only, minutes
        self.sample_every = sample_every
        # the dashboard's own reads go through a facade of its own, so that the app's
        # observers (the recorder, metrics) count the app's work, not the dashboard's polls
        self.ark = _reader(ark)
        self.named = list(queues)
        self.recorder = Recorder(ark) if record else None
        self._started = False
        self._found: tuple[float, list[str]] = (0.0, [])
        self._partitions: dict[str, int] = {}  # of the queues found, as their keys show
        self._sessions: tuple[float, int] = (0.0, 0)
        self._sampled: dict[str, float] = {}

    async def start(self) -> None:
        """Start recording (idempotent); the first request calls it too."""
        if not self._started:
            self._started = True
            if self.recorder is not None:
                await self.recorder.astart()

    async def stop(self) -> None:
        """Stop recording (writes what is left) and close the dashboard's connections."""
        if self._started and self.recorder is not None:
            await self.recorder.astop()
        self._started = False
        if self.ark is not self.app_ark:
            await self.ark.aclose()
            self.ark = _reader(self.app_ark)  # connects on first use, if used again

    # --- queues ---------------------------------------------------------------------------

    def queue(self, name: str) -> AsyncQueue:
        """The queue named ``name`` (a handle; the queue need not exist), with as many
        partitions as its keys showed when the queues were last looked for."""
        return self.ark.queue(name, partitions=self._partitions.get(name, 1))

    async def _queue(self, name: str) -> AsyncQueue:
        """:meth:`queue`, once the queues were looked for (cached for seconds)."""
        await self.queue_names()
        return self.queue(name)

    async def queue_names(self) -> list[str]:
        """Queues named in the options and those found in Redis (cached for seconds)."""
        at, names = self._found
        if not names or time.monotonic() - at > SCAN_CACHE:  # none yet: look every time
            prefix = self.ark.keys.prefix
            found = qparts.discovered(await self._scan(qparts.meta_pattern(prefix)), prefix)
            self._partitions = {unquote(n, errors="surrogatepass"): c for n, c in found.items()}
            names = sorted(self._partitions)
            self._found = (time.monotonic(), names)
        return sorted(set(names) | set(self.named))

    async def queues(self) -> list[dict[str, Any]]:
        """Every queue at a glance, sampling its counts into the history."""
        return list(await asyncio.gather(*(self._glance(n) for n in await self.queue_names())))

    async def _glance(self, name: str) -> dict[str, Any]:
        stats = await self.ark.run(qparts.stats(self.queue(name).parts))
        await self._sample(name, stats.counts)
        return {"name": name, **_stats(stats), **await self._paused(name)}

    async def queue_detail(self, name: str) -> dict[str, Any]:
        """One queue: stats, workers with their jobs, and its counts over time."""
        queue = await self._queue(name)
        stats = await self.ark.run(qparts.stats(queue.parts))
        await self._sample(name, stats.counts)
        workers = await queue.workers()
        history = await self.ark.run(ops.command("LRANGE", self._history(name), 0, -1))
        return {
            "name": name,
            **_stats(stats),
            **await self._paused(name),
            "workers": [
                {"id": w.id, "alive": w.alive, "lease_ends_ms": w.lease_ends_ms, "jobs": w.jobs}
                for w in workers
            ],
            "history": [orjson.loads(sample) for sample in reversed(history)],
        }

    async def jobs(self, name: str, state: str, start: int, count: int) -> list[dict[str, Any]]:
        """A page of one state's jobs (summaries)."""
        found = await (await self._queue(name)).jobs(state, limit=count, offset=start)
        return [_summary(info) for info in found]

    async def job(self, name: str, job_id: str) -> dict[str, Any] | None:
        """Everything about one job, payload and error decoded."""
        queue = await self._queue(name)
        found = await self.ark.run(admin.detail(queue.keys_for(job_id), job_id))
        if found is None:
            return None
        info = job_info(queue, found.listed.state, found.listed)
        out = _summary(info)
        out["payload"] = _jsonable({"args": info.args, "kwargs": info.kwargs})
        out["result"] = _safe(self.ark.serializer.loads, found.result)
        out["error"] = _jsonable(info.error)
        out["worker"] = found.worker
        out["progress"] = _jsonable(await queue.job(job_id).progress())
        return out

    async def act(self, name: str, action: str, job_id: str | None, state: str | None) -> Any:
        """Run an action on a queue or one of its jobs; ConfigError for an unknown one."""
        if self.read_only:
            raise PermissionError("this dashboard is read-only")
        queue = await self._queue(name)
        if job_id is not None:
            job = queue.job(job_id)
            actions = {"retry": job.retry, "delete": job.delete, "promote": job.promote,
                       "cancel": job.cancel}  # fmt: skip
            if action not in actions:
                raise ConfigError(f"unknown job action {action!r}")
            return await actions[action]()
        queue_actions = {"retry-failed": queue.retry_failed, "pause": queue.pause,
                         "resume": queue.resume}  # fmt: skip
        if action == "purge":
            return await queue.purge(state or "")
        if action not in queue_actions:
            raise ConfigError(f"unknown queue action {action!r}")
        return await queue_actions[action]()

    async def _paused(self, name: str) -> dict[str, Any]:
        return {"paused": await self.queue(name).is_paused()}

    def _history(self, name: str) -> str:
        return self.ark.keys.group("dashboard", name).key("history")

    async def _sample(self, name: str, counts: dict[str, int]) -> None:
        """Keep a sample of ``counts`` every few seconds (a capped list, one pipeline)."""
        now = time.time()
        if now - self._sampled.get(name, 0.0) < self.sample_every:
            return
        self._sampled[name] = now
        key, sample = self._history(name), orjson.dumps({"t": round(now, 1), **counts})
        await self.ark.run(_push(key, sample, int(HISTORY * self.sample_every * 2)))

    # --- rate limits, caches, sessions ----------------------------------------------------

    async def ratelimits(self) -> dict[str, Any]:
        """Rejections per limiter and minute, and the most limited keys."""
        series = await self.ark.run(read_series(self.ark.keys, self.minutes))
        top = await self.ark.run(read_top_keys(self.ark.keys, self.minutes, limit=10))
        limiters = {
            name: [b.get(f"ratelimit.rejected|{name}", 0) for b in series.counts]
            for name in series.labels("ratelimit.rejected")
        }
        return {
            "minutes": series.minutes,
            "checks": [b.get("op|ratelimit", 0) for b in series.counts],
            "rejected": limiters,
            "totals": {name: sum(values) for name, values in limiters.items()},
            "top_keys": [{"limiter": n, "key": k, "rejections": c} for n, k, c in top],
        }

    async def caches(self) -> dict[str, Any]:
        """Per namespace: hits, misses, loads, stale serves and the hit ratio."""
        series = await self.ark.run(read_series(self.ark.keys, self.minutes))
        names = sorted({n for note in CACHE_NOTES for n in series.labels(note)})
        out = []
        for name in names:
            totals = {field: series.total(f"{note}|{name}") for note, field in CACHE_NOTES.items()}
            served = totals["hits"] + totals["near_hits"]
            looked = served + totals["misses"]
            out.append({
                "namespace": name, **totals,
                "hit_ratio": round(served / looked, 4) if looked else None,
                "per_minute": [
                    b.get(f"cache.hit|{name}", 0) + b.get(f"cache.near_hit|{name}", 0)
                    for b in series.counts
                ],
            })  # fmt: skip
        return {"minutes": series.minutes, "namespaces": out}

    async def sessions(self) -> dict[str, Any]:
        """Sessions stored now (a SCAN count, cached for seconds) and session operations."""
        at, count = self._sessions
        if time.monotonic() - at > SCAN_CACHE:
            pattern = "{" + self.ark.keys.prefix + ":sess:*}:s"
            count = len(await self._scan(pattern))
            self._sessions = (time.monotonic(), count)
        series = await self.ark.run(read_series(self.ark.keys, self.minutes))
        return {
            "active": count,
            "capped": count >= SCAN_LIMIT,
            "minutes": series.minutes,
            "operations": [b.get("op|sessions", 0) for b in series.counts],
        }

    async def events(self) -> dict[str, Any]:
        """Every topic: stream length, each consumer group's pending count and lag, and the
        dead letters (the first ``DEAD_SHOWN`` of each topic)."""
        events = self.ark.events
        infos = await asyncio.gather(*(events.info(name) for name in await events.topics()))
        topics, letters = [], []
        for info in infos:
            topics.append({
                "name": info.name, "sequence": info.sequence, "length": info.length,
                "dead_letters": info.dead_letters,
                "groups": [
                    {"name": g.name, "consumers": g.consumers, "pending": g.pending,
                     "lag": g.lag, "last_delivered": g.last_delivered}
                    for g in info.groups
                ],
            })  # fmt: skip
            if info.dead_letters:
                found = await events.topic(info.name, durable=True).dead_letters(DEAD_SHOWN)
                letters += [{"topic": info.name, "id": m.id, **_letter(m.data)} for m in found]
        return {"topics": topics, "dead_letters": letters}

    async def overview(self) -> dict[str, Any]:
        """Operations, errors and time per capability over the last minutes."""
        series = await self.ark.run(read_series(self.ark.keys, self.minutes))
        caps = series.labels("op")
        return {
            "target": self.ark.target,
            "prefix": self.ark.keys.prefix,
            "read_only": self.read_only,
            "recording": self.recorder is not None,
            "minutes": series.minutes,
            "capabilities": {
                cap: {
                    "operations": series.total(f"op|{cap}"),
                    "errors": series.total(f"err|{cap}"),
                    "avg_ms": _avg_ms(series.total(f"us|{cap}"), series.total(f"op|{cap}")),
                }
                for cap in caps
            },
        }

    async def _scan(self, pattern: str) -> list[bytes]:
        found: list[bytes] = []
        async for key in self.ark.client.scan_iter(match=pattern, count=1000):
            found.append(key)
            if len(found) >= SCAN_LIMIT:
                break
        return found


def _reader(ark: AsyncRedkit) -> AsyncRedkit:
    if not ark.owns_client:
        return ark  # a handed-in client: share it (its polls are then observed too)
    return type(ark)(settings=ark.settings, serializer=ark.serializer)


def _push(key: str, sample: bytes, ttl: int) -> ops.Flow[Any]:
    return (
        yield ops.Batch(
            [
                ops.Call("LPUSH", key, sample),
                ops.Call("LTRIM", key, 0, HISTORY - 1),
                ops.Call("EXPIRE", key, max(1, ttl)),
            ]
        )
    )


def _stats(stats: admin.Stats) -> dict[str, Any]:
    return {
        "counts": stats.counts,
        "done_last_minute": stats.done_last_minute,
        "failed_last_minute": stats.failed_last_minute,
        "latency_ms": stats.latency_ms,
        "workers": stats.workers,
    }


def _summary(info: JobInfo) -> dict[str, Any]:
    finished = info.state in ("done", "failed", "dead")
    return {
        "id": info.id,
        "state": info.state,
        "task": info.task,
        "attempts": info.attempts,
        "deaths": info.deaths,
        "enqueued_ms": _ms(info.enqueued_at),
        "finished_ms": _ms(info.at) if finished else None,
        "due_ms": _ms(info.at) if info.state == "delayed" else None,
    }


def _ms(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp() * 1000)


def _jsonable(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS))


def _safe(loads: Any, raw: bytes | None) -> Any:
    """A stored value decoded for display, or a note that it could not be."""
    if raw is None:
        return None
    try:
        value = loads(raw)
    except Exception:  # a value of another serializer: show its size, not a traceback
        return {"undecodable": len(raw)}
    return _jsonable(value)


def _letter(data: Any) -> dict[str, Any]:
    """A dead letter's record (``id``, ``group``, ``reason``, ``payload``) for display."""
    if not isinstance(data, dict):
        return {"reason": None, "group": None, "message_id": None, "payload": _jsonable(data)}
    payload = data.get("payload")
    if isinstance(payload, bytes):
        payload = payload.decode(errors="replace")
    return {
        "message_id": data.get("id"), "group": data.get("group"), "reason": data.get("reason"),
        "payload": _jsonable(payload),
    }  # fmt: skip


def _avg_ms(us: int, count: int) -> float | None:
    return round(us / count / 1000, 3) if count else None
