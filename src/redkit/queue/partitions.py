"""A partitioned queue's operations over all its partitions (``partitions=N``).

Each partition is a whole queue in a hash slot of its own (:class:`~redkit.queue.ops.
QueueKeys`); these flows run one operation on every partition, in one round trip where
the operation is a single call (a pipeline, split per node on a cluster), and combine the
replies: counts add up, listings merge, workers join. With one partition each is the
plain operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from redkit import errors, ops
from redkit.keys import escape
from redkit.queue import admin
from redkit.queue import ops as qops

T = TypeVar("T")


def each(onces: Sequence[ops.Once[T]]) -> ops.Flow[list[T]]:
    """Run ``onces`` (on different partitions) in one round trip; their results in order."""
    if len(onces) == 1:
        return [(yield from onces[0])]
    replies = yield ops.Batch([once.effect for once in onces])
    out = []
    for once, reply in zip(onces, replies, strict=True):
        if isinstance(reply, errors.RedkitError):
            if once.fail is None:
                raise reply
            out.append(once.fail(reply))
        else:
            out.append(once.finish(reply))
    return out


def counts(parts: Sequence[qops.QueueKeys]) -> ops.Flow[dict[str, int]]:
    """Jobs per state summed over the partitions (see :func:`redkit.queue.ops.counts`);
    ``workers`` counts a worker once per partition it holds a lease in."""
    found = yield from each([qops.counts(keys) for keys in parts])
    total = dict(found[0])
    for more in found[1:]:
        for name, value in more.items():
            total[name] += value
    if len(parts) > 1:  # every worker of the queue leases every partition
        total["workers"] = max(c["workers"] for c in found)
    return total


def jobs(
    parts: Sequence[qops.QueueKeys], state: str, offset: int, count: int
) -> ops.Flow[list[qops.Listed]]:
    """A page of the jobs in ``state`` across the partitions, merged by the order each
    partition lists them in (scores compare across partitions only roughly: waiting jobs
    by priority, then by their place in their own partition)."""
    if len(parts) == 1:
        return (yield from qops.jobs(parts[0], state, offset, count))
    pages = yield from each([qops.jobs(keys, state, 0, offset + count) for keys in parts])
    merged = [job for page in pages for job in page]
    merged.sort(key=lambda job: job.score, reverse=state in ("done", "failed", "dead"))
    return merged[offset : offset + count]


def purge(parts: Sequence[qops.QueueKeys], states: Sequence[str]) -> ops.Flow[int]:
    """Delete every job in ``states`` from every partition; how many."""
    total = 0
    for keys in parts:
        total += yield from qops.purge(keys, states)
    return total


def retry_all(parts: Sequence[qops.QueueKeys]) -> ops.Flow[int]:
    """Put every failed and dead job of every partition back; how many."""
    total = 0
    for keys in parts:
        total += yield from qops.retry_all(keys)
    return total


def pause(parts: Sequence[qops.QueueKeys], paused: bool) -> ops.Flow[bool]:
    """Pause (or resume) every partition; True when any changed."""
    return any((yield from each([qops.pause(keys, paused) for keys in parts])))


def is_paused(parts: Sequence[qops.QueueKeys]) -> ops.Flow[bool]:
    """Whether any partition is paused."""
    return any((yield from each([qops.is_paused(keys) for keys in parts])))


def workers(parts: Sequence[qops.QueueKeys]) -> ops.Flow[list[admin.WorkerInfo]]:
    """The workers holding a lease on any partition, each once, with all its jobs."""
    if len(parts) == 1:
        return (yield from admin.workers(parts[0]))
    joined: dict[str, admin.WorkerInfo] = {}
    for keys in parts:
        for info in (yield from admin.workers(keys)):
            seen = joined.get(info.id)
            if seen is None:
                joined[info.id] = info
            else:
                joined[info.id] = admin.WorkerInfo(
                    info.id, min(seen.lease_ends_ms, info.lease_ends_ms),
                    seen.alive and info.alive, sorted(seen.jobs + info.jobs),
                )  # fmt: skip
    return sorted(joined.values(), key=lambda info: info.id)


def stats(parts: Sequence[qops.QueueKeys]) -> ops.Flow[admin.Stats]:
    """A queue at a glance (:func:`redkit.queue.admin.stats`) over its partitions: counts
    and throughput add up; each latency percentile is the highest of the partitions'."""
    found = []
    for keys in parts:
        found.append((yield from admin.stats(keys)))
    if len(found) == 1:
        return found[0]
    counts = dict(found[0].counts)
    for more in found[1:]:
        for name, value in more.counts.items():
            counts[name] += value
    latency: dict[str, float | None] = {}
    for name in found[0].latency_ms:
        values = [v for v in (s.latency_ms[name] for s in found) if v is not None]
        latency[name] = max(values) if values else None
    return admin.Stats(
        counts, sum(s.done_last_minute for s in found),
        sum(s.failed_last_minute for s in found), latency, max(s.workers for s in found),
    )  # fmt: skip


#: The keys that show a queue exists: ``meta`` (a job was added) and ``inbox`` (where a
#: plain job waits until it is taken in); one glob matches both, and no other key of a
#: queue (none other begins with ``me`` or ``in``; ``discovered`` checks the whole name).
_SHOWN = ("}:meta", "}:inbox")
_SHOWN_GLOB = "}:[mi][en][tb]*"


def meta_pattern(prefix: str, name: str | None = None) -> str:
    """A ``SCAN`` pattern for the keys that show every queue (its ``meta`` and ``inbox``
    keys), or ``name``'s partitions after the first (admin tools only)."""
    if name is None:
        return "{" + prefix + ":queue:*" + _SHOWN_GLOB
    return "{" + prefix + ":queue:" + escape(name) + "|*" + _SHOWN_GLOB


def discovered(keys: Iterable[bytes | str], prefix: str) -> dict[str, int]:
    """Queue names (escaped, as in their keys) and how many partitions their keys show,
    from the keys a ``SCAN`` of :func:`meta_pattern` found: the highest partition seen,
    plus one (a partition's keys exist once a job was added to it)."""
    head = "{" + prefix + ":queue:"
    found: dict[str, int] = {}
    for key in keys:
        text = key.decode() if isinstance(key, bytes) else key
        tail = next((t for t in _SHOWN if text.endswith(t)), None)
        if not text.startswith(head) or tail is None:
            continue
        name, _, index = text[len(head) : -len(tail)].partition("|")
        count = int(index) + 1 if index.isdigit() else 1
        found[name] = max(found.get(name, 1), count)
    return found
