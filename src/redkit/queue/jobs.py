"""Handles on jobs: :class:`Job` and :class:`AsyncJob` (state, result, cancel, retry)."""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from redkit import errors
from redkit.errors import ConfigError
from redkit.queue import admin
from redkit.queue import events as qevents
from redkit.queue import ops as qops

if TYPE_CHECKING:
    from redkit.queue.queue import AsyncQueue, Queue, _QueueBase


class Job:
    """A handle on one job: its state, its result, cancelling it.

    ``part``: the job's partition on a partitioned queue (default: the one its id maps to).
    """

    __slots__ = ("_keys", "id", "queue")

    def __init__(self, queue: Queue, job_id: str, part: int | None = None) -> None:
        self.queue, self.id = queue, job_id
        self._keys = queue.parts[part] if part is not None else queue.keys_for(job_id)

    @property
    def _member(self) -> str:
        # the id as the queue stores it; made on use (most handles are never used)
        return qops.member(self.id)

    def status(self) -> str | None:
        """``waiting``, ``delayed``, ``active``, ``done``, ``failed``, ``dead``, ``cancelled``,
        or None when no such job exists (never added, or expired after finishing)."""
        return self.queue.rk.run(qops.watch(self._keys, self._member, False)).state

    def result(self, timeout: float = 0.0) -> Any:
        """The job's result, waiting up to ``timeout`` seconds for it to finish.

        Raises:
            JobFailedError: the job failed for good, was dead-lettered or cancelled.
            JobNotFinishedError: it did not finish in time (or does not exist).
        """
        flow = qops.wait_final(self._keys, self._member, timeout_seconds(timeout))
        return outcome(self.queue, self.id, self.queue.rk.run(flow))

    def error(self) -> dict[str, Any] | None:
        """The last error: ``type``, ``message``, ``traceback`` and ``attempts``, or None."""
        return last_error(
            self.queue, self.queue.rk.run(qops.watch(self._keys, self._member, False))
        )

    def progress(self) -> Any:
        """The last progress its handler reported (``current_job().progress(...)``), or None."""
        data = self.queue.rk.run(qevents.job_progress(self._keys, self._member))
        return None if data is None else self.queue.rk.serializer.loads(data)

    def cancel(self) -> bool:
        """Cancel the job; False when it had finished already (or does not exist).

        A waiting or delayed job is cancelled at once. A running one is asked to stop:
        an async handler is cancelled at its next ``await``, a plain function sees
        ``current_job().cancelled``; the job then ends as ``cancelled`` unless its
        handler returned a result first.
        """
        flow = qops.cancel(self._keys, self._member, self.queue.policy)
        return (self.queue.rk.run(flow)) > 0

    def retry(self) -> bool:
        """Put the job back in the queue if it failed or was dead-lettered."""
        moved = self.queue.rk.run(qops.retry(self._keys, [self._member]))
        return moved > 0

    def info(self) -> JobInfo | None:
        """The job as :meth:`Queue.jobs` lists it, or None when there is no such job."""
        found = self.queue.rk.run(admin.detail(self._keys, self.id))
        return None if found is None else job_info(self.queue, found.listed.state, found.listed)

    def delete(self) -> bool:
        """Delete the job unless a worker holds it; True when it was deleted."""
        return self.queue.rk.run(admin.delete(self._keys, self.id))

    def promote(self) -> bool:
        """Make a delayed job ready now; True when it was delayed."""
        return self.queue.rk.run(admin.promote(self._keys, self.id))

    def __repr__(self) -> str:
        return f"Job({self.queue.name!r}, {self.id!r})"


class AsyncJob:
    """A handle on one job, for asyncio; see :class:`Job`."""

    __slots__ = ("_keys", "id", "queue")

    def __init__(self, queue: AsyncQueue, job_id: str, part: int | None = None) -> None:
        self.queue, self.id = queue, job_id
        self._keys = queue.parts[part] if part is not None else queue.keys_for(job_id)

    @property
    def _member(self) -> str:
        # the id as the queue stores it; made on use (most handles are never used)
        return qops.member(self.id)

    async def status(self) -> str | None:
        """The job's state; see :meth:`Job.status`."""
        return (await self.queue.rk.run(qops.watch(self._keys, self._member, False))).state

    async def result(self, timeout: float = 0.0) -> Any:
        """The job's result; see :meth:`Job.result`."""
        flow = qops.wait_final(self._keys, self._member, timeout_seconds(timeout))
        return outcome(self.queue, self.id, await self.queue.rk.run(flow))

    async def error(self) -> dict[str, Any] | None:
        """The last error; see :meth:`Job.error`."""
        snap = await self.queue.rk.run(qops.watch(self._keys, self._member, False))
        return last_error(self.queue, snap)

    async def progress(self) -> Any:
        """The last progress its handler reported; see :meth:`Job.progress`."""
        data = await self.queue.rk.run(qevents.job_progress(self._keys, self._member))
        return None if data is None else self.queue.rk.serializer.loads(data)

    async def cancel(self) -> bool:
        """Cancel the job; False when it had finished already (or does not exist).

        A waiting or delayed job is cancelled at once. A running one is asked to stop:
        an async handler is cancelled at its next ``await``, a plain function sees
        ``current_job().cancelled``; the job then ends as ``cancelled`` unless its
        handler returned a result first.
        """
        flow = qops.cancel(self._keys, self._member, self.queue.policy)
        return (await self.queue.rk.run(flow)) > 0

    async def retry(self) -> bool:
        """Put the job back in the queue if it failed or was dead-lettered."""
        moved = await self.queue.rk.run(qops.retry(self._keys, [self._member]))
        return moved > 0

    async def info(self) -> JobInfo | None:
        """The job as :meth:`Queue.jobs` lists it, or None when there is no such job."""
        found = await self.queue.rk.run(admin.detail(self._keys, self.id))
        return None if found is None else job_info(self.queue, found.listed.state, found.listed)

    async def delete(self) -> bool:
        """Delete the job unless a worker holds it; True when it was deleted."""
        return await self.queue.rk.run(admin.delete(self._keys, self.id))

    async def promote(self) -> bool:
        """Make a delayed job ready now; True when it was delayed."""
        return await self.queue.rk.run(admin.promote(self._keys, self.id))

    def __repr__(self) -> str:
        return f"AsyncJob({self.queue.name!r}, {self.id!r})"


@dataclass(frozen=True, slots=True)
class JobInfo:
    """One job as :meth:`Queue.jobs` lists it.

    Attributes:
        id: the job's id (ids longer than 200 bytes are stored, and shown, as a digest).
        task: the task's name.
        state: ``waiting``, ``delayed``, ``active``, ``done``, ``failed`` or ``dead``.
        attempts: how many times a worker started it.
        deaths: how many of those runs ended with their worker's lease (a crash).
        enqueued_at: when it was added (the server's clock, UTC).
        at: when a delayed job is due, or when a finished job finished; else None.
        args: its positional arguments (None once done: a result replaces them).
        kwargs: its keyword arguments (None once done).
        error: the last error (``type``, ``message``, ``traceback``, ``attempts``) or None.
    """

    id: str
    task: str
    state: str
    attempts: int
    deaths: int
    enqueued_at: datetime
    at: datetime | None
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    error: dict[str, Any] | None


def job_info(queue: _QueueBase, state: str, raw: qops.Listed) -> JobInfo:
    """A listed job as a :class:`JobInfo` (payload and error deserialized)."""
    args = kwargs = error = None
    if raw.payload is not None:
        try:
            args, kwargs = queue.rk.serializer.loads(raw.payload)
        except Exception:  # written with another serializer: show the job anyway
            args, kwargs = None, None
    if raw.error is not None:
        try:
            loaded = queue.rk.serializer.loads(raw.error)
        except Exception:
            loaded = {"message": repr(raw.error[:200])}
        error = loaded if isinstance(loaded, dict) else {"message": str(loaded)}
    at_ms: float | None = {
        "delayed": raw.score, "done": raw.score / 1000, "failed": raw.score, "dead": raw.score,
    }.get(state)  # fmt: skip
    return JobInfo(
        raw.member if raw.member.startswith("#") else urllib.parse.unquote(raw.member),
        raw.task, raw.state or state, raw.deliveries, raw.deaths, _utc(raw.added_ms),
        None if at_ms is None else _utc(at_ms), args, kwargs, error,
    )  # fmt: skip


def _utc(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def outcome(queue: _QueueBase, job_id: str, snap: qops.Snapshot) -> Any:
    """The result held in ``snap``, or the error that says why there is none."""
    if snap.state == "done":
        return queue.rk.serializer.loads(snap.result) if snap.result is not None else None
    if snap.state in ("failed", "dead", "cancelled"):
        error = last_error(queue, snap)
        detail = f": {error.get('type')}: {error.get('message')}" if error else ""
        raise errors.JobFailedError(
            f"job {job_id!r} {snap.state} after {snap.deliveries} deliveries{detail}", error
        )
    state = snap.state or "unknown"
    raise errors.JobNotFinishedError(f"job {job_id!r} has not finished (state: {state})")


def last_error(queue: _QueueBase, snap: qops.Snapshot) -> dict[str, Any] | None:
    """The error record a worker stored with the job's last failure, if any."""
    if snap.error is None:
        return None
    error = queue.rk.serializer.loads(snap.error)
    return error if isinstance(error, dict) else {"message": str(error)}


def timeout_seconds(value: float) -> float:
    """``value`` as seconds to wait, or ConfigError."""
    if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
        raise ConfigError(f"timeout must be 0 or more seconds, got {value!r}")
    return float(value)
