"""Cache throughput: redkit against cashews, aiocache and django-redis on one server.

    python benchmarks/cache.py                 # an embedded Valkey, started for the run
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/cache.py --runs 9
    python benchmarks/cache.py --awake         # see "idle CPUs" below

Scenarios: ``get`` of a present key (hit) and of an absent one (miss), by one caller in
a loop (sync) and by 50 asyncio tasks sharing one client (async), plus redkit's near
cache (hits from process memory). Every cache stores the same small dict.

Each row is the median of ``--runs`` runs, and the contenders are interleaved finely: a
run is 20 rounds, and each round runs a chunk of every contender's gets (in a rotated
order), so a slow spell on a shared machine hits all rows alike. "% raw" compares a
contender with the baseline of its scenario in the same run (median of those ratios): a
raw ``GET`` plus ``orjson.loads`` on redkit's own client, because a cache returns
objects, not bytes. Peers that are not installed
(``pip install -e ".[bench]"``) are skipped with a note.

Idle CPUs: on some virtual machines an idle vCPU halts, and waking it adds tens of
microseconds to every round trip (here: ~25 us becomes ~100 us). ``--awake`` runs a
spinner at SCHED_IDLE priority (it only gets CPU time nobody else wants) so that round
trips stay short; that is the stricter test, since fixed per-call costs then weigh more.
"""

from __future__ import annotations

import _path  # noqa: F401  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)
import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import orjson

from redkit import AsyncRedkit, Redkit
from redkit.embedded import EmbeddedServer

VALUE = {"id": 42, "name": "x" * 40, "tags": ["a", "b", "c"], "price": 9.99}
TASKS = 50
ROUNDS = 20  # a run interleaves the contenders in chunks, so slow spells hit all alike
RAW = "raw GET + orjson (same client)"
SyncGet = Callable[[str], Any]
AsyncGet = Callable[[str], Awaitable[Any]]
Rates = dict[str, list[float]]


# --- sync contenders -----------------------------------------------------------------


def sync_contenders(url: str) -> list[tuple[str, SyncGet, bool]]:
    """(name, get, has misses); every cache already holds VALUE under "hit"."""
    rk = Redkit(url, prefix="bench")
    client = rk.client
    client.set("raw:hit", orjson.dumps(VALUE))
    cache = rk.cache("bench", ttl=3600)
    cache.set("hit", VALUE)
    near = rk.cache("bench", ttl=3600, near=10_000)
    _wait_live(near)
    out: list[tuple[str, SyncGet, bool]] = [
        (RAW, lambda k: _loads(client.get("raw:" + k)), True),
        ("redkit Cache.get", cache.get, True),
        ("redkit Cache.get_or_set", lambda k: cache.get_or_set(k, _absent), True),
        ("redkit near cache (get)", near.get, False),
    ]
    django = _django_cache(url)
    if django is not None:
        django.set("hit", VALUE, 3600)
        out.append(("django-redis", django.get, True))
    return out


def _absent() -> None:
    return None  # get_or_set of the absent key: the loader finds nothing (not cached)


def _loads(raw: bytes | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def _wait_live(cache: Any) -> None:
    deadline = time.monotonic() + 10
    while not cache.near.live and time.monotonic() < deadline:
        time.sleep(0.01)
    cache.get("hit")  # into memory


def _django_cache(url: str) -> Any:
    try:
        import django
        import django_redis  # noqa: F401
        from django.conf import settings
    except ImportError:
        print("note: django-redis is not installed; skipped")
        return None
    if not settings.configured:
        backend = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url}
        settings.configure(CACHES={"default": backend}, INSTALLED_APPS=[])
        django.setup()
    from django.core.cache import cache

    return cache


def sync_seconds(get: SyncGet, key: str, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        get(key)
    return time.perf_counter() - started


def run_sync(url: str, n: int, runs: int) -> None:
    contenders = sync_contenders(url)
    for _name, get, _ in contenders:  # warm-up
        sync_seconds(get, "hit", n // 10)
    with_misses = [c for c in contenders if c[2]]
    hits = interleaved([(name, get) for name, get, _ in contenders], "hit", n, runs)
    misses = interleaved([(name, get) for name, get, _ in with_misses], "absent", n, runs)
    report(f"sync, one caller, hits ({n} gets a run)", hits)
    report(f"sync, one caller, misses ({n} gets a run)", misses)
    near = "redkit near cache (get)"
    print(
        f"near cache hits: {_ratio(hits[near], hits[RAW]):.0f}x a raw GET round trip, "
        f"{_ratio(hits[near], hits['redkit Cache.get']):.0f}x a Redis hit of Cache.get"
    )


def interleaved(contenders: list[tuple[str, SyncGet]], key: str, n: int, runs: int) -> Rates:
    """Per contender, the rate of each run; a run is ROUNDS rounds of n/ROUNDS gets each."""
    rates: Rates = {name: [] for name, _ in contenders}
    chunk = max(1, n // ROUNDS)
    for _ in range(runs):
        spent = dict.fromkeys(rates, 0.0)
        for q in range(ROUNDS):
            for name, get in _rotated(contenders, q):
                spent[name] += sync_seconds(get, key, chunk)
        for name in rates:
            rates[name].append(chunk * ROUNDS / spent[name])
    return rates


# --- async contenders ----------------------------------------------------------------


async def async_contenders(url: str) -> list[tuple[str, AsyncGet]]:
    """(name, get), built in the running loop (clients are loop-bound)."""
    ark = AsyncRedkit(url, prefix="bench")
    await ark.client.set("raw:hit", orjson.dumps(VALUE))
    cache = ark.cache("bench", ttl=3600)
    await cache.set("hit", VALUE)

    async def raw(k: str) -> Any:
        return _loads(await ark.client.get("raw:" + k))

    async def get_or_set(k: str) -> Any:
        return await cache.get_or_set(k, _absent)

    out: list[tuple[str, AsyncGet]] = [
        (RAW, raw),
        ("redkit AsyncCache.get", cache.get),
        ("redkit AsyncCache.get_or_set", get_or_set),
    ]
    try:
        from cashews import Cache as CashewsCache

        cashews = CashewsCache()
        cashews.setup(url)
        await cashews.set("hit", VALUE, expire=3600)
        out.append(("cashews", cashews.get))
    except ImportError:
        print("note: cashews is not installed; skipped")
    try:
        from aiocache import RedisCache

        parsed = urlparse(url)
        aio = RedisCache(
            endpoint=parsed.hostname or "127.0.0.1",
            port=parsed.port or 6379,
            db=int(parsed.path.strip("/") or 0),
            namespace="aio",
        )
        await aio.set("hit", VALUE, ttl=3600)
        out.append(("aiocache", aio.get))
    except ImportError:
        print("note: aiocache is not installed; skipped")
    return out


async def async_seconds(get: AsyncGet, key: str, n: int) -> float:
    each = max(1, n // TASKS)

    async def worker() -> None:
        for _ in range(each):
            await get(key)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return time.perf_counter() - started


async def async_interleaved(
    contenders: list[tuple[str, AsyncGet]], key: str, n: int, runs: int
) -> Rates:
    """:func:`interleaved` for asyncio: each chunk is TASKS tasks sharing the gets."""
    rates: Rates = {name: [] for name, _ in contenders}
    chunk = max(TASKS, n // ROUNDS) // TASKS * TASKS
    for _ in range(runs):
        spent = dict.fromkeys(rates, 0.0)
        for q in range(ROUNDS):
            for name, get in _rotated(contenders, q):
                spent[name] += await async_seconds(get, key, chunk)
        for name in rates:
            rates[name].append(chunk * ROUNDS / spent[name])
    return rates


async def async_main(url: str, n: int, runs: int) -> None:
    contenders = await async_contenders(url)
    for _, get in contenders:  # warm-up (and every pool opens its connections)
        await async_seconds(get, "hit", n // 10)
    hits = await async_interleaved(contenders, "hit", n, runs)
    misses = await async_interleaved(contenders, "absent", n, runs)
    report(f"async, {TASKS} tasks, hits ({n} gets a run)", hits)
    report(f"async, {TASKS} tasks, misses ({n} gets a run)", misses)


# --- the report ----------------------------------------------------------------------


def _rotated(items: list[Any], r: int) -> list[Any]:
    shift = r % len(items)
    return items[shift:] + items[:shift]


def _ratio(rates: list[float], base: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(rates, base, strict=True))


def report(title: str, rates: Rates) -> None:
    print(f"\n{title}\n{'':<34}{'ops/s':>10}  {'(min-max)':<19}{'% raw':>7}")
    base = rates[RAW]
    for name, values in rates.items():
        pct = f"{_ratio(values, base) * 100:6.0f}%"
        spread = f"({min(values):,.0f}-{max(values):,.0f})"
        print(f"{name:<34}{statistics.median(values):>10,.0f}  {spread:<19}{pct:>7}")


@contextlib.contextmanager
def server() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedServer() as embedded:
        yield embedded.url


@contextlib.contextmanager
def awake(enabled: bool) -> Iterator[None]:
    """A SCHED_IDLE spinner while the block runs (see the module docstring)."""
    if not enabled:
        yield
        return
    code = "import os; os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile 1: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", code])]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--ops", type=int, default=5_000, help="gets per run (sync)")
    parser.add_argument("--async-ops", type=int, default=10_000, help="gets per run (async)")
    parser.add_argument("--runs", type=int, default=7, help="interleaved runs (median)")
    parser.add_argument("--awake", action="store_true", help="keep idle CPUs from halting")
    args = parser.parse_args()
    with server() as url, awake(args.awake):
        with Redkit(url) as rk:
            info = rk.info()
        python = sys.version.split()[0]
        print(f"server: {info.engine} {info.version} at {info.target}; python {python}")
        print(f"{args.runs} interleaved runs{', idle CPUs kept awake' if args.awake else ''}")
        run_sync(url, args.ops, args.runs)
        asyncio.run(async_main(url, args.async_ops, args.runs))


if __name__ == "__main__":
    main()
