"""Tasks: what a worker runs (:class:`TaskDef`) and what producers enqueue (:class:`Task`)."""

from __future__ import annotations

import inspect
import keyword
import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

from redkit.errors import ConfigError
from redkit.queue.processes import locate
from redkit.queue.retry import Retry

if TYPE_CHECKING:
    from redkit.queue.jobs import AsyncJob, Job
    from redkit.queue.queue import AsyncQueue, Queue

R = TypeVar("R")
#: Keyword names that ``enqueue`` keeps for itself; a task cannot take them.
RESERVED = frozenset({"job_id", "delay", "priority", "dedupe", "group"})


class TaskOptions(TypedDict, total=False):
    """Options of :meth:`Queue.task` (see :class:`~redkit.queue.Retry` for the backoff)."""

    name: str
    retries: int
    backoff: str | Callable[[int], float]
    backoff_base: float
    backoff_cap: float
    jitter: bool
    timeout: float | None
    process: bool
    batch: int


class TaskDef:
    """A task as workers run it: the function, its retry policy and its timeout."""

    __slots__ = (
        "_bind", "batch", "func", "is_async", "name", "process", "retry", "signature", "timeout",
    )  # fmt: skip

    def __init__(
        self, func: Callable[..., Any], name: str, retry: Retry, timeout: float | None,
        process: bool = False, batch: int = 1,
    ) -> None:  # fmt: skip
        if timeout is not None:
            positive("timeout", timeout)
        if not (isinstance(batch, int) and batch >= 1):
            raise ConfigError(f"batch must be an int >= 1, got {batch!r}")
        if process and batch > 1:
            raise ConfigError("a task runs in the process pool or in batches, not both")
        if process:
            locate(func)  # a child process must be able to import it by name
        self.func, self.name, self.retry, self.timeout = func, name, retry, timeout
        self.process = bool(process)
        #: A batch task's handler receives a list of up to this many jobs' items.
        self.batch = batch
        self.is_async = inspect.iscoroutinefunction(func)
        self.signature = inspect.signature(func)
        clash = RESERVED & set(self.signature.parameters)
        if clash:
            raise ConfigError(f"task {name!r} cannot take parameters named {sorted(clash)}")
        self._bind = binder(self.signature)

    def check(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise ConfigError when the arguments do not fit the task's signature."""
        if self.batch > 1:
            if len(args) != 1 or kwargs:
                raise ConfigError(
                    f"task {self.name!r} takes a batch: enqueue one item (one positional "
                    "argument) per job"
                )
            return
        if self._bind is not None:
            try:
                self._bind(*args, **kwargs)
                return
            except TypeError:
                pass  # Signature.bind says what is wrong, in the words it always used
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"task {self.name!r}: {exc}") from None


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
        seconds; lower ``priority`` values are claimed first (default 0). ``dedupe``
        (a :class:`~redkit.queue.Dedupe`) deduplicates by a key and a mode; the job
        returned is then the one that counts (maybe an earlier one). ``group`` (a tenant,
        a user) makes claims rotate between groups, so one group cannot starve others.
        """
        return self.queue._enqueue(self.name, args, kwargs)

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
        return await self.queue._enqueue(self.name, args, kwargs)

    async def enqueue_many(
        self, items: Iterable[Mapping[str, Any] | tuple[Any, ...]], **options: Any
    ) -> list[AsyncJob]:
        """Add one job per item in one round trip; see :meth:`Task.enqueue_many`."""
        return await self.queue.enqueue_many(self.name, items, **options)


def binder(signature: inspect.Signature) -> Callable[..., None] | None:
    """A function with ``signature``'s parameters and an empty body, or None.

    Calling it checks arguments as Python checks a call, in C: a fraction of
    ``Signature.bind``'s cost, which matters on every enqueue. None when a parameter's
    name cannot be written in a ``def`` (``inspect`` allows none such today): then only
    ``Signature.bind`` checks.
    """
    parts: list[str] = []
    positional_only = star = False
    for param in signature.parameters.values():
        name, kind = param.name, param.kind
        if not name.isidentifier() or keyword.iskeyword(name):
            return None
        if positional_only and kind is not param.POSITIONAL_ONLY:
            parts.append("/")
            positional_only = False
        default = "" if param.default is param.empty else "=None"
        if kind is param.POSITIONAL_ONLY:
            positional_only = True
            parts.append(name + default)
        elif kind is param.POSITIONAL_OR_KEYWORD:
            parts.append(name + default)
        elif kind is param.VAR_POSITIONAL:
            star = True
            parts.append("*" + name)
        elif kind is param.KEYWORD_ONLY:
            if not star:
                star = True
                parts.append("*")
            parts.append(name + default)
        else:
            parts.append("**" + name)
    if positional_only:
        parts.append("/")
    namespace: dict[str, Any] = {}
    # the source holds nothing but parameter names, each checked to be an identifier
    exec(f"def bind({', '.join(parts)}): pass", namespace)  # noqa: S102
    return namespace["bind"]  # type: ignore[no-any-return]


def positive(name: str, value: float) -> None:
    """Raise ConfigError unless ``value`` is a positive, finite number of seconds."""
    if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
