"""The ASGI middleware and the FastAPI dependency, through httpx's ASGI transport."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException

from redkit import AsyncRedkit
from redkit.embedded import EmbeddedServer
from redkit.integrations.asgi.ratelimit import (
    RateLimit,
    RateLimitMiddleware,
    header_key,
    install,
    ip_key,
)

PROXY = "10.0.0.2"


def _app(ark: AsyncRedkit, problem_json: bool = False) -> FastAPI:
    app = FastAPI()
    if problem_json:
        install(app)
    app.add_middleware(
        RateLimitMiddleware,
        limiter=ark.rate_limiter("3/minute", name="global"),
        key=ip_key(trusted_proxies=["10.0.0.0/8"]),
        exempt=["/health"],
    )
    login = RateLimit(ark.rate_limiter("1/minute", name="login"), key=header_key("x-api-key"))

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/login", dependencies=[Depends(login)])
    async def do_login() -> dict[str, str]:
        return {"ok": "in"}

    return app


def _client(app: FastAPI, peer: str = PROXY) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_global_limit_headers_and_429(ark: AsyncRedkit) -> None:
    async with _client(_app(ark)) as client:
        xff = {"X-Forwarded-For": "198.51.100.1"}
        first = await client.get("/", headers=xff)
        assert first.status_code == 200
        assert first.headers["RateLimit-Policy"] == '"3-per-60s";q=3;w=60'
        assert first.headers["RateLimit"].startswith('"3-per-60s";r=2;t=')
        for _ in range(2):
            assert (await client.get("/", headers=xff)).status_code == 200
        rejected = await client.get("/", headers=xff)
        assert rejected.status_code == 429
        assert rejected.headers["content-type"] == "application/problem+json"
        assert 1 <= int(rejected.headers["Retry-After"]) <= 60
        assert rejected.json()["status"] == 429
        assert '"3-per-60s";r=0' in rejected.headers["RateLimit"]
        # another client behind the same proxy has its own budget; health is exempt
        other = await client.get("/", headers={"X-Forwarded-For": "198.51.100.2"})
        assert other.status_code == 200
        for _ in range(5):
            health = await client.get("/health", headers=xff)
            assert health.status_code == 200
            assert "RateLimit" not in health.headers


async def test_spoofed_forwarded_for_is_ignored(ark: AsyncRedkit) -> None:
    async with _client(_app(ark), peer="203.0.113.50") as client:
        codes = [
            (await client.get("/", headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code
            for i in range(4)
        ]
    assert codes == [200, 200, 200, 429], "an untrusted peer is limited by its own address"


async def test_fastapi_dependency_per_route(ark: AsyncRedkit) -> None:
    app = _app(ark)
    async with _client(app) as client:
        key = {"X-Api-Key": "k-1", "X-Forwarded-For": "198.51.100.9"}
        ok = await client.post("/login", headers=key)
        assert ok.status_code == 200
        policies = ok.headers.get_list("RateLimit-Policy")
        assert policies == ['"1-per-60s";q=1;w=60', '"3-per-60s";q=3;w=60']  # route, global
        rejected = await client.post("/login", headers=key)
        assert rejected.status_code == 429
        assert "Retry-After" in rejected.headers
        assert rejected.json()["detail"] == "Too Many Requests"
    async with _client(_app(ark, problem_json=True)) as client:
        again = await client.post("/login", headers=key)
        assert again.status_code == 429
        assert again.headers["content-type"] == "application/problem+json"
        assert again.json()["instance"] == "/login"
        other = {"X-Api-Key": "k-2", "X-Forwarded-For": "198.51.100.10"}
        other_key = await client.post("/login", headers=other)
        assert other_key.status_code == 200


async def test_fail_closed_middleware_answers_503() -> None:
    with EmbeddedServer() as server:
        async with AsyncRedkit(server.url, prefix="asgi503") as ark:
            app = _app(ark)
            server.stop()
            async with _client(app) as client:
                response = await client.get("/")
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_non_http_scopes_pass_through(ark: AsyncRedkit, scope_type: str) -> None:
    seen: list[str] = []

    async def inner(scope: object, receive: object, send: object) -> None:
        seen.append(scope["type"])  # type: ignore[index]

    middleware = RateLimitMiddleware(inner, ark.rate_limiter("1/minute"))
    await middleware({"type": scope_type}, None, None)  # type: ignore[arg-type]
    assert seen == [scope_type]


def _failing_app(ark: AsyncRedkit, **options: object) -> FastAPI:
    """A login route that refuses every attempt with 401, behind a route limit."""
    app = FastAPI()
    login = RateLimit(
        ark.rate_limiter("2/minute", name="login401"),
        key=header_key("x-api-key"),
        **options,  # type: ignore[arg-type]
    )

    @app.post("/login", dependencies=[Depends(login)])
    async def do_login() -> dict[str, str]:
        raise HTTPException(401, "bad credentials", headers={"WWW-Authenticate": "Bearer"})

    return app


async def test_dependency_headers_survive_an_http_exception(ark: AsyncRedkit) -> None:
    async with _client(_failing_app(ark)) as client:
        key = {"X-Api-Key": "k-401"}
        first = await client.post("/login", headers=key)
        assert first.status_code == 401
        assert first.headers["WWW-Authenticate"] == "Bearer"
        assert first.headers["RateLimit-Policy"] == '"2-per-60s";q=2;w=60'
        assert first.headers["RateLimit"].startswith('"2-per-60s";r=1;t=')
        second = await client.post("/login", headers=key)
        assert second.headers["RateLimit"].startswith('"2-per-60s";r=0;t=')
        assert (await client.post("/login", headers=key)).status_code == 429


async def test_middleware_headers_survive_an_http_exception(ark: AsyncRedkit) -> None:
    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, limiter=ark.rate_limiter("2/minute", name="mw401"))

    @app.get("/private")
    async def private() -> dict[str, str]:
        raise HTTPException(401, "log in first")

    async with _client(app, peer="198.51.100.77") as client:
        response = await client.get("/private")
    assert response.status_code == 401
    assert response.headers["RateLimit"].startswith('"2-per-60s";r=1;t=')


async def test_a_missing_key_falls_back_to_the_client_ip(ark: AsyncRedkit) -> None:
    async with _client(_failing_app(ark), peer="198.51.100.80") as client:
        codes = [(await client.post("/login")).status_code for _ in range(3)]
        assert codes == [401, 401, 429], "no header is no way around the limit"
    async with _client(_failing_app(ark), peer="198.51.100.81") as client:
        assert (await client.post("/login")).status_code == 401, "another IP, its own budget"


async def test_a_missing_key_can_be_rejected(ark: AsyncRedkit) -> None:
    async with _client(_failing_app(ark, fallback="reject")) as client:
        response = await client.post("/login")
        assert response.status_code == 400
        assert (await client.post("/login", headers={"X-Api-Key": "k"})).status_code == 401
    app = FastAPI()
    app.add_middleware(
        RateLimitMiddleware,
        limiter=ark.rate_limiter("2/minute", name="mwreject"),
        key=header_key("x-api-key"),
        fallback="reject",
    )
    async with _client(app) as client:
        response = await client.get("/")
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 400
