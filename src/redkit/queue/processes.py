"""The worker's process pool, for tasks registered with ``process=True`` (CPU-bound work).

Each child process runs one job at a time and stays up for the next; the worker sends it
the task's module and qualified name with the arguments, and the child imports the
function by name (``spawn``: nothing is inherited, so a child is the same on Linux and
macOS). When a job runs past its task's ``timeout``, or the worker stops past its grace
period, the child running it is killed (SIGKILL) and a fresh one replaces it on the next
job: unlike a thread, a process-pool handler really stops. A child that dies on its own
(``os._exit``, a segfault, the OOM killer) fails its job with :class:`JobCrashedError`;
the worker itself carries on. Inside the child, :func:`~redkit.queue.current_job` gives
the job's id, task, queue and delivery count; its progress reports are dropped (a
cancellation kills the child instead of setting its flag).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import signal
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from redkit import errors
from redkit.queue.context import JobContext, _current

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

#: What a child learns of the job it runs: its id, task, delivery count and queue.
ChildJob = tuple[str, str, int, str]

#: Seconds an idle child gets to exit by itself when the pool closes, before a kill.
EXIT_WAIT = 2.0
#: Seconds a new child may take to start (import redkit) before it counts as crashed.
START_WAIT = 60.0


class RemoteError(Exception):
    """An exception raised by a handler in a child process, as the worker records it."""

    def __init__(self, kind: str, message: str, trace: str) -> None:
        super().__init__(message)
        self.kind, self.trace = kind, trace


def locate(func: Callable[..., Any]) -> tuple[str, str]:
    """The module and qualified name a child imports ``func`` by; ConfigError if it cannot."""
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", "")
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise errors.ConfigError(
            f"a process=True task must be a module-level function (the pool's processes "
            f"import it by name), got {func!r}"
        )
    return module, qualname


def resolve(module: str, qualname: str) -> Callable[..., Any]:
    """The function at ``module:qualname`` (unwrapped from a registered task)."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return getattr(found, "__wrapped__", found)  # type: ignore[no-any-return]


def child_main(conn: Connection) -> None:
    """A child's loop: run one job per message until the pipe closes or a None arrives."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    conn.send(("ready", None))  # a task's timeout counts from here, not from the spawn
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the worker is gone
            return
        if message is None:
            return
        module, qualname, args, kwargs, job = message
        _current.set(None if job is None else JobContext(job[0], job[1], job[2], queue=job[3]))
        try:
            result = resolve(module, qualname)(*args, **kwargs)
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
            reply: tuple[str, Any] = ("ok", result)
            conn.send(reply)
        except BaseException as exc:
            trace = "".join(traceback.format_exception(exc))
            with contextlib.suppress(BaseException):
                conn.send(("error", (type(exc).__name__, str(exc), trace)))


class _Child:
    """One child process and the worker's end of its pipe."""

    def __init__(self) -> None:
        import multiprocessing  # here: a worker without process=True tasks never loads it

        context = multiprocessing.get_context("spawn")
        self.conn, theirs = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=child_main, args=(theirs,), name="redkit-job-process", daemon=True
        )
        self.process.start()
        theirs.close()
        try:  # in a thread: wait until it has started (imports done)
            if not self.conn.poll(START_WAIT):
                raise EOFError
            self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            self.process.join(EXIT_WAIT)
            self.conn.close()
            raise errors.JobCrashedError(
                f"a process-pool process did not start (exit code {self.process.exitcode})"
            ) from None

    def call(self, message: tuple[Any, ...]) -> Any:
        """Send a job and wait for its reply (in a thread: both ends may block).

        When the child dies (or is killed) meanwhile, reap it, close the pipe and raise.
        """
        try:
            self.conn.send(message)
            return self.conn.recv()
        except (EOFError, OSError):
            self.process.join(EXIT_WAIT)
            self.conn.close()
            raise

    def kill(self) -> None:
        """SIGKILL; a thread waiting in :meth:`call` then reaps it."""
        with contextlib.suppress(Exception):
            self.process.kill()

    def close(self) -> None:
        """Ask an idle child to exit; kill it if it does not within EXIT_WAIT."""
        with contextlib.suppress(Exception):
            self.conn.send(None)
        self.process.join(EXIT_WAIT)
        self.kill()
        self.process.join(EXIT_WAIT)
        self.conn.close()


class ProcessPool:
    """Up to ``size`` child processes, started on first use and reused."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._slots = asyncio.Semaphore(size)
        self._threads = ThreadPoolExecutor(size, thread_name_prefix="redkit-job-process")
        self._closed = False

    async def run(
        self, name: str, func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any],
        timeout: float | None, job: ChildJob | None = None,
    ) -> Any:  # fmt: skip
        """Run ``func(*args, **kwargs)`` in a child; kill the child past ``timeout`` s.
        ``job`` becomes the child's :func:`~redkit.queue.current_job`.

        Raises:
            JobTimeoutError: the run took too long (its process was killed).
            JobCrashedError: the child died during the run.
            RemoteError: the handler raised (type, message and traceback inside).
        """
        message = (*locate(func), args, kwargs, job)
        loop = asyncio.get_running_loop()
        async with self._slots:
            if self._closed:
                raise errors.ConfigError("the worker's process pool is closed")
            child = self._idle.pop() if self._idle else await loop.run_in_executor(
                self._threads, _Child
            )  # fmt: skip
            self._busy.add(child)
            healthy = False
            try:
                call = loop.run_in_executor(self._threads, child.call, message)
                try:
                    kind, value = await asyncio.wait_for(call, timeout)
                except asyncio.TimeoutError:
                    raise errors.JobTimeoutError(
                        f"task {name!r} timed out after {timeout} s; its process was killed"
                    ) from None
                except (EOFError, OSError):
                    raise errors.JobCrashedError(
                        f"the process running task {name!r} died (exit code "
                        f"{child.process.exitcode})"
                    ) from None
                healthy = True
            finally:
                self._busy.discard(child)
                if healthy and not self._closed:
                    self._idle.append(child)
                else:  # timed out, cancelled (a stop past its grace), crashed: it goes
                    child.kill()
        if kind == "ok":
            return value
        raise RemoteError(*value)

    async def close(self) -> None:
        """Stop every child: idle ones exit, running ones are killed."""
        self._closed = True
        for child in self._busy:
            child.kill()
        idle, self._idle = self._idle, []
        loop = asyncio.get_running_loop()
        if idle:
            await asyncio.gather(*(loop.run_in_executor(self._threads, c.close) for c in idle))
        self._threads.shutdown(wait=False, cancel_futures=True)
