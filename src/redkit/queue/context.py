"""What a running handler knows about its own job: :func:`current_job`.

::

    @queue.task
    def export(rows: int) -> None:
        job = current_job()
        for i in range(rows):
            job.check_cancelled()      # raises JobCancelledError once job.cancel() was called
            ...

    @queue.task
    @payments.idempotent(key=job_key)  # once per job, however often it is delivered
    def charge(order: str, amount: int) -> dict: ...
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from redkit.errors import ConfigError, JobCancelledError


class JobContext:
    """The job a handler runs: its id, task, queue, delivery count and cancellation state.

    ``id`` is the job's id (one too long for a key part appears as its digest).
    """

    __slots__ = (
        "_cancelled", "_event", "_report", "children", "deliveries", "failed_children", "id",
        "queue", "task",
    )  # fmt: skip

    def __init__(
        self, job_id: str, task: str, deliveries: int,
        report: Callable[[Any], None] | None = None,
        children: tuple[dict[str, Any], dict[str, Any]] = ({}, {}),
        queue: str = "",
    ) -> None:  # fmt: skip
        self.id, self.task, self.deliveries, self.queue = job_id, task, deliveries, queue
        # a flag, and an event made only for a handler that waits for it (most never do)
        self._cancelled = False
        self._event: threading.Event | None = None
        self._report = report
        #: A flow's parent: the results of its children that completed, by child job id.
        self.children: dict[str, Any] = children[0]
        #: A flow's parent: the errors of its children that failed, by child job id.
        self.failed_children: dict[str, Any] = children[1]

    def progress(self, value: Any) -> None:
        """Report the job's progress (a number, or anything the serializer stores).

        It does not wait: the worker stores it with the job (``job.progress()``) and adds
        a ``progress`` event to the queue's stream, in the order of the calls. Progress
        from a delivery that lost its lease is dropped.
        """
        if self._report is not None:
            self._report(value)

    @property
    def cancelled(self) -> bool:
        """True once the job's cancellation was requested (``job.cancel()``)."""
        return self._cancelled

    def _cancel(self) -> None:
        """Mark the job cancelled (the worker, on a cancellation request)."""
        self._cancelled = True
        event = self._event  # read after the flag is set: see wait_cancelled
        if event is not None:
            event.set()

    def check_cancelled(self) -> None:
        """Raise :class:`~redkit.errors.JobCancelledError` if the job was cancelled.

        Plain-function handlers call it between steps: a thread cannot be stopped from
        outside. Async handlers are cancelled at their next ``await`` as well.
        """
        if self._cancelled:
            raise JobCancelledError(f"job {self.id!r} was cancelled")

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block a plain-function handler up to ``timeout`` s or until cancelled."""
        event = self._event
        if event is None:
            with _making:
                if self._event is None:
                    self._event = threading.Event()
                event = self._event
            # published before the flag is read: a cancellation in between sets it either
            # here or in _cancel
            if self._cancelled:
                event.set()
        return event.wait(timeout)

    def __repr__(self) -> str:
        return f"JobContext({self.id!r}, task={self.task!r}, deliveries={self.deliveries})"


_making = threading.Lock()  # two threads of one handler must not make two events

_current: ContextVar[JobContext | None] = ContextVar("redkit_job", default=None)


def current_job() -> JobContext:
    """The job the calling handler runs (in its task or its thread).

    Raises:
        ConfigError: called outside a job's handler.
    """
    job = _current.get()
    if job is None:
        raise ConfigError("current_job() is only available inside a task's handler")
    return job


def job_key(*_args: Any, **_kwargs: Any) -> str:
    """The idempotency key of the running job, ``"job:<queue>:<job id>"``: pass it as
    ``key=`` to an idempotency decorator under ``@queue.task`` (it ignores the arguments),
    so that a job delivered again after its worker died replays its first result.

    Raises:
        ConfigError: called outside a job's handler (a batch handler included).
    """
    job = current_job()
    return f"job:{job.queue}:{job.id}"
