"""Lock throughput: redkit against redis-py's Lock and python-redis-lock on one server.

    python benchmarks/locks.py                 # an embedded Valkey, started for the run
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/locks.py --runs 7

Two workloads, each the median of ``--runs`` runs:

* uncontended: one caller acquires and releases one lock ``--pairs`` times
  (``with lock: pass``), i.e. the cost of a lock around a request;
* hand-off: one holder, one waiter blocked on the same lock; the time from the holder's
  release to the waiter holding the lock (``--handoffs`` times). redkit and
  python-redis-lock wake waiters on release; redis-py's Lock polls every 0.1 s.

Raw round trips (PING, EVALSHA of ``return 1``) give the server's ceiling for scale. Peers
that are not installed (``pip install -e ".[bench]"``) are skipped with a note.
"""

from __future__ import annotations

import _path  # noqa: F401  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)
import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio
from _common import server_url, table

from redkit import AsyncRedkit, Redkit

try:
    import redis_lock
except ImportError:  # the bench extra is not installed
    redis_lock = None

NAME = "bench-lock"
TTL = 10


# --- workloads: each returns a callable doing ``n`` acquire/release pairs ------------


def redkit_sync(rk: Redkit) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            with rk.lock(NAME, ttl=TTL):
                pass

    return run


def redkit_async(ark: AsyncRedkit) -> Callable[[int], Awaitable[None]]:
    async def run(n: int) -> None:
        for _ in range(n):
            async with ark.lock(NAME, ttl=TTL):
                pass

    return run


def redispy_sync(client: redis.Redis) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            with client.lock("redispy:" + NAME, timeout=TTL):
                pass

    return run


def redispy_async(client: redis.asyncio.Redis) -> Callable[[int], Awaitable[None]]:
    async def run(n: int) -> None:
        for _ in range(n):
            async with client.lock("redispy:" + NAME, timeout=TTL):
                pass

    return run


def python_redis_lock(client: redis.Redis) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            with redis_lock.Lock(client, "prl:" + NAME, expire=TTL):
                pass

    return run


def ping(client: redis.Redis) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            client.ping()

    return run


def evalsha(client: redis.Redis) -> Callable[[int], None]:
    sha = client.script_load("return 1")

    def run(n: int) -> None:
        for _ in range(n):
            client.evalsha(sha, 0)

    return run


def async_ping(client: redis.asyncio.Redis) -> Callable[[int], Awaitable[None]]:
    async def run(n: int) -> None:
        for _ in range(n):
            await client.ping()

    return run


# --- measuring -----------------------------------------------------------------------


def rate(work: Callable[[int], Any], n: int) -> float:
    """Pairs (or round trips) per second of ``work``."""
    start = time.perf_counter()
    work(n)
    return n / (time.perf_counter() - start)


def handoff(make: Callable[[], Any]) -> float:
    """Seconds from a holder's release until a blocked waiter holds the lock."""
    holder = make()
    holder.acquire()
    waiting = threading.Event()
    acquired_at: list[float] = []

    def waiter() -> None:
        lock = make()
        waiting.set()
        lock.acquire()
        acquired_at.append(time.perf_counter())
        lock.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    waiting.wait()
    time.sleep(0.05)  # let the waiter block (a benchmark, not a test: a pause is fine)
    released_at = time.perf_counter()
    holder.release()
    thread.join()
    return acquired_at[0] - released_at


def async_rate(
    work: Callable[[int], Awaitable[None]], n: int, loop: asyncio.AbstractEventLoop
) -> float:
    start = time.perf_counter()
    loop.run_until_complete(work(n))
    return n / (time.perf_counter() - start)


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, float, float]:
    measure()  # warm up: connections, script cache
    results = [measure() for _ in range(runs)]
    return statistics.median(results), min(results), max(results)


def latency_table(rows: list[tuple[str, list[float]]]) -> str:
    lines = [f"{'':<28} {'median ms':>10} {'p90 ms':>10} {'max ms':>10}"]
    for name, samples in rows:
        ms = sorted(x * 1000 for x in samples)
        p90 = ms[int(0.9 * (len(ms) - 1))]
        lines.append(f"{name:<28} {statistics.median(ms):>10.2f} {p90:>10.2f} {ms[-1]:>10.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--pairs", type=int, default=2000, help="acquire/release pairs per run")
    parser.add_argument("--handoffs", type=int, default=20, help="hand-offs to time")
    args = parser.parse_args()
    with server_url() as (url, where):
        sync = redis.Redis.from_url(url)
        rk = Redkit(url, prefix="bench")
        loop = asyncio.new_event_loop()
        aclient = redis.asyncio.Redis.from_url(url)
        ark = AsyncRedkit(url, prefix="bench")
        info = rk.info()
        print(
            f"{info.engine} {info.version} at {info.target} ({where}); "
            f"{args.runs} runs x {args.pairs} pairs, median\n"
        )

        def measure(work: Callable[[int], Any]) -> tuple[float, float, float]:
            return median_of(args.runs, lambda: rate(work, args.pairs))

        def handoffs(make: Callable[[], Any]) -> list[float]:
            return [handoff(make) for _ in range(args.handoffs)]

        def ameasure(work: Callable[[int], Awaitable[None]]) -> tuple[float, float, float]:
            return median_of(args.runs, lambda: async_rate(work, args.pairs, loop))

        raw = [
            ("PING (sync)", measure(ping(sync))),
            ("EVALSHA return 1 (sync)", measure(evalsha(sync))),
            ("PING (asyncio)", ameasure(async_ping(aclient))),
        ]
        scale = raw[0][1][0]
        print("Server round trips (one caller):")
        print(table(raw, scale) + "\n")

        single = [
            ("redkit Lock", measure(redkit_sync(rk))),
            ("redkit AsyncLock", ameasure(redkit_async(ark))),
            ("redis-py Lock", measure(redispy_sync(sync))),
            ("redis-py asyncio Lock", ameasure(redispy_async(aclient))),
        ]
        handed = [
            ("redkit Lock", handoffs(lambda: rk.lock(NAME, ttl=TTL))),
            ("redis-py Lock", handoffs(lambda: sync.lock("redispy:" + NAME, timeout=TTL))),
        ]
        if redis_lock is not None:
            single.append(("python-redis-lock", measure(python_redis_lock(sync))))
            handed.append(
                (
                    "python-redis-lock",
                    handoffs(lambda: redis_lock.Lock(sync, "prl:" + NAME, expire=TTL)),
                )
            )
        print("Uncontended acquire/release pairs (one caller):")
        print(table(single, scale) + "\n")
        print(f"Hand-off from a releasing holder to a blocked waiter ({args.handoffs} times):")
        print(latency_table(handed))
        if redis_lock is None:
            print("\npython-redis-lock is not installed (pip install -e '.[bench]'); skipped.")
        loop.run_until_complete(ark.aclose())
        loop.run_until_complete(aclient.aclose())
        loop.close()
        rk.close()
        sync.close()


if __name__ == "__main__":
    main()
