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

import inspect
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, overload

from typing_extensions import Unpack

from redkit.client import check_options
from redkit.errors import ConfigError
from redkit.queue import ops as qops
from redkit.queue.retry import Retry

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, CoreBase, RedkitCore

R = TypeVar("R")
#: Keyword names that ``enqueue`` keeps for itself; a task cannot take them.
RESERVED = frozenset({"job_id", "delay", "priority"})


class QueueOptions(TypedDict, total=False):
    """Options of :meth:`Redkit.queue` (see :class:`Queue`)."""

    lease: float
    dead_after: int
    result_ttl: float
    keep_completed: int


class TaskOptions(TypedDict, total=False):
    """Options of :meth:`Queue.task` (see :class:`~redkit.queue.Retry` for the backoff)."""

    name: str
    retries: int
    backoff: str | Callable[[int], float]
    backoff_base: float
    backoff_cap: float
    jitter: bool
    timeout: float | None


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
        _positive("lease", lease)
        _positive("result_ttl", result_ttl)
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
        job_id = options.get("job_id") or uuid.uuid4().hex
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, tasks={sorted(self.tasks)!r})"


class TaskDef:
    """A task as workers run it: the function, its retry policy and its timeout."""

    __slots__ = ("func", "is_async", "name", "retry", "signature", "timeout")

    def __init__(
        self, func: Callable[..., Any], name: str, retry: Retry, timeout: float | None
    ) -> None:
        if timeout is not None:
            _positive("timeout", timeout)
        self.func, self.name, self.retry, self.timeout = func, name, retry, timeout
        self.is_async = inspect.iscoroutinefunction(func)
        self.signature = inspect.signature(func)
        clash = RESERVED & set(self.signature.parameters)
        if clash:
            raise ConfigError(f"task {name!r} cannot take parameters named {sorted(clash)}")

    def check(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise ConfigError when the arguments do not fit the task's signature."""
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"task {self.name!r}: {exc}") from None


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
        """How many jobs are waiting, delayed, done (kept), failed and dead."""
        return self.rk.run(qops.counts(self.keys))


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
        """How many jobs are waiting, delayed, done (kept), failed and dead."""
        return await self.rk.run(qops.counts(self.keys))


class Task(Generic[R]):
    """A registered task: call it directly, or ``enqueue`` it for a worker."""

    def __init__(self, queue: Queue, definition: TaskDef) -> None:
        self.queue, self.definition, self.name = queue, definition, definition.name
        self.__wrapped__ = definition.func

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        return self.definition.func(*args, **kwargs)  # type: ignore[no-any-return]

    def enqueue(self, *args: Any, **kwargs: Any) -> Job:
        """Add a job: the task's arguments, plus ``job_id=``, ``delay=``, ``priority=``.

        The arguments are checked against the task's signature and serialized here, so a
        wrong call or a value that cannot be stored fails now, not in a worker. A
        ``job_id`` that exists already adds nothing (deduplication). ``delay`` is in
        seconds; lower ``priority`` values are claimed first (default 0).
        """
        return self.queue.enqueue(self.name, *args, **kwargs)

    def enqueue_many(
        self, items: Iterable[Mapping[str, Any] | tuple[Any, ...]], **options: Any
    ) -> list[Job]:
        """Add one job per item (a kwargs dict or an args tuple) in one round trip."""
        return self.queue.enqueue_many(self.name, items, **options)


class AsyncTask(Generic[R]):
    """A registered task of an :class:`AsyncQueue`; ``await task.enqueue(...)``."""

    def __init__(self, queue: AsyncQueue, definition: TaskDef) -> None:
        self.queue, self.definition, self.name = queue, definition, definition.name
        self.__wrapped__ = definition.func

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        return self.definition.func(*args, **kwargs)  # type: ignore[no-any-return]

    async def enqueue(self, *args: Any, **kwargs: Any) -> AsyncJob:
        """Add a job; see :meth:`Task.enqueue`."""
        return await self.queue.enqueue(self.name, *args, **kwargs)

    async def enqueue_many(
        self, items: Iterable[Mapping[str, Any] | tuple[Any, ...]], **options: Any
    ) -> list[AsyncJob]:
        """Add one job per item in one round trip; see :meth:`Task.enqueue_many`."""
        return await self.queue.enqueue_many(self.name, items, **options)


class Job:
    """A handle on one job: its state, its result, cancelling it."""

    def __init__(self, queue: Queue, job_id: str) -> None:
        self.queue, self.id, self._member = queue, job_id, qops.member(job_id)

    def status(self) -> str | None:
        """``waiting``, ``delayed``, ``active``, ``done``, ``failed``, ``dead``, ``cancelled``,
        or None when no such job exists (never added, or expired after finishing)."""
        return self.queue.rk.run(qops.watch(self.queue.keys, self._member, False)).state

    def result(self, timeout: float = 0.0) -> Any:
        """The job's result, waiting up to ``timeout`` seconds for it to finish.

        Raises:
            JobFailedError: the job failed for good, was dead-lettered or cancelled.
            JobNotFinishedError: it did not finish in time (or does not exist).
        """
        flow = qops.wait_final(self.queue.keys, self._member, _timeout(timeout))
        return outcome(self.queue, self.id, self.queue.rk.run(flow))

    def cancel(self) -> bool:
        """Cancel the job if it has not started; True when it was cancelled."""
        return self.queue.rk.run(
            qops.cancel(self.queue.keys, self._member, self.queue.policy.result_ttl_ms)
        )

    def __repr__(self) -> str:
        return f"Job({self.queue.name!r}, {self.id!r})"


class AsyncJob:
    """A handle on one job, for asyncio; see :class:`Job`."""

    def __init__(self, queue: AsyncQueue, job_id: str) -> None:
        self.queue, self.id, self._member = queue, job_id, qops.member(job_id)

    async def status(self) -> str | None:
        """The job's state; see :meth:`Job.status`."""
        return (await self.queue.rk.run(qops.watch(self.queue.keys, self._member, False))).state

    async def result(self, timeout: float = 0.0) -> Any:
        """The job's result; see :meth:`Job.result`."""
        flow = qops.wait_final(self.queue.keys, self._member, _timeout(timeout))
        return outcome(self.queue, self.id, await self.queue.rk.run(flow))

    async def cancel(self) -> bool:
        """Cancel the job if it has not started; True when it was cancelled."""
        return await self.queue.rk.run(
            qops.cancel(self.queue.keys, self._member, self.queue.policy.result_ttl_ms)
        )

    def __repr__(self) -> str:
        return f"AsyncJob({self.queue.name!r}, {self.id!r})"


def outcome(queue: _QueueBase, job_id: str, snap: qops.Snapshot) -> Any:
    """The result held in ``snap``, or the error that says why there is none."""
    if snap.state == "done":
        return queue.rk.serializer.loads(snap.result) if snap.result is not None else None
    if snap.state in ("failed", "dead", "cancelled"):
        detail = ""
        if snap.error is not None:
            error = queue.rk.serializer.loads(snap.error)
            detail = f": {error.get('type')}: {error.get('message')}"
        raise qops.JobFailedError(
            f"job {job_id!r} {snap.state} after {snap.deliveries} deliveries{detail}"
        )
    state = snap.state or "unknown"
    raise qops.JobNotFinishedError(f"job {job_id!r} has not finished (state: {state})")


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")


def _timeout(value: float) -> float:
    if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
        raise ConfigError(f"timeout must be 0 or more seconds, got {value!r}")
    return float(value)


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
