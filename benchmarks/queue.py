"""Job queues compared: enqueue, bulk enqueue, drain, latency, round trips, worker memory.

    python benchmarks/queue.py                 # an embedded Valkey, started for the run
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/queue.py --runs 3
    python benchmarks/queue.py --only redkit "BullMQ for Node" --jobs 20000

redkit beside every peer that is installed (``pip install -e ".[bench]"``: SAQ, RQ, Celery,
Dramatiq, streaq, pydocket, BullMQ for Python) and BullMQ for Node when ``node`` and
``npm`` are there (bullmq is installed into ``~/.cache/redkit-bench/node`` on first use).
The same server, the same no-op job, one worker process at concurrency 50 (RQ runs one
job at a time: it has no concurrency within a worker). The systems take turns within each
round (``--runs`` rounds, medians reported):

* **enqueue one by one**: ``--one`` jobs, one call each, beside the raw redis-py client
  doing one ``RPUSH`` per job (sync, and asyncio for the asyncio producers);
* **bulk**: the system's bulk call in batches of 1,000, where it has one;
* **drain**: ``--jobs`` queued no-op jobs, then the worker process starts: jobs per second
  from the first job's start to the last one's (marks written by the jobs themselves);
* **round trips/job**: the server's ``total_reads_processed`` during the drain, per job
  (every read event is one request or pipeline from a client);
* **enqueue->start**: an idle worker, one job at a time, the median delay in ms;
* **worker RSS**: the worker's processes after the drain, MiB;
* for redkit also **delayed, late by**: how long after its due time a delayed job starts.
"""

from __future__ import annotations

import _path  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)
import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import redis
import redis.asyncio
from _common import server_url
from peers import PEERS, Peer

HERE = _path.HERE
WORKER_DIR = HERE / "queue_worker"
NODE_CACHE = Path(os.environ.get("REDKIT_BENCH_CACHE", "~/.cache/redkit-bench")).expanduser()
NODE = "BullMQ for Node"
COLUMNS = ("one by one /s", "bulk /s", "drain /s", "round trips/job", "enqueue->start ms",
           "worker RSS MiB")  # fmt: skip


# --- BullMQ for Node ----------------------------------------------------------------------


def node_modules() -> Path | None:
    """bullmq and ioredis for Node in the cache directory (installed on first use)."""
    if not (shutil.which("node") and shutil.which("npm")):
        return None
    target = NODE_CACHE / "node"
    if not (target / "node_modules" / "bullmq").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(target), "bullmq",
             "ioredis"], capture_output=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            print(f"note: npm install bullmq failed: {done.stderr.decode()[-300:]}")
            return None
    return target / "node_modules"


class NodePeer:
    """BullMQ for Node through bullmq_node.js (its own process for every step)."""

    name, has_bulk = NODE, True

    def __init__(self, modules: Path) -> None:
        self.modules = modules

    def env(self, url: str, ns: str) -> dict[str, str]:
        return {**os.environ, "QBENCH_URL": url, "QBENCH_NS": ns, "NODE_PATH": str(self.modules)}

    def call(self, url: str, ns: str, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            ["node", str(WORKER_DIR / "bullmq_node.js"), *args], env=self.env(url, ns),
            capture_output=True, timeout=600, check=True,
        )  # fmt: skip
        return json.loads(done.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]

    def worker(self, url: str, ns: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["node", str(WORKER_DIR / "bullmq_node.js"), "worker"], env=self.env(url, ns),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip


# --- the measurements ---------------------------------------------------------------------


def drive(peer_cls: type[Peer], url: str, ns: str, body: Callable[[Peer], Any]) -> Any:
    """Build the peer's producer, run ``body`` with it (in an event loop if it is async)."""
    if not peer_cls.is_async:
        peer = peer_cls(url, ns)
        try:
            return body(peer)
        finally:
            peer.close()

    async def run() -> Any:
        peer = peer_cls(url, ns)
        try:
            return await body(peer)
        finally:
            await peer.close()

    return asyncio.run(run())


def one_by_one(system: Any, url: str, ns: str, n: int) -> float:
    if isinstance(system, NodePeer):
        return float(system.call(url, ns, "one", str(n))["rate"])

    def sync(peer: Peer) -> float:
        began = time.perf_counter()
        for i in range(n):
            peer.one(i)
        return n / (time.perf_counter() - began)

    async def aio(peer: Peer) -> float:
        began = time.perf_counter()
        for i in range(n):
            await peer.one(i)
        return n / (time.perf_counter() - began)

    return float(drive(system, url, ns, aio if system.is_async else sync))


def bulk(system: Any, url: str, ns: str, n: int) -> float | None:
    if not system.has_bulk:
        return None
    if isinstance(system, NodePeer):
        return float(system.call(url, ns, "bulk", str(n))["rate"])
    batches = [list(range(s, min(n, s + 1000))) for s in range(0, n, 1000)]

    def sync(peer: Peer) -> float:
        began = time.perf_counter()
        for batch in batches:
            peer.bulk(batch)
        return n / (time.perf_counter() - began)

    async def aio(peer: Peer) -> float:
        began = time.perf_counter()
        for batch in batches:
            await peer.bulk(batch)
        return n / (time.perf_counter() - began)

    return float(drive(system, url, ns, aio if system.is_async else sync))


def fill(system: Any, url: str, ns: str, n: int) -> None:
    """The drain's jobs: the first mark, ``n`` no-ops, the last mark."""
    if isinstance(system, NodePeer):
        system.call(url, ns, "fill", str(n))
        return
    batches = [list(range(s, min(n, s + 1000))) for s in range(0, n, 1000)]

    def sync(peer: Peer) -> None:
        peer.one(-1)
        for batch in batches:
            if peer.has_bulk:
                peer.bulk(batch)
            else:
                for i in batch:
                    peer.one(i)
        peer.one(-2)

    async def aio(peer: Peer) -> None:
        await peer.one(-1)
        for batch in batches:
            if peer.has_bulk:
                await peer.bulk(batch)
            else:
                for i in batch:
                    await peer.one(i)
        await peer.one(-2)

    drive(system, url, ns, aio if system.is_async else sync)


def latencies(system: Any, url: str, ns: str, k: int, r: redis.Redis) -> list[float]:
    """``k`` enqueue-to-start delays in seconds, one job at a time to an idle worker."""
    if isinstance(system, NodePeer):
        return [float(x) for x in system.call(url, ns, "latency", str(k))["latencies"]]
    key = f"{ns}:lat"

    def sync(peer: Peer) -> list[float]:
        out = []
        for _ in range(k):
            peer.one(time.time())
            reply = r.blpop([key], 10)
            if reply:
                out.append(float(reply[1]))
        return out

    async def aio(peer: Peer) -> list[float]:
        out = []
        for _ in range(k):
            await peer.one(time.time())
            reply = await asyncio.to_thread(r.blpop, [key], 10)
            if reply:
                out.append(float(reply[1]))
        return out

    return list(drive(system, url, ns, aio if system.is_async else sync))


def delayed_lateness(url: str, ns: str, k: int, r: redis.Redis) -> list[float]:
    """redkit only: jobs enqueued with ``delay=0.2``; how long after due each started."""
    from redkit import Redkit

    with Redkit(url, prefix="qbench") as rk:
        q, key, out = rk.queue(ns), f"{ns}:lat", []
        for _ in range(k):
            due = time.time() + 0.2
            q.enqueue("noop", due, delay=0.2)
            reply = r.blpop([key], 10)
            if reply:
                out.append(float(reply[1]))
    return out


def worker_process(system: Any, url: str, ns: str) -> subprocess.Popen[bytes]:
    if isinstance(system, NodePeer):
        return system.worker(url, ns)
    env = {**os.environ, "QBENCH_URL": url, "QBENCH_NS": ns, "REDKIT_EMBEDDED": "0"}
    return subprocess.Popen(
        [sys.executable, "peers.py", system.name], cwd=WORKER_DIR, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def rss(proc: subprocess.Popen[bytes]) -> float:
    """The worker's resident memory, its child processes included, in MiB."""
    try:
        main = psutil.Process(proc.pid)
        return sum(p.memory_info().rss for p in [main, *main.children(recursive=True)]) / 2**20
    except psutil.NoSuchProcess:
        return float("nan")


def reads(r: redis.Redis) -> int:
    return int(r.info("stats")["total_reads_processed"])


def drain(system: Any, url: str, ns: str, n: int, r: redis.Redis, lat_k: int) -> dict[str, Any]:
    fill(system, url, ns, n)
    before = reads(r)
    proc = worker_process(system, url, ns)
    out: dict[str, Any] = {}
    try:
        ended = r.blpop([f"{ns}:end"], 600)
        if ended is None:
            raise SystemExit(f"{system.name}: the drain did not finish in 600 s")
        spent = reads(r) - before
        first = float(r.get(f"{ns}:first") or ended[1])
        out["drain /s"] = n / max(1e-6, float(ended[1]) - first)
        out["round trips/job"] = spent / n
        lat = latencies(system, url, ns, lat_k, r)
        out["enqueue->start ms"] = statistics.median(lat) * 1000 if lat else float("nan")
        if system.name == "redkit":
            late = delayed_lateness(url, ns, max(10, lat_k // 2), r)
            out["delayed, late by ms"] = statistics.median(late) * 1000
        out["worker RSS MiB"] = rss(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()
    return out


def raw_rates(url: str, n: int) -> tuple[float, float, float]:
    """The raw client, one RPUSH per job (sync, asyncio), and one EVALSHA of redkit's
    enqueue script per job (sync): per second."""
    from redkit import Redkit, ops

    payload = b"[[1],{}]"
    r = redis.Redis.from_url(url)
    began = time.perf_counter()
    for _ in range(n):
        r.execute_command("RPUSH", "qbench:raw", payload)
    sync = n / (time.perf_counter() - began)
    r.delete("qbench:raw")
    with Redkit(url, prefix="qbench") as rk:  # the exact call redkit's enqueue sends
        q = rk.queue("qbench-raw")
        new = q._new_job("noop", (1,), {}, {})[1]
        effect = q._add({}, [new]).effect
    assert isinstance(effect, ops.Eval)
    sha, keys = r.script_load(effect.script.source), list(effect.keys)
    args = list(effect.args)
    member = args.index(new.member)  # a new job id for every call
    began = time.perf_counter()
    for i in range(n):
        args[member] = f"j{i}"
        r.execute_command("EVALSHA", sha, len(keys), *keys, *args)
    script = n / (time.perf_counter() - began)
    cleanup(r, "qbench-raw")

    async def aio() -> float:
        client = redis.asyncio.Redis.from_url(url)
        began = time.perf_counter()
        for _ in range(n):
            await client.execute_command("RPUSH", "qbench:raw", payload)
        took = time.perf_counter() - began
        await client.delete("qbench:raw")
        await client.aclose()
        return n / took

    return sync, asyncio.run(aio()), script


def cleanup(r: redis.Redis, ns: str) -> None:
    """Delete the run's keys (a benchmark's admin step: SCAN is fine here)."""
    keys = list(r.scan_iter(match=f"*{ns}*", count=1000))
    for start in range(0, len(keys), 500):
        r.delete(*keys[start : start + 500])


# --- the table ----------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    found = [v for v in values if v is not None and v == v]
    return statistics.median(found) if found else None


def report(results: dict[str, dict[str, list[float]]], raw: dict[str, list[float]]) -> None:
    def cell(value: float | None, digits: int = 0) -> str:
        return "—" if value is None else f"{value:,.{digits}f}"

    width = max(len(name) for name in results)
    print(f"\n{'system':<{width}}  " + "  ".join(f"{c:>17}" for c in COLUMNS))
    for name, cols in results.items():
        vals = []
        for column in COLUMNS:
            digits = 2 if column in ("round trips/job", "enqueue->start ms") else 0
            vals.append(f"{cell(median(cols.get(column, [])), digits):>17}")
        print(f"{name:<{width}}  " + "  ".join(vals))
    print(f"{'raw redis-py, RPUSH per job':<{width}}  {median(raw['sync']):>17,.0f}  "
          f"(asyncio: {median(raw['async']):,.0f}/s; EVALSHA of redkit's enqueue script "
          f"per job: {median(raw['script']):,.0f}/s)")  # fmt: skip
    mine = results.get("redkit", {})
    late = median(mine.get("delayed, late by ms", []))
    if late is not None:
        print(f"redkit: a delayed job starts {late:.2f} ms after its due time (median)")
    print("\nratios (medians of this run):")
    one, raw_one = median(mine.get("one by one /s", [])), median(raw["sync"])
    if one and raw_one:
        print(f"  redkit one by one / raw RPUSH per job: {one / raw_one:.0%}")
        print(f"  redkit one by one / raw EVALSHA per job: {one / median(raw['script']):.0%}")
    for column in ("drain /s", "bulk /s", "one by one /s"):
        ours = median(mine.get(column, []))
        for name, cols in results.items():
            theirs = median(cols.get(column, []))
            if name != "redkit" and ours and theirs:
                print(f"  redkit {column.split(' /')[0]} / {name}: {ours / theirs:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per drain and bulk")
    parser.add_argument("--one", type=int, default=3000, help="jobs enqueued one by one")
    parser.add_argument("--latency", type=int, default=50, help="enqueue->start samples")
    parser.add_argument("--only", nargs="*", help="system names to run (default: all)")
    args = parser.parse_args()

    systems: list[Any] = [p for p in PEERS if importlib.util.find_spec(p.module)]
    missing = [p.name for p in PEERS if p not in systems]
    modules = node_modules()
    if modules is not None:
        systems.append(NodePeer(modules))
    else:
        missing.append(NODE)
    if args.only:
        systems = [s for s in systems if s.name in args.only]
    if missing:
        print(f"not installed (skipped): {', '.join(missing)}")
    results: dict[str, dict[str, list[float]]] = {s.name: {} for s in systems}
    raw: dict[str, list[float]] = {"sync": [], "async": [], "script": []}
    with server_url() as (url, where):
        r = redis.Redis.from_url(url)
        version = r.info("server").get("valkey_version") or r.info("server")["redis_version"]
        print(f"server: {where} {version}; {args.jobs:,} jobs per drain; one worker process, "
              f"concurrency 50; {args.runs} interleaved rounds")  # fmt: skip
        for run in range(args.runs):
            sync, aio, script = raw_rates(url, args.one)
            raw["sync"].append(sync)
            raw["async"].append(aio)
            raw["script"].append(script)
            for system in systems:
                ns = f"qb{os.getpid()}r{run}{systems.index(system)}"
                cols = results[system.name]
                try:
                    cols.setdefault("one by one /s", []).append(
                        one_by_one(system, url, ns + "e", args.one)
                    )
                    cols.setdefault("bulk /s", []).append(bulk(system, url, ns + "b", args.jobs))
                    for name, value in drain(
                        system, url, ns + "d", args.jobs, r, args.latency
                    ).items():
                        cols.setdefault(name, []).append(value)
                except Exception as exc:  # one peer failing must not end the comparison
                    print(f"  {system.name}: failed in round {run + 1}: {exc!r}")
                finally:
                    cleanup(r, ns)
                print(f"  round {run + 1}: {system.name} done", flush=True)
        r.close()
    report(results, raw)


if __name__ == "__main__":
    main()
