"""The ASGI idempotency middleware with Starlette's TestClient on every target."""

from __future__ import annotations

import itertools

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redkit import AsyncRedkit
from redkit.integrations.asgi.idempotency import IdempotencyMiddleware


def _app(ark: AsyncRedkit, *, required: bool = False) -> tuple[Starlette, list[int]]:
    charges: list[int] = []
    numbers = itertools.count(1)

    async def pay(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("fail"):
            return JSONResponse({"error": "down"}, status_code=503)
        charges.append(body["amount"])
        return JSONResponse({"payment": next(numbers)}, status_code=201, headers={"x-a": "1"})

    app = Starlette(routes=[Route("/pay", pay, methods=["POST"])])
    app.add_middleware(
        IdempotencyMiddleware,
        idempotency=ark.idempotency("http"),
        secret="s" * 32,
        required=required,
    )
    return app, charges


async def test_replay_mismatch_and_missing_key(ark: AsyncRedkit) -> None:
    app, charges = _app(ark, required=True)
    with TestClient(app) as client:
        first = client.post("/pay", json={"amount": 5}, headers={"Idempotency-Key": "k1"})
        again = client.post("/pay", json={"amount": 5}, headers={"Idempotency-Key": "k1"})
        other = client.post("/pay", json={"amount": 9}, headers={"Idempotency-Key": "k1"})
        missing = client.post("/pay", json={"amount": 5})
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-a"] == "1"
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert missing.status_code == 400
    assert charges == [5]


async def test_server_error_releases_the_key(ark: AsyncRedkit) -> None:
    app, _charges = _app(ark)
    with TestClient(app) as client:
        failed = client.post("/pay", json={"fail": 1}, headers={"Idempotency-Key": "k"})
        assert failed.status_code == 503
        assert "idempotent-replayed" not in failed.headers
        retry = client.post("/pay", json={"fail": 1}, headers={"Idempotency-Key": "k"})
        assert retry.status_code == 503
        assert "idempotent-replayed" not in retry.headers


def test_store_down_answers_503() -> None:
    ark = AsyncRedkit("redis://127.0.0.1:1/0", prefix="down")
    app, charges = _app(ark)
    app.user_middleware[0].kwargs["idempotency"] = ark.idempotency("http", deadline=0.2)
    with TestClient(app) as client:
        response = client.post("/pay", json={"amount": 1}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 503
    assert charges == []
