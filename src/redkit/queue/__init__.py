"""Background jobs: at-least-once delivery with leases, retries, delays and priorities.

See :class:`Queue` (producers and task definitions) and :class:`Worker` (runs tasks).
"""

from redkit.errors import (
    JobCancelledError,
    JobCrashedError,
    JobFailedError,
    JobNotFinishedError,
    JobTimeoutError,
)
from redkit.queue.admin import WorkerInfo
from redkit.queue.context import JobContext, current_job, job_key
from redkit.queue.dedupe import Dedupe
from redkit.queue.events import QueueEvent
from redkit.queue.jobs import AsyncJob, Job, JobInfo
from redkit.queue.queue import AsyncQueue, Queue, QueueOptions
from redkit.queue.retry import Retry
from redkit.queue.tasks import AsyncTask, Task, TaskOptions
from redkit.queue.worker import Worker

__all__ = [
    "AsyncJob",
    "AsyncQueue",
    "AsyncTask",
    "Dedupe",
    "Job",
    "JobCancelledError",
    "JobContext",
    "JobCrashedError",
    "JobFailedError",
    "JobInfo",
    "JobNotFinishedError",
    "JobTimeoutError",
    "Queue",
    "QueueEvent",
    "QueueOptions",
    "Retry",
    "Task",
    "TaskOptions",
    "Worker",
    "WorkerInfo",
    "current_job",
    "job_key",
]
