"""The worker: runs a queue's tasks on the asyncio runtime.

One worker is one asyncio loop with two runtime loops:

* **claim**: one script call finishes the jobs that completed since the last call,
  recovers dead workers' jobs, promotes due delayed jobs, takes in the plain jobs added
  to the queue's inbox and claims as many ready jobs as there are free slots; under load
  a worker spends one round trip per batch, not per job. With nothing to claim it blocks
  on the server (``XREAD BLOCK`` on the queue's inbox, a dedicated connection) until a
  job arrives, the next delayed job is due or another
  worker's lease ends, whichever comes first. The next claim is sent behind the wait, on
  its connection: the server runs it as the wait ends, so the job that woke the worker
  comes back with the wake-up (the partitioned queues below claim after the wake-up).
* **lease**: renews the lease on all of the worker's jobs at once, three times per lease.

On a partitioned queue each round claims from the partitions at once (one call each,
concurrent), splitting the free slots between them: the partitions that filled their
share last time split them evenly, one that came back short is asked for one job when
its turn at the head of the round comes, and the turn moves every round, so a flooded
partition cannot starve the others. Idle (once every partition came back short), the
worker blocks on every partition's inbox at once (one dedicated connection each)
and ends the other waits when one returns.

Async handlers run as tasks; plain functions run in a thread pool of ``concurrency``
threads; tasks registered with ``process=True`` run in a pool of child processes
(:mod:`redkit.queue.processes`), where a timeout kills the child. A handler that fails
is retried by its task's policy or recorded as failed with its traceback. ``stop()``
stops claiming, lets running jobs finish within ``grace`` seconds, and hands the rest
back to the queue at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import signal
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from redkit import errors
from redkit.client import AsyncRedkitCore
from redkit.errors import ConfigError, RedkitError
from redkit.queue import flows
from redkit.queue import ops as qops
from redkit.queue import schedules as sched
from redkit.queue.context import JobContext, _current
from redkit.queue.processes import ProcessPool, RemoteError
from redkit.runtime import AsyncLoopContext, AsyncRuntime

if TYPE_CHECKING:
    from redkit.queue.queue import AsyncQueue, Queue
    from redkit.queue.tasks import TaskDef

log = logging.getLogger("redkit.queue")


class Worker:
    """Runs the tasks of ``queue``.

    Args:
        queue: a :class:`~redkit.queue.Queue` or :class:`~redkit.queue.AsyncQueue` whose
            tasks are registered (import the module that defines them).
        concurrency: how many jobs run at once.
        grace: seconds :meth:`stop` lets running jobs finish before handing them back.
        batch: the most jobs claimed in one round trip (default: ``concurrency``).
        schedules: run the queue's schedules (store the ones defined in code, enqueue
            each tick once across all workers); on by default.
        pool_size: child processes for ``process=True`` tasks, started when the first
            such job runs (default: the number of CPUs).
    """

    def __init__(
        self, queue: Queue | AsyncQueue, *, concurrency: int = 10, grace: float = 30.0,
        batch: int | None = None, schedules: bool = True, pool_size: int | None = None,
    ) -> None:  # fmt: skip
        if not (isinstance(concurrency, int) and concurrency >= 1):
            raise ConfigError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if pool_size is not None and not (isinstance(pool_size, int) and pool_size >= 1):
            raise ConfigError(f"pool_size must be an int >= 1, got {pool_size!r}")
        if not grace >= 0:
            raise ConfigError(f"grace must be 0 or more seconds, got {grace!r}")
        if not queue.rk.owns_client:
            raise ConfigError(
                "a worker opens its own connections from the facade's settings; build the "
                "queue's facade from a URL or Settings, not from a handed-in client"
            )
        self.queue, self.concurrency, self.grace = queue, concurrency, grace
        self.batch = batch or concurrency
        self.schedules = schedules
        self.id = secrets.token_hex(8)
        self._parts = queue.parts
        self._turn = 0  # the partition that receives a claim round's remainder first
        self._busy = [True] * len(self._parts)  # filled its share in its last claim
        self._strays: set[asyncio.Future[Any]] = set()  # ended waits not yet returned
        self._running: dict[str, asyncio.Task[None]] = {}
        self._tokens: dict[str, int] = {}  # the fencing token of each running job
        self._contexts: dict[str, JobContext] = {}
        self._unpublished = set(queue.schedules)  # defined in code, stored at start
        self._acks: list[qops.Ack] = []
        self._blocking = self._unsure = False
        self._short: int | None = None  # the last claim came back short: next_ms
        self._flushing: asyncio.Task[None] | None = None
        self._cutting: asyncio.Future[Any] | None = None
        self._cutting_lease: asyncio.Future[Any] | None = None
        self._room: asyncio.Event | None = None
        self._done: asyncio.Event | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="redkit-job")
        self.pool_size = pool_size or os.cpu_count() or 1
        self._pool: ProcessPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started = threading.Event()
        self._in_threads = 0
        # plain-function handlers' outcomes, handed to the loop in bursts (see _in_thread)
        self._thread_outcomes: deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = (
            deque()
        )
        self._delivering = False
        self._count_lock = threading.Lock()
        self.processed = 0
        serializer = queue.rk.serializer
        self._dumps, self._loads = serializer.dumps, serializer.loads
        try:  # most handlers return nothing: its serialized form, made once
            self._none: bytes | None = serializer.dumps(None)
        except Exception:  # a serializer without None: each result fails as it would
            self._none = None

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self, *, signals: bool = False) -> None:
        """Work until :meth:`stop` (or, with ``signals``, SIGTERM/SIGINT) has drained."""
        source = self.queue.rk
        # no transparent retries: a claim retried after its reply was lost would leave the
        # first claim's jobs leased to this worker unseen; the claim loop retries itself
        # and hands such jobs back (see _claim)
        settings = dataclasses.replace(source.settings, retries=0)
        self._rk = AsyncRedkitCore(settings=settings, serializer=source.serializer)
        for observer in source.observers:  # metrics and tracing see the worker's work too
            self._rk.observe(observer)
        self._room, self._done = asyncio.Event(), asyncio.Event()
        self._runtime = AsyncRuntime(self._rk, drain_timeout=self.grace)
        self._runtime.add(f"queue:{self.queue.name}:claim", self._claim, interrupt=self._cut)
        self._runtime.add(f"queue:{self.queue.name}:lease", self._lease, interrupt=self._cut_lease)
        if self.schedules:
            self._runtime.add(f"queue:{self.queue.name}:schedules", self._tick)
        await self._runtime.start()
        self._loop = asyncio.get_running_loop()
        self.started.set()
        if signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_signal)
        await self._done.wait()

    def run_sync(self, *, signals: bool = True) -> None:
        """:meth:`run` in a new event loop (for a worker process)."""
        asyncio.run(self.run(signals=signals))

    def stop_threadsafe(self, grace: float | None = None, timeout: float = 60.0) -> None:
        """:meth:`stop` from another thread (a worker running in a thread of its own)."""
        if not self.started.wait(timeout) or self._loop is None:
            raise ConfigError("this worker is not running")
        future = asyncio.run_coroutine_threadsafe(self.stop(grace), self._loop)
        future.result(timeout)

    def busy_threads(self) -> int:
        """How many plain-function handlers are still running in the thread pool."""
        return self._in_threads

    def _on_signal(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(None))
        else:  # a second signal: no more grace
            self.grace = 0
            for task in self._running.values():
                task.cancel()

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming, let running jobs finish within ``grace`` s, hand back the rest.

        Later calls wait for the first one.
        """
        if not self.started.is_set():
            return
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace))
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float | None) -> None:
        grace = self.grace if grace is None else grace
        await self._runtime.remove(f"queue:{self.queue.name}:claim", deadline=grace + 1)
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=grace)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=1.0)
        try:
            if self._flushing is not None:  # a report in flight must land before the hand-back
                await asyncio.wait([self._flushing])
            await self._flush()
            handed = sum(await self._each(lambda keys: qops.release(keys, self.id)))
            if handed:
                log.info("queue %r: handed %d unfinished jobs back", self.queue.name, handed)
        except RedkitError as exc:  # Redis is down: the lease ends and others take the jobs
            log.warning(
                "queue %r: could not hand unfinished jobs back (%s); they return when this "
                "worker's lease ends", self.queue.name, exc,
            )  # fmt: skip
        finally:
            await self._settle_strays()  # idle waits ended by the stop's interrupt
            if self._pool is not None:
                await self._pool.close()
            await self._runtime.stop(deadline=1.0)
            self._threads.shutdown(wait=False, cancel_futures=True)
            await self._rk.aclose()
            assert self._done is not None
            self._done.set()

    # --- the claim loop --------------------------------------------------------------------

    async def _claim(self, ctx: AsyncLoopContext) -> None:
        await self._wait_room(ctx)
        if ctx.stopping:
            return
        if self._unsure:  # a claim's reply or a connection was lost: see _hand_back_unknown
            await self._hand_back_unknown()
        want = min(self.batch, self.concurrency - len(self._running))
        short, self._short = self._short, None
        if short is not None and want:
            await self._claim_woken(ctx, short, want)
            return
        flushing = self._flushing
        if flushing is not None and not flushing.done():
            # reports sent while this loop blocked land first: a job's progress must not
            # reach the server after its outcome (two calls in flight may take two
            # connections)
            await asyncio.wait([flushing])
        acks, self._acks = self._acks, []
        if len(self._parts) > 1:
            await self._claim_parts(ctx, acks, want)
            return
        try:
            taken = await self._rk.run(
                qops.take(self.queue.keys, self.id, self.queue.policy, want, acks)
            )
        except BaseException:
            self._acks[:0] = acks  # reported again by the next call
            self._unsure = self._unsure or want > 0
            raise
        self._stale(taken.stale)
        self._start_all(taken.jobs)
        await self._came_short(ctx, taken, want)

    async def _claim_woken(self, ctx: AsyncLoopContext, next_ms: int, want: int) -> None:
        """Block until woken, then claim up to ``want`` jobs behind the wait, on its
        connection (:func:`~redkit.queue.ops.block_take`): the job that woke the worker
        comes back with the wake-up. Reports go by :meth:`_flush` meanwhile."""
        try:
            with self._idling(next_ms) as wait:
                taken = await self._rk.run(
                    qops.block_take(self.queue.keys, self.id, wait, self.queue.policy, want)
                )
        except BaseException:
            self._unsure = True  # the claim behind the wait may have run
            raise
        self._stale(taken.stale)
        if ctx.stopping:  # woken to stop: what the claim took goes back now, not after grace
            if taken.jobs:
                with contextlib.suppress(RedkitError):  # else the stop's own hand-back
                    await self._hand_back_unknown()
            return
        self._start_all(taken.jobs)
        await self._came_short(ctx, taken, want)

    async def _hand_back_unknown(self) -> None:
        """Hand back every job this worker holds but neither runs nor has finished (those a
        claim took whose reply was lost, those a stop will not start, or those a server that
        failed over or restarted still leases to it after losing their reports). Reports in
        flight land first: a finished job must not be taken for an unknown one."""
        flushing = self._flushing
        if flushing is not None and not flushing.done():
            await asyncio.wait([flushing])
        known = [(m, self._tokens[m]) for m in self._running]
        known += [(ack.member, ack.token) for ack in self._acks]
        await self._each(lambda keys: qops.release(keys, self.id, known))
        self._unsure = False

    async def _came_short(self, ctx: AsyncLoopContext, taken: qops.Taken, want: int) -> None:
        """A claim that came back short took every job it could (the script claims as many
        as are ready and allowed): the next round waits at once, rather than ask again
        for nothing (a job added since has left an entry in the inbox, so the wait
        returns at once)."""
        if len(taken.jobs) < want and not ctx.stopping:
            self._short = taken.next_ms
            if taken.jobs:
                await asyncio.sleep(0)  # the handlers start before the wait is sent

    async def _claim_parts(self, ctx: AsyncLoopContext, acks: list[qops.Ack], want: int) -> None:
        """One claim round on a partitioned queue: a call per partition, concurrently."""
        shares = self._shares(want)
        reports: list[list[qops.Ack]] = [[] for _ in self._parts]
        for ack in acks:
            reports[ack.part].append(ack)
        calls = [p for p in range(len(self._parts)) if shares[p] or reports[p]]
        policy = self.queue.policy
        try:
            results = await asyncio.gather(
                *(self._rk.run(qops.take(self._parts[p], self.id, policy, shares[p], reports[p]))
                  for p in calls),
                return_exceptions=True,
            )  # fmt: skip
        except BaseException:
            self._acks[:0] = acks
            self._unsure = self._unsure or want > 0
            raise
        failure: BaseException | None = None
        claimed, next_ms = False, -1
        for p, taken in zip(calls, results, strict=True):
            if isinstance(taken, BaseException):
                self._acks[:0] = reports[p]  # reported again by the next call
                self._unsure = self._unsure or shares[p] > 0
                failure = failure or taken
                continue
            self._stale(taken.stale)
            self._start_all(taken.jobs)
            claimed = claimed or bool(taken.jobs)
            if shares[p]:
                self._busy[p] = len(taken.jobs) >= shares[p]
            if taken.next_ms >= 0:
                next_ms = taken.next_ms if next_ms < 0 else min(next_ms, taken.next_ms)
        if failure is not None:
            raise failure
        # idle only once every partition came back short (a busy one not asked this
        # round is asked in the next)
        if want and not claimed and not any(self._busy) and not ctx.stopping:
            try:
                with self._idling(next_ms) as wait:
                    await self._block_parts(wait)
            finally:  # woken (or failed): ask every partition again
                self._busy = [True] * len(self._parts)

    def _shares(self, want: int) -> list[int]:
        """How many jobs to claim from each partition this round (``want`` in all).

        The partitions take turns at the head of the round. Those that filled their
        share last time (busy) split ``want`` evenly, the remainder going to the first
        in turn order; a partition that came back short is asked for one job (a probe)
        when its turn comes, so a job that arrives there waits at most a turn; when no
        partition is busy, ``want`` is split over all of them."""
        n = len(self._parts)
        order = [(self._turn + i) % n for i in range(n)]
        self._turn = (self._turn + 1) % n
        shares = [0] * n
        head = order[0]
        if want and not self._busy[head]:
            shares[head], want = 1, want - 1
        spread = [p for p in order if self._busy[p]] or order
        each, extra = divmod(want, len(spread))
        for i, p in enumerate(spread):
            shares[p] += each + (i < extra)
        return shares

    async def _each(self, op: Callable[[qops.QueueKeys], Any]) -> list[Any]:
        """Run ``op`` on every partition, concurrently; the replies in partition order."""
        if len(self._parts) == 1:
            return [await self._rk.run(op(self._parts[0]))]
        return list(await asyncio.gather(*(self._rk.run(op(keys)) for keys in self._parts)))

    async def _wait_room(self, ctx: AsyncLoopContext) -> None:
        """Until a slot is free or finished jobs wait to be reported."""
        assert self._room is not None
        while len(self._running) >= self.concurrency and not self._acks and not ctx.stopping:
            self._room.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._room.wait(), 1.0)

    @contextlib.contextmanager
    def _idling(self, next_ms: int) -> Iterator[float]:
        """While the claim loop blocks on the server until woken, the next timed event
        (``next_ms``, -1: none), or a stop: gives the longest wait.

        The server checks blocking timeouts only on its own clock tick (``hz``: every
        100 ms by default), so a due delayed job would start up to a tick late; a local
        timer ends the wait on time instead (one entry on the worker's own stream).
        """
        seconds = 5.0 if next_ms < 0 else max(next_ms / 1000, 0.001)
        timer = None
        if seconds < 5.0:
            timer = asyncio.get_running_loop().call_later(seconds, self._wake_up)
        self._blocking = True
        try:
            if self._acks:
                self._kick()
            yield min(seconds + 0.5, 5.0) if timer is not None else 5.0
        finally:
            self._blocking = False
            if timer is not None:
                timer.cancel()

    async def _block_parts(self, wait: float) -> None:
        """Block on every partition's inbox until one returns, then end the others'
        waits (a cancelled blocking read would cost its connection) while claiming."""
        await self._settle_strays()
        waits: dict[asyncio.Future[Any], qops.QueueKeys] = {
            asyncio.ensure_future(self._rk.run(qops.block(keys, self.id, wait))): keys
            for keys in self._parts
        }
        try:
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            for task in waits:
                task.cancel()
            raise
        if pending:  # they return at the push; the next wait (or the stop) collects them
            self._strays = pending
            self._cutting = asyncio.ensure_future(
                asyncio.gather(*(self._rk.run(qops.interrupt(waits[t], self.id)) for t in pending))
            )
        for task in done:
            task.result()  # a wait that failed fails the round

    async def _settle_strays(self) -> None:
        """Collect the waits a previous idle round ended (they return at once), or cancel
        them when they do not."""
        strays, self._strays = self._strays, set()
        if strays:
            await asyncio.wait(strays, timeout=2.0)
            for task in strays:
                if task.done() and not task.cancelled():
                    task.exception()  # seen: a failed wait was already superseded
                task.cancel()

    def _wake_up(self) -> None:
        """End a blocking wait now (the timed event it waited for is due)."""
        if self._blocking:
            self._cutting = asyncio.ensure_future(
                self._each(lambda keys: qops.interrupt(keys, self.id))
            )

    def _cut(self) -> None:
        """The runtime asks the claim loop to stop: end a blocking wait at once."""
        if self._room is not None:
            self._room.set()
        if self._blocking:
            self._cutting = asyncio.ensure_future(
                self._each(lambda keys: qops.interrupt(keys, self.id))
            )

    def _stale(self, count: int) -> None:
        if count:
            log.warning(
                "queue %r: %d finished jobs were refused: their lease had ended and they "
                "were handed to another worker", self.queue.name, count,
            )  # fmt: skip

    # --- reporting -------------------------------------------------------------------------

    def _report(self, ack: qops.Ack) -> None:
        self._acks.append(ack)
        assert self._room is not None
        self._room.set()
        if self._blocking:
            self._kick()

    def _kick(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        """Report finished jobs without claiming (while the claim loop blocks or stops)."""
        while self._acks:
            acks, self._acks = self._acks, []
            reports: list[list[qops.Ack]] = [[] for _ in self._parts]
            for ack in acks:
                reports[ack.part].append(ack)
            policy = self.queue.policy
            parts = [p for p in range(len(self._parts)) if reports[p]]
            found = await asyncio.gather(
                *(self._rk.run(qops.take(self._parts[p], self.id, policy, 0, reports[p]))
                  for p in parts),
                return_exceptions=True,
            )  # fmt: skip
            failed: BaseException | None = None
            for p, taken in zip(parts, found, strict=True):
                if isinstance(taken, BaseException):
                    self._acks[:0] = reports[p]
                    failed = taken
                else:
                    self._stale(taken.stale)
            if failed is not None:
                if not isinstance(failed, Exception):
                    raise failed
                name = self.queue.name
                log.warning("queue %r: could not report finished jobs (%s)", name, failed)
                return

    # --- the schedule loop -----------------------------------------------------------------

    async def _tick(self, ctx: AsyncLoopContext) -> None:
        """Enqueue the due ticks of the queue's schedules, then sleep until the next one."""
        if self._unpublished:
            for name in list(self._unpublished):
                await self._rk.run(sched.put(self.queue.keys, self.queue.schedules[name]))
                self._unpublished.discard(name)
        wait_ms = await self._rk.run(sched.run_due(self.queue.keys, self.queue.policy.events))
        if wait_ms != 0:  # new schedules are picked up within a second
            await ctx.wait(1.0 if wait_ms < 0 else min(wait_ms / 1000, 1.0))

    # --- the lease loop --------------------------------------------------------------------

    async def _lease(self, ctx: AsyncLoopContext) -> None:
        try:
            await self._renew_and_follow(ctx)
        except RedkitError:
            # the lease loop always has a call in flight, so it sees every lost connection:
            # the server may have failed over to a replica (or restarted from a snapshot)
            # that missed this worker's last reports and leases it jobs it has finished;
            # the claim loop hands those back at its next round
            self._unsure = True
            raise

    async def _renew_and_follow(self, ctx: AsyncLoopContext) -> None:
        lease_ms = self.queue.policy.lease_ms
        renewed = all(await self._each(lambda keys: qops.renew(keys, self.id, lease_ms)))
        if not renewed and self._running:
            log.warning(
                "queue %r: this worker's lease had ended; its running jobs were handed to "
                "other workers", self.queue.name,
            )  # fmt: skip
        # until the next renewal, follow the cancellations addressed to this worker
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + self.queue.lease / 3
        if len(self._parts) > 1:
            await self._follow_parts(ctx, renew_at)
            return
        while not ctx.stopping:
            remaining = renew_at - loop.time()
            if remaining <= 0:
                return
            member = await self._rk.run(qops.follow_cancels(self.queue.keys, self.id, remaining))
            if member:
                self._cancel(member)

    async def _follow_parts(self, ctx: AsyncLoopContext, until: float) -> None:
        """Follow the cancellations of every partition (one wait each) until ``until``."""
        loop = asyncio.get_running_loop()
        waits: dict[asyncio.Future[str | None], qops.QueueKeys] = {}

        def follow(keys: qops.QueueKeys) -> None:
            remaining = until - loop.time()
            if remaining > 0 and not ctx.stopping:
                wait = self._rk.run(qops.follow_cancels(keys, self.id, remaining))
                waits[asyncio.ensure_future(wait)] = keys

        for keys in self._parts:
            follow(keys)
        try:
            while waits:
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    keys = waits.pop(task)
                    member = task.result()
                    if member:
                        self._cancel(member)
                    follow(keys)
        finally:
            for task in waits:
                task.cancel()

    def _cut_lease(self) -> None:
        """The runtime asks the lease loop to stop: end its wait for cancellations."""
        self._cutting_lease = asyncio.ensure_future(
            self._each(lambda keys: qops.interrupt_cancels(keys, self.id))
        )

    def _cancel(self, member: str) -> None:
        """Cancel a running job: flag it for its handler, and cancel an async one's task
        (a process-pool one's too: its process is killed)."""
        context, task = self._contexts.get(member), self._running.get(member)
        if context is None or task is None:
            return  # finished meanwhile: its report decides
        context._cancel()
        definition = self.queue.tasks.get(context.task)
        if definition is not None and definition.batch == 1 and (
            definition.is_async or definition.process
        ):
            task.cancel()  # a batch's task runs other jobs too: its handler cooperates
        log.info("queue %r: job %s was cancelled", self.queue.name, member)

    # --- running jobs ----------------------------------------------------------------------

    def _start_all(self, jobs: list[qops.Claimed]) -> None:
        """Start each claimed job; a batch task's jobs from one claim run in batches."""
        batches: dict[str, list[qops.Claimed]] = {}
        tasks, start = self.queue.tasks, asyncio.get_running_loop().create_task
        for job in jobs:
            definition = tasks.get(job.task)
            if definition is not None and definition.batch > 1:
                batches.setdefault(job.task, []).append(job)
            else:
                self._register(job, start(self._execute(job, definition)))
        for name, claimed in batches.items():
            size = self.queue.tasks[name].batch
            for i in range(0, len(claimed), size):
                chunk = claimed[i : i + size]
                task = asyncio.ensure_future(self._execute_batch(chunk))
                for job in chunk:
                    self._register(job, task)

    def _register(self, job: qops.Claimed, task: asyncio.Task[None]) -> None:
        self._running[job.member] = task
        self._tokens[job.member] = job.token
        report = functools.partial(self._progress, job.member, job.token, job.part)
        outcomes = (
            flows.outcomes(job.children, self.queue.rk.serializer.loads)
            if job.children
            else ({}, {})
        )
        self._contexts[job.member] = JobContext(
            unquote(job.member), job.task, job.deliveries, report, outcomes, self.queue.name
        )

    def _progress(self, member: str, token: int, part: int, value: Any) -> None:
        """A handler reports progress (from its task or its thread): store it in order."""
        data = self.queue.rk.serializer.dumps(value)
        loop = self._loop
        if loop is None:
            return
        if _in_loop(loop):
            self._write_progress(member, token, part, data)
        else:
            loop.call_soon_threadsafe(self._write_progress, member, token, part, data)

    def _write_progress(self, member: str, token: int, part: int, data: bytes) -> None:
        """A progress report travels with the next report of finished jobs (one round
        trip per batch), ahead of its job's outcome."""
        self._report(qops.Ack(member, token, "p", data, 0, part))

    def _finished(self, job: qops.Claimed) -> None:
        """Forget ``job``'s task, unless the job was claimed again since (a new token)."""
        if self._tokens.get(job.member) == job.token:  # a new claim has a new token
            del self._running[job.member]
            del self._tokens[job.member]
            del self._contexts[job.member]

    async def _execute(self, job: qops.Claimed, definition: TaskDef | None) -> None:
        context = self._contexts[job.member]
        _current.set(context)  # this task's own context
        try:
            if definition is None:
                raise ConfigError(f"queue {self.queue.name!r} has no task named {job.task!r}")
            args, kwargs = self._loads(job.payload)
            result = await self._call(definition, context, args, kwargs)
            none = self._none
            data = none if result is None and none is not None else self._dumps(result)
            ack = qops.Ack(job.member, job.token, "d", data, 0, job.part)
        except asyncio.CancelledError as exc:
            if self._stopping is not None and not context.cancelled:  # handed back
                self._finished(job)
                raise
            ack = self._failure(job, definition, exc)  # cancelled, or the handler's own
        except BaseException as exc:  # SystemExit from a handler must not strand the job
            ack = self._failure(job, definition, exc)
        self._finished(job)
        self.processed += 1
        self._report(ack)

    async def _execute_batch(self, jobs: list[qops.Claimed]) -> None:
        """Run a batch task's handler once for ``jobs``: it receives their items as a list
        and returns a list of results in the same order (or None)."""
        definition = self.queue.tasks[jobs[0].task]
        dumps, loads = self.queue.rk.serializer.dumps, self.queue.rk.serializer.loads
        try:
            items = [loads(job.payload)[0][0] for job in jobs]
            results = await self._call(definition, None, [items], {})
            if results is None:
                results = [None] * len(jobs)
            if not isinstance(results, (list, tuple)) or len(results) != len(jobs):
                raise ConfigError(
                    f"batch task {definition.name!r} must return None or a list of "
                    f"{len(jobs)} results, got {results!r}"
                )
            acks = [
                qops.Ack(job.member, job.token, "d", dumps(result), 0, job.part)
                for job, result in zip(jobs, results, strict=True)
            ]
        except asyncio.CancelledError as exc:
            if self._stopping is not None:  # stopping: the jobs are handed back
                for job in jobs:
                    self._finished(job)
                raise
            acks = [self._failure(job, definition, exc) for job in jobs]
        except BaseException as exc:
            acks = [self._failure(job, definition, exc) for job in jobs]
        for job, ack in zip(jobs, acks, strict=True):
            self._finished(job)
            self.processed += 1
            self._report(ack)

    async def _call(
        self, definition: TaskDef, context: JobContext | None, args: list[Any],
        kwargs: dict[str, Any],
    ) -> Any:  # fmt: skip
        if definition.process:  # the pool enforces the timeout itself, by killing the child
            if self._pool is None:
                self._pool = ProcessPool(self.pool_size)
            job = None if context is None else (
                context.id, context.task, context.deliveries, context.queue
            )  # fmt: skip
            return await self._pool.run(
                definition.name, definition.func, args, kwargs, definition.timeout, job
            )
        if definition.is_async:
            call = definition.func(*args, **kwargs)
        else:
            call = asyncio.get_running_loop().create_future()
            self._threads.submit(self._in_thread, definition.func, context, args, kwargs, call)
        if definition.timeout is None:
            return await call
        try:
            return await asyncio.wait_for(call, definition.timeout)
        except asyncio.TimeoutError:
            raise errors.JobTimeoutError(
                f"task {definition.name!r} timed out after {definition.timeout} s"
            ) from None

    def _in_thread(
        self, func: Any, context: JobContext | None, args: list[Any], kwargs: dict[str, Any],
        future: asyncio.Future[Any],
    ) -> None:  # fmt: skip
        """Run a plain-function handler in a pool thread; its outcome goes to ``future``.

        The outcome is queued and the loop woken once per burst, not once per job as
        ``run_in_executor`` does (a write to the loop's wake-up pipe and a future chained
        to a future each time).
        """
        if future.cancelled():  # stopping, or timed out before a thread was free
            return
        with self._count_lock:
            self._in_threads += 1
        reset = _current.set(context)
        outcome: tuple[asyncio.Future[Any], Any, BaseException | None]
        try:
            outcome = (future, func(*args, **kwargs), None)
        except BaseException as exc:  # the handler's: its job fails, the thread lives on
            outcome = (future, None, exc)
        finally:
            _current.reset(reset)
            with self._count_lock:
                self._in_threads -= 1
        self._thread_outcomes.append(outcome)
        if not self._delivering:  # read after the append: see _deliver
            self._delivering = True
            try:
                future.get_loop().call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: no one waits for these any more
                self._delivering = False

    def _deliver(self) -> None:
        """Hand the queued outcomes of plain-function handlers to their jobs (in the loop)."""
        self._delivering = False  # before reading the queue: a later append asks again
        outcomes = self._thread_outcomes
        while outcomes:
            future, result, exc = outcomes.popleft()
            if future.done():  # cancelled meanwhile (a timeout, a stop)
                continue
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)

    def _failure(
        self, job: qops.Claimed, definition: TaskDef | None, exc: BaseException
    ) -> qops.Ack:
        if isinstance(exc, RemoteError):  # raised in a pool process: its own type and trace
            kind, trace = exc.kind, exc.trace
        else:
            kind, trace = type(exc).__name__, "".join(traceback.format_exception(exc))
        error = {
            "type": kind,
            "message": str(exc),
            "traceback": trace,
            "attempts": job.deliveries,
        }
        data = self.queue.rk.serializer.dumps(error)
        if self._contexts[job.member].cancelled:
            return qops.Ack(job.member, job.token, "c", data, 0, job.part)
        retry = definition.retry if definition is not None else None
        if retry is not None and job.deliveries <= retry.retries:
            try:
                delay_ms = int(retry.delay(job.deliveries) * 1000)
            except Exception:  # a custom backoff that fails: the job fails, visibly
                log.exception("queue %r: the backoff of task %r failed", self.queue.name, job.task)
            else:
                log.info("queue %r: job %s failed (%s); retrying", self.queue.name, job.member, exc)
                return qops.Ack(job.member, job.token, "r", data, delay_ms, job.part)
        log.error("queue %r: job %s failed for good", self.queue.name, job.member, exc_info=exc)
        return qops.Ack(job.member, job.token, "f", data, 0, job.part)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
