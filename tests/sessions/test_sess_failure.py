"""Sessions and token checks when Redis is unavailable (on_error, deadline, cooldown), and
data redkit did not write (DataError, whatever the policy)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from tests.flavours import Either, close, until

from redkit import AsyncRedkit, Redkit
from redkit.embedded import EmbeddedCluster, EmbeddedServer
from redkit.errors import ConfigError, DataError
from redkit.errors import ConnectionError as RedkitConnectionError
from redkit.integrations.asgi.jwt import JWTBearer
from redkit.integrations.asgi.sessions import SessionMiddleware
from redkit.sessions import ops as sops

DEADLINE = 0.3
SLACK = 0.7  # scheduling noise on a busy 2-core machine
CLUSTER_SLACK = 3.0  # and a cluster client's slot-map refresh after a timeout, under load


def _claims(jti: str = "j1", sub: str = "alice") -> dict[str, object]:
    now = datetime.now(timezone.utc)
    return {"jti": jti, "sub": sub, "iat": now.timestamp(), "exp": now + timedelta(hours=1)}


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        yield server


@pytest.fixture
def own(server: EmbeddedServer) -> Iterator[Redkit]:
    with Redkit(server.url, prefix="sfail") as rk:
        yield rk


class _Stalled:
    """The server alive and accepting but never answering (SIGSTOP), for a with block."""

    def __init__(self, server: EmbeddedServer) -> None:  # a cluster node is one too
        assert server._process is not None
        self.pid = server._process.pid

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *exc: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


# --- options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"on_error": "local"}, {"on_error": "OPEN"}, {"deadline": 0}, {"cooldown": -1}],
)
def test_bad_failure_options_are_config_errors(rk: Redkit, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        rk.sessions(**options)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        rk.tokens(**options)  # type: ignore[arg-type]


def test_misspelt_options_name_themselves(rk: Redkit) -> None:
    with pytest.raises(ConfigError, match="on_eror"):
        rk.sessions(on_eror="open")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="dead_line"):
        rk.tokens(dead_line=1)  # type: ignore[call-arg]


def test_defaults_fail_closed(rk: Redkit) -> None:
    store, tokens = rk.sessions(), rk.tokens()
    assert (store.on_error, store.deadline, store.failures) == ("closed", None, 0)
    assert (tokens.on_error, tokens.deadline, tokens.failures) == ("closed", None, 0)
    assert "on_error='closed'" in repr(store)


async def test_stores_with_a_deadline_work_on_every_target(kit: Either) -> None:
    store = await kit.sessions(on_error="open", deadline=2)
    tokens = await kit.tokens(on_error="open", deadline=2)
    session = await store.new()
    session["k"] = 1
    await store.login(session, "alice")
    loaded = await store.load(session.id)
    assert loaded["k"] == 1
    assert not loaded.degraded
    assert [s.handle for s in await store.list_sessions("alice")] == [loaded.handle]
    claims = _claims()
    assert not await tokens.is_revoked(claims)
    await tokens.revoke_all("alice")
    assert await tokens.is_revoked(claims)
    assert await store.end_all("alice") == 1
    assert (store.failures, tokens.failures) == (0, 0)


# --- sessions: closed ------------------------------------------------------------------


def test_closed_load_and_save_raise(own: Redkit, server: EmbeddedServer) -> None:
    store = own.sessions(deadline=DEADLINE, cooldown=0)
    session = store.new()
    session["k"] = 1
    store.save(session)
    server.stop()
    with pytest.raises(RedkitConnectionError) as raised:
        store.load(session.id)
    assert isinstance(raised.value, ConnectionError)
    session["k"] = 2
    with pytest.raises(RedkitConnectionError):
        store.save(session)
    assert store.failures == 2


def test_closed_cooldown_fails_at_once_without_asking(own: Redkit, server: EmbeddedServer) -> None:
    store = own.sessions(deadline=DEADLINE, cooldown=30)
    server.stop()
    with pytest.raises(RedkitConnectionError):
        store.load(sops.new_id())
    server.start()
    with pytest.raises(RedkitConnectionError, match="cooldown"):
        store.load(sops.new_id())
    assert store.failures == 2


# --- sessions: open --------------------------------------------------------------------


async def test_open_serves_a_fresh_session_within_the_deadline_and_keeps_the_stored_one(
    make_kit: Callable[..., Either], server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    kit = make_kit(server.url, prefix="sfail")
    store = await kit.sessions(on_error="open", deadline=DEADLINE, cooldown=0)
    closed = await kit.sessions(deadline=DEADLINE, cooldown=0)
    stored = await store.new()
    stored["cart"] = [1]
    await store.login(stored, "alice")
    with _Stalled(server), caplog.at_level(logging.INFO, logger="redkit.sessions"):
        start = time.monotonic()
        served = await store.load(stored.id)
        elapsed = time.monotonic() - start
        served["cart"] = ["overwritten?"]
        await store.save(served)  # skipped: a degraded session is never written
        with pytest.raises(RedkitConnectionError):
            await closed.load(stored.id)
    assert elapsed < DEADLINE + SLACK
    assert served.degraded
    assert served.is_new
    assert served.user is None
    assert served.id is None, "no new session (and cookie) replaces the user's real one"
    assert (store.failures, closed.failures) == (1, 1)
    messages = [r.getMessage() for r in caplog.records]
    assert any("Redis unavailable" in m and "failing open" in m for m in messages)
    assert any("skipped" in m for m in messages)
    again = await store.load(stored.id)  # the server answers again: the stored one is intact
    assert not again.degraded
    assert again.user == "alice"
    assert again["cart"] == [1]


def test_open_skips_writes_while_down(own: Redkit, server: EmbeddedServer) -> None:
    store = own.sessions(on_error="open", deadline=DEADLINE, cooldown=0)
    session = store.new()
    session["n"] = 1
    store.save(session)
    loaded = store.load(session.id)
    loaded["n"] = 2
    with _Stalled(server):
        store.save(loaded)  # no exception
    assert loaded.modified, "the change was not committed"
    assert store.failures == 1
    assert store.load(session.id)["n"] == 1


def test_open_never_skips_a_logout(own: Redkit, server: EmbeddedServer) -> None:
    store = own.sessions(on_error="open", deadline=DEADLINE, cooldown=0)
    stored = store.new()
    stored["k"] = 1
    store.save(stored)
    loaded = store.load(stored.id)
    server.stop()
    with pytest.raises(RedkitConnectionError):
        store.destroy(loaded)
    degraded = store.load(stored.id)
    assert degraded.degraded
    server.start()
    with pytest.raises(RedkitConnectionError, match="cannot log out"):
        store.destroy(degraded)  # its stored session is unknown: the logout cannot happen


def test_open_cooldown_serves_without_asking(own: Redkit, server: EmbeddedServer) -> None:
    store = own.sessions(on_error="open", deadline=DEADLINE, cooldown=30)
    server.stop()
    assert store.load(sops.new_id()).degraded
    server.start()
    assert own.ping()
    assert store.load(sops.new_id()).degraded, "cooling down: Redis is not asked"
    assert store.failures == 2


# --- tokens ----------------------------------------------------------------------------


async def test_tokens_closed_raise_and_open_let_a_revoked_token_through(
    make_kit: Callable[..., Either], server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    kit = make_kit(server.url, prefix="tfail")
    closed = await kit.tokens(deadline=DEADLINE, cooldown=0)
    opened = await kit.tokens(on_error="open", deadline=DEADLINE, cooldown=0)
    claims = _claims()
    await closed.revoke_all("alice")  # revokes every token issued until now
    assert await closed.is_revoked(claims)
    assert await opened.is_revoked(claims)
    with _Stalled(server), caplog.at_level(logging.WARNING, logger="redkit.sessions"):
        with pytest.raises(RedkitConnectionError):
            await closed.is_revoked(claims)
        start = time.monotonic()
        assert not await opened.is_revoked(claims), "failing open: the revoked token passes"
        assert time.monotonic() - start < DEADLINE + SLACK
        with pytest.raises(RedkitConnectionError):
            await opened.revoke_all("bob")  # revoking never fails open
    assert (closed.failures, opened.failures) == (1, 1)
    assert any("failing OPEN" in r.getMessage() for r in caplog.records)
    assert await opened.is_revoked(claims), "revoked again once Redis answers"
    cooling = await kit.tokens(on_error="open", deadline=DEADLINE, cooldown=30)
    server.stop()
    assert not await cooling.is_revoked(claims)  # fails, and starts the cooldown
    assert not await cooling.is_revoked(claims)  # answered without asking
    assert cooling.failures == 2


# --- data redkit did not write: DataError whatever the policy ---------------------------


async def test_keys_of_another_type_are_data_errors_whatever_the_policy(kit: Either) -> None:
    store, tokens = await kit.sessions(on_error="open"), await kit.tokens(on_error="open")
    session_id = sops.new_id()
    await kit.client.set(sops.session_key(kit.keys, session_id), "not a hash")
    with pytest.raises(DataError):
        await store.load(session_id)
    await kit.client.set(sops.token_group(kit.keys, "alice").key("before"), "yesterday")
    with pytest.raises(DataError):
        await tokens.is_revoked(_claims())
    assert (store.failures, tokens.failures) == (0, 0)


def test_a_session_not_written_by_redkit_is_a_data_error(rk: Redkit) -> None:
    store = rk.sessions(on_error="open")
    garbage, bad_meta = sops.new_id(), sops.new_id()
    rk.client.hset(sops.session_key(rk.keys, garbage), "m:a", "soon")
    far = str(int(time.time() * 1000) + 60_000)
    rk.client.hset(sops.session_key(rk.keys, bad_meta), mapping={"m:a": far, "m:c": "x"})
    for session_id in (garbage, bad_meta):
        with pytest.raises(DataError):
            store.load(session_id)
    assert store.failures == 0


def test_foreign_index_and_generation_are_data_errors(rk: Redkit) -> None:
    store = rk.sessions()
    index, gen = sops.index_keys(rk.keys, "mallory")
    rk.client.set(index, "not a sorted set")
    with pytest.raises(DataError):
        store.list_sessions("mallory")
    with pytest.raises(DataError):
        store.end_all("mallory")
    rk.client.delete(index)
    rk.client.set(gen, "many")
    with pytest.raises(DataError):
        store.end_all("mallory")
    session = store.new()
    session["k"] = 1
    with pytest.raises(DataError):
        store.login(session, "mallory")


def test_end_all_ends_the_rest_and_reports_a_foreign_key(rk: Redkit) -> None:
    store = rk.sessions()
    sessions = []
    for _ in range(2):
        session = store.new()
        session["k"] = 1
        store.login(session, "bob")
        sessions.append(session)
    rk.client.delete(sops.session_key(rk.keys, sessions[0].id or ""))
    rk.client.set(sops.session_key(rk.keys, sessions[0].id or ""), "squatter")
    with pytest.raises(DataError):
        store.end_all("bob")
    assert store.load(sessions[1].id).is_new, "the real session was ended"
    assert store.list_sessions("bob") == []


def test_foreign_token_keys_are_data_errors(rk: Redkit) -> None:
    tokens = rk.tokens(on_error="open")
    group = sops.token_group(rk.keys, "alice")
    rk.client.set(group.key("before"), "yesterday")
    with pytest.raises(DataError):
        tokens.is_revoked(_claims())
    with pytest.raises(DataError):
        tokens.revoke_all("alice")
    rk.client.delete(group.key("before"))
    rk.client.hset(group.key("before"), "x", "1")
    with pytest.raises(DataError):
        tokens.is_revoked(_claims())
    assert tokens.failures == 0
    family = tokens._family_key("bob", "fam1")
    rk.client.set(family, "not a hash")
    claims = {**_claims(sub="bob"), "fam": "fam1"}
    with pytest.raises(DataError):
        tokens.is_revoked(claims)
    with pytest.raises(DataError):
        tokens.rotate_refresh(claims, "j2", claims["exp"])  # type: ignore[arg-type]
    with pytest.raises(DataError):
        tokens.revoke_family("bob", "fam1")


# --- the ASGI middleware ---------------------------------------------------------------


def _asgi_app(
    url: str, server: EmbeddedServer, middleware_on_error: str = "closed", **store_options: Any
) -> Starlette:
    ark = AsyncRedkit(url, prefix="asgifail")

    async def write(request: Request) -> JSONResponse:
        request.session.update(request.query_params)
        return JSONResponse(dict(request.session))

    async def outage_then_write(request: Request) -> JSONResponse:
        server.stop()  # Redis goes away while the request runs
        request.session["late"] = "write"
        return JSONResponse({"app": "ran"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await ark.aclose()

    async def outage_then_logout(request: Request) -> JSONResponse:
        server.stop()
        request.session.clear()  # Starlette's logout idiom
        return JSONResponse({"logged": "out"})

    routes = [
        Route("/write", write),
        Route("/outage", outage_then_write),
        Route("/logout", outage_then_logout),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    store = ark.sessions(cooldown=0, **store_options)
    app.add_middleware(SessionMiddleware, store=store, on_error=middleware_on_error)
    return app


def test_a_logout_never_fails_open(server: EmbeddedServer) -> None:
    """Even with the middleware failing open, a logout that cannot be saved is a 503."""
    app = _asgi_app(server.url, server, middleware_on_error="open", deadline=DEADLINE)
    with TestClient(app, base_url="https://testserver") as client:
        assert client.get("/write?a=1").status_code == 200
        logout = client.get("/logout")
        assert logout.status_code == 503, "a 200 would tell the user a live session ended"


def test_asgi_answers_503_when_the_store_fails_closed(server: EmbeddedServer) -> None:
    app = _asgi_app(server.url, server, deadline=DEADLINE)
    with TestClient(app, base_url="https://testserver") as client:
        assert client.get("/write?a=1").status_code == 200
        failed = client.get("/outage")  # loads fine, cannot save: 503, not the app's 200
        assert failed.status_code == 503
        assert "set-cookie" not in failed.headers
        down = client.get("/write?a=2")  # cannot load
        assert down.status_code == 503
        assert down.headers["retry-after"] == "1"


def test_asgi_serves_a_fresh_session_when_the_store_fails_open(server: EmbeddedServer) -> None:
    app = _asgi_app(server.url, server, on_error="open", deadline=DEADLINE)
    with TestClient(app, base_url="https://testserver") as client:
        first = client.get("/write?a=1")
        cookie = first.cookies["session"]
        server.stop()
        served = client.get("/write?b=2")
        assert served.status_code == 200
        assert served.json() == {"b": "2"}, "a fresh session: the stored one is unreachable"
        assert "set-cookie" not in served.headers, "the user's cookie is kept"
        assert client.cookies["session"] == cookie


# --- a cluster with one master stalled ----------------------------------------------------


@pytest.fixture
def cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(masters=3) as cluster:
        yield cluster


def _stall_owner(cluster: EmbeddedCluster, rk: Redkit, key: str) -> _Stalled:
    """Stall the master that holds ``key`` (the others keep answering)."""
    port = rk.client.get_node_from_key(key).port
    (node,) = [node for node in cluster._nodes if node.port == port]
    return _Stalled(node)


# redis-py's asyncio cluster client can keep a stale node object, its connection open,
# after a timeout made it rebuild its slot map, and closing the client does not close it:
# the test drops its facade and collects it here, so that the ResourceWarnings of that
# connection come in this test (not its point), not in whichever test runs next
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_cluster_node_stalled_sessions_and_tokens_answer_by_policy(
    cluster: EmbeddedCluster, flavour: str
) -> None:
    facade = (Redkit if flavour == "sync" else AsyncRedkit)(cluster.url, prefix="cfail")
    try:
        await _stalled_node_scenario(cluster, Either(facade))
    finally:
        await close(Either(facade))
        del facade
        gc.collect()


async def _stalled_node_scenario(cluster: EmbeddedCluster, kit: Either) -> None:
    opened = await kit.sessions(on_error="open", deadline=DEADLINE, cooldown=0, check=False)
    closed = await kit.sessions(deadline=DEADLINE, cooldown=0, check=False)
    session = await opened.new()
    session["k"] = 1
    await opened.save(session)
    open_tokens = await kit.tokens(on_error="open", deadline=DEADLINE, cooldown=0, check=False)
    closed_tokens = await kit.tokens(deadline=DEADLINE, cooldown=0, check=False)
    claims = _claims()
    await closed_tokens.revoke_all("alice")
    before = sops.token_group(kit.keys, "alice").key("before")
    with Redkit(cluster.url, prefix="cfail") as finder:  # which node holds a key
        session_node = _stall_owner(cluster, finder, sops.session_key(kit.keys, session.id or ""))
        tokens_node = _stall_owner(cluster, finder, before)
    with session_node:
        start = time.monotonic()
        assert (await opened.load(session.id)).degraded
        # the cluster client may also refresh its slot map on a timeout: a looser bound
        assert time.monotonic() - start < DEADLINE + CLUSTER_SLACK
        with pytest.raises(RedkitConnectionError):
            await closed.load(session.id)
    with tokens_node:
        assert not await open_tokens.is_revoked(claims)
        with pytest.raises(RedkitConnectionError):
            await closed_tokens.is_revoked(claims)
    # the stalled node answers again (its first answers may still come late under load)
    await until(lambda: _loaded(opened, session.id, "k", 1), 20)
    await until(lambda: _revoked(open_tokens, claims), 20)


async def _revoked(tokens: Either, claims: dict[str, object]) -> bool:
    """Whether Redis says revoked; False while failing open, an error if it says not."""
    failures = tokens.failures
    if await tokens.is_revoked(claims):
        return True
    assert tokens.failures > failures, "Redis answered, and the token is not revoked"
    return False


async def _loaded(store: Either, session_id: str | None, key: str, value: object) -> bool:
    loaded = await store.load(session_id)
    return not loaded.degraded and loaded.get(key) == value


def test_jwt_dependency_follows_the_revokers_policy(server: EmbeddedServer) -> None:
    secret = "test-secret-that-is-long-enough-for-hs256"
    ark = AsyncRedkit(server.url, prefix="jwtfail")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await ark.aclose()

    app = FastAPI(lifespan=lifespan)
    closed = JWTBearer(ark.tokens(deadline=DEADLINE, cooldown=0), secret, algorithms=["HS256"])
    opened = JWTBearer(
        ark.tokens(on_error="open", deadline=DEADLINE, cooldown=0), secret, algorithms=["HS256"]
    )

    @app.get("/closed")
    async def by_closed(claims: dict = Depends(closed)) -> dict:  # noqa: B008 - FastAPI's idiom
        return {"user": claims["sub"]}

    @app.get("/open")
    async def by_open(claims: dict = Depends(opened)) -> dict:  # noqa: B008 - FastAPI's idiom
        return {"user": claims["sub"]}

    now = time.time()
    claims = {"sub": "alice", "jti": "j1", "iat": round(now, 3), "exp": int(now) + 300}
    headers = {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}
    with TestClient(app) as client:
        assert client.get("/closed", headers=headers).status_code == 200
        with _Stalled(server):
            assert client.get("/closed", headers=headers).status_code == 503
            assert client.get("/open", headers=headers).json() == {"user": "alice"}
