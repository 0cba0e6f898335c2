"""Background jobs: at-least-once delivery with leases, retries, delays and priorities.

See :class:`Queue` (producers and task definitions) and :class:`Worker` (runs tasks).
"""

from redkit.errors import JobFailedError, JobNotFinishedError, JobTimeoutError
from redkit.queue.jobs import AsyncJob, Job, JobInfo
from redkit.queue.queue import AsyncQueue, Queue, QueueOptions
from redkit.queue.retry import Retry
from redkit.queue.tasks import AsyncTask, Task, TaskOptions
from redkit.queue.worker import Worker

__all__ = [
    "AsyncJob",
    "AsyncQueue",
    "AsyncTask",
    "Job",
    "JobFailedError",
    "JobInfo",
    "JobNotFinishedError",
    "JobTimeoutError",
    "Queue",
    "QueueOptions",
    "Retry",
    "Task",
    "TaskOptions",
    "Worker",
]
