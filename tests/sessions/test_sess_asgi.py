"""The ASGI session middleware and the FastAPI JWT dependency, through their test clients."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError
from redkit.integrations.asgi.jwt import JWTBearer
from redkit.integrations.asgi.sessions import SessionMiddleware
from redkit.sessions import CookieConfig

SECRET = "test-secret-that-is-long-enough-for-hs256"


async def write(request: Request) -> JSONResponse:
    request.session.update(request.query_params)
    return JSONResponse(dict(request.session))


async def read(request: Request) -> JSONResponse:
    return JSONResponse({"data": dict(request.session), "user": request.session.user})


async def login(request: Request) -> JSONResponse:
    request.session.login(request.path_params["user"])
    return JSONResponse({})


async def logout(request: Request) -> JSONResponse:
    request.session.destroy()
    return JSONResponse({})


def _app(url: str, prefix: str, https_only: bool = True, **store_options: Any) -> Starlette:
    ark = AsyncRedkit(url, prefix=prefix)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await ark.aclose()

    routes = [
        Route("/write", write),
        Route("/read", read),
        Route("/login/{user}", login),
        Route("/logout", logout),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    store = ark.sessions(**store_options)
    if "cookie" in store_options:  # the store's cookie settings, instead of the keywords
        app.add_middleware(SessionMiddleware, store=store)
    else:
        app.add_middleware(SessionMiddleware, store=store, https_only=https_only)
    return app


@pytest.fixture
def client(target_url: str, prefix: str) -> Iterator[TestClient]:
    with TestClient(_app(target_url, prefix), base_url="https://testserver") as c:
        yield c


def test_cookie_is_an_opaque_id_with_safe_flags(client: TestClient) -> None:
    response = client.get("/write", params={"secret": "not in the cookie"})
    header = response.headers["set-cookie"]
    name_value, *attributes = [p.strip() for p in header.split(";")]
    name, value = name_value.split("=", 1)
    assert name == "session"
    assert len(value) == 43
    assert "secret" not in header
    assert {"httponly", "secure", "samesite=lax", "path=/"} <= set(attributes)
    assert client.get("/read").json()["data"] == {"secret": "not in the cookie"}


def test_reading_without_writing_sets_no_cookie(client: TestClient) -> None:
    response = client.get("/read")
    assert response.status_code == 200
    assert "set-cookie" not in response.headers


def test_login_rotates_the_id_and_the_old_cookie_is_dead(client: TestClient) -> None:
    client.get("/write", params={"cart": "3 items"})
    before = client.cookies["session"]
    response = client.get("/login/alice")
    after = client.cookies["session"]
    assert "set-cookie" in response.headers
    assert after != before
    assert client.get("/read").json() == {"data": {"cart": "3 items"}, "user": "alice"}
    _replay(client, before)
    assert client.get("/read").json() == {"data": {}, "user": None}


def _replay(client: TestClient, cookie: str) -> None:
    client.cookies.clear()
    client.cookies.set("session", cookie)


@pytest.mark.parametrize("cookie", ["garbage", "A" * 43, "%00;;==", "x" * 5000])
def test_tampered_or_unknown_cookies_get_a_fresh_session(client: TestClient, cookie: str) -> None:
    _replay(client, cookie)
    response = client.get("/read")
    assert response.status_code == 200
    assert response.json() == {"data": {}, "user": None}
    written = client.get("/write", params={"a": "1"})
    assert written.headers["set-cookie"].split(";")[0] != f"session={cookie}"


def test_logout_ends_the_session_server_side(client: TestClient) -> None:
    client.get("/write", params={"a": "1"})
    client.get("/login/bob")
    stolen = client.cookies["session"]
    response = client.get("/logout")
    assert response.headers["set-cookie"].startswith(
        "session=null; path=/; expires=Thu, 01 Jan 1970"
    )
    _replay(client, stolen)
    assert client.get("/read").json() == {"data": {}, "user": None}


def test_cookie_settings_are_configurable(target_url: str, prefix: str) -> None:
    cookie = CookieConfig(name="sid", domain="testserver", path="/", secure=False, max_age=600)
    app = _app(target_url, prefix, cookie=cookie)
    with TestClient(app) as client:
        header = client.get("/write", params={"a": "1"}).headers["set-cookie"]
        assert header.startswith("sid=")
        assert "domain=testserver" in header
        assert "Max-Age=600" in header
        assert "secure" not in header
    with pytest.raises(ConfigError):
        CookieConfig(samesite="none", secure=False)


def test_middleware_requires_the_async_store(rk: Redkit) -> None:
    with pytest.raises(ConfigError):
        SessionMiddleware(_app, store=rk.sessions())  # type: ignore[arg-type]


# --- FastAPI + JWT -------------------------------------------------------------------


def _token(sub: str = "alice", **extra: Any) -> tuple[str, dict[str, Any]]:
    now = int(time.time())
    claims = {"sub": sub, "jti": f"j{time.monotonic_ns()}", "iat": now, "exp": now + 300, **extra}
    return jwt.encode(claims, SECRET, algorithm="HS256"), claims


@pytest.fixture
def api(target_url: str, prefix: str) -> Iterator[TestClient]:
    ark = AsyncRedkit(target_url, prefix=prefix)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await ark.aclose()

    app = FastAPI(lifespan=lifespan)
    auth = JWTBearer(ark.tokens(), SECRET, algorithms=["HS256"])

    @app.get("/me")
    async def me(claims: dict = Depends(auth)) -> dict:  # noqa: B008 - FastAPI's idiom
        return {"user": claims["sub"]}

    with TestClient(app) as c:
        yield c


def test_jwt_dependency_accepts_valid_and_rejects_revoked(api: TestClient, rk: Redkit) -> None:
    token, claims = _token()
    ok = api.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert ok.json() == {"user": "alice"}
    rk.tokens().revoke(claims["jti"], claims["exp"])
    revoked = api.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401
    assert revoked.headers["www-authenticate"] == "Bearer"


def test_jwt_dependency_rejects_forged_missing_and_logged_out(api: TestClient, rk: Redkit) -> None:
    forged = jwt.encode(
        {"sub": "alice", "jti": "x", "iat": 1, "exp": 2**31}, "a-wrong-secret-that-is-32-bytes-long"
    )
    assert api.get("/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert api.get("/me").status_code == 401
    token, _ = _token("bob")
    rk.tokens().revoke_all("bob")
    assert api.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    no_jti = jwt.encode({"sub": "carol", "iat": int(time.time()), "exp": 2**31}, SECRET)
    assert api.get("/me", headers={"Authorization": f"Bearer {no_jti}"}).status_code == 401


def test_jwt_dependency_refuses_alg_none(ark: AsyncRedkit) -> None:
    with pytest.raises(ConfigError):
        JWTBearer(ark.tokens(), SECRET, algorithms=["none"])
