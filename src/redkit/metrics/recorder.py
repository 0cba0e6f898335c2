"""Compact counters in Redis, fed by an observer: the numbers the dashboard draws over time.

A :class:`Recorder` is an observer (``rk.observe``): every event increments a counter in
memory (a dict update under a lock: no I/O on the request path). Every ``interval``
seconds a background loop writes what was counted since the last write in **one
pipeline**, into per-minute buckets that expire after ``retention``:

* ``{prefix:metrics}:m:<minute>``: a hash, field ``<counter>|<label>``: operations and
  errors per capability (``op|cache``, ``err|cache``, ``us|cache``: microseconds spent),
  and every note (``cache.hit|products``, ``ratelimit.rejected|api`` ...);
* ``{prefix:metrics}:k:<minute>``: a sorted set of the rate-limited keys
  (``<limiter>|<key>`` scored by rejections), trimmed to the ``top_keys`` most limited.
  Between two writes at most ``10 * top_keys`` distinct keys are tracked in memory (a
  flood of new keys cannot grow it; the keys already seen keep counting).

Memory is bounded: per minute, one hash with one field per capability and note label and
one sorted set of at most ``top_keys`` members; ``retention / 60`` minutes of them. Every
application instance adds to the same buckets (minutes by each instance's clock).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redkit import ops
from redkit.errors import ConfigError
from redkit.keys import KeyGroup, Keyspace
from redkit.metrics.names import capability, is_note, note_label

if TYPE_CHECKING:
    from collections.abc import Callable

    from redkit.client import AsyncRedkitCore, CoreBase, RedkitCore
    from redkit.runtime import AsyncLoopContext, AsyncRuntime, LoopContext, Runtime

#: Notes whose (name, key) data also counts the key in the "most limited" set.
KEYED_NOTES = frozenset({"ratelimit.rejected"})


def metrics_group(keys: Keyspace) -> KeyGroup:
    """The key group of the recorded counters (one hash tag: one slot on a cluster)."""
    return keys.group("metrics")


def minute_of(seconds: float) -> int:
    """The bucket (minutes since the epoch) of a wall-clock time."""
    return int(seconds // 60)


class Recorder:
    """Counts what ``rk``'s operations report and writes it to Redis every ``interval`` s.

    ``start()`` (a sync facade) or ``await astart()`` (an asyncio one) registers the
    observer and the writing loop; ``stop()`` / ``await astop()`` writes what is left and
    removes both. ``flush_flow()`` is the write itself, for a loop of your own.

    Args:
        rk: the facade to observe (and to write with).
        interval: seconds between writes (one pipeline each).
        retention: seconds a minute's bucket is kept.
        top_keys: the most rate-limited keys kept per minute.
    """

    def __init__(
        self,
        rk: CoreBase,
        *,
        interval: float = 5.0,
        retention: float = 7200.0,
        top_keys: int = 100,
    ) -> None:
        for name, value in (("interval", interval), ("retention", retention)):
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if not (isinstance(top_keys, int) and top_keys >= 1):
            raise ConfigError(f"top_keys must be an int >= 1, got {top_keys!r}")
        self.rk, self.interval, self.retention, self.top_keys = rk, interval, retention, top_keys
        self.group = metrics_group(rk.keys)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._keys: Counter[str] = Counter()
        self._key_cap = 10 * top_keys  # distinct keys tracked between two writes
        self._own: ops.Batch | None = None
        self._remove: Callable[[], None] | None = None
        self._threads: Runtime | None = None
        self._tasks: AsyncRuntime | None = None

    def __call__(self, event: ops.Event) -> None:
        """Count ``event`` (the observer protocol): a dict update, no I/O."""
        if event.effect is self._own:
            return  # this recorder's own write
        if is_note(event):
            label = note_label(event.data)
            with self._lock:
                self._counts[f"{event.name}|{label}"] += 1
                if event.name in KEYED_NOTES and isinstance(event.data, tuple):
                    key = "|".join(str(part) for part in event.data)
                    if key in self._keys or len(self._keys) < self._key_cap:
                        self._keys[key] += 1  # bounded: a flood of new keys adds none
            return
        cap = capability(event.name)
        with self._lock:
            self._counts[f"op|{cap}"] += 1
            self._counts[f"us|{cap}"] += int(event.seconds * 1_000_000)
            if event.error is not None:
                self._counts[f"err|{cap}"] += 1

    def _take(self) -> tuple[Counter[str], Counter[str]]:
        with self._lock:
            counts, keys = self._counts, self._keys
            self._counts, self._keys = Counter(), Counter()
        return counts, keys

    def flush_flow(self) -> ops.Flow[int]:
        """Write what was counted since the last write, in one pipeline; how many counters."""
        counts, keys = self._take()
        if not counts and not keys:
            return 0
        minute = minute_of(time.time())
        bucket, ranked = self.group.key("m", str(minute)), self.group.key("k", str(minute))
        ttl = max(1, int(self.retention))
        effects: list[ops.Call | ops.Eval] = [
            ops.Call("HINCRBY", bucket, field, n) for field, n in counts.items() if n
        ]
        effects.append(ops.Call("EXPIRE", bucket, ttl))
        if keys:
            effects += [
                ops.Call("ZINCRBY", ranked, n, key) for key, n in keys.most_common(self.top_keys)
            ]
            effects += [
                ops.Call("ZREMRANGEBYRANK", ranked, 0, -(self.top_keys + 1)),
                ops.Call("EXPIRE", ranked, ttl),
            ]
        self._own = ops.Batch(effects)
        yield self._own
        return len(counts) + len(keys)

    # --- running it ---------------------------------------------------------------------------

    def start(self) -> Recorder:
        """Observe the (sync) facade and write every ``interval`` seconds in a thread."""
        from redkit.runtime import Runtime

        rk: RedkitCore = self.rk  # type: ignore[assignment]
        self._remove = rk.observe(self)
        runtime = Runtime(rk, heartbeat=None)

        def step(ctx: LoopContext) -> None:
            if not ctx.wait(self.interval):
                rk.run(self.flush_flow())

        runtime.add("metrics-recorder", step, cleanup=lambda: rk.run(self.flush_flow()))
        runtime.start()
        self._threads = runtime
        return self

    def stop(self) -> None:
        """Write what is left, stop the loop and stop observing."""
        runtime, self._threads = self._threads, None
        if runtime is not None:
            runtime.stop(deadline=5.0)
        if self._remove is not None:
            self._remove()
            self._remove = None

    async def astart(self) -> Recorder:
        """Observe the asyncio facade and write every ``interval`` seconds in a task."""
        from redkit.runtime import AsyncRuntime

        ark: AsyncRedkitCore = self.rk  # type: ignore[assignment]
        self._remove = ark.observe(self)
        runtime = AsyncRuntime(ark, heartbeat=None)

        async def step(ctx: AsyncLoopContext) -> None:
            if not await ctx.wait(self.interval):
                await ark.run(self.flush_flow())

        async def cleanup() -> None:
            await ark.run(self.flush_flow())

        runtime.add("metrics-recorder", step, cleanup=cleanup)
        await runtime.start()
        self._tasks = runtime
        return self

    async def astop(self) -> None:
        """Write what is left, stop the task and stop observing."""
        runtime, self._tasks = self._tasks, None
        if runtime is not None:
            await runtime.stop(deadline=5.0)
        if self._remove is not None:
            self._remove()
            self._remove = None


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """Recorded counters per minute: ``minutes[i]`` is the bucket of ``counts[i]``."""

    minutes: list[int]
    counts: list[dict[str, int]]

    def total(self, field: str) -> int:
        """The sum of one counter over every minute."""
        return sum(bucket.get(field, 0) for bucket in self.counts)

    def labels(self, prefix: str) -> list[str]:
        """Labels seen with counters named ``prefix`` (e.g. ``cache.hit`` -> namespaces)."""
        found = {f.split("|", 1)[1] for b in self.counts for f in b if f.startswith(prefix + "|")}
        return sorted(found)


def read_series(keys: Keyspace, minutes: int = 30, now: float | None = None) -> ops.Flow[Series]:
    """The last ``minutes`` buckets, oldest first, in one pipeline."""
    group = metrics_group(keys)
    last = minute_of(time.time() if now is None else now)
    wanted = list(range(last - minutes + 1, last + 1))
    replies = yield ops.Batch([ops.Call("HGETALL", group.key("m", str(m))) for m in wanted])
    counts = [_int_map(reply) for reply in replies]
    return Series(wanted, counts)


def read_top_keys(
    keys: Keyspace, minutes: int = 30, limit: int = 10, now: float | None = None
) -> ops.Flow[list[tuple[str, str, int]]]:
    """The most rate-limited keys over the last ``minutes``: (limiter, key, rejections)."""
    group = metrics_group(keys)
    last = minute_of(time.time() if now is None else now)
    names = [group.key("k", str(m)) for m in range(last - minutes + 1, last + 1)]
    reply = yield ops.Call("ZUNION", len(names), *names, "WITHSCORES")
    pairs = _scored(reply)
    pairs.sort(key=lambda pair: -pair[1])
    out = []
    for member, score in pairs[:limit]:
        limiter, _, key = member.partition("|")
        out.append((limiter, key, score))
    return out


def _int_map(reply: Any) -> dict[str, int]:
    if isinstance(reply, dict):
        items = list(reply.items())
    else:
        items = [(reply[i], reply[i + 1]) for i in range(0, len(reply), 2)]
    return {_text(k): int(v) for k, v in items}


def _scored(reply: Sequence[Any]) -> list[tuple[str, int]]:
    if reply and isinstance(reply[0], (list, tuple)):
        return [(_text(m), int(float(s))) for m, s in reply]
    return [(_text(reply[i]), int(float(reply[i + 1]))) for i in range(0, len(reply), 2)]


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
