"""redkit's SessionMiddleware as a drop-in for Starlette's, tested the way Starlette tests its own.

The scenarios of Starlette's session middleware tests, with redkit's middleware swapped
in (Starlette's keywords, no store), each under ``TestClient`` both with ``with`` (one
event loop) and without (a new loop per request). Then the ``Set-Cookie`` header
compared with the one Starlette's middleware writes for the same settings, the dict
behaviour of ``request.session``, and the failure policy with Redis down.
"""

from __future__ import annotations

import contextlib
import gc
import json
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware as StarletteSessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from redkit import AsyncRedkit, Settings
from redkit.embedded import EmbeddedServer
from redkit.errors import ConfigError
from redkit.integrations.asgi.sessions import DictSession, SessionMiddleware, session_of
from redkit.sessions import CookieConfig

ClientFactory = Callable[..., TestClient]


async def view_session(request: Request) -> JSONResponse:
    return JSONResponse({"session": request.session})


async def update_session(request: Request) -> JSONResponse:
    request.session.update(await request.json())
    return JSONResponse({"session": request.session})


async def clear_session(request: Request) -> JSONResponse:
    request.session.clear()
    return JSONResponse({"session": request.session})


ROUTES = [
    Route("/view_session", view_session),
    Route("/update_session", update_session, methods=["POST"]),
    Route("/clear_session", clear_session, methods=["POST"]),
]


def _app(**keywords: Any) -> Starlette:
    return Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, **keywords)])


@pytest.fixture
def env(
    target_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch, make_rk: Callable[..., Any]
) -> None:
    """The middleware's default store reads the environment: point it at this test's target.

    (``make_rk`` deletes the test's keys afterwards on the external server.)
    """
    monkeypatch.setenv("REDIS_URL", target_url)
    monkeypatch.setenv("REDKIT_PREFIX", prefix)


@pytest.fixture(params=["with", "without"])
def test_client_factory(request: pytest.FixtureRequest, env: None) -> Iterator[ClientFactory]:
    """TestClients entered with ``with`` (one loop), or not (a loop per request)."""
    with contextlib.ExitStack() as stack:

        def factory(app: Any, **options: Any) -> TestClient:
            client = TestClient(app, **options)
            if request.param == "with":
                stack.enter_context(client)
            return client

        yield factory
    gc.collect()  # a connection left open would warn (an error in this suite) here


def test_session(test_client_factory: ClientFactory) -> None:
    client = test_client_factory(_app(secret_key="example"))

    assert client.get("/view_session").json() == {"session": {}}

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}
    max_age = re.search(r"; Max-Age=([0-9]+);", response.headers["set-cookie"])
    assert max_age is not None
    assert int(max_age[1]) == 14 * 24 * 3600

    assert client.get("/view_session").json() == {"session": {"some": "data"}}
    assert client.post("/clear_session").json() == {"session": {}}
    assert client.get("/view_session").json() == {"session": {}}


def test_session_expires(test_client_factory: ClientFactory) -> None:
    app = _app(secret_key="example", max_age=-1)
    client = test_client_factory(app)

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # the client drops the expired cookie itself; send its value back by hand
    expired = re.search(r"session=([^;]*);", response.headers["set-cookie"])
    assert expired is not None
    client = test_client_factory(app, cookies={"session": expired[1]})
    assert client.get("/view_session").json() == {"session": {}}


def test_secure_session(test_client_factory: ClientFactory) -> None:
    app = _app(secret_key="example", https_only=True)
    secure = test_client_factory(app, base_url="https://testserver")
    plain = test_client_factory(app, base_url="http://testserver")

    assert plain.get("/view_session").json() == {"session": {}}
    assert plain.post("/update_session", json={"some": "data"}).json() == {
        "session": {"some": "data"}
    }
    assert plain.get("/view_session").json() == {"session": {}}  # a Secure cookie stays home

    assert secure.get("/view_session").json() == {"session": {}}
    assert secure.post("/update_session", json={"some": "data"}).json() == {
        "session": {"some": "data"}
    }
    assert secure.get("/view_session").json() == {"session": {"some": "data"}}
    assert secure.post("/clear_session").json() == {"session": {}}
    assert secure.get("/view_session").json() == {"session": {}}


def test_session_cookie_subpath(test_client_factory: ClientFactory) -> None:
    second = Starlette(
        routes=[Route("/update_session", update_session, methods=["POST"])],
        middleware=[Middleware(SessionMiddleware, secret_key="example", path="/second_app")],
    )
    app = Starlette(routes=[Mount("/second_app", app=second)])
    client = test_client_factory(app, base_url="http://testserver/second_app")
    response = client.post("/update_session", json={"some": "data"})
    assert response.status_code == 200
    path = re.search(r"; path=(\S+);", response.headers["set-cookie"])
    assert path is not None
    assert path[1] == "/second_app"


def test_invalid_session_cookie(test_client_factory: ClientFactory) -> None:
    app = _app(secret_key="example")
    client = test_client_factory(app)
    assert client.post("/update_session", json={"some": "data"}).json() == {
        "session": {"some": "data"}
    }
    # a bogus cookie gives an empty session, not an error
    client = test_client_factory(app, cookies={"session": "invalid"})
    assert client.get("/view_session").json() == {"session": {}}


def test_session_cookie(test_client_factory: ClientFactory) -> None:
    client = test_client_factory(_app(secret_key="example", max_age=None))
    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}
    assert "Max-Age" not in response.headers["set-cookie"]

    client.cookies.delete("session")
    assert client.get("/view_session").json() == {"session": {}}


def test_domain_cookie(test_client_factory: ClientFactory) -> None:
    client = test_client_factory(_app(secret_key="example", domain=".example.com"))
    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}
    assert "domain=.example.com" in response.headers["set-cookie"]

    client.cookies.delete("session")
    assert client.get("/view_session").json() == {"session": {}}


def test_no_secret_key_needed(test_client_factory: ClientFactory) -> None:
    client = test_client_factory(_app())
    client.post("/update_session", json={"some": "data"})
    assert client.get("/view_session").json() == {"session": {"some": "data"}}


# --- the same Set-Cookie header as Starlette's -------------------------------------------

SETTINGS: list[dict[str, Any]] = [
    {},
    {"max_age": None},
    {"max_age": -1},
    {"max_age": 0},
    {"max_age": 600, "path": "/app", "same_site": "strict"},
    {"https_only": True, "domain": ".example.com", "same_site": "none"},
    {"session_cookie": "sid", "partitioned": True, "https_only": True},
]


def _without_value(header: str) -> str:
    name, _, rest = header.partition("=")
    return name + "=<value>;" + rest.partition(";")[2]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(s) or "defaults")
def test_set_cookie_header_is_starlettes(env: None, settings: dict[str, Any]) -> None:
    theirs = Starlette(
        routes=ROUTES,
        middleware=[Middleware(StarletteSessionMiddleware, secret_key="example", **settings)],
    )
    base = "https://testserver"
    with TestClient(theirs, base_url=base) as a, TestClient(_app(**settings), base_url=base) as b:
        headers = [c.post("/update_session", json={"k": 1}).headers["set-cookie"] for c in (a, b)]
        if settings.get("max_age") == 0 and "Max-Age" not in headers[0]:
            pytest.skip("this Starlette release leaves out Max-Age=0; later ones write it")
        assert _without_value(headers[1]) == _without_value(headers[0])
        if settings.get("max_age", 1) is not None and settings.get("max_age", 1) <= 0:
            return  # neither kept the cookie: nothing to clear
        cleared = [  # the cookie sent by hand: its path may not cover /clear_session
            c.post("/clear_session", headers={"cookie": h.split(";")[0]}).headers["set-cookie"]
            for c, h in zip((a, b), headers, strict=True)
        ]
        assert cleared[1] == cleared[0]


def test_vary_cookie_when_the_session_was_used(test_client_factory: ClientFactory) -> None:
    async def untouched(request: Request) -> Response:
        return Response("no session here")

    app = Starlette(
        routes=[*ROUTES, Route("/untouched", untouched)],
        middleware=[Middleware(SessionMiddleware)],
    )
    client = test_client_factory(app)
    assert "cookie" in client.get("/view_session").headers.get("vary", "").lower()
    assert "vary" not in client.get("/untouched").headers


# --- request.session is a dict -----------------------------------------------------------


async def dict_api(request: Request) -> JSONResponse:
    session = request.session
    assert isinstance(session, dict)
    assert isinstance(session, DictSession)
    session.setdefault("cart", []).append(len(session["cart"]))  # mutated in place
    session |= {"merged": True}
    session["tmp"] = 1
    assert session.pop("tmp") == 1
    assert session.pop("absent", None) is None
    assert session == {"cart": session["cart"], "merged": True}
    assert json.loads(json.dumps(session)) == dict(session)
    return JSONResponse(session)


def test_request_session_is_a_dict(test_client_factory: ClientFactory) -> None:
    app = Starlette(routes=[Route("/", dict_api)], middleware=[Middleware(SessionMiddleware)])
    client = test_client_factory(app)
    assert client.get("/").json() == {"cart": [0], "merged": True}
    assert client.get("/").json() == {"cart": [0, 1], "merged": True}
    assert client.get("/").json() == {"cart": [0, 1, 2], "merged": True}


def test_clearing_ends_the_session_on_the_server(test_client_factory: ClientFactory) -> None:
    client = test_client_factory(_app())
    client.post("/update_session", json={"some": "data"})
    old = client.cookies["session"]
    assert "session=null" in client.post("/clear_session").headers["set-cookie"]
    replay = test_client_factory(_app(), cookies={"session": old})
    assert replay.get("/view_session").json() == {"session": {}}


# --- keywords ----------------------------------------------------------------------------


def test_keywords_are_checked(env: None) -> None:
    with pytest.raises(ConfigError, match="requires secure"):
        SessionMiddleware(view_session, same_site="none")  # browsers reject it without Secure
    with pytest.raises(ConfigError, match="not a valid cookie name"):
        SessionMiddleware(view_session, session_cookie="bad name")
    with pytest.raises(ConfigError, match="on_error"):
        SessionMiddleware(view_session, on_error="ignore")  # type: ignore[arg-type]


# --- Redis down --------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("on_error", ["closed", "open"])
def test_redis_down_on_load(on_error: str) -> None:
    settings = Settings(url=f"redis://127.0.0.1:{_closed_port()}/0", connect_timeout=0.2, retries=0)
    store = AsyncRedkit(settings=settings).sessions(check=False)
    app = _app(store=store, on_error=on_error)
    with TestClient(app) as client:
        response = client.post("/update_session", json={"some": "data"})
    if on_error == "closed":
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 503
    else:
        assert response.json() == {"session": {"some": "data"}}
        assert "set-cookie" not in response.headers  # nothing was saved, no id to hand out


@pytest.mark.parametrize("on_error", ["closed", "open"])
def test_redis_down_on_save(on_error: str) -> None:
    with EmbeddedServer() as server:

        async def stop_then_write(request: Request) -> JSONResponse:
            server.stop()
            request.session["some"] = "data"
            return JSONResponse({"written": True})

        settings = Settings(url=server.url, connect_timeout=0.2, socket_timeout=0.5, retries=0)
        store = AsyncRedkit(settings=settings).sessions(check=False)
        app = Starlette(
            routes=[Route("/", stop_then_write)],
            middleware=[Middleware(SessionMiddleware, store=store, on_error=on_error)],
        )
        with TestClient(app) as client:
            response = client.get("/")
    if on_error == "closed":
        assert response.status_code == 503
        assert response.json()["title"] == "Service Unavailable"
    else:
        assert response.json() == {"written": True}
        assert "set-cookie" not in response.headers


def test_store_and_cookie_keywords_are_not_both_given(env: None) -> None:
    store = AsyncRedkit().sessions(cookie=CookieConfig(name="sid"))
    with pytest.raises(ConfigError, match="configured twice"):
        SessionMiddleware(view_session, store=store, https_only=True)
    with pytest.raises(ConfigError, match="by keyword"):
        SessionMiddleware(view_session, store)  # type: ignore[arg-type]


# --- redkit's additions still work through the dict ---------------------------------------


async def login(request: Request) -> JSONResponse:
    session_of(request).login(request.path_params["user"])
    return JSONResponse({"user": session_of(request).user})


async def logout(request: Request) -> JSONResponse:
    session_of(request).destroy()
    return JSONResponse({})


def test_login_rotates_and_logout_ends(test_client_factory: ClientFactory) -> None:
    routes = [*ROUTES, Route("/login/{user}", login), Route("/logout", logout)]
    app = Starlette(routes=routes, middleware=[Middleware(SessionMiddleware)])
    client = test_client_factory(app)
    client.post("/update_session", json={"cart": 3})
    before = client.cookies["session"]
    assert client.get("/login/alice").json() == {"user": "alice"}
    after = client.cookies["session"]
    assert after != before
    assert client.get("/view_session").json() == {"session": {"cart": 3}}
    stale = test_client_factory(app, cookies={"session": before})
    assert stale.get("/view_session").json() == {"session": {}}
    assert "session=null" in client.get("/logout").headers["set-cookie"]
    stolen = test_client_factory(app, cookies={"session": after})
    assert stolen.get("/view_session").json() == {"session": {}}


async def ws_session(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(websocket.session)
    await websocket.close()


def test_websockets_read_the_session(test_client_factory: ClientFactory) -> None:
    routes = [*ROUTES, WebSocketRoute("/ws", ws_session)]
    app = Starlette(routes=routes, middleware=[Middleware(SessionMiddleware)])
    client = test_client_factory(app)
    client.post("/update_session", json={"some": "data"})
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"some": "data"}
