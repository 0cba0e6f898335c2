"""One async facade used from many event loops: a client per loop, nothing leaked or warned.

Every test here runs real loops (``asyncio.run``, a bare ``new_event_loop``, threads,
Starlette's ``TestClient`` without ``with``) and ends with a garbage collection, so that a
connection left open would surface as a ResourceWarning, which the suite turns into an
error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis.asyncio
import redis.asyncio.cluster
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redkit import AsyncRedkit, Redkit, ops
from redkit.embedded import EmbeddedCluster, EmbeddedServer
from redkit.errors import ConfigError

# asking for make_rk deletes the test's keys afterwards on the external server
MakeRk = Callable[..., Redkit]


def _clients(url: str) -> int:
    """How many connections the standalone server has open (this process and others)."""
    with Redkit(url) as rk:
        return len(rk.run(ops.command("CLIENT", "LIST")).splitlines()) - 1  # minus this one


@contextlib.contextmanager
def _no_leaks(url: str) -> Iterator[None]:
    before = _clients(url)
    yield
    gc.collect()
    assert _clients(url) == before, "connections were left open"


async def _work(ark: AsyncRedkit, key: str) -> int:
    """Commands, a script, a blocking wait on a dedicated connection and a lock."""
    count = await ark.run(ops.command("INCR", key))
    assert await ark.ping()
    assert not await ark.run(ops.wait_signal(key + ":wake", 0.05))
    async with ark.lock(key + ":lock", ttl=5):
        pass
    return int(count)


def test_asyncio_run_twice(target_url: str, prefix: str, make_rk: MakeRk) -> None:
    ark = AsyncRedkit(target_url, prefix=prefix)
    key = ark.keys.group("test", "runs").key()
    assert asyncio.run(_work(ark, key)) == 1
    assert asyncio.run(_work(ark, key)) == 2

    async def last() -> int:
        count = await _work(ark, key)
        await ark.aclose()
        return count

    assert asyncio.run(last()) == 3
    gc.collect()


def test_loop_closed_without_shutdown_is_dropped_quietly(standalone_url: str) -> None:
    with _no_leaks(standalone_url):
        ark = AsyncRedkit(standalone_url)
        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(ark.ping())
        finally:
            loop.close()  # no shutdown_asyncgens(): the client could not close itself
        gc.collect()

        async def again() -> None:
            assert await ark.ping()
            await ark.aclose()

        asyncio.run(again())


def test_each_asyncio_run_closes_its_client(standalone_url: str) -> None:
    ark = AsyncRedkit(standalone_url)
    with _no_leaks(standalone_url):
        for _ in range(3):
            assert asyncio.run(ark.ping())
    with _no_leaks(standalone_url):
        asyncio.run(ark.aclose())  # nothing left to close: each loop closed its own


def test_loops_in_threads_at_the_same_time(target_url: str, prefix: str, make_rk: MakeRk) -> None:
    ark = AsyncRedkit(target_url, prefix=prefix)
    key = ark.keys.group("test", "threads").key()
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker() -> None:
        async def body() -> None:
            start.wait()
            for _ in range(20):
                await ark.run(ops.command("INCR", key))

        try:
            asyncio.run(body())
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []

    async def check() -> bytes:
        value = await ark.run(ops.command("GET", key))
        await ark.aclose()
        return bytes(value)

    assert asyncio.run(check()) == b"80"
    gc.collect()


def test_aclose_closes_a_loop_running_in_another_thread(standalone_url: str) -> None:
    ark = AsyncRedkit(standalone_url)
    used = threading.Event()
    held: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def hold() -> None:
        release = asyncio.Event()
        held.append((asyncio.get_running_loop(), release))
        assert await ark.ping()
        used.set()
        await release.wait()

    other = threading.Thread(target=asyncio.run, args=(hold(),))
    before = _clients(standalone_url)
    other.start()
    assert used.wait(10)

    async def close_here() -> None:
        assert await ark.ping()
        await ark.aclose()

    asyncio.run(close_here())
    assert _clients(standalone_url) == before, "the other loop's connection is still open"
    loop, release = held[0]
    loop.call_soon_threadsafe(release.set)
    other.join(10)
    gc.collect()


def test_handed_in_standalone_client_is_copied_for_other_loops(standalone_url: str) -> None:
    with _no_leaks(standalone_url):
        client = redis.asyncio.Redis.from_url(standalone_url, decode_responses=True)
        ark = AsyncRedkit(client=client)

        async def first() -> None:
            assert ark.client is client
            await ark.run(ops.command("SET", "loops:handed", "v"))
            await ark.aclose()  # leaves the handed-in client open ...
            assert await ark.ping()
            assert ark.client is client  # ... and in use in its own loop
            await client.aclose()  # the owner closes it with its loop

        async def second() -> str:
            assert ark.client is not client  # a copy: same server, options and pool size
            value = await ark.run(ops.command("GET", "loops:handed"))
            await ark.run(ops.command("DEL", "loops:handed"))
            await ark.aclose()
            return str(value)

        asyncio.run(first())
        assert asyncio.run(second()) == "v"  # decode_responses came along


def test_handed_in_cluster_client_refuses_a_second_loop(
    cluster_server: EmbeddedCluster,
) -> None:
    host, port = cluster_server.url.removeprefix("redis+cluster://").split(",")[0].split(":")
    client = redis.asyncio.cluster.RedisCluster(host=host, port=int(port))
    ark = AsyncRedkit(client=client)

    async def first() -> None:
        assert await ark.ping()
        await client.aclose()

    async def second() -> None:
        with pytest.raises(ConfigError, match="instead of client="):
            await ark.ping()

    asyncio.run(first())
    asyncio.run(second())
    gc.collect()


# --- the same through Starlette's TestClient, without ``with`` ---------------------------


def _app(ark: AsyncRedkit) -> Starlette:
    async def count(request: Request) -> JSONResponse:
        key = ark.keys.group("test", "hits").key()
        return JSONResponse({"hits": await _work(ark, key)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await ark.aclose()

    return Starlette(routes=[Route("/", count)], lifespan=lifespan)


def test_testclient_without_with(target_url: str, prefix: str, make_rk: MakeRk) -> None:
    ark = AsyncRedkit(target_url, prefix=prefix)
    client = TestClient(_app(ark))  # each request runs in an event loop of its own
    assert [client.get("/").json()["hits"] for _ in range(4)] == [1, 2, 3, 4]
    with client:  # and the usual way afterwards, closing the facade at shutdown
        assert client.get("/").json()["hits"] == 5
    gc.collect()


async def test_a_module_level_facade_in_two_pytest_loops_first(
    shared: AsyncRedkit,
) -> None:
    assert await shared.ping()


async def test_a_module_level_facade_in_two_pytest_loops_second(
    shared: AsyncRedkit,
) -> None:
    assert await shared.ping()


@pytest.fixture(scope="module")
def shared(standalone_server: EmbeddedServer) -> Iterator[AsyncRedkit]:
    """One facade made outside any loop and used by tests that each get their own loop."""
    ark = AsyncRedkit(standalone_server.url)
    yield ark
    asyncio.run(ark.aclose())
    gc.collect()


def test_testclient_without_with_through_redkit_middleware(
    target_url: str, prefix: str, make_rk: MakeRk
) -> None:
    from redkit.integrations.asgi.ratelimit import RateLimitMiddleware
    from redkit.integrations.asgi.sessions import SessionMiddleware

    ark = AsyncRedkit(target_url, prefix=prefix)
    cache = ark.cache("pages")

    async def page(request: Request) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        cached = await cache.get_or_set("home", lambda: {"title": "home"})
        return JSONResponse({"n": request.session["n"], "page": cached})

    app = Starlette(routes=[Route("/", page)])
    app.add_middleware(SessionMiddleware, store=ark.sessions(check=False))
    app.add_middleware(RateLimitMiddleware, limiter=ark.rate_limiter("100/minute"))
    client = TestClient(app)  # a new event loop for every request
    replies = [client.get("/") for _ in range(4)]
    assert [r.json()["n"] for r in replies] == [1, 2, 3, 4]
    assert all(r.json()["page"] == {"title": "home"} for r in replies)
    assert all("ratelimit" in r.headers for r in replies)
    asyncio.run(ark.aclose())
    gc.collect()


def test_testclient_without_with_leaves_no_connection_open(
    standalone_url: str, prefix: str
) -> None:
    ark = AsyncRedkit(standalone_url, prefix=prefix)
    client = TestClient(_app(ark))
    with _no_leaks(standalone_url):
        for _ in range(5):
            assert client.get("/").status_code == 200
