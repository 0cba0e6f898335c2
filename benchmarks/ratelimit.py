"""Rate limit checks per second: redkit against its own ceiling and against ``limits``.

    python benchmarks/ratelimit.py                 # an embedded Valkey, started for the run
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/ratelimit.py --rounds 9

Every check admits (the limit is huge), so each one does the full read-decide-write work.
For every algorithm the table shows redkit's ``limiter.hit(key)`` next to its **ceiling**:
the raw ``EVALSHA`` of the very script, keys and arguments that hit sends, on the very
redis-py client the limiter uses, with no redkit code around it. ``% ceiling`` is what
redkit's Python costs on top; ``of PING`` is the check as a share of a PING round trip on
that client in the same run (the figure to compare between runs on a shared machine:
it moves with the script's cost too). PING and GET round trips on that client give the
scale, and the ``limits`` library's fixed, moving and sliding window strategies run on
the same server (and the ``slowapi`` middleware against redkit's, on one FastAPI app).

Two modes: one thread calling sequentially (sync clients), and 50 asyncio tasks sharing
one asyncio client. Contenders are **interleaved**: each round runs every contender once,
in a rotated order, so that noise from other processes falls on all of them alike; the
table shows the median round and the spread (min-max) of the rounds.

Peers that are not installed (``pip install -e ".[bench]"``) are skipped with a note.
"""

from __future__ import annotations

import _path  # noqa: F401  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)
import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from redkit import AsyncRedkit, Redkit
from redkit.ratelimit import ALGORITHMS

HUGE = "1000000000/hour"
TASKS = 50
ORDER = ["fixed_window", "gcra", "token_bucket", "sliding_window", "sliding_log"]
assert sorted(ORDER) == sorted(ALGORITHMS)

Rates = dict[str, list[float]]


# --- one thread ----------------------------------------------------------------------


def _rounds(contenders: dict[str, Callable[[], Any]], checks: int, rounds: int) -> Rates:
    """Checks/s of every contender in every round; rounds interleave, order rotates."""
    names = list(contenders)
    for fn in contenders.values():
        for _ in range(50):
            fn()  # warm up: connect, load the script
    rates: Rates = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = contenders[name]
            start = time.perf_counter()
            for _ in range(checks):
                fn()
            rates[name].append(checks / (time.perf_counter() - start))
    return rates


def _raw(client: Any, limiter: Any) -> Callable[[], Any]:
    """The ceiling: EVALSHA of what ``limiter.hit("k")`` sends, straight on its client."""
    effect = limiter._plan.check("k", 1, 1)
    sha, keys, args = effect.script.sha, list(effect.keys), list(effect.args)
    return lambda: client.evalsha(sha, len(keys), *keys, *args)


def sync_rates(url: str, checks: int, rounds: int) -> Rates:
    with Redkit(url, prefix="bench") as rk:
        contenders: dict[str, Callable[[], Any]] = {}
        client = None
        for algorithm in ORDER:
            limiter = rk.rate_limiter(HUGE, algorithm=algorithm, name="sync")
            client = limiter._rk.client  # the very client redkit's checks use
            contenders[f"redkit {algorithm}"] = lambda h=limiter.hit: h("k")
            contenders[f"raw {algorithm}"] = _raw(client, limiter)
        assert client is not None
        client.set("bench:get", "x")
        contenders["PING"] = client.ping
        contenders["GET"] = lambda: client.get("bench:get")
        contenders.update(_limits_sync(url))
        return _rounds(contenders, checks, rounds)


def _limits_sync(url: str) -> dict[str, Callable[[], Any]]:
    try:
        from limits import parse, storage, strategies
    except ImportError:
        print("note: limits is not installed; pip install -e '.[bench]'")
        return {}
    store = storage.RedisStorage(url)
    item = parse(HUGE)
    out: dict[str, Callable[[], Any]] = {}
    for label, cls in [
        ("fixed", strategies.FixedWindowRateLimiter),
        ("moving", strategies.MovingWindowRateLimiter),
        ("sliding", strategies.SlidingWindowCounterRateLimiter),
    ]:
        hit = cls(store).hit
        out[f"limits {label}"] = lambda hit=hit, label=label: hit(item, "k", label)
    return out


# --- 50 asyncio tasks ----------------------------------------------------------------

Check = Callable[[], Awaitable[Any]]


async def _async_rounds(contenders: dict[str, Check], checks: int, rounds: int) -> Rates:
    per_task = checks // TASKS

    async def task(fn: Check) -> None:
        for _ in range(per_task):
            await fn()

    names = list(contenders)
    for fn in contenders.values():
        await asyncio.gather(*(task(fn) for _ in range(TASKS)))  # warm up: open the pool
    rates: Rates = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            await asyncio.gather(*(task(contenders[name]) for _ in range(TASKS)))
            rates[name].append(per_task * TASKS / (time.perf_counter() - start))
    return rates


def async_rates(url: str, checks: int, rounds: int) -> Rates:
    async def main() -> Rates:
        ark = AsyncRedkit(url, prefix="bench")
        contenders: dict[str, Check] = {}
        client = None
        for algorithm in ORDER:
            limiter = ark.rate_limiter(HUGE, algorithm=algorithm, name="async")
            client = limiter._rk.client
            contenders[f"redkit {algorithm}"] = lambda h=limiter.hit: h("k")
            contenders[f"raw {algorithm}"] = _raw(client, limiter)
        assert client is not None
        await client.set("bench:get", "x")
        contenders["PING"] = client.ping
        contenders["GET"] = lambda: client.get("bench:get")
        contenders.update(_limits_async(url))
        try:
            return await _async_rounds(contenders, checks, rounds)
        finally:
            await ark.aclose()

    return asyncio.run(main())


def _limits_async(url: str) -> dict[str, Check]:
    try:
        from limits import parse
        from limits.aio import storage, strategies
    except ImportError:
        return {}
    store = storage.RedisStorage("async+" + url, implementation="redispy")
    item = parse(HUGE)
    out: dict[str, Check] = {}
    for label, cls in [
        ("fixed", strategies.FixedWindowRateLimiter),
        ("moving", strategies.MovingWindowRateLimiter),
        ("sliding", strategies.SlidingWindowCounterRateLimiter),
    ]:
        hit = cls(store).hit
        out[f"limits {label}"] = lambda hit=hit, label=label: hit(item, "k", label)
    return out


# --- the middleware ------------------------------------------------------------------


def middleware_rates(url: str, requests: int, rounds: int) -> Rates:
    try:
        import httpx
        from fastapi import FastAPI
    except ImportError:
        print("note: fastapi/httpx are not installed; skipping the middleware comparison")
        return {}
    from redkit.integrations.asgi.ratelimit import RateLimitMiddleware

    def redkit_app() -> Any:
        app = FastAPI()
        ark = AsyncRedkit(url, prefix="benchmw")
        app.add_middleware(RateLimitMiddleware, limiter=ark.rate_limiter(HUGE))

        @app.get("/")
        async def index() -> dict[str, str]:
            return {"ok": "yes"}

        return app

    apps = {"redkit RateLimitMiddleware": redkit_app}
    slowapi_app = _slowapi_app(url)
    if slowapi_app is not None:
        apps["slowapi SlowAPIMiddleware"] = slowapi_app

    return asyncio.run(_drive(httpx, apps, requests, rounds))


async def _drive(
    httpx: Any, apps: dict[str, Callable[[], Any]], requests: int, rounds: int
) -> Rates:
    """Requests/s of every app, in-process over ASGI; rounds interleave."""
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=make()), base_url="http://b")
        for name, make in apps.items()
    }
    rates: Rates = {name: [] for name in clients}
    for client in clients.values():
        await client.get("/")
    for _ in range(rounds):
        for name, client in clients.items():
            start = time.perf_counter()
            for _ in range(requests):
                await client.get("/")
            rates[name].append(requests / (time.perf_counter() - start))
    for client in clients.values():
        await client.aclose()
    return rates


def _slowapi_app(url: str) -> Callable[[], Any] | None:
    try:
        from fastapi import FastAPI, Request
        from slowapi import Limiter
        from slowapi.middleware import SlowAPIMiddleware
        from slowapi.util import get_remote_address
    except ImportError:
        print("note: slowapi is not installed; pip install -e '.[bench]'")
        return None

    def make() -> Any:
        app = FastAPI()
        app.state.limiter = Limiter(get_remote_address, default_limits=[HUGE], storage_uri=url)
        app.add_middleware(SlowAPIMiddleware)

        @app.get("/")
        async def index(request: Request) -> dict[str, str]:
            return {"ok": "yes"}

        return app

    return make


# --- the tables ----------------------------------------------------------------------


def _median(rates: Rates, name: str) -> float:
    return statistics.median(rates[name])


def _spread(values: list[float]) -> str:
    return f"{min(values) / 1000:.1f}-{max(values) / 1000:.1f}k"


def algorithm_table(title: str, rates: Rates) -> None:
    print(f"\n{title}")
    limits = {name: _median(rates, name) for name in rates if name.startswith("limits ")}
    best = max(limits.values(), default=0.0)
    ping = _median(rates, "PING")
    print(
        f"  {'algorithm':16} {'checks/s':>9} {'ceiling':>9} {'% ceiling':>9} {'of PING':>8} "
        f"{'vs best limits':>14} {'spread':>12}"
    )
    for algorithm in ORDER:
        hit, raw = _median(rates, f"redkit {algorithm}"), _median(rates, f"raw {algorithm}")
        ahead = f"{hit / best - 1:+14.1%}" if best else f"{'-':>14}"
        print(
            f"  {algorithm:16} {hit:9,.0f} {raw:9,.0f} {hit / raw:9.1%} {hit / ping:8.1%} "
            f"{ahead} {_spread(rates[f'redkit {algorithm}']):>12}"
        )
    print(f"  {'for scale':16} {'checks/s':>9} {'':>9} {'':>9} {'':>8} {'':>14} {'spread':>12}")
    for name in ["PING", "GET", *limits]:
        print(
            f"  {name:16} {_median(rates, name):9,.0f} {'':>9} {'':>9} {'':>8} {'':>14} "
            f"{_spread(rates[name]):>12}"
        )


def plain_table(title: str, rates: Rates) -> None:
    if not rates:
        return
    print(f"\n{title}")
    for name, values in rates.items():
        print(f"  {name:30} {statistics.median(values):9,.0f}/s {_spread(values):>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=2000, help="checks per contender and round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median)")
    parser.add_argument("--no-middleware", action="store_true")
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
        print(
            f"server: {info.get('server_name', 'redis')} {info.get('redis_version')} at {url}; "
            f"{opts.rounds} interleaved rounds of {opts.checks} checks per contender"
        )
        algorithm_table("one thread, sequential", sync_rates(url, opts.checks, opts.rounds))
        algorithm_table(
            f"{TASKS} asyncio tasks, one client", async_rates(url, opts.checks, opts.rounds)
        )
        if not opts.no_middleware:
            plain_table(
                "FastAPI middleware, sequential requests",
                middleware_rates(url, opts.checks // 2, opts.rounds),
            )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
