"""``redkit worker module:queue``: run a queue's tasks until SIGTERM or SIGINT."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
import time

import click

from redkit.cli._common import friendly_errors
from redkit.errors import ConfigError
from redkit.queue import AsyncQueue, Queue, Worker

#: A worker process that dies sooner than this after its start is restarted this late.
RESTART_PAUSE = 1.0


def load(spec: str) -> Queue | AsyncQueue:
    """The queue named by ``module:attribute`` (the current directory is importable)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"expected module:queue (e.g. app.tasks:emails), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from None
    queue = getattr(module, attribute, None)
    if not isinstance(queue, (Queue, AsyncQueue)):
        raise ConfigError(f"{spec!r} is not a queue (got {type(queue).__name__})")
    return queue


@click.command("worker")
@click.argument("spec", metavar="MODULE:QUEUE")
@click.option("--concurrency", "-c", default=10, show_default=True, help="Jobs run at once.")
@click.option(
    "--grace", default=30.0, show_default=True,
    help="Seconds running jobs may finish after SIGTERM before they are handed back.",
)  # fmt: skip
@click.option(
    "--processes", "-p", default=1, show_default=True, type=click.IntRange(min=1),
    help="Worker processes; more than one are supervised and restarted when they die.",
)  # fmt: skip
@click.option(
    "--pool-size", type=click.IntRange(min=1), default=None,
    help="Child processes per worker for process=True tasks [default: CPUs].",
)  # fmt: skip
def command(
    spec: str, concurrency: int, grace: float, processes: int, pool_size: int | None
) -> None:
    """Run the tasks of the queue MODULE:QUEUE (e.g. app.tasks:emails)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if processes > 1:
        with friendly_errors():
            load(spec)  # a wrong spec fails here once, not in every child forever
        argv = [spec, "--concurrency", str(concurrency), "--grace", str(grace)]
        argv += ["--pool-size", str(pool_size)] if pool_size else []
        raise SystemExit(supervise(argv, processes))
    with friendly_errors():
        queue = load(spec)
        worker = Worker(queue, concurrency=concurrency, grace=grace, pool_size=pool_size)
        click.echo(f"redkit worker {worker.id}: queue {queue.name!r}, tasks "
                   f"{', '.join(sorted(queue.tasks)) or '(none)'}", err=True)  # fmt: skip
        worker.run_sync(signals=True)
    if worker.busy_threads():
        # plain-function jobs still running past the grace period were handed back to the
        # queue; a thread cannot be stopped, and the interpreter would wait for it at exit
        logging.shutdown()
        os._exit(0)


def supervise(argv: list[str], count: int) -> int:
    """Run ``count`` worker processes; restart any that dies until SIGTERM/SIGINT.

    A signal is passed on to every worker (each drains and hands back its jobs), and the
    supervisor returns once all have exited.
    """
    command = [sys.executable, "-m", "redkit.cli", "worker", *argv]
    children = {proc.pid: proc for proc in (subprocess.Popen(command) for _ in range(count))}
    started = dict.fromkeys(children, time.monotonic())
    signalled: list[int] = []  # set by the handler while the loop below runs

    def forward(signum: int, frame: object) -> None:
        signalled.append(signum)
        for proc in children.values():
            proc.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    while children:
        pid, status = os.wait()  # a signal runs forward() and the wait resumes (PEP 475)
        ended = children.pop(pid, None)
        if ended is not None:
            ended.returncode = os.waitstatus_to_exitcode(status)
        if ended is not None and not signalled:
            logging.getLogger("redkit.queue").warning(
                "worker process %d exited with %s; starting another", pid, ended.returncode
            )
            lived = time.monotonic() - started.pop(pid, 0.0)
            time.sleep(max(0.0, RESTART_PAUSE - lived))  # a child that dies at once: throttle
            if signalled:  # a signal came during the pause
                continue
            proc = subprocess.Popen(command)
            children[proc.pid], started[proc.pid] = proc, time.monotonic()
    return 0
