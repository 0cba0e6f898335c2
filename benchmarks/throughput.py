"""Throughput of rate-limit hits and cache reads and writes, beside raw redis-py and peers.

    python benchmarks/throughput.py                    # an embedded Valkey, started for the run
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/throughput.py --rounds 9
    python benchmarks/throughput.py --modes async50,threads8

Four ways of calling (``--modes``): 50 asyncio tasks sharing one client (``async50``), one
asyncio task (``async1``), one thread in a loop (``sync``), and 8 threads sharing one
client (``threads8``). For each operation the table shows redkit beside **raw redis-py**
sending the very same command or script (the same keys and arguments) one call at a time
on a stock redis-py client (``Redis.from_url``) of the same kind, and beside the peers
that do the same job: ``limits`` (rate limits), cashews and aiocache (cache), and
valkey-glide's ``GET`` as a reference row for a multiplexing client (asyncio only).

Rounds are interleaved: every round runs every contender once, in a rotated order, so that
noise from other processes falls on all alike; ``ops/s`` is the median over rounds, and
``vs raw`` / ``vs best peer`` are medians over rounds of the ratio within each round.
``reads/op`` is how many socket reads the server made per operation
(``total_reads_processed`` in ``INFO stats``): 1.0 is one round trip per operation, less
means several operations shared a read (pipelining). ``cmds/op`` counts the commands the
server ran per operation (``total_commands_processed``; a script's own commands count too).
Peers that are not installed (``pip install -e ".[bench]"``, ``pip install valkey-glide``)
are skipped with a note.
"""

from __future__ import annotations

import _path  # noqa: F401  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import redis
import redis.asyncio
from _common import server_url

from redkit import AsyncRedkit, Redkit

HUGE = "1000000000/hour"
TWO = "1000000000/hour; 1000000000/day"
ALGORITHMS = ["fixed_window", "gcra", "token_bucket", "sliding_window", "sliding_log"]
VALUE = {"id": 42, "name": "x" * 40, "tags": ["a", "b", "c"], "price": 9.99}
TASKS, THREADS = 50, 8
MODES = {"async50": 2000, "async1": 1000, "sync": 1000, "threads8": 2000}


@dataclass
class Row:
    """One contender: ``op`` is a sync function or a coroutine function of no argument."""

    group: str
    name: str
    kind: str  # "redkit", "raw", "peer" or "ref"
    op: Callable[[], Any]
    rates: list[float] = field(default_factory=list)
    reads: list[float] = field(default_factory=list)
    cmds: list[float] = field(default_factory=list)


class Stats:
    """The server's read and command counters (INFO stats), on a connection of their own."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def sample(self) -> tuple[int, int]:
        info = self.client.info("stats")
        return int(info["total_reads_processed"]), int(info["total_commands_processed"])


# --- contenders ----------------------------------------------------------------------


def _limiter_rows(rk: Any, raw: Any, mode: str) -> list[Row]:
    rows = []
    for label, policy, algorithm in [
        *((a, HUGE, a) for a in ALGORITHMS),
        ("2 limits gcra", TWO, "gcra"),
    ]:
        limiter = rk.rate_limiter(policy, algorithm=algorithm, name=f"{mode}-{label}")
        effect = limiter._plan.check("k", 1, 1)
        sha, keys, args = effect.script.sha, list(effect.keys), list(effect.args)
        group = f"rate limit {label}"
        rows.append(Row(group, "redkit hit", "redkit", lambda h=limiter.hit: h("k")))
        call = ("EVALSHA", sha, len(keys), *keys, *args)
        rows.append(Row(group, "raw EVALSHA", "raw", lambda c=call: raw.execute_command(*c)))
    return rows


def _cache_keys(cache: Any) -> tuple[str, str]:
    return cache._f.keys.entry("hit"), cache._f.keys.ns_version


def sync_rows(url: str) -> list[Row]:
    rk = Redkit(url, prefix="bench")
    raw = redis.Redis.from_url(url)
    rows = _limiter_rows(rk, raw, "sync")
    rows += _limits_rows(url, asynchronous=False)
    cache = rk.cache("bench", ttl=3600)
    cache.set("hit", VALUE)
    entry, version = _cache_keys(cache)
    blob = raw.get(entry)
    rows += [
        Row("cache get hit", "redkit get", "redkit", lambda: cache.get("hit")),
        Row("cache get hit", "raw MGET", "raw", lambda: raw.mget(entry, version)),
        Row("cache get hit", "raw GET", "ref", lambda: raw.get(entry)),
        Row("cache set", "redkit set", "redkit", lambda: cache.set("w", VALUE)),
        Row("cache set", "raw SET PX", "raw", lambda: raw.set("bench:raw:w", blob, px=3_600_000)),
    ]
    return rows


async def async_rows(url: str) -> list[Row]:
    ark = AsyncRedkit(url, prefix="bench")
    raw = redis.asyncio.Redis.from_url(url)
    rows = _limiter_rows(ark, raw, "async")
    rows += _limits_rows(url, asynchronous=True)
    cache = ark.cache("bench", ttl=3600)
    await cache.set("hit", VALUE)
    entry, version = _cache_keys(cache)
    blob = await raw.get(entry)
    rows += [
        Row("cache get hit", "redkit get", "redkit", lambda: cache.get("hit")),
        Row("cache get hit", "raw MGET", "raw", lambda: raw.mget(entry, version)),
        Row("cache get hit", "raw GET", "ref", lambda: raw.get(entry)),
        Row("cache set", "redkit set", "redkit", lambda: cache.set("w", VALUE)),
        Row("cache set", "raw SET PX", "raw", lambda: raw.set("bench:raw:w", blob, px=3_600_000)),
    ]
    rows += await _cache_peers(url)
    return rows


def _limits_rows(url: str, *, asynchronous: bool) -> list[Row]:
    try:
        from limits import parse
    except ImportError:
        print("note: limits is not installed; skipped")
        return []
    if asynchronous:
        from limits.aio import storage as astorage
        from limits.aio import strategies as astrategies

        store: Any = astorage.RedisStorage("async+" + url, implementation="redispy")
        kinds: Any = astrategies
    else:
        from limits import storage, strategies

        store, kinds = storage.RedisStorage(url), strategies
    item = parse(HUGE)
    rows = []
    for label, cls in [
        ("fixed", kinds.FixedWindowRateLimiter),
        ("moving", kinds.MovingWindowRateLimiter),
        ("sliding", kinds.SlidingWindowCounterRateLimiter),
    ]:
        hit = cls(store).hit
        op = lambda h=hit, x=label: h(item, "k", x)  # noqa: E731
        rows.append(Row("rate limit peers", f"limits {label}", "peer", op))
    return rows


async def _cache_peers(url: str) -> list[Row]:
    rows = []
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    try:
        from cashews import Cache as Cashews

        cashews = Cashews()
        cashews.setup(url)
        await cashews.set("hit", VALUE, expire=3600)
        rows += [
            Row("cache get hit", "cashews get", "peer", lambda: cashews.get("hit")),
            Row("cache set", "cashews set", "peer", lambda: cashews.set("w", VALUE, expire=3600)),
        ]
    except ImportError:
        print("note: cashews is not installed; skipped")
    try:
        from aiocache import RedisCache

        aio = RedisCache(endpoint=host, port=port, namespace="aio")
        await aio.set("hit", VALUE, ttl=3600)
        rows += [
            Row("cache get hit", "aiocache get", "peer", lambda: aio.get("hit")),
            Row("cache set", "aiocache set", "peer", lambda: aio.set("w", VALUE, ttl=3600)),
        ]
    except ImportError:
        print("note: aiocache is not installed; skipped")
    try:
        from glide import GlideClient, GlideClientConfiguration, NodeAddress

        glide = await GlideClient.create(GlideClientConfiguration([NodeAddress(host, port)]))
        rows.append(Row("cache get hit", "valkey-glide GET", "ref", lambda: glide.get("x")))
    except ImportError:
        print("note: valkey-glide is not installed; skipped its reference row")
    return rows


# --- running -------------------------------------------------------------------------


def _measure(row: Row, stats: Stats, ops: int, timed: Callable[[], float]) -> None:
    reads, cmds = stats.sample()
    seconds = timed()
    reads2, cmds2 = stats.sample()
    row.rates.append(ops / seconds)
    row.reads.append((reads2 - reads - 1) / ops)  # (the sample itself is one read, one command)
    row.cmds.append((cmds2 - cmds - 1) / ops)


def _threaded(op: Callable[[], Any], ops: int, threads: int) -> float:
    """Seconds that ``threads`` threads take to call ``op`` ``ops`` times in all."""
    each = ops // threads
    if threads == 1:
        started = time.perf_counter()
        for _ in range(each):
            op()
        return time.perf_counter() - started
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(each):
            op()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    return time.perf_counter() - started


def run_sync(rows: list[Row], stats: Stats, ops: int, rounds: int, threads: int) -> None:
    for row in rows:  # warm up: connect, load scripts, fill pools
        for _ in range(max(threads, 20)):
            row.op()
    for r in range(rounds):
        for row in rows[r % len(rows) :] + rows[: r % len(rows)]:
            _measure(row, stats, ops, lambda op=row.op: _threaded(op, ops, threads))


async def run_async(rows: list[Row], stats: Stats, ops: int, rounds: int, tasks: int) -> None:
    async def timed(op: Callable[[], Awaitable[Any]]) -> float:
        each = ops // tasks

        async def work() -> None:
            for _ in range(each):
                await op()

        started = time.perf_counter()
        await asyncio.gather(*(work() for _ in range(tasks)))
        return time.perf_counter() - started

    for row in rows:
        try:
            await asyncio.gather(*(row.op() for _ in range(tasks)))
        except Exception:
            print("warm-up failed:", row.group, row.name)
            raise
    for r in range(rounds):
        for row in rows[r % len(rows) :] + rows[: r % len(rows)]:
            reads, cmds = stats.sample()
            seconds = await timed(row.op)
            reads2, cmds2 = stats.sample()
            row.rates.append(ops / seconds)
            row.reads.append((reads2 - reads - 1) / ops)
            row.cmds.append((cmds2 - cmds - 1) / ops)


# --- the table -----------------------------------------------------------------------


def _paired(row: Row, other: Row) -> float:
    """The median over rounds of ``row``'s rate over ``other``'s in the same round: the
    two ran moments apart, so a load that comes and goes moves both alike."""
    return statistics.median(a / b for a, b in zip(row.rates, other.rates, strict=True))


def report(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    print(
        f"  {'operation':26} {'contender':20} {'ops/s':>9} {'spread':>13} {'vs raw':>7} "
        f"{'vs best peer':>12} {'reads/op':>8} {'cmds/op':>7}"
    )
    med = {id(r): statistics.median(r.rates) for r in rows}
    peers: dict[str, list[Row]] = {}
    for r in rows:
        if r.kind == "peer":
            key = "rate limit" if r.group.startswith("rate limit") else r.group
            peers.setdefault(key, []).append(r)
    for r in rows:
        if r.group == "rate limit peers":
            continue
        raw = next((x for x in rows if x.group == r.group and x.kind == "raw"), None)
        family = "rate limit" if r.group.startswith("rate limit") else r.group
        best = max(peers.get(family, []), key=lambda x: med[id(x)], default=None)
        vs_raw = f"{_paired(r, raw):7.2f}" if raw is not None and r is not raw else ""
        vs_peer = ""
        if best is not None and r.kind == "redkit":
            vs_peer = f"{_paired(r, best):5.2f} {best.name.split()[0]:>6}"
        print(
            f"  {r.group:26} {r.name:20} {med[id(r)]:9,.0f} "
            f"{min(r.rates) / 1000:5.1f}-{max(r.rates) / 1000:5.1f}k {vs_raw:>7} {vs_peer:>12} "
            f"{statistics.median(r.reads):8.2f} {statistics.median(r.cmds):7.2f}"
        )
    for r in [x for x in rows if x.group == "rate limit peers"]:
        print(
            f"  {'rate limit (peer)':26} {r.name:20} {med[id(r)]:9,.0f} "
            f"{min(r.rates) / 1000:5.1f}-{max(r.rates) / 1000:5.1f}k {'':>7} {'':>12} "
            f"{statistics.median(r.reads):8.2f} {statistics.median(r.cmds):7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--modes", default=",".join(MODES), help="which of " + ",".join(MODES))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply operations a round")
    opts = parser.parse_args()
    modes = [m for m in opts.modes.split(",") if m]
    with server_url() as (url, where):
        stats = Stats(url)
        info = stats.client.info("server")
        print(
            f"server: {info.get('server_name', 'redis')} "
            f"{info.get('valkey_version') or info.get('redis_version')} ({where}); "
            f"{opts.rounds} interleaved rounds"
        )
        ops = {m: int(n * opts.scale) for m, n in MODES.items()}
        if "async50" in modes or "async1" in modes:

            async def both() -> None:
                rows = await async_rows(url)
                for mode, tasks in [("async50", TASKS), ("async1", 1)]:
                    if mode in modes:
                        for row in rows:
                            row.rates, row.reads, row.cmds = [], [], []
                        await run_async(rows, stats, ops[mode], opts.rounds, tasks)
                        report(f"asyncio, {tasks} task(s), one client ({mode})", rows)

            asyncio.run(both())
        for mode, threads in [("sync", 1), ("threads8", THREADS)]:
            if mode in modes:
                rows = sync_rows(url)
                run_sync(rows, stats, ops[mode], opts.rounds, threads)
                report(f"sync, {threads} thread(s), one client ({mode})", rows)


if __name__ == "__main__":
    main()
