"""``redkit worker module:queue``: run a queue's tasks until SIGTERM or SIGINT."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from redkit.cli._common import friendly_errors
from redkit.errors import ConfigError
from redkit.queue import AsyncQueue, Queue, Worker


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
def command(spec: str, concurrency: int, grace: float) -> None:
    """Run the tasks of the queue MODULE:QUEUE (e.g. app.tasks:emails)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with friendly_errors():
        queue = load(spec)
        worker = Worker(queue, concurrency=concurrency, grace=grace)
        click.echo(f"redkit worker {worker.id}: queue {queue.name!r}, tasks "
                   f"{', '.join(sorted(queue.tasks)) or '(none)'}", err=True)  # fmt: skip
        worker.run_sync(signals=True)
    if worker.busy_threads():
        # plain-function jobs still running past the grace period were handed back to the
        # queue; a thread cannot be stopped, and the interpreter would wait for it at exit
        logging.shutdown()
        os._exit(0)
