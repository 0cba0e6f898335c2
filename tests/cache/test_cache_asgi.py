"""The ASGI response cache: hits, stable ETags, 304s, and what it refuses to cache."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from redkit import AsyncRedkit, Settings
from redkit.embedded import EmbeddedServer
from redkit.errors import ConnectionError as RedkitConnectionError
from redkit.integrations.asgi.cache import CacheMiddleware, etag_matches

pytest.importorskip("starlette", reason="the asgi extra is not installed")

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def _app(ark: AsyncRedkit, calls: list[str], **options: Any) -> CacheMiddleware:
    async def item(request: Request) -> Response:
        calls.append(request.url.path)
        return JSONResponse({"id": request.path_params["id"], "q": request.query_params.get("q")})

    async def private(request: Request) -> Response:
        calls.append("private")
        return PlainTextResponse("mine", headers={"cache-control": "private"})

    async def cookie(request: Request) -> Response:
        calls.append("cookie")
        response = PlainTextResponse("hi")
        response.set_cookie("s", "1")
        return response

    routes = [
        Route("/items/{id}", item),
        Route("/private", private),
        Route("/cookie", cookie),
    ]
    # the middleware answers Redis failures by its own on_error: its cache must raise them
    cache = ark.cache("http", ttl=60, on_error="closed", cooldown=0)
    return CacheMiddleware(Starlette(routes=routes), cache=cache, **options)


def _client(app: CacheMiddleware) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_second_get_is_a_hit_with_the_same_etag(ark: AsyncRedkit) -> None:
    calls: list[str] = []
    async with _client(_app(ark, calls)) as client:
        first = await client.get("/items/1?q=x")
        second = await client.get("/items/1?q=x")
        other = await client.get("/items/1?q=y")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"id": "1", "q": "x"}
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.headers["etag"] == second.headers["etag"]
    assert other.headers["etag"] != first.headers["etag"]
    assert calls == ["/items/1", "/items/1"]


async def test_matching_if_none_match_gets_304(ark: AsyncRedkit) -> None:
    calls: list[str] = []
    async with _client(_app(ark, calls)) as client:
        etag = (await client.get("/items/2")).headers["etag"]
        cached = await client.get("/items/2", headers={"if-none-match": etag})
        weak = await client.get("/items/2", headers={"if-none-match": f'"other", W/{etag}'})
        stale = await client.get("/items/2", headers={"if-none-match": '"nope"'})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    assert weak.status_code == 304
    assert stale.status_code == 200


async def test_etag_is_stable_when_recomputed(ark: AsyncRedkit) -> None:
    async with _client(_app(ark, [])) as client:
        etag = (await client.get("/items/3")).headers["etag"]
        await ark.cache("http").clear()
        again = await client.get("/items/3", headers={"if-none-match": etag})
    assert again.headers["x-cache"] == "miss"
    assert again.status_code == 304, "a recomputed response keeps its ETag"


async def test_private_responses_and_requests_are_not_cached(ark: AsyncRedkit) -> None:
    calls: list[str] = []
    async with _client(_app(ark, calls)) as client:
        for _ in range(2):
            assert (await client.get("/private")).text == "mine"
            assert (await client.get("/cookie")).text == "hi"
            await client.get("/items/4", headers={"authorization": "Bearer x"})
        await client.post("/items/4")
    assert calls.count("private") == 2
    assert calls.count("cookie") == 2
    assert calls.count("/items/4") == 2


def test_etag_matching() -> None:
    assert etag_matches('"a"', '"a"')
    assert etag_matches('W/"a"', '"a"')
    assert etag_matches('"b", "a"', 'W/"a"')
    assert etag_matches("*", '"a"')
    assert not etag_matches('"b"', '"a"')


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:  # our own: the test stops it
        yield server


@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_redis_down_serves_uncached_or_raises(server: EmbeddedServer, on_error: str) -> None:
    settings = Settings(url=server.url, socket_timeout=0.5, connect_timeout=0.5, retries=0)
    async with AsyncRedkit(settings=settings) as ark:
        calls: list[str] = []
        app = _app(ark, calls, on_error=on_error, cooldown=0)
        async with _client(app) as client:
            assert (await client.get("/items/1")).headers["x-cache"] == "miss"
            server.stop()
            if on_error == "closed":
                with pytest.raises(RedkitConnectionError):
                    await client.get("/items/1")
                return
            down = await client.get("/items/1")
    assert down.status_code == 200
    assert down.json() == {"id": "1", "q": None}
    assert down.headers["x-cache"] == "bypass"
    assert calls == ["/items/1", "/items/1"]
