"""Idempotency keys over HTTP: the cost per request against the same endpoint without them.

    python benchmarks/idempotency.py                 # an embedded Valkey, started for the run
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/idempotency.py --runs 7

One Starlette endpoint (``POST /pay``, a small JSON answer), called in process through
httpx's ASGI transport, one request at a time, ``--requests`` per run:

* ``no idempotency``: the endpoint alone (the floor);
* ``redkit first request``: under ``IdempotencyMiddleware``, a new key per request
  (claim, run, store: the goal is two round trips);
* ``redkit replay``: the same key again and again (one round trip, the claim, answers);
* the same two for ``asgi-idempotency-header`` when installed (``pip install -e
  ".[bench]"``), a peer that keeps its state in plain commands;
* ``raw redis-py SET NX + SET``: the two round trips a claim and a store cost at least.

Systems are interleaved within each run; the table shows the median requests/s, the
median latency per request, the extra latency over the bare endpoint, the extra CPU
time this process spends per request (steadier than latency on a busy machine: the
Python cost of the middleware, its client included), and the round trips per request
counted by the server (``INFO commandstats``: for redkit the script
calls and blocking waits it sends, for the peer every command it sends).
"""

from __future__ import annotations

import _path  # noqa: F401  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)


import argparse
import asyncio
import itertools
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import redis.asyncio
from _common import server_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from redkit import AsyncRedkit
from redkit.integrations.asgi.idempotency import IdempotencyMiddleware

try:
    from idempotency_header_middleware import IdempotencyHeaderMiddleware
    from idempotency_header_middleware.backends.redis import RedisBackend
except ImportError:  # the bench extra is not installed
    IdempotencyHeaderMiddleware = None

REDKIT_SENDS = ("evalsha", "eval", "blpop")
PEER_SENDS = ("get", "set", "sadd", "srem", "expire")


async def pay(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"paid": body["amount"], "currency": "EUR"}, status_code=201)


def endpoint() -> Starlette:
    return Starlette(routes=[Route("/pay", pay, methods=["POST"])])


Work = Callable[[int], Awaitable[None]]


def http_work(app: Any, key: Callable[[], str | None]) -> tuple[Work, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")

    async def run(n: int) -> None:
        for _ in range(n):
            name = key()
            headers = {} if name is None else {"Idempotency-Key": name}
            response = await client.post("/pay", json={"amount": 5}, headers=headers)
            if response.status_code != 201:
                raise RuntimeError(f"unexpected {response.status_code}: {response.text}")

    return run, client


def raw_work(client: redis.asyncio.Redis) -> Work:
    counter = itertools.count()

    async def run(n: int) -> None:
        for _ in range(n):
            key = f"bench-raw:{next(counter)}"
            await client.set(key, "run", nx=True, px=30_000)
            await client.set(key, "done", px=60_000)

    return run


async def sent(client: redis.asyncio.Redis, commands: tuple[str, ...]) -> int:
    stats = await client.info("commandstats")
    return sum(int(stats[f"cmdstat_{c}"]["calls"]) for c in commands if f"cmdstat_{c}" in stats)


def keys(prefix: str) -> Callable[[], str]:
    counter = itertools.count()
    return lambda: f"{prefix}-{next(counter)}"


async def measure(args: argparse.Namespace, url: str) -> None:
    raw = redis.asyncio.Redis.from_url(url)
    ark = AsyncRedkit(url, prefix="bench-idem")
    info = await ark.info()
    print(
        f"{info.engine} {info.version} at {info.target}; {args.runs} runs x "
        f"{args.requests} requests, one at a time, median\n"
    )
    guarded = endpoint()
    guarded.add_middleware(IdempotencyMiddleware, idempotency=ark.idempotency("bench"))
    clients: list[httpx.AsyncClient] = []
    systems: dict[str, tuple[Work, tuple[str, ...]]] = {}

    def add(name: str, app: Any, key: Callable[[], str | None], sends: tuple[str, ...]) -> None:
        work, client = http_work(app, key)
        clients.append(client)
        systems[name] = (work, sends)

    add("no idempotency", endpoint(), lambda: None, ())
    add("redkit first request", guarded, keys("first"), REDKIT_SENDS)
    add("redkit replay", guarded, lambda: "replayed", REDKIT_SENDS)
    if IdempotencyHeaderMiddleware is not None:
        peer = endpoint()
        peer.add_middleware(
            IdempotencyHeaderMiddleware, backend=RedisBackend(redis.asyncio.Redis.from_url(url))
        )
        add("peer first request", peer, keys("peer"), PEER_SENDS)
        add("peer replay", peer, lambda: "peer-replayed", PEER_SENDS)
    else:
        print("(asgi-idempotency-header is not installed: pip install -e '.[bench]')\n")
    systems["raw redis-py SET NX + SET"] = (raw_work(raw), ("set",))

    rates: dict[str, list[float]] = {name: [] for name in systems}
    cpu: dict[str, list[float]] = {name: [] for name in systems}
    trips: dict[str, list[float]] = {name: [] for name in systems}
    for work, _ in systems.values():
        await work(20)  # warm up: connections, scripts, the replayed keys' first run
    for _ in range(args.runs):
        for name, (work, sends) in systems.items():  # interleaved within each run
            before = await sent(raw, sends) if sends else 0
            began, began_cpu = time.perf_counter(), time.process_time()
            await work(args.requests)
            took = time.perf_counter() - began
            cpu[name].append((time.process_time() - began_cpu) / args.requests)
            after = await sent(raw, sends) if sends else 0
            rates[name].append(args.requests / took)
            trips[name].append((after - before) / args.requests)
    base = statistics.median(rates["no idempotency"])
    base_cpu = statistics.median(cpu["no idempotency"])
    print(f"{'':<28} {'req/s':>9} {'us/req':>8} {'+us/req':>8} {'+cpu us':>8} {'trips/req':>10}")
    for name in systems:
        rate = statistics.median(rates[name])
        extra = 1e6 / rate - 1e6 / base
        extra_cpu = 1e6 * (statistics.median(cpu[name]) - base_cpu)
        shown = "" if name.startswith("raw") else f"{extra:>8.0f}"
        shown_cpu = "" if name.startswith("raw") else f"{extra_cpu:>8.0f}"
        print(
            f"{name:<28} {rate:>9,.0f} {1e6 / rate:>8.0f} {shown:>8} {shown_cpu:>8} "
            f"{statistics.median(trips[name]):>10.2f}"
        )
    for client in clients:
        await client.aclose()
    await ark.aclose()
    await raw.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per system (median)")
    parser.add_argument("--requests", type=int, default=1000, help="requests per run")
    args = parser.parse_args()
    with server_url() as (url, _where):
        asyncio.run(measure(args, url))


if __name__ == "__main__":
    main()
