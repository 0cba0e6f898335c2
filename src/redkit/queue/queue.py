"""The job queue as producers and task authors meet it: :class:`Queue` and :class:`AsyncQueue`.

::

    emails = rk.queue("emails")

    @emails.task(retries=5, backoff="exponential", timeout=30)
    async def send_email(to: str, subject: str) -> None: ...

    job = send_email.enqueue(to="a@b.c", subject="hi", delay=10, priority=-1)
    job.result(timeout=5)

Workers (:mod:`redkit.queue.worker`, ``redkit worker module:queue``) run the tasks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, overload
from urllib.parse import unquote

from typing_extensions import Unpack

from redkit import ops
from redkit.client import check_options
from redkit.errors import ConfigError
from redkit.queue import admin
from redkit.queue import dedupe as dd
from redkit.queue import events as qevents
from redkit.queue import flows as qflows
from redkit.queue import groups as qgroups
from redkit.queue import limits as qlimits
from redkit.queue import ops as qops
from redkit.queue import partitions as qparts
from redkit.queue import schedules as sched
from redkit.queue.events import QueueEvent
from redkit.queue.jobs import AsyncJob, Job, JobInfo, job_info
from redkit.queue.retry import Retry
from redkit.queue.schedules import Schedule, ScheduleInfo, ScheduleOptions
from redkit.queue.tasks import RESERVED, AsyncTask, Task, TaskDef, TaskOptions, positive
from redkit.ratelimit.policy import Limit

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, CoreBase, RedkitCore

R = TypeVar("R")


#: One step of a flow: a task (or its name) and its arguments (a tuple or a kwargs dict).
FlowStep = tuple[Any, "tuple[Any, ...] | list[Any] | Mapping[str, Any]"]


class QueueOptions(TypedDict, total=False):
    """Options of :meth:`Redkit.queue` (see :class:`Queue`)."""

    lease: float
    dead_after: int
    result_ttl: float
    keep_completed: int
    events: int
    partitions: int


class _QueueBase:
    """What :class:`Queue` and :class:`AsyncQueue` share: settings, tasks, job building."""

    rk: CoreBase

    def __init__(
        self,
        rk: CoreBase,
        name: str,
        *,
        lease: float = 10.0,
        dead_after: int = 3,
        result_ttl: float = 3600.0,
        keep_completed: int = 10_000,
        events: int = 0,
        partitions: int = 1,
    ) -> None:
        positive("lease", lease)
        positive("result_ttl", result_ttl)
        if not (isinstance(dead_after, int) and dead_after >= 1):
            raise ConfigError(f"dead_after must be an int >= 1, got {dead_after!r}")
        if not (isinstance(keep_completed, int) and keep_completed >= 0):
            raise ConfigError(f"keep_completed must be an int >= 0, got {keep_completed!r}")
        if not (isinstance(events, int) and events >= 0):
            raise ConfigError(f"events must be an int >= 0, got {events!r}")
        if not (isinstance(partitions, int) and 1 <= partitions <= 1024):
            raise ConfigError(f"partitions must be an int from 1 to 1024, got {partitions!r}")
        if events and partitions > 1:
            raise ConfigError(
                "events= cannot be combined with partitions= (each partition would keep a "
                "stream of its own); follow jobs with job.status() or the counts instead"
            )
        self.rk, self.name = rk, name
        self.partitions = partitions
        #: the keys of each partition; partition 0's are the queue's keys of old
        self.parts = [qops.QueueKeys(rk.keys, name, i) for i in range(partitions)]
        self.keys = self.parts[0]
        self.lease = lease
        self.policy = qops.Policy(
            int(lease * 1000), dead_after, int(result_ttl * 1000), keep_completed, events
        )
        self.tasks: dict[str, TaskDef] = {}
        #: Schedules defined in code; every worker of the queue stores them when it starts.
        self.schedules: dict[str, Schedule] = {}

    def _define(self, func: Callable[..., Any], options: TaskOptions) -> TaskDef:
        if not callable(func):
            raise ConfigError(f"a task must be a function, got {func!r}")
        retry = Retry(
            options.get("retries", 0),
            options.get("backoff", "exponential"),
            options.get("backoff_base", 1.0),
            options.get("backoff_cap", 300.0),
            options.get("jitter", True),
        )
        name = options.get("name") or func.__name__
        definition = TaskDef(
            func, name, retry, options.get("timeout"), options.get("process", False),
            options.get("batch", 1),
        )
        if name in self.tasks:
            raise ConfigError(f"queue {self.name!r} already has a task named {name!r}")
        self.tasks[name] = definition
        return definition

    def _new_job(
        self, task: str, args: tuple[Any, ...], kwargs: dict[str, Any],
        options: Mapping[str, Any], part: int | None = None,
    ) -> tuple[str, qops.NewJob, int]:  # fmt: skip
        """The job to add, and its partition: ``part`` when given (its id is made to map
        there), else the one its id maps to."""
        definition = self.tasks.get(task)
        if definition is not None:
            definition.check(args, kwargs)
        if not options and part is None:  # the usual call: a new id, priority 0, now
            job_id = os.urandom(16).hex()  # as secrets.token_hex(16); hex: nothing to escape
            payload = self.rk.serializer.dumps([list(args), kwargs])
            part = 0 if self.partitions == 1 else qops.job_partition(job_id, self.partitions)
            return job_id, qops.NewJob(job_id, task, payload, 0, 0), part
        job_id = options.get("job_id") or (
            qops.new_id() if part is None else qops.new_id(part, self.partitions)
        )
        if not isinstance(job_id, str):
            raise ConfigError(f"job_id must be a str, got {job_id!r}")
        payload = self.rk.serializer.dumps([list(args), kwargs])
        new = qops.NewJob(
            qops.member(job_id), task, payload, _priority(options.get("priority", 0)),
            _delay_ms(options.get("delay", 0)),
        )  # fmt: skip
        if part is None:
            part = 0 if self.partitions == 1 else qops.job_partition(job_id, self.partitions)
        return job_id, new, part

    def _routed(self, options: Mapping[str, Any]) -> int | None:
        """The partition that a group or a deduplication key fixes (so that the group's
        turns and limits, or the deduplication, hold), None when the job id decides."""
        if self.partitions == 1:
            return None
        key = options.get("group")
        if key is None:
            key = getattr(options.get("dedupe"), "key", None)
        if not isinstance(key, str):
            return None  # none, or a bad one that the add refuses
        if options.get("job_id") is not None:
            raise ConfigError(
                "on a partitioned queue, job_id= cannot be combined with group= or dedupe=: "
                "each would decide the job's partition"
            )
        return qops.partition_of(key, self.partitions)

    def _unique(
        self, options: Mapping[str, Any], new: qops.NewJob, part: int
    ) -> ops.Once[dd.Added] | None:
        """The deduplicated add, when ``options`` ask for one."""
        dedupe = options.get("dedupe")
        if dedupe is None:
            return None
        if options.get("group") is not None:
            raise ConfigError("dedupe= and group= cannot be combined")
        if not isinstance(dedupe, dd.Dedupe):
            raise ConfigError(f"dedupe must be a redkit.queue.Dedupe, got {dedupe!r}")
        return dd.add_unique(self.parts[part], dedupe, new, self.policy.events)

    def _add(
        self, options: Mapping[str, Any], jobs: list[qops.NewJob], part: int = 0
    ) -> ops.Once[int]:
        """The add for ``jobs`` (of partition ``part``): into their group when ``options``
        name one."""
        group = options.get("group")
        if group is None:
            return qops.add(self.parts[part], jobs, self.policy.events)
        return qgroups.add(
            self.parts[part], qgroups.check_group(group), jobs, self.policy.events
        )

    def _add_many(
        self, options: Mapping[str, Any], jobs: list[qops.NewJob], parts: list[int]
    ) -> ops.Flow[list[int]]:
        """The adds for ``jobs``: one call per partition, all in one round trip."""
        by_part: dict[int, list[qops.NewJob]] = {}
        for job, part in zip(jobs, parts, strict=True):
            by_part.setdefault(part, []).append(job)
        return qparts.each([self._add(options, js, part) for part, js in by_part.items()])

    def _flow(
        self, parent: FlowStep, children: Iterable[FlowStep], on_child_failure: str,
        job_id: str | None,
    ) -> tuple[list[str], ops.Once[bool], int]:  # fmt: skip
        """The ids of a flow's jobs (parent first), its add, and its partition (the
        parent's: its children are made to map there too)."""
        ids, jobs = [], []
        options = {} if job_id is None else {"job_id": job_id}
        part: int | None = None
        for n, (task, arguments) in enumerate([parent, *children]):
            name = task if isinstance(task, str) else getattr(task, "name", None)
            if not isinstance(name, str):
                raise ConfigError(f"a flow step needs a task or its name, got {task!r}")
            args, kwargs = ((), dict(arguments)) if isinstance(arguments, Mapping) else (
                tuple(arguments), {})  # fmt: skip
            job_id_, job, part = self._new_job(
                name, args, kwargs, options if n == 0 else {}, part
            )
            ids.append(job_id_)
            jobs.append(job)
        assert part is not None
        add = qflows.add(self.parts[part], jobs[0], jobs[1:], on_child_failure, self.policy.events)
        return ids, add, part

    def _new_jobs(
        self, task: str, items: Iterable[Mapping[str, Any] | tuple[Any, ...]],
        options: Mapping[str, Any],
    ) -> tuple[list[str], list[qops.NewJob], list[int]]:  # fmt: skip
        if options.get("dedupe") is not None:
            raise ConfigError("dedupe= works with enqueue(), one job at a time")
        unknown = set(options) - RESERVED - {"job_id"}
        if unknown:
            raise ConfigError(f"enqueue_many() got unknown options {sorted(unknown)}")
        ids, jobs, parts = [], [], []
        fixed = self._routed(options)
        for item in items:
            args, kwargs = ((), dict(item)) if isinstance(item, Mapping) else (tuple(item), {})
            job_id, job, part = self._new_job(task, args, kwargs, options, fixed)
            ids.append(job_id)
            jobs.append(job)
            parts.append(part)
        return ids, jobs, parts

    def _schedule(self, name: str, task: Any, options: ScheduleOptions) -> Schedule:
        task_name = task if isinstance(task, str) else getattr(task, "name", None)
        if not isinstance(task_name, str):
            raise ConfigError(f"schedule {name!r}: task must be a task or its name, got {task!r}")
        check_options("schedule", options, ScheduleOptions)
        args, kwargs = tuple(options.get("args", ())), dict(options.get("kwargs", {}))
        _, job, _ = self._new_job(task_name, args, kwargs, {})
        schedule = sched.build(name, task_name, job.payload, options)
        self.schedules[name] = schedule
        return schedule

    def _list(self, state: str, limit: int, offset: int) -> ops.Flow[list[JobInfo]]:
        if state not in qops.STATES:
            raise ConfigError(f"state must be one of {', '.join(qops.STATES)}; got {state!r}")
        for name, value in (("limit", limit), ("offset", offset)):
            if not (isinstance(value, int) and value >= (name == "limit")):
                raise ConfigError(f"{name} must be an int >= {int(name == 'limit')}, got {value!r}")
        listed = qparts.jobs(self.parts, state, offset, limit)
        return ops.mapped(listed, lambda found: [job_info(self, state, j) for j in found])

    def keys_for(self, job_id: str) -> qops.QueueKeys:
        """The keys of the partition that holds the job with id ``job_id`` (the one its
        id maps to; a job routed by a group or a deduplication key has an id made to
        map there too)."""
        return self.parts[qops.job_partition(job_id, self.partitions)]

    def _whole(self, what: str) -> None:
        """Refuse a queue-wide limit on a partitioned queue (each partition claims alone)."""
        if self.partitions > 1:
            raise ConfigError(
                f"{what} is not available on a partitioned queue: each partition is claimed "
                "on its own, so a queue-wide limit cannot hold; limit groups instead "
                "(set_group_concurrency, set_group_rate_limit), or use one partition"
            )

    def _group_parts(self, group: str | None) -> list[qops.QueueKeys]:
        """The partitions a group limit goes to: the group's, or all for the default."""
        if group is None:
            return self.parts
        return [self.parts[qops.partition_of(qgroups.check_group(group), self.partitions)]]

    def _purgeable(self, states: tuple[str, ...]) -> tuple[str, ...]:
        for state in states:
            if state not in qops.PURGEABLE:
                raise ConfigError(
                    f"purge takes states among {', '.join(qops.PURGEABLE)}; got {state!r} "
                    "(running jobs belong to their workers: stop the workers instead)"
                )
        return states or qops.PURGEABLE

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, tasks={sorted(self.tasks)!r})"


class Queue(_QueueBase):
    """A job queue for producers and task definitions (sync).

    Args:
        rk: the facade.
        name: the queue's name (its keys live in one hash slot).
        lease: seconds a worker's claim lasts without renewal; a dead worker's jobs are
            back in the queue within this time. Workers renew three times per lease.
        dead_after: a job whose worker died this many times goes to the dead-letter set.
        result_ttl: seconds a finished job and its result are kept.
        keep_completed: at most this many finished jobs are kept (oldest dropped first).
        events: the length of the queue's event stream (0: no events).
        partitions: spread the queue over this many hash slots, each a whole queue;
            jobs go to one by their id, group, deduplication key or flow parent, and
            workers claim from all of them in turn (see docs/queue.md). Every producer
            and worker of the queue must use the same number.
    """

    rk: RedkitCore

    def __init__(self, rk: RedkitCore, name: str, **options: Unpack[QueueOptions]) -> None:
        super().__init__(rk, name, **options)

    @overload
    def task(self, func: Callable[..., R], /) -> Task[R]: ...

    @overload
    def task(
        self, func: None = None, /, **options: Unpack[TaskOptions]
    ) -> Callable[[Callable[..., R]], Task[R]]: ...

    def task(
        self, func: Callable[..., R] | None = None, /, **options: Unpack[TaskOptions]
    ) -> Task[R] | Callable[[Callable[..., R]], Task[R]]:
        """Register a task: ``@queue.task`` or ``@queue.task(retries=3, timeout=30)``.

        Options: ``name`` (default: the function's name), ``retries``, ``backoff``
        (``"exponential"``, ``"fixed"`` or a function of the retry number),
        ``backoff_base``, ``backoff_cap``, ``jitter`` (see :class:`~redkit.queue.Retry`)
        ``timeout`` (seconds a run may take; an async handler is cancelled then),
        ``process`` (run in the worker's process pool, for CPU-bound work: a module-level
        function; past ``timeout`` its process is killed) and ``batch`` (the handler
        receives a list of up to this many jobs' items).
        """
        check_options("task", options, TaskOptions)

        def register(f: Callable[..., R]) -> Task[R]:
            return Task(self, self._define(f, options))

        return register(func) if func is not None else register

    def enqueue(self, task: str, *args: Any, **kwargs: Any) -> Job:
        """Add a job for the task named ``task`` (see :meth:`Task.enqueue`)."""
        return self._enqueue(task, args, kwargs)

    def _enqueue(self, task: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Job:
        """:meth:`enqueue`, with ``kwargs`` the caller's own dict (``Task.enqueue``'s)."""
        options = {} if RESERVED.isdisjoint(kwargs) else _options(kwargs)
        routed = None if self.partitions == 1 else self._routed(options)
        job_id, new, part = self._new_job(task, args, kwargs, options, routed)
        unique = self._unique(options, new, part) if options else None
        if unique is not None:
            added = self.rk.run(unique)
            same = added.member == new.member
            return Job(self, job_id if same else unquote(added.member), part)
        self.rk.run(self._add(options, [new], part))
        return Job(self, job_id, part)

    def enqueue_many(
        self, task: str, items: Iterable[Mapping[str, Any] | tuple[Any, ...]], **options: Any
    ) -> list[Job]:
        """Add many jobs in one round trip; each item is a kwargs dict or an args tuple."""
        ids, jobs, parts = self._new_jobs(task, items, options)
        if jobs:
            self.rk.run(self._add_many(options, jobs, parts))
        return [Job(self, job_id, part) for job_id, part in zip(ids, parts, strict=True)]

    def enqueue_flow(
        self, parent: FlowStep, children: Iterable[FlowStep], *,
        on_child_failure: str = "fail", job_id: str | None = None,
    ) -> tuple[Job, list[Job]]:  # fmt: skip
        """Add a parent job that runs after its children, in one round trip.

        ``parent`` and each child are ``(task, args)`` with ``args`` a tuple or a kwargs
        dict. The parent's handler finds the children's results in
        ``current_job().children`` (and errors in ``failed_children``), by child job id.
        ``on_child_failure``: ``"fail"`` fails the parent at a child's failure,
        ``"ignore"`` runs it when the others have finished, ``"continue"`` runs it at
        once. Returns the parent's and the children's jobs.

        Raises:
            ConfigError: a bad step or policy, or ``job_id`` exists already.
        """
        ids, add, part = self._flow(parent, children, on_child_failure, job_id)
        if not self.rk.run(add):
            raise ConfigError(f"a job with id {ids[0]!r} exists already")
        return Job(self, ids[0], part), [Job(self, i, part) for i in ids[1:]]

    def job(self, job_id: str) -> Job:
        """A handle on the job with id ``job_id``."""
        return Job(self, job_id)

    def counts(self) -> dict[str, int]:
        """Jobs per state (``waiting`` (grouped or not), ``delayed``, ``active``, ``done``
        (kept), ``failed``, ``dead``, ``blocked`` (flows' parents waiting for their
        children)), plus ``workers`` (live workers) and ``enqueued`` (jobs ever added)."""
        return self.rk.run(qparts.counts(self.parts))

    def retry_failed(self) -> int:
        """Put every failed and dead-lettered job back in the queue; returns how many."""
        return self.rk.run(qparts.retry_all(self.parts))

    def pause(self) -> bool:
        """Stop every worker of this queue from claiming jobs (running jobs finish).

        Producers can still enqueue. Returns False when the queue was already paused.
        """
        return self.rk.run(qparts.pause(self.parts, True))

    def resume(self) -> bool:
        """Let workers claim again; returns False when the queue was not paused."""
        return self.rk.run(qparts.pause(self.parts, False))

    def is_paused(self) -> bool:
        """Whether :meth:`pause` is in effect."""
        return self.rk.run(qparts.is_paused(self.parts))

    def schedule(
        self, name: str, task: str | Task[Any], **options: Unpack[ScheduleOptions]
    ) -> Schedule:
        """Define a schedule in code: enqueue ``task`` at every tick (see docs/queue.md).

        Options: ``cron`` (five fields) or ``every`` (seconds), ``tz`` (an IANA zone for
        ``cron``, default UTC), ``args``/``kwargs`` of the task, ``priority``, and
        ``catch_up`` (seconds: a tick missed while no worker ran is enqueued late if at
        most this old; default 60). Workers of the queue store it when they start.
        """
        return self._schedule(name, task, options)

    def add_schedule(
        self, name: str, task: str | Task[Any], **options: Unpack[ScheduleOptions]
    ) -> Schedule:
        """Define a schedule and store it now (at run time); running workers follow it."""
        schedule = self._schedule(name, task, options)
        self.rk.run(sched.put(self.keys, schedule))
        return schedule

    def remove_schedule(self, name: str) -> bool:
        """Remove a stored schedule; False when there was none. (Remove it from the code
        too, or the next worker to start stores it again.)"""
        self.schedules.pop(name, None)
        return self.rk.run(sched.remove(self.keys, name))

    def list_schedules(self) -> list[ScheduleInfo]:
        """The stored schedules and their next runs."""
        return self.rk.run(sched.listing(self.keys))

    def set_concurrency(self, limit: int | None) -> None:
        """At most ``limit`` jobs of this queue run at once across all its workers
        (None or 0: no limit)."""
        self._whole("set_concurrency")
        self.rk.run(qlimits.set_concurrency(self.keys, limit))

    def set_rate_limit(self, rate: str | Limit | None) -> None:
        """At most ``rate`` jobs of this queue start per period across all workers
        (``"100/second"``, ``"5 per 10 seconds burst 2"``; None: no limit)."""
        self._whole("set_rate_limit")
        self.rk.run(qlimits.set_rate(self.keys, rate))

    def set_task_rate_limit(self, task: str | Task[Any], rate: str | Limit | None) -> None:
        """At most ``rate`` jobs of ``task`` start per period across all workers (None:
        no limit); a job that must wait is delayed until it may start."""
        self._whole("set_task_rate_limit")
        self.rk.run(qlimits.set_task_rate(self.keys, _task_name(task), rate))

    def set_group_concurrency(self, limit: int | None, group: str | None = None) -> None:
        """At most ``limit`` jobs of ``group`` run at once, across all workers (None for
        ``group``: the default of every group without a limit of its own; ``limit``
        None or 0 removes the limit)."""
        for keys in self._group_parts(group):
            self.rk.run(qgroups.set_concurrency(keys, limit, group))

    def set_group_rate_limit(self, rate: str | Limit | None, group: str | None = None) -> None:
        """At most ``rate`` jobs of ``group`` start per period, across all workers
        (``"10/second"``; None for ``group``: every group without a rate of its own;
        ``rate`` None removes it)."""
        for keys in self._group_parts(group):
            self.rk.run(qgroups.set_rate(keys, rate, group))

    def events(self, after: str = "0", count: int = 100) -> list[QueueEvent]:
        """Replay: up to ``count`` kept events after stream id ``after`` (``"0"``: from the
        oldest kept), without waiting. Needs the queue's ``events`` option."""
        found = self.rk.run(qevents.replay(self.keys, after, count))
        return qevents.decoded(found, self.rk.serializer.loads)

    def read_events(
        self, after: str = "$", count: int = 100, timeout: float = 5.0
    ) -> list[QueueEvent]:
        """Follow: events after ``after`` (``"$"``: from now), waiting up to ``timeout`` s
        for the first; pass the last one's ``id`` as ``after`` to read on without a gap."""
        found = self.rk.run(qevents.read(self.keys, after, count, timeout))
        return qevents.decoded(found, self.rk.serializer.loads)

    def jobs(self, state: str = "failed", *, limit: int = 50, offset: int = 0) -> list[JobInfo]:
        """The jobs in ``state`` (``waiting``, ``delayed``, ``active``, ``done``, ``failed``,
        ``dead`` or ``blocked``): the oldest first for waiting (grouped or not, by
        priority then enqueue order), delayed and blocked, the latest first for the
        finished states; ``limit`` jobs from ``offset``, in one round trip."""
        return self.rk.run(self._list(state, limit, offset))

    def purge(self, *states: str) -> int:
        """Delete every job in ``states`` (default: waiting, delayed, done, failed, dead and
        blocked; running jobs are never deleted); returns how many. Producers waiting for a deleted
        job's result stop waiting (it no longer exists)."""
        return self.rk.run(qparts.purge(self.parts, self._purgeable(states)))

    def workers(self) -> list[admin.WorkerInfo]:
        """The workers holding a lease on this queue, with the jobs each one runs."""
        return self.rk.run(qparts.workers(self.parts))


class AsyncQueue(_QueueBase):
    """A job queue for asyncio producers; see :class:`Queue` for the options."""

    rk: AsyncRedkitCore

    def __init__(self, rk: AsyncRedkitCore, name: str, **options: Unpack[QueueOptions]) -> None:
        super().__init__(rk, name, **options)

    @overload
    def task(self, func: Callable[..., R], /) -> AsyncTask[R]: ...

    @overload
    def task(
        self, func: None = None, /, **options: Unpack[TaskOptions]
    ) -> Callable[[Callable[..., R]], AsyncTask[R]]: ...

    def task(
        self, func: Callable[..., R] | None = None, /, **options: Unpack[TaskOptions]
    ) -> AsyncTask[R] | Callable[[Callable[..., R]], AsyncTask[R]]:
        """Register a task; the options are those of :meth:`Queue.task`."""
        check_options("task", options, TaskOptions)

        def register(f: Callable[..., R]) -> AsyncTask[R]:
            return AsyncTask(self, self._define(f, options))

        return register(func) if func is not None else register

    async def enqueue(self, task: str, *args: Any, **kwargs: Any) -> AsyncJob:
        """Add a job for the task named ``task`` (see :meth:`Task.enqueue`)."""
        return await self._enqueue(task, args, kwargs)

    async def _enqueue(self, task: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncJob:
        """:meth:`enqueue`, with ``kwargs`` the caller's own dict (``AsyncTask.enqueue``'s)."""
        options = {} if RESERVED.isdisjoint(kwargs) else _options(kwargs)
        routed = None if self.partitions == 1 else self._routed(options)
        job_id, new, part = self._new_job(task, args, kwargs, options, routed)
        unique = self._unique(options, new, part) if options else None
        if unique is not None:
            added = await self.rk.run(unique)
            same = added.member == new.member
            return AsyncJob(self, job_id if same else unquote(added.member), part)
        await self.rk.run(self._add(options, [new], part))
        return AsyncJob(self, job_id, part)

    async def enqueue_many(
        self, task: str, items: Iterable[Mapping[str, Any] | tuple[Any, ...]], **options: Any
    ) -> list[AsyncJob]:
        """Add many jobs in one round trip; each item is a kwargs dict or an args tuple."""
        ids, jobs, parts = self._new_jobs(task, items, options)
        if jobs:
            await self.rk.run(self._add_many(options, jobs, parts))
        return [AsyncJob(self, job_id, part) for job_id, part in zip(ids, parts, strict=True)]

    async def enqueue_flow(
        self, parent: FlowStep, children: Iterable[FlowStep], *,
        on_child_failure: str = "fail", job_id: str | None = None,
    ) -> tuple[AsyncJob, list[AsyncJob]]:  # fmt: skip
        """Add a parent job that runs after its children; see :meth:`Queue.enqueue_flow`."""
        ids, add, part = self._flow(parent, children, on_child_failure, job_id)
        if not await self.rk.run(add):
            raise ConfigError(f"a job with id {ids[0]!r} exists already")
        return AsyncJob(self, ids[0], part), [AsyncJob(self, i, part) for i in ids[1:]]

    def job(self, job_id: str) -> AsyncJob:
        """A handle on the job with id ``job_id``."""
        return AsyncJob(self, job_id)

    async def counts(self) -> dict[str, int]:
        """Jobs per state (``waiting`` (grouped or not), ``delayed``, ``active``, ``done``
        (kept), ``failed``, ``dead``, ``blocked`` (flows' parents waiting for their
        children)), plus ``workers`` (live workers) and ``enqueued`` (jobs ever added)."""
        return await self.rk.run(qparts.counts(self.parts))

    async def retry_failed(self) -> int:
        """Put every failed and dead-lettered job back in the queue; returns how many."""
        return await self.rk.run(qparts.retry_all(self.parts))

    async def pause(self) -> bool:
        """Stop every worker of this queue from claiming jobs; see :meth:`Queue.pause`."""
        return await self.rk.run(qparts.pause(self.parts, True))

    async def resume(self) -> bool:
        """Let workers claim again; returns False when the queue was not paused."""
        return await self.rk.run(qparts.pause(self.parts, False))

    async def is_paused(self) -> bool:
        """Whether :meth:`pause` is in effect."""
        return await self.rk.run(qparts.is_paused(self.parts))

    def schedule(
        self, name: str, task: str | AsyncTask[Any], **options: Unpack[ScheduleOptions]
    ) -> Schedule:
        """Define a schedule in code; see :meth:`Queue.schedule`."""
        return self._schedule(name, task, options)

    async def add_schedule(
        self, name: str, task: str | AsyncTask[Any], **options: Unpack[ScheduleOptions]
    ) -> Schedule:
        """Define a schedule and store it now; see :meth:`Queue.add_schedule`."""
        schedule = self._schedule(name, task, options)
        await self.rk.run(sched.put(self.keys, schedule))
        return schedule

    async def remove_schedule(self, name: str) -> bool:
        """Remove a stored schedule; see :meth:`Queue.remove_schedule`."""
        self.schedules.pop(name, None)
        return await self.rk.run(sched.remove(self.keys, name))

    async def list_schedules(self) -> list[ScheduleInfo]:
        """The stored schedules and their next runs."""
        return await self.rk.run(sched.listing(self.keys))

    async def set_concurrency(self, limit: int | None) -> None:
        """Limit the queue's running jobs; see :meth:`Queue.set_concurrency`."""
        self._whole("set_concurrency")
        await self.rk.run(qlimits.set_concurrency(self.keys, limit))

    async def set_rate_limit(self, rate: str | Limit | None) -> None:
        """Limit the queue's job starts; see :meth:`Queue.set_rate_limit`."""
        self._whole("set_rate_limit")
        await self.rk.run(qlimits.set_rate(self.keys, rate))

    async def set_task_rate_limit(
        self, task: str | AsyncTask[Any], rate: str | Limit | None
    ) -> None:
        """Limit a task's job starts; see :meth:`Queue.set_task_rate_limit`."""
        self._whole("set_task_rate_limit")
        await self.rk.run(qlimits.set_task_rate(self.keys, _task_name(task), rate))

    async def set_group_concurrency(self, limit: int | None, group: str | None = None) -> None:
        """Limit a group's running jobs; see :meth:`Queue.set_group_concurrency`."""
        for keys in self._group_parts(group):
            await self.rk.run(qgroups.set_concurrency(keys, limit, group))

    async def set_group_rate_limit(
        self, rate: str | Limit | None, group: str | None = None
    ) -> None:
        """Limit a group's job starts; see :meth:`Queue.set_group_rate_limit`."""
        for keys in self._group_parts(group):
            await self.rk.run(qgroups.set_rate(keys, rate, group))

    async def events(self, after: str = "0", count: int = 100) -> list[QueueEvent]:
        """Replay kept events; see :meth:`Queue.events`."""
        found = await self.rk.run(qevents.replay(self.keys, after, count))
        return qevents.decoded(found, self.rk.serializer.loads)

    async def read_events(
        self, after: str = "$", count: int = 100, timeout: float = 5.0
    ) -> list[QueueEvent]:
        """Follow events; see :meth:`Queue.read_events`."""
        found = await self.rk.run(qevents.read(self.keys, after, count, timeout))
        return qevents.decoded(found, self.rk.serializer.loads)

    async def jobs(
        self, state: str = "failed", *, limit: int = 50, offset: int = 0
    ) -> list[JobInfo]:
        """The jobs in ``state`` (``waiting``, ``delayed``, ``active``, ``done``, ``failed``,
        ``dead`` or ``blocked``): the oldest first for waiting (grouped or not, by
        priority then enqueue order), delayed and blocked, the latest first for the
        finished states; ``limit`` jobs from ``offset``, in one round trip."""
        return await self.rk.run(self._list(state, limit, offset))

    async def purge(self, *states: str) -> int:
        """Delete every job in ``states`` (default: waiting, delayed, done, failed, dead and
        blocked; running jobs are never deleted); returns how many. Producers waiting for a deleted
        job's result stop waiting (it no longer exists)."""
        return await self.rk.run(qparts.purge(self.parts, self._purgeable(states)))

    async def workers(self) -> list[admin.WorkerInfo]:
        """The workers holding a lease on this queue, with the jobs each one runs."""
        return await self.rk.run(qparts.workers(self.parts))


def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take ``enqueue``'s own options out of ``kwargs`` (the task's arguments)."""
    return {k: kwargs.pop(k) for k in RESERVED & set(kwargs)}


def _task_name(task: Any) -> str:
    name = task if isinstance(task, str) else getattr(task, "name", None)
    if not isinstance(name, str):
        raise ConfigError(f"expected a task or its name, got {task!r}")
    return name


def _priority(value: Any) -> int:
    if not (isinstance(value, int) and -qops.MAX_PRIORITY <= value <= qops.MAX_PRIORITY):
        raise ConfigError(
            f"priority must be an int from {-qops.MAX_PRIORITY} to {qops.MAX_PRIORITY}, "
            f"got {value!r}"
        )
    return value


def _delay_ms(value: Any) -> int:
    if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
        raise ConfigError(f"delay must be 0 or more seconds, got {value!r}")
    return math.ceil(value * 1000)
