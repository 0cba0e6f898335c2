"""Drain on a 3-master cluster with several worker processes: one partition or several.

    python benchmarks/queue_partitions.py                      # 1 and 2 worker processes
    python benchmarks/queue_partitions.py --procs 1,2,4 --runs 5

An embedded 3-master cluster is started for the run. Each drain: ``--jobs`` no-op jobs
queued in a paused queue (``partitions=1``, or ``--partitions``), then ``P`` worker
processes (``redkit worker``, concurrency 50 each, the same app as
``benchmarks/queue_features.py``) start; once every one of them holds its lease the queue
is resumed, and the drain is timed by the server's clock, from just before the resume to
when the last job was reported done (the newest score in the partitions' done sets).
Every configuration runs once per round, in an order that rotates from round to round;
the table shows jobs per second, the median of the rounds with min and max, and each
partitioned drain as a ratio to the one-partition drain with as many processes (the
median of the rounds' ratios), with how busy the busiest node's main thread and the
worker processes were during the drain (CPU time from ``INFO cpu`` and the processes'
threads' run time in ``/proc``, Linux only). The machine's load average is printed before
and after: on a small or shared machine the spread is wide, compare medians only.
"""

from __future__ import annotations

import _path  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)
import argparse
import contextlib
import itertools
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from redkit import Redkit
from redkit.embedded import EmbeddedCluster
from redkit.keys import Keyspace
from redkit.queue.ops import QueueKeys

WORKER_DIR = _path.HERE / "queue_worker"


def workers(url: str, prefix: str, partitions: int, count: int) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ, "REDIS_URL": url, "REDKIT_PREFIX": prefix, "REDKIT_EMBEDDED": "0",
        "BENCH_PARTITIONS": str(partitions),
    }  # fmt: skip
    argv = [sys.executable, "-m", "redkit.cli", "worker", "bench_app:queue", "-c", "50"]
    return [
        subprocess.Popen(
            argv, cwd=WORKER_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(count)
    ]


def until(check: object, timeout: float = 300.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("the drain did not finish in time")
        time.sleep(every)


def nodes(client: Any, prefix: str, partitions: int) -> int:
    """How many cluster nodes the partitions of the queue ``bench`` under ``prefix`` use."""
    waits = [QueueKeys(Keyspace(prefix), "bench", i).wait for i in range(partitions)]
    return len({client.get_node_from_key(key).name for key in waits})


def spread(client: Any, stem: str, partitions: int, masters: int) -> str:
    """A prefix under which the partitions sit on as many nodes as they can."""
    for n in itertools.count():
        prefix = f"{stem}s{n}"
        if nodes(client, prefix, partitions) == min(partitions, masters):
            return prefix
    raise AssertionError("unreachable")


def node_cpu(cluster: EmbeddedCluster) -> list[float]:
    """Each node's main thread's CPU seconds so far."""
    out = []
    for host, port in cluster.nodes:
        with redis.Redis(host=host, port=port) as node:
            cpu = node.info("cpu")
        out.append(cpu["used_cpu_user_main_thread"] + cpu["used_cpu_sys_main_thread"])
    return out


def worker_cpu(procs: list[subprocess.Popen[bytes]]) -> float:
    """The worker processes' CPU seconds so far: their threads' run time, to the ns, from
    ``/proc/<pid>/task/*/schedstat`` (Linux; 0 elsewhere)."""
    total = 0
    for proc in procs:
        for stat in Path(f"/proc/{proc.pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(stat.read_text().split()[0])
    return total / 1e9


@dataclass
class Drain:
    rate: float  # jobs/s
    node_busy: float  # the busiest node's main thread: CPU seconds per second of drain
    workers_busy: float  # the worker processes: CPU seconds per second of drain


def drain(cluster: EmbeddedCluster, prefix: str, jobs: int, partitions: int, procs: int) -> Drain:
    """``jobs`` no-op jobs drained by ``procs`` worker processes."""
    url = cluster.url
    rk = Redkit(url, prefix=prefix)
    q = rk.queue("bench", partitions=partitions)
    q.pause()
    for start in range(0, jobs, 1000):
        q.enqueue_many("noop", [(i,) for i in range(start, min(jobs, start + 1000))])
    running = workers(url, prefix, partitions, procs)
    try:
        until(lambda: len(q.workers()) == procs, timeout=60)
        nodes_before, workers_before = node_cpu(cluster), worker_cpu(running)
        seconds, micros = rk.client.time()
        q.resume()
        until(lambda: q.counts()["done"] >= jobs)
        nodes_spent = [b - a for a, b in zip(nodes_before, node_cpu(cluster), strict=True)]
        workers_spent = worker_cpu(running) - workers_before
        last = max(  # done sets are scored by when each job was reported done, in us
            score
            for keys in q.parts
            for _, score in rk.client.zrange(keys.done, -1, -1, withscores=True)
        )
        took = float(last - seconds * 1_000_000 - micros) / 1_000_000
    finally:
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            proc.wait(30)
    q.purge()
    rk.close()
    return Drain(jobs / took, max(nodes_spent) / took, workers_spent / took)


def report(configs: list[tuple[int, int]], results: dict[tuple[int, int], list[Drain]]) -> None:
    """The table: per configuration, medians over the rounds (rates with min and max)."""
    head = ("processes", "partitions", "median/s", "min/s", "max/s", "x 1 part",
            "busiest node", "workers", "worker us/job")  # fmt: skip
    rows = [head]
    for parts, p in configs:
        runs = results[(parts, p)]
        rates = [one.rate for one in runs]
        ratios = [a.rate / b.rate for a, b in zip(runs, results[(1, p)], strict=True)]
        rows.append((
            str(p), str(parts), f"{statistics.median(rates):,.0f}", f"{min(rates):,.0f}",
            f"{max(rates):,.0f}", "" if parts == 1 else f"{statistics.median(ratios):.2f}",
            f"{statistics.median(one.node_busy for one in runs):.0%}",
            f"{statistics.median(one.workers_busy for one in runs):.2f}",
            f"{statistics.median(one.workers_busy / one.rate * 1e6 for one in runs):.1f}",
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    print(
        "busiest node: its main thread's CPU time per second of drain; workers: the worker "
        "processes' CPU seconds per second of drain (cores busy), and per job; all medians"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--procs", default="1,2", help="worker process counts, e.g. 1,2,4")
    parser.add_argument("--partitions", type=int, default=3, help="the partitioned queue's")
    parser.add_argument(
        "--random-slots", action="store_true",
        help="random prefixes: partitions may share a node (default: one spread over the nodes)",
    )  # fmt: skip
    args = parser.parse_args()
    procs = [int(p) for p in args.procs.split(",")]
    configs = [(parts, p) for p in procs for parts in (1, args.partitions)]
    results: dict[tuple[int, int], list[Drain]] = {config: [] for config in configs}
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    used: list[int] = []  # nodes the partitioned queue's partitions sat on, per drain
    with EmbeddedCluster() as cluster, Redkit(cluster.url, prefix="bp") as rk:
        masters = len(cluster.nodes)
        for run in range(args.runs):
            shift = run % len(configs)
            for n, (parts, p) in enumerate(configs[shift:] + configs[:shift]):
                prefix = f"bp{run}x{n}x{os.getpid()}"
                if parts > 1:
                    if not args.random_slots:
                        prefix = spread(rk.client, prefix, parts, masters)
                    used.append(nodes(rk.client, prefix, parts))
                results[(parts, p)].append(drain(cluster, prefix, args.jobs, parts, p))
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"embedded 3-master cluster; {args.jobs:,} no-op jobs per drain; concurrency 50 per "
          f"process; {args.runs} interleaved rounds; the {args.partitions} partitions sat on "
          f"{'/'.join(map(str, sorted(set(used))))} of {masters} nodes")  # fmt: skip
    report(configs, results)


if __name__ == "__main__":
    main()
