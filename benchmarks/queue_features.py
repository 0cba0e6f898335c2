"""The queue's own features, each as a ratio to a plain drain: the event stream, progress
reports, groups (and the plain drain's enqueue and round-trip figures beside them).

    python benchmarks/queue_features.py        # an embedded Valkey, started for the run

``benchmarks/queue.py`` compares redkit with the other queues; this script measures what
turning on a feature costs redkit itself. Workloads, each the median of ``--runs``
interleaved rounds:

* enqueue one by one: ``task.enqueue(i)``, beside the raw client doing one ``RPUSH`` per
  job (the floor for one round trip per job);
* bulk: ``task.enqueue_many`` in batches of 1,000;
* drain: ``--jobs`` no-op jobs already queued, one worker process (``redkit worker``,
  concurrency 50): jobs per second from the first job's start to the last one's
  finish, and round trips per job (script calls and blocking waits in ``INFO commandstats``);
* drain with the event stream on (``events=10_000``: enqueued, active and completed
  events for every job), and with one progress report per job as well, as a ratio to
  the plain drain;
* drain with the jobs spread over 10 groups (claimed round robin), and with a rate limit
  and a global concurrency limit set (high enough never to bind), as ratios;
* drain of a queue in 4 partitions, as a ratio: on one server this is what claiming
  from several slots costs; with ``--cluster`` the plain and the partitioned drains
  also run on an embedded 3-master cluster, where the partitions spread over the nodes;
* enqueue-to-start: an idle worker, one job at a time, the median delay;
* the worker process's resident memory after the drain.
"""

from __future__ import annotations

import _path  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)
import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

import psutil
from _common import server_url

from redkit import Redkit
from redkit.embedded import EmbeddedCluster

HERE = _path.HERE
SENT = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_blpop")


def commands(rk: Redkit) -> int:
    """Commands clients sent that a worker uses: script calls and blocking waits.

    (``INFO commandstats`` also counts the commands scripts run inside the server, so
    the total would not be round trips.)
    """
    stats = rk.client.info("commandstats")
    if stats and all(isinstance(v, dict) and "calls" not in v for v in stats.values()):
        return sum(  # a cluster client: one section per node
            int(node[name]["calls"]) for node in stats.values() for name in SENT if name in node
        )
    return sum(int(stats[name]["calls"]) for name in SENT if name in stats)


def enqueue_one_by_one(noop: Any, n: int) -> float:
    began = time.perf_counter()
    for i in range(n):
        noop.enqueue(i)
    return n / (time.perf_counter() - began)


def raw_one_by_one(rk: Redkit, n: int) -> float:
    key, payload = rk.keys.group("bench").key("raw"), b"[[1],{}]"
    began = time.perf_counter()
    for _ in range(n):
        rk.client.execute_command("RPUSH", key, payload)
    took = time.perf_counter() - began
    rk.client.delete(key)
    return n / took


def bulk(noop: Any, n: int) -> float:
    began = time.perf_counter()
    for start in range(0, n, 1000):
        noop.enqueue_many([(i,) for i in range(start, min(n, start + 1000))])
    return n / (time.perf_counter() - began)


def worker(url: str, prefix: str, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ, "REDIS_URL": url, "REDKIT_PREFIX": prefix, "REDKIT_EMBEDDED": "0",
        **extra,
    }  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "redkit.cli", "worker", "bench_app:queue", "-c", "50"],
        cwd=HERE / "queue_worker", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait(check: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("the worker did not finish in time")
        time.sleep(0.01)


def drain(
    url: str, prefix: str, n: int, events: int = 0, progress: bool = False, groups: int = 0,
    limited: bool = False, partitions: int = 1,
) -> tuple[float, float, float, float]:  # fmt: skip
    """(jobs/s, commands per job, median enqueue-to-start ms, worker RSS MiB)."""
    rk = Redkit(url, prefix=prefix)
    q = rk.queue("bench", events=events, partitions=partitions)
    if limited:  # limits that never bind: what checking them costs
        q.set_rate_limit("1000000/second")
        q.set_concurrency(10_000)
    q.enqueue("mark")
    for start in range(0, n, 1000):
        items = [(i,) for i in range(start, min(n, start + 1000))]
        if groups:  # spread over the groups, claimed round robin
            q.enqueue_many("noop", items, group=f"g{start // 1000 % groups}")
        else:
            q.enqueue_many("noop", items)
    before = commands(rk)
    proc = worker(
        url, prefix, BENCH_EVENTS=str(events), BENCH_PROGRESS="1" if progress else "0",
        BENCH_PARTITIONS=str(partitions),
    )  # fmt: skip
    try:
        wait(lambda: q.counts()["done"] >= min(n + 1, 10_000))
        ended = time.time()
        spent = commands(rk) - before
        first = float(rk.client.get(rk.keys.group("bench").key("first")) or ended)
        latency = [_latency(q) for _ in range(200)]
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        rk.close()
    return n / (ended - first), spent / n, statistics.median(latency) * 1000, rss


def _latency(q: Any) -> float:
    key = q.rk.keys.group("bench").key("latency")
    q.enqueue("stamp", time.time())
    reply = q.rk.client.blpop(key, 10)
    return float(reply[1])


def _noop(i: int) -> None:
    """The producer's view of the worker's no-op task (the signature is checked)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--cluster", action="store_true", help="also drain on a cluster")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(EmbeddedCluster()) if args.cluster else None
        (url, where) = stack.enter_context(server_url())
        print(f"server: {where}; {args.jobs} jobs; one worker process, concurrency 50")
        for run in range(args.runs):
            prefix = f"bench{run}{os.getpid()}"
            with Redkit(url, prefix=prefix) as rk:
                noop = rk.queue("bench").task(name="noop")(_noop)
                rows.setdefault("raw client, RPUSH per job /s", []).append(raw_one_by_one(rk, 5000))
                rows.setdefault("enqueue one by one /s", []).append(enqueue_one_by_one(noop, 5000))
                rows.setdefault("bulk enqueue /s", []).append(bulk(noop, args.jobs))
            rate, per_job, latency, rss = drain(url, prefix + "d", args.jobs)
            rows.setdefault("drain, 1 worker /s", []).append(rate)
            rows.setdefault("drain: round trips/job", []).append(per_job)
            rows.setdefault("enqueue->start median ms", []).append(latency)
            rows.setdefault("worker RSS MiB", []).append(rss)
            with_events = drain(url, prefix + "e", args.jobs, events=10_000)[0]
            rows.setdefault("drain, events on: x plain", []).append(with_events / rate)
            with_progress = drain(url, prefix + "p", args.jobs, events=10_000, progress=True)[0]
            rows.setdefault("drain, events + progress: x plain", []).append(with_progress / rate)
            with_groups = drain(url, prefix + "g", args.jobs, groups=10)[0]
            rows.setdefault("drain, 10 groups: x plain", []).append(with_groups / rate)
            with_limits = drain(url, prefix + "l", args.jobs, limited=True)[0]
            rows.setdefault("drain, rate + concurrency limits: x plain", []).append(
                with_limits / rate
            )
            with_partitions = drain(url, prefix + "q", args.jobs, partitions=4)[0]
            rows.setdefault("drain, 4 partitions: x plain", []).append(with_partitions / rate)
            if cluster is not None:
                one = drain(cluster.url, prefix + "c", args.jobs)[0]
                four = drain(cluster.url, prefix + "k", args.jobs, partitions=4)[0]
                rows.setdefault("cluster: drain, 1 worker /s", []).append(one)
                rows.setdefault("cluster: drain, 4 partitions /s", []).append(four)
                rows.setdefault("cluster: 4 partitions: x one", []).append(four / one)
    width = max(map(len, rows))
    for name, values in rows.items():
        print(f"{name:<{width}}  {statistics.median(values):>12,.2f}  "
              f"(min {min(values):,.2f}, max {max(values):,.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
