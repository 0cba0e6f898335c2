"""Deduplication modes: what ``enqueue(..., dedupe=Dedupe....)`` does with a repeat.

A deduplication key is one string key in the queue's hash slot (``…:u:<key>``) holding
the id of the job it stands for; one script decides, by the mode, whether a new job is
added, the existing one counts, or (debounce) the existing one takes the new arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from redkit import ops
from redkit.errors import ConfigError
from redkit.queue.ops import NewJob, QueueKeys
from redkit.scripts import script

ADD_UNIQUE = script("queue_add_unique")

_MODES = {"queued": "q", "running": "r", "throttle": "t", "debounce": "b"}


@dataclass(frozen=True, slots=True)
class Dedupe:
    """How a job with a deduplication ``key`` treats another one with the same key.

    Build one with :meth:`while_queued`, :meth:`while_running`, :meth:`throttle` or
    :meth:`debounce`.
    """

    mode: str
    key: str
    period: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"dedupe mode must be one of {sorted(_MODES)}, got {self.mode!r}")
        if not (isinstance(self.key, str) and self.key):
            raise ConfigError(f"a dedupe key must be a non-empty str, got {self.key!r}")
        needs_period = self.mode in ("throttle", "debounce")
        ok = isinstance(self.period, (int, float)) and math.isfinite(self.period)
        if needs_period and not (ok and self.period >= 0.001):
            raise ConfigError(
                f"{self.mode} needs a period of at least 0.001 s, got {self.period!r}"
            )

    @classmethod
    def while_queued(cls, key: str) -> Dedupe:
        """No second job while the key's job waits (waiting or delayed); once it runs,
        a new one is added."""
        return cls("queued", key)

    @classmethod
    def while_running(cls, key: str) -> Dedupe:
        """No second job until the key's job has finished (waiting, delayed or running)."""
        return cls("running", key)

    @classmethod
    def throttle(cls, key: str, period: float) -> Dedupe:
        """At most one job per ``period`` seconds: the first one counts, the rest of the
        period's are dropped."""
        return cls("throttle", key, period)

    @classmethod
    def debounce(cls, key: str, period: float) -> Dedupe:
        """The last one wins: the job waits until ``period`` seconds pass without another
        enqueue with this key, and runs with the latest arguments."""
        return cls("debounce", key, period)


@dataclass(frozen=True, slots=True)
class Added:
    """What an enqueue under a deduplication key did: ``status`` is ``added``,
    ``duplicate`` or ``replaced`` (debounce), ``member`` the job that counts."""

    status: str
    member: str


_STATUS = {1: "added", 0: "duplicate", 2: "replaced"}


def add_unique(keys: QueueKeys, dedupe: Dedupe, job: NewJob, events: int = 0) -> ops.Once[Added]:
    """Add ``job`` under ``dedupe``'s key and mode, in one script call."""
    effect = ops.Eval(
        ADD_UNIQUE,
        (keys.group.key("u", dedupe.key), keys.wait, keys.delayed, keys.inbox, keys.meta),
        (keys.base, _MODES[dedupe.mode], math.ceil(dedupe.period * 1000), job.member, job.task,
         job.payload, job.priority, job.delay_ms, events),
    )  # fmt: skip
    return ops.Once(effect, _added)


def _added(reply: list[Any]) -> Added:
    member = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
    return Added(_STATUS[int(reply[0])], member)
