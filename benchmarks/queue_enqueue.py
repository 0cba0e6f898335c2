"""One producer enqueuing one job per call: where the time goes, beside the raw client.

    python benchmarks/queue_enqueue.py            # an embedded Valkey, started for the run
    python benchmarks/queue_enqueue.py --runs 7 --calls 5000

A raw ``RPUSH`` of the job's payload, a raw ``XADD`` (the very call ``task.enqueue(1)``
sends, a new job id each time), ``task.enqueue(1)`` and ``task.enqueue(1, priority=1)``
(which runs the add script) take turns in one process (``--runs`` rounds of ``--calls``
calls each, after one warm-up round), so that a busy machine's noise falls on all alike.
Per call, the median over the rounds: the wall time, the producer's CPU time
(``time.process_time``), the server's CPU time (``INFO cpu``: the whole server, so run it
on a server nobody else uses) and the command's own time on the server (``INFO
commandstats``), then the enqueue's rate as a share of the raw ``RPUSH`` and ``XADD``
rates, round by round. ``benchmarks/instructions.py`` counts the
producer's instructions instead (deterministic); ``benchmarks/queue.py`` compares queues.
Keys carry a unique prefix and are deleted at the end (nothing is flushed).
"""

from __future__ import annotations

import _path  # noqa: F401  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)
import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from _common import server_url

from redkit import Redkit, ops

PAYLOAD = b"[[1],{}]"  # what ``task.enqueue(1)`` stores
COLUMNS = ("wall", "producer CPU", "server CPU", "command")


def workloads(rk: Redkit, client: redis.Redis, prefix: str) -> dict[str, Callable[[], Any]]:
    """The ways to add one job, each a call of no arguments."""
    queue = rk.queue(f"{prefix}-q")

    @queue.task
    def noop(i: int) -> None: ...

    new = queue._new_job("noop", (1,), {}, {})[1]
    effect = queue._add({}, [new]).effect
    assert isinstance(effect, ops.Call)
    command = list(effect.args)
    member = command.index(new.member)
    ids = iter(range(10**12))

    def raw_xadd() -> Any:
        command[member] = f"raw{next(ids)}"  # a new job each time, as enqueue makes
        return client.execute_command(*command)

    return {
        "raw RPUSH": lambda: client.execute_command("RPUSH", f"{prefix}:rpush", PAYLOAD),
        "raw XADD": raw_xadd,
        "task.enqueue(1)": lambda: noop.enqueue(1),
        "priority=1": lambda: noop.enqueue(1, priority=1),
    }


def _server(client: redis.Redis, command: str) -> tuple[float, int, int]:
    """The server's CPU seconds, and ``command``'s calls and microseconds so far."""
    cpu = client.info("cpu")
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    seconds = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return seconds, int(stats.get("calls", 0)), int(stats.get("usec", 0))


def measure(client: redis.Redis, name: str, call: Callable[[], Any], n: int) -> list[float]:
    """Per call in microseconds: wall, producer CPU, server CPU, the command on the server."""
    command = {"raw RPUSH": "rpush", "priority=1": "evalsha"}.get(name, "xadd")
    server0, calls0, usec0 = _server(client, command)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        call()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    server1, calls1, usec1 = _server(client, command)
    per_call = (usec1 - usec0) / max(1, calls1 - calls0)
    return [wall / n * 1e6, cpu / n * 1e6, (server1 - server0) / n * 1e6, per_call]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds (after one warm-up)")
    parser.add_argument("--calls", type=int, default=3000, help="calls per workload and round")
    args = parser.parse_args()
    prefix = f"qenq-{uuid.uuid4().hex[:8]}"
    with server_url() as (url, where), Redkit(url, prefix=prefix) as rk:
        client = redis.Redis.from_url(url)
        info = client.info("server")
        version = info.get("valkey_version") or info["redis_version"]
        print(f"server: {where} {version}; {args.runs} rounds of {args.calls:,} calls each")
        calls = workloads(rk, client, prefix)
        results: dict[str, list[list[float]]] = {name: [] for name in calls}
        for run in range(args.runs + 1):
            for name, call in calls.items():
                row = measure(client, name, call, args.calls)
                if run:  # the first round warms up
                    results[name].append(row)
        for key in client.scan_iter(match=f"*{prefix}*", count=1000):
            client.delete(key)
        client.close()
    print(f"\n{'us per call (median)':<20}" + "".join(f"{c:>14}" for c in COLUMNS))
    for name, rows in results.items():
        medians = [statistics.median(column) for column in zip(*rows, strict=True)]
        print(f"{name:<20}" + "".join(f"{m:>14.1f}" for m in medians))
    for raw_name in ("raw RPUSH", "raw XADD"):
        shares = [
            raw[0] / mine[0]
            for raw, mine in zip(results[raw_name], results["task.enqueue(1)"], strict=True)
        ]
        print(
            f"\ntask.enqueue rate / {raw_name} rate, by round: "
            + " ".join(f"{s:.0%}" for s in shares)
            + f" (median {statistics.median(shares):.0%})"
        )


if __name__ == "__main__":
    main()
