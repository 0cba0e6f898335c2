"""Rate limit checks per second: redkit vs limits (and slowapi for the middleware).

Runs against an embedded Valkey by default, or ``REDIS_URL``. Every check admits (the
limits are huge), so each one does the full read-decide-write work. Reported: the median
of several runs of

* one thread, sequential checks (sync clients);
* 50 asyncio tasks sharing one client;
* the middleware: a FastAPI app behind redkit's middleware vs slowapi's, driven in-process;
* for scale, raw EVALSHA round trips on the same redis-py client: a ``return 1`` script,
  and redkit's own GCRA script with the same keys and arguments (what a check costs
  without any redkit Python code around it).

    python benchmarks/ratelimit.py [--checks 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio

from redkit import AsyncRedkit, Redkit
from redkit.ratelimit import ALGORITHMS
from redkit.ratelimit.ops import HIT

HUGE = "1000000000/hour"
CEILING = "raw EVALSHA rl_gcra (ceiling)"
TASKS = 50


def _interleaved(
    contenders: list[tuple[str, Callable[[], Any]]], checks: int, runs: int
) -> list[tuple[str, float]]:
    """Median checks/s of each contender; runs are interleaved so that noise hits all alike."""
    for _, fn in contenders:
        fn()  # warm up: connect, load the script
    rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(runs):
        for name, fn in contenders:
            start = time.perf_counter()
            for _ in range(checks):
                fn()
            rates[name].append(checks / (time.perf_counter() - start))
    return [(name, statistics.median(rates[name])) for name, _ in contenders]


def _async_rate(make: Callable[[int], Awaitable[Any]], checks: int, runs: int) -> float:
    async def once() -> float:
        per_task = checks // TASKS

        async def task(t: int) -> None:
            for i in range(per_task):
                await make(t * per_task + i)

        start = time.perf_counter()
        await asyncio.gather(*(task(t) for t in range(TASKS)))
        return time.perf_counter() - start

    async def all_runs() -> list[float]:
        await make(0)
        return [checks / await once() for _ in range(runs)]

    return statistics.median(asyncio.run(all_runs()))


def sync_rows(url: str, checks: int, runs: int) -> list[tuple[str, float]]:
    with Redkit(url, prefix="bench") as rk:
        gcra = rk.rate_limiter(HUGE, algorithm="gcra", name="raw")
        client = gcra._rk.client  # the very client redkit's checks use
        one = client.register_script("return 1")
        plan = gcra._plan
        keys, args = plan.keys("k"), plan.args(HIT, 1)
        sha = plan.script.sha
        gcra.hit("k")  # loads the script
        contenders: list[tuple[str, Callable[[], Any]]] = [
            ("raw EVALSHA 'return 1'", lambda: one(keys=["k"])),
            (CEILING, lambda: client.evalsha(sha, len(keys), *keys, *args)),
        ]
        for algorithm in sorted(ALGORITHMS):
            limiter = rk.rate_limiter(HUGE, algorithm=algorithm, name=algorithm)
            contenders.append((f"redkit {algorithm}", functools.partial(limiter.hit, "k")))
        contenders += _limits_sync(url)
        return _interleaved(contenders, checks, runs)


def _limits_sync(url: str) -> list[tuple[str, Callable[[], Any]]]:
    try:
        from limits import parse, storage, strategies
    except ImportError:
        print("note: limits is not installed; pip install 'redkit[bench]'")
        return []
    store = storage.RedisStorage(url)
    item = parse(HUGE)
    out: list[tuple[str, Callable[[], Any]]] = []
    for label, cls in [
        ("fixed", strategies.FixedWindowRateLimiter),
        ("moving", strategies.MovingWindowRateLimiter),
        ("sliding", strategies.SlidingWindowCounterRateLimiter),
    ]:
        out.append((f"limits {label}", functools.partial(cls(store).hit, item, "k", label)))
    return out


def async_rows(url: str, checks: int, runs: int) -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    for algorithm in ["gcra", "fixed_window", "sliding_log"]:
        rows.append((f"redkit {algorithm}", _async_redkit(url, algorithm, checks, runs)))
    rows += _limits_async(url, checks, runs)
    return rows


def _async_redkit(url: str, algorithm: str, checks: int, runs: int) -> float:
    holder: dict[str, Any] = {}

    async def hit(i: int) -> Any:
        if "limiter" not in holder:
            ark = AsyncRedkit(url, prefix="bench")
            holder["limiter"] = ark.rate_limiter(HUGE, algorithm=algorithm, name="a" + algorithm)
        return await holder["limiter"].hit("k")

    return _async_rate(hit, checks, runs)


def _limits_async(url: str, checks: int, runs: int) -> list[tuple[str, float]]:
    try:
        from limits import parse
        from limits.aio import storage, strategies
    except ImportError:
        return []
    item = parse(HUGE)
    rows = []
    for label, name in [
        ("fixed", "FixedWindowRateLimiter"),
        ("moving", "MovingWindowRateLimiter"),
        ("sliding", "SlidingWindowCounterRateLimiter"),
    ]:
        holder: dict[str, Any] = {}

        async def hit(i: int, name: str = name, holder: dict[str, Any] = holder) -> Any:
            if "limiter" not in holder:
                uri = "async+" + url
                store = storage.RedisStorage(uri, implementation="redispy")
                holder["limiter"] = getattr(strategies, name)(store)
            return await holder["limiter"].hit(item, "k", name)

        rows.append((f"limits {label} (aio)", _async_rate(hit, checks, runs)))
    return rows


def middleware_rows(url: str, checks: int, runs: int) -> list[tuple[str, float]]:
    try:
        import httpx
        from fastapi import FastAPI, Request
    except ImportError:
        print("note: fastapi/httpx are not installed; skipping the middleware comparison")
        return []
    from redkit.integrations.asgi.ratelimit import RateLimitMiddleware

    def redkit_app() -> Any:
        app = FastAPI()
        ark = AsyncRedkit(url, prefix="benchmw")
        app.add_middleware(RateLimitMiddleware, limiter=ark.rate_limiter(HUGE))

        @app.get("/")
        async def index() -> dict[str, str]:
            return {"ok": "yes"}

        return app

    rows = [("redkit RateLimitMiddleware", _drive(httpx, redkit_app, checks, runs))]
    try:
        from slowapi import Limiter
        from slowapi.middleware import SlowAPIMiddleware
        from slowapi.util import get_remote_address
    except ImportError:
        print("note: slowapi is not installed; pip install 'redkit[bench]'")
        return rows

    def slowapi_app() -> Any:
        app = FastAPI()
        app.state.limiter = Limiter(get_remote_address, default_limits=[HUGE], storage_uri=url)
        app.add_middleware(SlowAPIMiddleware)

        @app.get("/")
        async def index(request: Request) -> dict[str, str]:
            return {"ok": "yes"}

        return app

    rows.append(("slowapi SlowAPIMiddleware", _drive(httpx, slowapi_app, checks, runs)))
    return rows


def _drive(httpx: Any, make_app: Callable[[], Any], checks: int, runs: int) -> float:
    async def all_runs() -> list[float]:
        app = make_app()
        transport = httpx.ASGITransport(app=app)
        rates = []
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            await client.get("/")
            for _ in range(runs):
                start = time.perf_counter()
                for _ in range(checks):
                    await client.get("/")
                rates.append(checks / (time.perf_counter() - start))
        return rates

    return statistics.median(asyncio.run(all_runs()))


def _table(title: str, rows: list[tuple[str, float]], base: float | None = None) -> None:
    print(f"\n{title}")
    print(f"  {'':38} {'checks/s':>10} {'vs ceiling':>11}")
    for name, rate in rows:
        ratio = f"{rate / base:10.0%}" if base else ""
        print(f"  {name:38} {rate:10,.0f} {ratio:>11}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    url = os.environ.get("REDIS_URL")
    server = None
    if not url:
        from redkit.embedded import EmbeddedServer

        server = EmbeddedServer().start()
        url = server.url
    try:
        with redis.Redis.from_url(url) as r:
            info = r.info("server")
        print(f"server: {info.get('server_name', 'redis')} {info.get('redis_version')} at {url}")
        rows = sync_rows(url, opts.checks, opts.runs)
        ceiling = dict(rows)[CEILING]
        _table("one thread, sequential", rows, ceiling)
        _table(f"{TASKS} asyncio tasks", async_rows(url, opts.checks, opts.runs))
        _table("FastAPI middleware, sequential requests", middleware_rows(url, 2000, opts.runs))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
