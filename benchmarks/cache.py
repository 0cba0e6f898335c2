"""Cache throughput: redkit against cashews, aiocache and django-redis on one server.

    python benchmarks/cache.py                 # an embedded Valkey, started for the run
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/cache.py --runs 7

Workloads (ops/s, median of ``--runs`` runs after a warm-up):

* sync sequential: one caller, ``get`` of a present key (hit) and of an absent one (miss);
* async, 50 tasks: the same, 50 asyncio tasks sharing one client;
* redkit's near cache: hits served from process memory;
* for scale: a raw ``GET`` (+ JSON decode) of the same value on the same redis-py client.

Every cache stores the same small dict. Peers that are not installed
(``pip install -e ".[bench]"``) are skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson

from redkit import AsyncRedkit, Redkit
from redkit.embedded import EmbeddedServer

VALUE = {"id": 42, "name": "x" * 40, "tags": ["a", "b", "c"], "price": 9.99}
TASKS = 50
SyncOp = Callable[[str], Any]
AsyncOp = Callable[[str], Awaitable[Any]]


def measure_sync(op: SyncOp, key: str, n: int, runs: int) -> tuple[float, float, float]:
    op(key)
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(n):
            op(key)
        rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates), min(rates), max(rates)


def measure_async(op: AsyncOp, key: str, n: int, runs: int) -> tuple[float, float, float]:
    async def worker(count: int) -> None:
        for _ in range(count):
            await op(key)

    async def main() -> list[float]:
        await op(key)
        rates = []
        for _ in range(runs):
            started = time.perf_counter()
            await asyncio.gather(*(worker(n // TASKS) for _ in range(TASKS)))
            rates.append((n // TASKS) * TASKS / (time.perf_counter() - started))
        return rates

    rates = asyncio.run(main())
    return statistics.median(rates), min(rates), max(rates)


# --- contenders ----------------------------------------------------------------------


def sync_contenders(url: str) -> Iterator[tuple[str, SyncOp, SyncOp | None]]:
    """(name, get, set) per sync cache; set is None for read-only rows."""
    rk = Redkit(url, prefix="bench")
    client = rk.client
    client.set("raw:hit", orjson.dumps(VALUE))
    yield "raw GET + json (same client)", lambda k: _loads(client.get("raw:" + k)), None
    cache = rk.cache("bench", ttl=300)
    yield "redkit Cache.get", cache.get, lambda k: cache.set(k, VALUE)
    yield (
        "redkit Cache.get_or_set",
        lambda k: cache.get_or_set(k, lambda: VALUE) if k == "hit" else cache.get(k),
        None,
    )
    near = rk.cache("bench", ttl=300, near=10_000)
    deadline = time.monotonic() + 10
    while near.near is not None and not near.near.live and time.monotonic() < deadline:
        time.sleep(0.01)
    yield "redkit near cache", near.get, None
    django = _django_cache(url)
    if django is not None:
        yield "django-redis", django.get, lambda k: django.set(k, VALUE, 300)


def _loads(raw: bytes | None) -> Any:
    return None if raw is None else orjson.loads(raw)


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


def async_contenders(
    url: str,
) -> Iterator[tuple[str, Callable[[], Awaitable[tuple[AsyncOp, AsyncOp | None]]]]]:
    """(name, async factory returning (get, set)); factories run inside the event loop."""

    async def raw() -> tuple[AsyncOp, AsyncOp | None]:
        ark = AsyncRedkit(url, prefix="bench")
        await ark.client.set("raw:hit", orjson.dumps(VALUE))

        async def get(k: str) -> Any:
            return _loads(await ark.client.get("raw:" + k))

        return get, None

    async def redkit_async() -> tuple[AsyncOp, AsyncOp | None]:
        cache = AsyncRedkit(url, prefix="bench").cache("bench", ttl=300)
        return cache.get, lambda k: cache.set(k, VALUE)

    yield "raw GET + json (same client)", raw
    yield "redkit AsyncCache.get", redkit_async
    try:
        from cashews import Cache as CashewsCache

        async def cashews() -> tuple[AsyncOp, AsyncOp | None]:
            c = CashewsCache()
            c.setup(url)
            return c.get, lambda k: c.set(k, VALUE, expire=300)

        yield "cashews", cashews
    except ImportError:
        print("note: cashews is not installed; skipped")
    try:
        from aiocache import RedisCache

        async def aiocache() -> tuple[AsyncOp, AsyncOp | None]:
            host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
            c = RedisCache(endpoint=host, port=int(port), namespace="aio")
            return c.get, lambda k: c.set(k, VALUE, ttl=300)

        yield "aiocache", aiocache
    except ImportError:
        print("note: aiocache is not installed; skipped")


# --- the run -------------------------------------------------------------------------


@contextlib.contextmanager
def server() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedServer() as embedded:
        yield embedded.url


def row(name: str, hit: tuple[float, float, float], miss: tuple[float, float, float] | None) -> str:
    miss_text = f"{miss[0]:>10,.0f}" if miss else f"{'-':>10}"
    return f"{name:<32}{hit[0]:>10,.0f}  ({hit[1]:,.0f}-{hit[2]:,.0f}){miss_text}"


def run_sync(url: str, n: int, runs: int) -> None:
    print(f"\nsync, sequential ({n} ops per run)\n{'':<32}{'hits/s':>10}  (min-max)     misses/s")
    contenders = list(sync_contenders(url))
    for _, _get, put in contenders:
        if put is not None:
            put("hit")
    # interleaved: run r of every contender before run r+1 of any, so machine noise
    # (other processes, CPU frequency) hits all rows alike
    hits: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    misses: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    for _ in range(runs):
        for name, get, _ in contenders:
            hits[name].append(measure_sync(get, "hit", n, 1)[0])
            if "near" not in name:
                misses[name].append(measure_sync(get, "absent", n, 1)[0])
    for name, _, _ in contenders:
        print(row(name, _stats(hits[name]), _stats(misses[name]) if misses[name] else None))


def _stats(rates: list[float]) -> tuple[float, float, float]:
    return statistics.median(rates), min(rates), max(rates)


def run_async(url: str, n: int, runs: int) -> None:
    print(
        f"\nasync, {TASKS} tasks ({n} ops per run)\n{'':<32}{'hits/s':>10}  (min-max)     misses/s"
    )
    for name, factory in async_contenders(url):

        async def prepare(factory: Any = factory) -> tuple[AsyncOp, AsyncOp | None]:
            get, put = await factory()
            if put is not None:
                await put("hit")
            return get, put

        get, _ = asyncio.run(prepare())
        # each measurement runs its own loop: build the client inside it
        hit = measure_async(_rebind(factory, "hit"), "hit", n, runs)
        miss = measure_async(_rebind(factory, "absent"), "absent", n, runs)
        print(row(name, hit, miss))
        del get


def _rebind(factory: Any, key: str) -> AsyncOp:
    """A get that builds its client on first use in the running loop (clients are loop-bound)."""
    holder: dict[str, AsyncOp] = {}

    async def get(k: str) -> Any:
        if "get" not in holder:
            holder["get"] = (await factory())[0]
        return await holder["get"](k)

    return get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=20_000, help="operations per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median)")
    args = parser.parse_args()
    with server() as url:
        with Redkit(url) as rk:
            info = rk.info()
        print(f"server: {info.engine} {info.version} at {info.target}")
        run_sync(url, args.ops, args.runs)
        run_async(url, args.ops, args.runs)


if __name__ == "__main__":
    main()
