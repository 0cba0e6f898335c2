"""One payment endpoint under idempotency keys, built on each framework (test helper).

``build(framework, rk, ark, **options)`` returns a :class:`Client` whose ``post`` answers
the same way whichever framework serves it, so the HTTP rules are tested once for all.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="redkit-tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
    )
    django.setup()

import flask
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import path
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from redkit import AsyncRedkit, Redkit
from redkit.idempotency import AsyncIdempotency, Idempotency
from redkit.integrations.asgi.fastapi_idempotency import Idempotent, IdempotentRoute
from redkit.integrations.asgi.idempotency import IdempotencyMiddleware
from redkit.integrations.django.idempotency import idempotent as django_idempotent
from redkit.integrations.flask.idempotency import idempotent as flask_idempotent

FRAMEWORKS = ["asgi", "fastapi", "flask", "django"]
urlpatterns: list[object] = []


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Shop:
    """The side effects: charges made, a gate that holds a slow payment, a crash switch."""

    charges: list[int] = field(default_factory=list)
    shipped: list[int] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    crash_after_charge: int = 0
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def charge(self, amount: int) -> int:
        self.charges.append(amount)
        return next(self.numbers)

    def ship(self, number: int) -> None:
        if self.crash_after_charge:
            self.crash_after_charge -= 1
            raise RuntimeError("crashed between the steps")
        self.shipped.append(number)

    def outcome(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """What the request asks for before any charge (None: go on and charge)."""
        if body.get("boom"):
            raise RuntimeError("boom")
        if body.get("fail"):
            return 503, {"error": "down"}
        return None


HEADERS = {"X-A": "1", "Set-Cookie": "s=1; Path=/"}


def _ok(number: int, amount: int) -> dict[str, Any]:
    return {"payment": number, "amount": amount}


class Client:
    """``post(path, body, key, user)`` on one framework's app."""

    def __init__(self, send: Callable[..., Answer]) -> None:
        self._send = send

    def post(
        self, path: str, body: dict[str, Any], key: str | None = None, user: str = ""
    ) -> Answer:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        if user:
            headers["X-User"] = user
        return self._send(path, json.dumps(body).encode(), headers)


def _answer(status: int, headers: Any, content: bytes) -> Answer:
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        body = json.loads(content)
    except ValueError:
        body = content.decode(errors="replace")
    return Answer(status, lowered, body)


# --- ASGI: a Starlette app under the middleware, and FastAPI with the dependency ------


async def _async_pay(shop: Shop, body: dict[str, Any], idem: AsyncIdempotency) -> Any:
    early = shop.outcome(body)
    if early is not None:
        return early
    if body.get("slow"):
        shop.entered.set()
        await asyncio.to_thread(shop.gate.wait, 30)
    if body.get("steps"):
        number = await idem.step("charge", lambda: shop.charge(body["amount"]))
        await idem.step("ship", lambda: shop.ship(number))
    else:
        number = shop.charge(body["amount"])
    return 201, _ok(number, body["amount"])


def _starlette(shop: Shop, idem: AsyncIdempotency, options: dict[str, Any]) -> Starlette:
    async def pay(request: Request) -> JSONResponse:
        status, data = await _async_pay(shop, await request.json(), idem)
        return JSONResponse(data, status_code=status, headers=HEADERS if status < 300 else None)

    routes = [Route("/pay", pay, methods=["POST"]), Route("/other", pay, methods=["POST"])]
    app = Starlette(routes=routes)
    app.add_middleware(
        IdempotencyMiddleware,
        idempotency=idem,
        user=lambda scope: dict(scope["headers"]).get(b"x-user", b"").decode(),
        **options,
    )
    return app


def _fastapi(shop: Shop, idem: AsyncIdempotency, options: dict[str, Any]) -> FastAPI:
    app = FastAPI()
    app.router.route_class = IdempotentRoute
    guard = Idempotent(idem, user=lambda request: request.headers.get("x-user"), **options)

    async def pay(request: Request, key: str | None = Depends(guard)) -> Response:
        status, data = await _async_pay(shop, await request.json(), idem)
        return JSONResponse(data, status_code=status, headers=HEADERS if status < 300 else None)

    app.post("/pay")(pay)
    app.post("/other")(pay)
    return app


# --- sync: Flask and Django decorators -------------------------------------------------


def _sync_pay(shop: Shop, body: dict[str, Any], idem: Idempotency) -> Any:
    early = shop.outcome(body)
    if early is not None:
        return early
    if body.get("slow"):
        shop.entered.set()
        shop.gate.wait(30)
    if body.get("steps"):
        number = idem.step("charge", lambda: shop.charge(body["amount"]))
        idem.step("ship", lambda: shop.ship(number))
    else:
        number = shop.charge(body["amount"])
    return 201, _ok(number, body["amount"])


def _flask(shop: Shop, idem: Idempotency, options: dict[str, Any]) -> flask.Flask:
    app = flask.Flask(__name__)

    @flask_idempotent(idem, user=lambda request: request.headers.get("x-user"), **options)
    def pay() -> Any:
        status, data = _sync_pay(shop, flask.request.get_json(), idem)
        return flask.jsonify(data), status, (HEADERS if status < 300 else {})

    app.add_url_rule("/pay", "pay", pay, methods=["POST"])
    app.add_url_rule("/other", "other", pay, methods=["POST"])
    return app


def _django_urls(shop: Shop, idem: Idempotency, options: dict[str, Any]) -> type:
    @django_idempotent(idem, user=lambda request: request.headers.get("x-user"), **options)
    def pay(request: HttpRequest) -> HttpResponse:
        status, data = _sync_pay(shop, json.loads(request.body), idem)
        response = JsonResponse(data, status=status)
        for name, value in (HEADERS if status < 300 else {}).items():
            response[name] = value
        return response

    return type("URLConf", (), {"urlpatterns": [path("pay", pay), path("other", pay)]})


@contextmanager
def build(
    framework: str,
    rk: Redkit,
    ark: AsyncRedkit,
    shop: Shop,
    name: str = "http",
    **options: Any,
) -> Iterator[Client]:
    """A client of ``framework``'s app, its idempotency named ``name`` on rk / ark."""
    idem_options = options.pop("idem_options", {})
    if framework in ("asgi", "fastapi"):
        idem = ark.idempotency(name, **idem_options)
        make = _starlette if framework == "asgi" else _fastapi
        with TestClient(make(shop, idem, options), raise_server_exceptions=False) as client:

            def send_asgi(path_: str, data: bytes, headers: dict[str, str]) -> Answer:
                response = client.post(path_, content=data, headers=headers)
                return _answer(response.status_code, response.headers, response.content)

            yield Client(send_asgi)
    elif framework == "flask":
        test_client = _flask(shop, rk.idempotency(name, **idem_options), options).test_client()

        def send_flask(path_: str, data: bytes, headers: dict[str, str]) -> Answer:
            response = test_client.post(path_, data=data, headers=headers)
            return _answer(response.status_code, response.headers, response.get_data())

        yield Client(send_flask)
    else:
        urls = _django_urls(shop, rk.idempotency(name, **idem_options), options)
        with override_settings(ROOT_URLCONF=urls):
            django_client = DjangoClient(raise_request_exception=False)

            def send_django(path_: str, data: bytes, headers: dict[str, str]) -> Answer:
                content_type = headers.pop("Content-Type")
                response = django_client.post(
                    path_, data=data, content_type=content_type, headers=headers
                )
                return _answer(response.status_code, response.headers, response.content)

            yield Client(send_django)
