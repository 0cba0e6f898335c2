"""Queue-wide limits, kept on the server and enforced by the claim script.

* **Concurrency**: at most N jobs of the queue run at once across all its workers. The
  queue keeps a running count (field ``*`` of ``…:gactive``) that claims raise and
  finishes, hand-backs and recoveries lower.
* **Rate**: at most N jobs start per period, by the rate limiter's GCRA (its policy
  syntax, ``"100/second"`` or ``"5 per 10 seconds burst 2"``, and its arithmetic: an
  emission interval and a burst, with one theoretical arrival time in ``…:rate``). The
  claim script starts as many jobs as the bucket holds and tells an idle worker when
  the next one may start.
"""

from __future__ import annotations

from redkit import ops
from redkit.errors import ConfigError
from redkit.queue.ops import QueueKeys
from redkit.ratelimit.policy import Limit, parse_limit


def set_concurrency(keys: QueueKeys, limit: int | None) -> ops.Once[int]:
    """At most ``limit`` running jobs across all workers (None or 0: no limit)."""
    if limit is not None and not (isinstance(limit, int) and limit >= 0):
        raise ConfigError(f"a queue's concurrency must be an int >= 0 or None, got {limit!r}")
    if not limit:
        return ops.Once(ops.Call("HDEL", keys.meta, "conc"), int)
    return ops.Once(ops.Call("HSET", keys.meta, "conc", limit), int)


def set_task_rate(keys: QueueKeys, task: str, rate: str | Limit | None) -> ops.Once[int]:
    """At most ``rate`` starts of the task named ``task`` (None: no limit); a job of the
    task that must wait goes to the delayed set until it may start."""
    key = keys.group.key("tlimits")
    if not (isinstance(task, str) and task):
        raise ConfigError(f"task must be a task name, got {task!r}")
    if rate is None:
        return ops.Once(ops.Call("HDEL", key, task), int)
    interval_us, burst = _gcra(rate)
    return ops.Once(ops.Call("HSET", key, task, f"{interval_us} {burst}"), int)


def _gcra(rate: str | Limit) -> tuple[int, int]:
    limit = parse_limit(rate) if isinstance(rate, str) else rate
    if not isinstance(limit, Limit):
        raise ConfigError(f"rate must be a policy string such as '100/second', got {rate!r}")
    return max(1, round(limit.period * 1_000_000 / limit.amount)), limit.burst or limit.amount


def set_rate(keys: QueueKeys, rate: str | Limit | None) -> ops.Once[int]:
    """At most ``rate`` job starts (``"100/second"``, a :class:`Limit`; None: no limit)."""
    if rate is None:
        return ops.Once(ops.Call("HDEL", keys.meta, "ri", "rb"), int)
    limit = parse_limit(rate) if isinstance(rate, str) else rate
    if not isinstance(limit, Limit):
        raise ConfigError(f"rate must be a policy string such as '100/second', got {rate!r}")
    interval_us = max(1, round(limit.period * 1_000_000 / limit.amount))
    burst = limit.burst or limit.amount
    return ops.Once(ops.Call("HSET", keys.meta, "ri", interval_us, "rb", burst), int)
