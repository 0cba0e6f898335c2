"""Groups: jobs that carry a group key (a tenant, a user) and are claimed round robin.

A grouped job waits in its group's own sorted set; the queue keeps a ring (a list) of
the groups that have waiting jobs, and the claim script takes one job from each group
in the ring's order, then one ungrouped job, and again while the worker has free slots.
The ring turns with every job taken, so the next claim, by any worker, starts with the
group after the last one served: a group with 10,000 jobs waiting gets one turn per
round like a group with one. A per-group concurrency limit (``…:glimits``) makes the
claim skip a group whose running jobs (``…:gactive``) reached it.
"""

from __future__ import annotations

from collections.abc import Sequence

from redkit import ops
from redkit.errors import ConfigError
from redkit.queue.ops import NewJob, QueueKeys, member
from redkit.ratelimit.policy import Limit, parse_limit
from redkit.scripts import script

ADD_GROUP = script("queue_add_group")


def add(keys: QueueKeys, group: str, jobs: Sequence[NewJob], events: int = 0) -> ops.Once[int]:
    """Add ``jobs`` of ``group`` in one script call; the number added (a job whose id
    exists is skipped)."""
    args: list[ops.EncodableT] = [keys.base, events, member(group)]
    for job in jobs:
        args += [job.member, job.task, job.payload, job.priority, job.delay_ms]
    effect = ops.Eval(
        ADD_GROUP, (keys.delayed, keys.inbox, keys.meta, keys.group.key("groups")), args
    )
    return ops.Once(effect, int)


def set_concurrency(keys: QueueKeys, limit: int | None, group: str | None) -> ops.Once[int]:
    """Limit how many jobs of ``group`` (None: of every group without a limit of its own)
    run at once across all workers; ``limit`` None or 0 removes the limit."""
    if limit is not None and not (isinstance(limit, int) and limit >= 0):
        raise ConfigError(f"a group's concurrency must be an int >= 0 or None, got {limit!r}")
    field = "*" if group is None else member(group)
    key = keys.group.key("glimits")
    if not limit:
        return ops.Once(ops.Call("HDEL", key, field), int)
    return ops.Once(ops.Call("HSET", key, field, limit), int)


def set_rate(keys: QueueKeys, rate: str | Limit | None, group: str | None) -> ops.Once[int]:
    """At most ``rate`` job starts of ``group`` (None: of every group without a rate of
    its own), the rate limiter's GCRA and policy syntax; ``rate`` None removes it."""
    field = "r:" + ("*" if group is None else member(group))
    key = keys.group.key("glimits")
    if rate is None:
        return ops.Once(ops.Call("HDEL", key, field), int)
    limit = parse_limit(rate) if isinstance(rate, str) else rate
    if not isinstance(limit, Limit):
        raise ConfigError(f"rate must be a policy string such as '10/second', got {rate!r}")
    interval_us = max(1, round(limit.period * 1_000_000 / limit.amount))
    return ops.Once(
        ops.Call("HSET", key, field, f"{interval_us} {limit.burst or limit.amount}"), int
    )


def check_group(group: object) -> str:
    """``group`` if it is a usable group key."""
    if not (isinstance(group, str) and group):
        raise ConfigError(f"group must be a non-empty str, got {group!r}")
    return group
