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
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, overload

from typing_extensions import Unpack

from redkit import ops
from redkit.client import check_options
from redkit.errors import ConfigError
from redkit.queue import ops as qops
from redkit.queue.jobs import AsyncJob, Job, JobInfo, job_info
from redkit.queue.retry import Retry
from redkit.queue.tasks import RESERVED, AsyncTask, Task, TaskDef, TaskOptions, positive

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, CoreBase, RedkitCore

R = TypeVar("R")


class QueueOptions(TypedDict, total=False):
    """Options of :meth:`Redkit.queue` (see :class:`Queue`)."""

    lease: float
    dead_after: int
    result_ttl: float
    keep_completed: int


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
    ) -> None:
        positive("lease", lease)
        positive("result_ttl", result_ttl)
        if not (isinstance(dead_after, int) and dead_after >= 1):
            raise ConfigError(f"dead_after must be an int >= 1, got {dead_after!r}")
        if not (isinstance(keep_completed, int) and keep_completed >= 0):
            raise ConfigError(f"keep_completed must be an int >= 0, got {keep_completed!r}")
        self.rk, self.name = rk, name
        self.keys = qops.QueueKeys(rk.keys, name)
        self.lease = lease
        self.policy = qops.Policy(
            int(lease * 1000), dead_after, int(result_ttl * 1000), keep_completed
        )
        self.tasks: dict[str, TaskDef] = {}

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
        definition = TaskDef(func, name, retry, options.get("timeout"))
        if name in self.tasks:
            raise ConfigError(f"queue {self.name!r} already has a task named {name!r}")
        self.tasks[name] = definition
        return definition

    def _new_job(
        self, task: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: Mapping[str, Any]
    ) -> tuple[str, qops.NewJob]:
        definition = self.tasks.get(task)
        if definition is not None:
            definition.check(args, kwargs)
        job_id = options.get("job_id") or secrets.token_hex(16)
        if not isinstance(job_id, str):
            raise ConfigError(f"job_id must be a str, got {job_id!r}")
        payload = self.rk.serializer.dumps([list(args), kwargs])
        new = qops.NewJob(
            qops.member(job_id), task, payload, _priority(options.get("priority", 0)),
            _delay_ms(options.get("delay", 0)),
        )  # fmt: skip
        return job_id, new

    def _new_jobs(
        self, task: str, items: Iterable[Mapping[str, Any] | tuple[Any, ...]],
        options: Mapping[str, Any],
    ) -> tuple[list[str], list[qops.NewJob]]:  # fmt: skip
        ids, jobs = [], []
        for item in items:
            args, kwargs = ((), dict(item)) if isinstance(item, Mapping) else (tuple(item), {})
            job_id, job = self._new_job(task, args, kwargs, options)
            ids.append(job_id)
            jobs.append(job)
        return ids, jobs

    def _list(self, state: str, limit: int, offset: int) -> ops.Once[list[JobInfo]]:
        if state not in qops.STATES:
            raise ConfigError(f"state must be one of {', '.join(qops.STATES)}; got {state!r}")
        for name, value in (("limit", limit), ("offset", offset)):
            if not (isinstance(value, int) and value >= (name == "limit")):
                raise ConfigError(f"{name} must be an int >= {int(name == 'limit')}, got {value!r}")
        once = qops.jobs(self.keys, state, offset, limit)
        parse = once.finish
        return ops.Once(once.effect, lambda r: [job_info(self, state, j) for j in parse(r)])

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
        and ``timeout`` (seconds a run may take; an async handler is cancelled then).
        """
        check_options("task", options, TaskOptions)

        def register(f: Callable[..., R]) -> Task[R]:
            return Task(self, self._define(f, options))

        return register(func) if func is not None else register

    def enqueue(self, task: str, *args: Any, **kwargs: Any) -> Job:
        """Add a job for the task named ``task`` (see :meth:`Task.enqueue`)."""
        options = {k: kwargs.pop(k) for k in RESERVED & set(kwargs)}
        job_id, new = self._new_job(task, args, kwargs, options)
        self.rk.run(qops.add(self.keys, [new]))
        return Job(self, job_id)

    def enqueue_many(
        self, task: str, items: Iterable[Mapping[str, Any] | tuple[Any, ...]], **options: Any
    ) -> list[Job]:
        """Add many jobs in one round trip; each item is a kwargs dict or an args tuple."""
        ids, jobs = self._new_jobs(task, items, options)
        if jobs:
            self.rk.run(qops.add(self.keys, jobs))
        return [Job(self, job_id) for job_id in ids]

    def job(self, job_id: str) -> Job:
        """A handle on the job with id ``job_id``."""
        return Job(self, job_id)

    def counts(self) -> dict[str, int]:
        """Jobs per state (``waiting``, ``delayed``, ``active``, ``done`` (kept), ``failed``,
        ``dead``), plus ``workers`` (live workers) and ``enqueued`` (jobs ever added)."""
        return self.rk.run(qops.counts(self.keys))

    def retry_failed(self) -> int:
        """Put every failed and dead-lettered job back in the queue; returns how many."""
        return self.rk.run(qops.retry_all(self.keys))

    def jobs(self, state: str = "failed", *, limit: int = 50, offset: int = 0) -> list[JobInfo]:
        """The jobs in ``state`` (``waiting``, ``delayed``, ``active``, ``done``, ``failed``
        or ``dead``): the oldest first for waiting and delayed, the latest first for the
        finished states; ``limit`` jobs from ``offset``, in one round trip."""
        return self.rk.run(self._list(state, limit, offset))

    def purge(self, *states: str) -> int:
        """Delete every job in ``states`` (default: waiting, delayed, done, failed and dead;
        running jobs are never deleted); returns how many. Producers waiting for a deleted
        job's result stop waiting (it no longer exists)."""
        return self.rk.run(qops.purge(self.keys, self._purgeable(states)))


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
        """Register a task: ``@queue.task`` or ``@queue.task(retries=3, timeout=30)``.

        Options: ``name`` (default: the function's name), ``retries``, ``backoff``
        (``"exponential"``, ``"fixed"`` or a function of the retry number),
        ``backoff_base``, ``backoff_cap``, ``jitter`` (see :class:`~redkit.queue.Retry`)
        and ``timeout`` (seconds a run may take; an async handler is cancelled then).
        """
        check_options("task", options, TaskOptions)

        def register(f: Callable[..., R]) -> AsyncTask[R]:
            return AsyncTask(self, self._define(f, options))

        return register(func) if func is not None else register

    async def enqueue(self, task: str, *args: Any, **kwargs: Any) -> AsyncJob:
        """Add a job for the task named ``task`` (see :meth:`Task.enqueue`)."""
        options = {k: kwargs.pop(k) for k in RESERVED & set(kwargs)}
        job_id, new = self._new_job(task, args, kwargs, options)
        await self.rk.run(qops.add(self.keys, [new]))
        return AsyncJob(self, job_id)

    async def enqueue_many(
        self, task: str, items: Iterable[Mapping[str, Any] | tuple[Any, ...]], **options: Any
    ) -> list[AsyncJob]:
        """Add many jobs in one round trip; each item is a kwargs dict or an args tuple."""
        ids, jobs = self._new_jobs(task, items, options)
        if jobs:
            await self.rk.run(qops.add(self.keys, jobs))
        return [AsyncJob(self, job_id) for job_id in ids]

    def job(self, job_id: str) -> AsyncJob:
        """A handle on the job with id ``job_id``."""
        return AsyncJob(self, job_id)

    async def counts(self) -> dict[str, int]:
        """Jobs per state (``waiting``, ``delayed``, ``active``, ``done`` (kept), ``failed``,
        ``dead``), plus ``workers`` (live workers) and ``enqueued`` (jobs ever added)."""
        return await self.rk.run(qops.counts(self.keys))

    async def retry_failed(self) -> int:
        """Put every failed and dead-lettered job back in the queue; returns how many."""
        return await self.rk.run(qops.retry_all(self.keys))

    async def jobs(
        self, state: str = "failed", *, limit: int = 50, offset: int = 0
    ) -> list[JobInfo]:
        """The jobs in ``state`` (``waiting``, ``delayed``, ``active``, ``done``, ``failed``
        or ``dead``): the oldest first for waiting and delayed, the latest first for the
        finished states; ``limit`` jobs from ``offset``, in one round trip."""
        return await self.rk.run(self._list(state, limit, offset))

    async def purge(self, *states: str) -> int:
        """Delete every job in ``states`` (default: waiting, delayed, done, failed and dead;
        running jobs are never deleted); returns how many. Producers waiting for a deleted
        job's result stop waiting (it no longer exists)."""
        return await self.rk.run(qops.purge(self.keys, self._purgeable(states)))


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
