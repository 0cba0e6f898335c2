"""Job queues compared: enqueue, bulk enqueue, drain, latency, round trips, worker memory.

    python benchmarks/queue.py                 # an embedded Valkey, started for the run
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/queue.py --runs 3
    python benchmarks/queue.py --only redkit "BullMQ for Node" --jobs 20000

redkit beside SAQ, RQ, Celery, Dramatiq, streaq, pydocket, BullMQ for Python, arq and
taskiq (taskiq-redis), and BullMQ for Node when ``node`` and ``npm`` are there. A Python
peer that is importable here (``pip install -e ".[bench]"``) runs here; any other is
installed on first use into a virtual environment of its own,
``~/.cache/redkit-bench/venv/<package>`` (``python -m venv`` and pip; arq, for one, pins
redis-py below 6), and driven through ``queue_worker/peers.py`` run by that environment's
interpreter, as bullmq for Node (installed into ``~/.cache/redkit-bench/node``) is driven
through ``queue_worker/bullmq_node.js``; ``--no-venvs`` skips them instead. A peer that
cannot be installed (no network) is listed as not available, with the reason. The cache
directory is ``REDKIT_BENCH_CACHE`` when set.

The same server, the same no-op job, one worker process at concurrency 50 (RQ runs one job
at a time: it has no concurrency within a worker). The systems take turns within each round
(``--runs`` rounds, medians reported):

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
from pathlib import Path
from typing import Any

import peers
import psutil
import redis
import redis.asyncio
from _common import server_url
from peers import PEERS, Peer

HERE = _path.HERE
WORKER_DIR = HERE / "queue_worker"
CACHE = Path(os.environ.get("REDKIT_BENCH_CACHE", "~/.cache/redkit-bench")).expanduser()
NODE = "BullMQ for Node"
COLUMNS = ("one by one /s", "bulk /s", "drain /s", "round trips/job", "enqueue->start ms",
           "worker RSS MiB")  # fmt: skip


# --- where a system runs -------------------------------------------------------------------


def spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, cwd=WORKER_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


# peers.py run as the module ``peers`` only (run as a script, it would be compiled and held
# twice: once as __main__, once under its name, which RQ needs for its functions)
RUN_PEERS = "import sys, peers; peers.main(sys.argv[1:])"


def base_env(url: str, ns: str) -> dict[str, str]:
    return {**os.environ, "QBENCH_URL": url, "QBENCH_NS": ns, "REDKIT_EMBEDDED": "0"}


class Local:
    """A Python peer importable here: its producer runs in this process, its worker in a
    child process of the same interpreter (``peers.py NAME worker``)."""

    def __init__(self, peer: type[Peer]) -> None:
        self.peer, self.name, self.has_bulk = peer, peer.name, peer.has_bulk
        self.version = peers.version(peer)

    def step(self, url: str, ns: str, mode: str, n: int) -> dict[str, Any]:
        return peers.produce(self.peer, url, ns, mode, n)

    def worker(self, url: str, ns: str) -> subprocess.Popen[bytes]:
        return spawn([sys.executable, "-c", RUN_PEERS, self.name, "worker"], base_env(url, ns))


class Process:
    """A system driven through a runner script, each step a process of its own that prints
    its result as one line of JSON: BullMQ for Node (``node bullmq_node.js``) and a Python
    peer in a virtual environment of its own (``peers.py`` run by that environment's
    interpreter)."""

    def __init__(
        self, name: str, has_bulk: bool, argv: list[str], env: dict[str, str], version: str
    ) -> None:
        self.name, self.has_bulk, self.argv, self.extra_env = name, has_bulk, argv, env
        self.version = version

    def env(self, url: str, ns: str) -> dict[str, str]:
        return {**base_env(url, ns), **self.extra_env}

    def step(self, url: str, ns: str, mode: str, n: int) -> dict[str, Any]:
        done = subprocess.run(
            [*self.argv, mode, str(n)], cwd=WORKER_DIR, env=self.env(url, ns),
            capture_output=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{mode} exited {done.returncode}: {done.stderr.decode()[-500:]}")
        return json.loads(done.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]

    def worker(self, url: str, ns: str) -> subprocess.Popen[bytes]:
        return spawn([*self.argv, "worker"], self.env(url, ns))


System = Local | Process


def node_peer() -> Process | str:
    """BullMQ for Node, its modules in the cache directory (installed on first use), or why
    it is not available."""
    if not (shutil.which("node") and shutil.which("npm")):
        return "node and npm are not on PATH"
    target = CACHE / "node"
    if not (target / "node_modules" / "bullmq").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        print(f"installing bullmq for Node into {target} (once)", flush=True)
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(target), "bullmq",
             "ioredis"], capture_output=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            return f"npm install bullmq failed: {last_line(done.stderr)}"
    modules = target / "node_modules"
    version = json.loads((modules / "bullmq" / "package.json").read_text())["version"]
    argv = ["node", str(WORKER_DIR / "bullmq_node.js")]
    return Process(NODE, True, argv, {"NODE_PATH": str(modules)}, version)


def last_line(output: bytes) -> str:
    """The last line of a tool's error output that says something (pip's warnings skipped)."""
    lines = [ln.strip() for ln in output.decode(errors="replace").splitlines() if ln.strip()]
    told = [ln for ln in lines if not ln.startswith("WARNING")] or lines or ["no output"]
    return told[-1][-200:]


def venv_peer(peer: type[Peer]) -> Process | str:
    """``peer`` from a virtual environment of its own in the cache directory (built with
    ``python -m venv`` and pip on first use), or why it is not available."""
    home = CACHE / "venv" / peer.module
    python, ready = home / "bin" / "python", home / "redkit-bench-ready"
    wanted = [*peer.requirement.split(), "redis[hiredis]"]  # redis-py for the marks
    if not (ready.is_file() and ready.read_text() == " ".join(wanted)):
        shutil.rmtree(home, ignore_errors=True)
        print(f"installing {peer.requirement} into a virtual environment, {home} (once)",
              flush=True)  # fmt: skip
        try:
            subprocess.run([sys.executable, "-m", "venv", str(home)], check=True,
                           capture_output=True, timeout=300)  # fmt: skip
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--timeout", "20",
                 "--retries", "1", *wanted], capture_output=True, timeout=900,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            return f"python -m venv failed: {last_line(exc.stderr or b'')}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"its environment could not be built: {exc}"
        if done.returncode != 0:
            shutil.rmtree(home, ignore_errors=True)
            return f"pip install {' '.join(wanted)} failed: {last_line(done.stderr)}"
        ready.write_text(" ".join(wanted))
    argv = [str(python), "-c", RUN_PEERS, peer.name]
    isolated = {"PYTHONPATH": "", "PYTHONHOME": ""}  # nothing of this environment's packages
    try:
        found = Process(peer.name, peer.has_bulk, argv, isolated, "").step("", "", "version", 0)
    except (RuntimeError, ValueError, IndexError, subprocess.TimeoutExpired) as exc:
        return f"it does not start in {home}: {str(exc)[-200:]}"
    version = f"{found['version']} (own virtual environment, redis-py {found['redis']})"
    return Process(peer.name, peer.has_bulk, argv, isolated, version)


def systems_to_run(only: list[str] | None, venvs: bool) -> tuple[list[System], dict[str, str]]:
    """The systems this run measures, and why each of the others is not available."""
    wanted = [p for p in PEERS if not only or p.name in only]
    systems: list[System] = []
    missing: dict[str, str] = {}
    for peer in wanted:
        if importlib.util.find_spec(peer.module):
            systems.append(Local(peer))
        elif not venvs or not peer.requirement:
            missing[peer.name] = "not installed here"
        else:
            found = venv_peer(peer)
            if isinstance(found, str):
                missing[peer.name] = found
            else:
                systems.append(found)
    if not only or NODE in only:
        node = node_peer()
        if isinstance(node, str):
            missing[NODE] = node
        else:
            systems.append(node)
    return systems, missing


# --- the measurements ---------------------------------------------------------------------


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


def rss(proc: subprocess.Popen[bytes]) -> float:
    """The worker's resident memory, its child processes included, in MiB."""
    try:
        main = psutil.Process(proc.pid)
        return sum(p.memory_info().rss for p in [main, *main.children(recursive=True)]) / 2**20
    except psutil.NoSuchProcess:
        return float("nan")


def reads(r: redis.Redis) -> int:
    return int(r.info("stats")["total_reads_processed"])


def drain(system: System, url: str, ns: str, n: int, r: redis.Redis, lat_k: int) -> dict[str, Any]:
    system.step(url, ns, "fill", n)
    before = reads(r)
    proc = system.worker(url, ns)
    out: dict[str, Any] = {}
    try:
        ended = r.blpop([f"{ns}:end"], 600)
        if ended is None:
            raise SystemExit(f"{system.name}: the drain did not finish in 600 s")
        spent = reads(r) - before
        first = float(r.get(f"{ns}:first") or ended[1])
        out["drain /s"] = n / max(1e-6, float(ended[1]) - first)
        out["round trips/job"] = spent / n
        lat = [float(x) for x in system.step(url, ns, "latency", lat_k)["latencies"]]
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
    """The raw client, one RPUSH per job (sync, asyncio), and the one XADD per job that
    redkit's enqueue sends (sync): per second."""
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
    assert isinstance(effect, ops.Call)
    args = list(effect.args)
    member = args.index(new.member)  # a new job id for every call
    began = time.perf_counter()
    for i in range(n):
        args[member] = f"j{i}"
        r.execute_command(*args)
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


def report(
    results: dict[str, dict[str, list[float]]], raw: dict[str, list[float]], missing: dict[str, str]
) -> None:
    def cell(value: float | None, digits: int = 0) -> str:
        return "—" if value is None else f"{value:,.{digits}f}"

    width = max(len(name) for name in [*results, *missing])
    print(f"\n{'system':<{width}}  " + "  ".join(f"{c:>17}" for c in COLUMNS))
    for name, cols in results.items():
        vals = []
        for column in COLUMNS:
            digits = 2 if column in ("round trips/job", "enqueue->start ms") else 0
            vals.append(f"{cell(median(cols.get(column, [])), digits):>17}")
        print(f"{name:<{width}}  " + "  ".join(vals))
    for name, why in missing.items():
        print(f"{name:<{width}}  not available: {why}")
    print(f"{'raw redis-py, RPUSH per job':<{width}}  {median(raw['sync']):>17,.0f}  "
          f"(asyncio: {median(raw['async']):,.0f}/s; the XADD redkit's enqueue sends, "
          f"per job: {median(raw['script']):,.0f}/s)")  # fmt: skip
    mine = results.get("redkit", {})
    late = median(mine.get("delayed, late by ms", []))
    if late is not None:
        print(f"redkit: a delayed job starts {late:.2f} ms after its due time (median)")
    print("\nratios (medians of this run):")
    one, raw_one = median(mine.get("one by one /s", [])), median(raw["sync"])
    if one and raw_one:
        print(f"  redkit one by one / raw RPUSH per job: {one / raw_one:.0%}")
        print(f"  redkit one by one / raw XADD per job: {one / median(raw['script']):.0%}")
    for column in ("drain /s", "bulk /s", "one by one /s"):
        ours = median(mine.get(column, []))
        for name, cols in results.items():
            theirs = median(cols.get(column, []))
            if name != "redkit" and ours and theirs:
                print(f"  redkit {column.split(' /')[0]} / {name}: {ours / theirs:.2f}x")


def label(system: System) -> str:
    """The system's name and version (and where it runs when not in this environment)."""
    return f"{system.name} {system.version}".strip()


def measure(
    system: System, url: str, ns: str, args: argparse.Namespace, r: redis.Redis
) -> dict[str, Any]:
    """One round of every measurement for one system."""
    out: dict[str, Any] = {"one by one /s": system.step(url, ns + "e", "one", args.one)["rate"]}
    if system.has_bulk:
        out["bulk /s"] = system.step(url, ns + "b", "bulk", args.jobs)["rate"]
    return {**out, **drain(system, url, ns + "d", args.jobs, r, args.latency)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per drain and bulk")
    parser.add_argument("--one", type=int, default=3000, help="jobs enqueued one by one")
    parser.add_argument("--latency", type=int, default=50, help="enqueue->start samples")
    parser.add_argument("--only", nargs="*", help="system names to run (default: all)")
    parser.add_argument(
        "--no-venvs", dest="venvs", action="store_false",
        help=f"skip the Python peers that are not importable here instead of installing each "
             f"into a virtual environment of its own under {CACHE / 'venv'}",
    )  # fmt: skip
    args = parser.parse_args()

    systems, missing = systems_to_run(args.only, args.venvs)
    print("systems: " + ", ".join(label(s) for s in systems))
    results: dict[str, dict[str, list[float]]] = {s.name: {} for s in systems}
    raw: dict[str, list[float]] = {"sync": [], "async": [], "script": []}
    with server_url() as (url, where):
        r = redis.Redis.from_url(url, socket_timeout=None)  # BLPOP up to 600 s
        version = r.info("server").get("valkey_version") or r.info("server")["redis_version"]
        print(f"server: {where} {version}; {args.jobs:,} jobs per drain; one worker process, "
              f"concurrency 50; {args.runs} interleaved rounds")  # fmt: skip
        for run in range(args.runs):
            sync, aio, script = raw_rates(url, args.one)
            raw["sync"].append(sync)
            raw["async"].append(aio)
            raw["script"].append(script)
            for index, system in enumerate(systems):
                ns = f"qb{os.getpid()}r{run}s{index}x"
                try:
                    for name, value in measure(system, url, ns, args, r).items():
                        results[system.name].setdefault(name, []).append(value)
                except Exception as exc:  # one peer failing must not end the comparison
                    why = f"{type(exc).__name__}: {exc}"
                    print(f"  {system.name}: failed in round {run + 1}: {why}")
                finally:
                    cleanup(r, ns)
                print(f"  round {run + 1}: {system.name} done", flush=True)
        r.close()
    report(results, raw, missing)


if __name__ == "__main__":
    main()
