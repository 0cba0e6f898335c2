"""The queue worker's cost per job: client instructions (callgrind), CPU seconds, server work.

    python benchmarks/queue_cpu.py                         # an embedded Valkey for the run
    python benchmarks/queue_cpu.py --jobs 2000 --cpu-jobs 20000 --rounds 3
    python benchmarks/queue_cpu.py --mode cpu --profile    # cProfile of one drain, top 25

With its round trips batched (several claims and acknowledgements per script call), a
worker's drain rate is bound by the CPU it spends per job, in the worker process and in
the server's scripts. This measures both for a no-op job, an ``async def`` handler and a
plain ``def`` one (run in the worker's thread pool), one in-process worker at concurrency
50:

* the queue is paused, ``--jobs`` jobs are enqueued in bulk, then the queue is resumed
  and the worker drains them; the window measured runs from the resume until the last
  job's outcome has reached the server (the worker waits idle again);
* **instr/job**: the worker process's instructions per job under valgrind's callgrind
  (deterministic up to how many jobs each round trip carries; markers as in
  ``benchmarks/instructions.py``), after one warm-up drain;
* **CPU us/job**: user + system CPU of the process per job (``resource.getrusage``), in
  a plain run, the median of ``--rounds`` drains of ``--cpu-jobs`` jobs;
* **cmds/job**, **scripts/job**, **script us/job**: the server's commands, script calls
  (``EVALSHA``) and time spent in them, per job (``INFO commandstats``, before and after).

Keys carry a unique prefix and are deleted at the end (nothing is flushed).
"""

from __future__ import annotations

import _path  # noqa: F401  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)
import argparse
import asyncio
import cProfile
import ctypes
import gc
import itertools
import json
import os
import pstats
import resource
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from _common import callgrind_totals, server_url

from redkit import AsyncRedkit
from redkit.queue import Worker

CONCURRENCY = 50
BULK = 1000
VARIANTS = ("async", "sync")


def _commandstats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """Calls and microseconds per command since the server started."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in stats.items()
    }


def _server_delta(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, float]:
    calls = {k: after[k][0] - before.get(k, (0, 0))[0] for k in after}
    usec = {k: after[k][1] - before.get(k, (0, 0))[1] for k in after}
    # the measurement's own INFO call is not the worker's
    calls["info"] = max(0, calls.get("info", 0) - 1)
    return {
        "commands": sum(calls.values()),
        "scripts": calls.get("evalsha", 0) + calls.get("eval", 0),
        "script_usec": usec.get("evalsha", 0) + usec.get("eval", 0),
    }


class Drain:
    """One queue, its no-op task and an in-process worker; :meth:`drain` measures."""

    def __init__(self, rk: Any, name: str, variant: str) -> None:
        self.queue = rk.queue(name)
        self.count = itertools.count(1)
        self.target = 0
        self.finished: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        if variant == "async":

            @self.queue.task(name="noop")
            async def noop(i: int) -> None:
                if next(self.count) == self.target:
                    self._finish()

        else:

            @self.queue.task(name="noop")
            def noop(i: int) -> None:
                if next(self.count) == self.target:
                    assert self.loop is not None
                    self.loop.call_soon_threadsafe(self._finish)

        self.task = noop

    def _finish(self) -> None:
        assert self.finished is not None
        self.finished.set()

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.queue.pause()
        self.worker = Worker(self.queue, concurrency=CONCURRENCY, schedules=False)
        self.running = asyncio.ensure_future(self.worker.run())
        while not self.worker.started.is_set():  # noqa: ASYNC110  (a threading.Event)
            await asyncio.sleep(0.01)

    async def enqueue(self, jobs: int) -> None:
        for first in range(0, jobs, BULK):
            await self.task.enqueue_many([(i,) for i in range(first, min(jobs, first + BULK))])
        self.target += jobs
        self.finished = asyncio.Event()

    async def drain(self) -> None:
        """Resume the queue; return when every job's outcome has reached the server."""
        await self.queue.resume()
        assert self.finished is not None
        await self.finished.wait()
        worker = self.worker
        # the worker has no event for "every outcome reported": look, briefly, each ms
        while (  # noqa: ASYNC110
            worker.processed < self.target or worker._acks or not worker._blocking
            or (worker._flushing is not None and not worker._flushing.done())
        ):  # fmt: skip
            await asyncio.sleep(0.001)
        await self.queue.pause()

    async def stop(self) -> None:
        await self.worker.stop()
        await self.running
        await self.queue.purge()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _rounds(
    url: str, variant: str, jobs: int, rounds: int, between: Callable[[], None] | None,
    profile: bool,
) -> list[dict[str, float]]:  # fmt: skip
    """A warm-up drain, then ``rounds`` measured ones (``between`` called around each)."""
    prefix = f"qcpu-{uuid.uuid4().hex[:8]}"
    sync = redis.Redis.from_url(url)
    rk = AsyncRedkit(url, prefix=prefix)
    drain = Drain(rk, f"cpu-{variant}", variant)
    out = []
    try:
        await drain.start()
        await drain.enqueue(jobs)
        await drain.drain()  # warm-up
        for _ in range(rounds):
            await drain.enqueue(jobs)
            # what the warm-up left behind is collected now and frozen, so a full
            # collection that happens to fall in the window costs what the drain made
            gc.collect()
            gc.freeze()
            stats = _commandstats(sync)
            profiler = cProfile.Profile() if profile else None
            if between is not None:
                between()
            cpu, started = _cpu(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            await drain.drain()
            if profiler is not None:
                profiler.disable()
            cpu, wall = _cpu() - cpu, time.perf_counter() - started
            if between is not None:
                between()
            row = _server_delta(stats, _commandstats(sync))
            row.update(cpu=cpu, wall=wall)
            out.append({k: v / jobs for k, v in row.items()})
            if profiler is not None:
                print(f"--- {variant}: the drain's own thread, by time spent in each function")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        await drain.stop()
    finally:
        for key in sync.scan_iter(match=f"*{prefix}*", count=1000):
            sync.delete(key)
        await rk.aclose()
        sync.close()
    return out


def child(url: str, jobs: int, out: str, variants: list[str]) -> None:
    """Runs under callgrind: per variant, a warm-up drain, then one between two markers."""
    marker = ctypes.CDLL(None).getppid  # callgrind dumps before each ffi_call
    results = {}
    for variant in variants:
        results[variant] = asyncio.run(_rounds(url, variant, jobs, 1, marker, False))[0]
    with open(out, "w") as f:
        json.dump(results, f)


def callgrind(url: str, jobs: int, variants: list[str]) -> dict[str, dict[str, float]]:
    """Per variant: instructions per job, and the server's work per job, under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.json")
        args = ["--child", out, "--url", url, "--jobs", str(jobs), "--variants", *variants]
        totals = callgrind_totals(__file__, args, tmp)  # per variant: (before, measured)
        with open(out) as f:
            results: dict[str, dict[str, float]] = json.load(f)
        for i, variant in enumerate(variants):
            results[variant]["instructions"] = totals[2 * i + 1] / jobs
        return results


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def table(grind: dict[str, dict[str, float]], cpu: dict[str, dict[str, float]]) -> str:
    head = f"{'handler':<10}{'instr/job':>11}{'CPU us/job':>12}{'jobs/s':>9}"
    head += f"{'cmds/job':>10}{'scripts/job':>13}{'script us/job':>15}"
    lines = [head]
    for variant in VARIANTS:
        if variant not in grind and variant not in cpu:
            continue
        g, c = grind.get(variant, {}), cpu.get(variant, {})
        server = c or g
        instr = f"{g['instructions']:>11,.0f}" if g else f"{'-':>11}"
        cpu_us = f"{c['cpu'] * 1e6:>12.1f}" if c else f"{'-':>12}"
        rate = f"{1 / c['wall']:>9,.0f}" if c else f"{'-':>9}"
        lines.append(
            f"{variant:<10}{instr}{cpu_us}{rate}{server['commands']:>10.3f}"
            f"{server['scripts']:>13.3f}{server['script_usec']:>15.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("both", "callgrind", "cpu"), default="both")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per drain under callgrind")
    parser.add_argument("--cpu-jobs", type=int, default=20000, help="jobs per plain drain")
    parser.add_argument("--rounds", type=int, default=3, help="plain drains (median)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--profile", action="store_true", help="cProfile the plain drains")
    parser.add_argument("--url", default=os.environ.get("REDIS_URL"), help="default: embedded")
    parser.add_argument("--child", metavar="OUT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.url, args.jobs, args.child, args.variants)
        return
    if args.url:
        os.environ["REDIS_URL"] = args.url
    grind: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, float]] = {}
    with server_url() as (url, _):
        if args.mode in ("both", "callgrind"):
            if shutil.which("valgrind") is None:
                print("valgrind is not installed: no instruction counts")
            else:
                grind = callgrind(url, args.jobs, args.variants)
        if args.mode in ("both", "cpu"):
            for variant in args.variants:
                rows = asyncio.run(
                    _rounds(url, variant, args.cpu_jobs, args.rounds, None, args.profile)
                )
                cpu[variant] = _median(rows)
    print(table(grind, cpu))


if __name__ == "__main__":
    main()
