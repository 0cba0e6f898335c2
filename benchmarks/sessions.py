"""Session load + save per request: redkit against starsessions and flask-session.

    python benchmarks/sessions.py                 # an embedded Valkey, started for the run
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/sessions.py --runs 7

One "request" loads a session by its id, reads a counter, writes it back incremented and
saves, sequentially on one connection; the session holds ``--keys`` other small keys.

* store level (asyncio): redkit's ``AsyncSessionStore.load`` + ``save`` against
  starsessions' ``RedisStore.read`` + ``write`` with its JSON serializer;
* Flask level: one GET through Flask's test client with redkit's session interface
  against flask-session's ``RedisSessionInterface`` (both JSON-ish, both server-side).

redkit does more per request (both timeouts checked and refreshed by the server, last
seen/IP/user agent recorded, only changed keys written) in the same one round trip for
the load and one for the save; the peers do a GET and a whole-blob SET. PING and a
sequential GET+SET pair give the server's ceiling. Missing peers are skipped with a note.
"""

from __future__ import annotations

import _path  # noqa: F401  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)
import argparse
import asyncio
import statistics
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio
from _common import server_url, table

from redkit import AsyncRedkit, Redkit

try:
    from starsessions.serializers import JsonSerializer
    from starsessions.stores.redis import RedisStore
except ImportError:
    RedisStore = None
try:
    import flask
    from flask_session.redis import RedisSessionInterface
except ImportError:
    RedisSessionInterface = None

try:
    from redkit.integrations.flask.sessions import RedkitSessionInterface
except ImportError:  # flask missing
    RedkitSessionInterface = None

TTL = 1800


def _filler(keys: int) -> dict[str, Any]:
    return {f"k{i}": f"value {i}" for i in range(keys)}


# --- workloads: each returns an (async) callable doing ``n`` requests ----------------


def redkit_async(
    ark: AsyncRedkit, keys: int, loop: asyncio.AbstractEventLoop
) -> Callable[[int], Awaitable[None]]:
    store = ark.sessions(check=False)

    async def setup() -> str:
        session = store.new()
        session.update({**_filler(keys), "n": 0})
        await store.save(session)
        return session.id or ""

    session_id = loop.run_until_complete(setup())

    async def run(n: int) -> None:
        for _ in range(n):
            session = await store.load(session_id, ip="127.0.0.1", user_agent="bench")
            session["n"] = session["n"] + 1
            await store.save(session)

    return run


def redkit_sync(rk: Redkit, keys: int) -> Callable[[int], None]:
    store = rk.sessions(check=False)
    session = store.new()
    session.update({**_filler(keys), "n": 0})
    store.save(session)
    session_id = session.id

    def run(n: int) -> None:
        for _ in range(n):
            s = store.load(session_id, ip="127.0.0.1", user_agent="bench")
            s["n"] = s["n"] + 1
            store.save(s)

    return run


def starsessions_async(
    client: redis.asyncio.Redis, keys: int, loop: asyncio.AbstractEventLoop
) -> Callable[[int], Awaitable[None]]:
    store = RedisStore(connection=client, prefix="bench-starsessions.")
    serializer = JsonSerializer()
    loop.run_until_complete(
        store.write("sid", serializer.serialize({**_filler(keys), "n": 0}), TTL, TTL)
    )

    async def run(n: int) -> None:
        for _ in range(n):
            data = serializer.deserialize(await store.read("sid", TTL))
            data["n"] += 1
            await store.write("sid", serializer.serialize(data), TTL, TTL)

    return run


def _flask_app(interface: Any, keys: int) -> Any:
    app = flask.Flask("bench")
    app.session_interface = interface(app) if callable(interface) else interface

    @app.get("/")
    def index() -> str:
        if "n" not in flask.session:
            flask.session.update(_filler(keys))
        flask.session["n"] = flask.session.get("n", 0) + 1
        return "ok"

    return app


def flask_workload(app: Any) -> Callable[[int], None]:
    client = app.test_client()
    client.get("/", base_url="https://localhost")

    def run(n: int) -> None:
        for _ in range(n):
            client.get("/", base_url="https://localhost")

    return run


def get_set(client: redis.Redis) -> Callable[[int], None]:
    client.set("bench-ceiling", b"x" * 200)

    def run(n: int) -> None:
        for _ in range(n):
            client.set("bench-ceiling", client.get("bench-ceiling") or b"")

    return run


def ping(client: redis.Redis) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            client.ping()

    return run


# --- measuring -----------------------------------------------------------------------


def rate(
    work: Callable[[int], Any], n: int, loop: asyncio.AbstractEventLoop | None = None
) -> float:
    start = time.perf_counter()
    result = work(n)
    if loop is not None:
        loop.run_until_complete(result)
    return n / (time.perf_counter() - start)


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, float, float]:
    measure()  # warm up
    results = [measure() for _ in range(runs)]
    return statistics.median(results), min(results), max(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per run")
    parser.add_argument("--keys", type=int, default=10, help="other keys in the session")
    args = parser.parse_args()
    n, keys = args.requests, args.keys
    warnings.simplefilter("ignore")
    with server_url() as (url, where):
        sync = redis.Redis.from_url(url)
        loop = asyncio.new_event_loop()
        aclient = redis.asyncio.Redis.from_url(url)
        rk, ark = Redkit(url, prefix="bench"), AsyncRedkit(url, prefix="bench")
        info = rk.info()
        print(
            f"server: {where} ({info.engine} {info.version}), "
            f"{n} requests x {args.runs} runs, {keys} keys\n"
        )
        ceiling = median_of(args.runs, lambda: rate(ping(sync), n))
        rows = [
            ("PING (ceiling)", ceiling),
            ("GET + SET pair", median_of(args.runs, lambda: rate(get_set(sync), n))),
        ]
        rows.append(
            ("redkit sync store", median_of(args.runs, lambda: rate(redkit_sync(rk, keys), n)))
        )
        work = redkit_async(ark, keys, loop)
        rows.append(("redkit async store", median_of(args.runs, lambda: rate(work, n, loop))))
        notes = []
        if RedisStore is not None:
            peer = starsessions_async(aclient, keys, loop)
            rows.append(
                ("starsessions RedisStore", median_of(args.runs, lambda: rate(peer, n, loop)))
            )
        else:
            notes.append("starsessions not installed: pip install -e '.[bench]'")
        if RedkitSessionInterface is not None:
            app = _flask_app(RedkitSessionInterface(rk.sessions(check=False)), keys)
            rows.append(
                ("Flask + redkit", median_of(args.runs, lambda: rate(flask_workload(app), n)))
            )
        if RedisSessionInterface is not None:
            peer_app = _flask_app(
                lambda app: RedisSessionInterface(app, client=sync, key_prefix="bench-fs:"), keys
            )
            rows.append(
                (
                    "Flask + flask-session",
                    median_of(args.runs, lambda: rate(flask_workload(peer_app), n)),
                )
            )
        else:
            notes.append("flask-session not installed: pip install -e '.[bench]'")
        print(table(rows, ceiling[0]))
        for note in notes:
            print("note:", note)
        loop.run_until_complete(ark.aclose())
        loop.run_until_complete(aclient.aclose())
        rk.close()
        loop.close()


if __name__ == "__main__":
    main()
