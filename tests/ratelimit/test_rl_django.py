"""The Django middleware and decorator, through Django's test client."""

from __future__ import annotations

import django
import pytest
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

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

from redkit import Redkit
from redkit.errors import ConfigError
from redkit.integrations.django.ratelimit import (
    RateLimitMiddleware,
    header_key,
    ratelimit,
)

MIDDLEWARE = ["redkit.integrations.django.ratelimit.RateLimitMiddleware"]
urlpatterns: list[object] = []


def _ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def _urls(rk: Redkit) -> type:
    """A URLconf of this test's own (an object with urlpatterns; hashable, as Django needs)."""
    login = ratelimit(rk.rate_limiter("1/minute", name="login"), key=header_key("X-Api-Key"))
    patterns = [path("", _ok), path("health", _ok), path("login", login(_ok))]
    return type("URLConf", (), {"urlpatterns": patterns})


def _client(rk: Redkit, middleware: bool = True) -> tuple[Client, override_settings]:
    config = {
        "limiter": lambda: rk.rate_limiter("3/minute", name="global"),
        "trusted_proxies": ["10.0.0.0/8"],
        "exempt": ["/health"],
    }
    overrides = override_settings(
        ROOT_URLCONF=_urls(rk),
        MIDDLEWARE=MIDDLEWARE if middleware else [],
        REDKIT_RATELIMIT=config,
    )
    return Client(), overrides


def test_middleware_limit_and_headers(rk: Redkit) -> None:
    client, overrides = _client(rk)
    with overrides:
        xff = {"X-Forwarded-For": "198.51.100.1"}
        first = client.get("/", headers=xff, REMOTE_ADDR="10.0.0.2")
        assert first.status_code == 200
        assert first["RateLimit-Policy"] == '"3-per-60s";q=3;w=60'
        assert first["RateLimit"].startswith('"3-per-60s";r=2;t=')
        for _ in range(2):
            assert client.get("/", headers=xff, REMOTE_ADDR="10.0.0.2").status_code == 200
        rejected = client.get("/", headers=xff, REMOTE_ADDR="10.0.0.2")
        assert rejected.status_code == 429
        assert rejected["Content-Type"] == "application/problem+json"
        assert rejected.json()["status"] == 429
        assert 1 <= int(rejected["Retry-After"]) <= 60
        assert client.get("/health", headers=xff, REMOTE_ADDR="10.0.0.2").status_code == 200


def test_spoofed_forwarded_for_is_ignored(rk: Redkit) -> None:
    client, overrides = _client(rk)
    with overrides:
        codes = [
            client.get(
                "/", headers={"X-Forwarded-For": f"198.51.100.{i}"}, REMOTE_ADDR="203.0.113.5"
            ).status_code
            for i in range(4)
        ]
    assert codes == [200, 200, 200, 429]


def test_view_decorator(rk: Redkit) -> None:
    client, overrides = _client(rk, middleware=False)
    with overrides:
        ok = client.post("/login", headers={"X-Api-Key": "k"})
        assert ok.status_code == 200
        assert ok["RateLimit-Policy"] == '"1-per-60s";q=1;w=60'
        rejected = client.post("/login", headers={"X-Api-Key": "k"})
        assert rejected.status_code == 429
        assert rejected["Content-Type"] == "application/problem+json"
        assert client.post("/login", headers={"X-Api-Key": "k2"}).status_code == 200


def test_bad_configuration_is_a_config_error() -> None:
    with override_settings(REDKIT_RATELIMIT={"limiter": 42}), pytest.raises(ConfigError):
        RateLimitMiddleware(lambda request: HttpResponse())


def _refuse(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied("bad credentials")


def _login_client(
    rk: Redkit, middleware: bool, **options: object
) -> tuple[Client, override_settings]:
    login = ratelimit(
        rk.rate_limiter("2/minute", name=f"login403-{middleware}"),
        key=header_key("X-Api-Key"),
        **options,  # type: ignore[arg-type]
    )
    urls = type("URLConf", (), {"urlpatterns": [path("login", login(_refuse))]})
    config = {"limiter": lambda: rk.rate_limiter("100/minute", name="g403")}
    overrides = override_settings(
        ROOT_URLCONF=urls, MIDDLEWARE=MIDDLEWARE if middleware else [], REDKIT_RATELIMIT=config
    )
    return Client(), overrides


@pytest.mark.parametrize("middleware", [False, True], ids=["decorator", "with-middleware"])
def test_headers_survive_a_refused_view(rk: Redkit, middleware: bool) -> None:
    client, overrides = _login_client(rk, middleware)
    with overrides:
        first = client.post("/login", headers={"X-Api-Key": "k"})
        assert first.status_code == 403
        assert '"2-per-60s";r=1;t=' in first["RateLimit"]
        second = client.post("/login", headers={"X-Api-Key": "k"})
        assert '"2-per-60s";r=0;t=' in second["RateLimit"]
        assert client.post("/login", headers={"X-Api-Key": "k"}).status_code == 429


def test_a_missing_key_falls_back_to_the_client_ip(rk: Redkit) -> None:
    client, overrides = _login_client(rk, middleware=False)
    with overrides:
        codes = [client.post("/login", REMOTE_ADDR="198.51.100.80").status_code for _ in range(3)]
        assert codes == [403, 403, 429], "no header is no way around the limit"
        assert client.post("/login", REMOTE_ADDR="198.51.100.81").status_code == 403


def test_a_missing_key_can_be_rejected(rk: Redkit) -> None:
    client, overrides = _login_client(rk, middleware=False, fallback="reject")
    with overrides:
        response = client.post("/login")
        assert response.status_code == 400
        assert response["Content-Type"] == "application/problem+json"
        assert client.post("/login", headers={"X-Api-Key": "k"}).status_code == 403


def test_middleware_fallback_reject(rk: Redkit) -> None:
    config = {
        "limiter": lambda: rk.rate_limiter("3/minute", name="mwreject"),
        "key": header_key("X-Api-Key"),
        "fallback": "reject",
    }
    urls = type("URLConf", (), {"urlpatterns": [path("", _ok)]})
    with override_settings(ROOT_URLCONF=urls, MIDDLEWARE=MIDDLEWARE, REDKIT_RATELIMIT=config):
        response = Client().get("/")
        assert response.status_code == 400
        assert response["Content-Type"] == "application/problem+json"
        assert Client().get("/", headers={"X-Api-Key": "k"}).status_code == 200
