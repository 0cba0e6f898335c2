"""Flows: a parent job that runs after its children, with their outcomes.

The parent waits in state ``blocked`` (in no set) with a count of children left; each
child names its parent. The script that records a child's outcome also files it in the
parent's results hash and, by the parent's failure policy, makes the parent ready (no
child left; with ``continue``, at the first failure too) or fails it (``fail``, at the
first failure). The claim script hands a parent its children's outcomes with its
payload, in the same round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from redkit import ops
from redkit.errors import ConfigError
from redkit.queue.ops import NewJob, QueueKeys
from redkit.scripts import script

FLOW = script("queue_flow")

#: What a child's failure does to its parent.
OnChildFailure = Literal["fail", "ignore", "continue"]
POLICIES = ("fail", "ignore", "continue")


def add(
    keys: QueueKeys, parent: NewJob, children: Sequence[NewJob], policy: str, events: int = 0
) -> ops.Once[bool]:
    """Add a parent and its children in one script call; False when an id exists."""
    if policy not in POLICIES:
        raise ConfigError(f"on_child_failure must be one of {POLICIES}, got {policy!r}")
    args: list[ops.EncodableT] = [
        keys.base, events, policy, parent.member, parent.task, parent.payload, parent.priority,
    ]  # fmt: skip
    for child in children:
        args += [child.member, child.task, child.payload, child.priority]
    return ops.Once(ops.Eval(FLOW, (keys.wait, keys.inbox, keys.meta), args), bool)


def outcomes(
    pairs: Sequence[tuple[str, bytes]], loads: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A parent's children's outcomes as (results by child id, errors by child id)."""
    results: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for field, value in pairs:
        kind, _, child = field.partition(":")
        if kind == "d":
            results[child] = loads(value)
        else:
            errors[child] = loads(value) if value else None
    return results, errors
