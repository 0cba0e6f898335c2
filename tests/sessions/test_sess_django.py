"""The Django session engine through Django's test client (settings configured here)."""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest

django = pytest.importorskip("django", reason="the django extra is not installed")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        SECRET_KEY="redkit-tests",
        INSTALLED_APPS=[],
        ALLOWED_HOSTS=["testserver"],
        USE_TZ=True,
    )
    django.setup()

from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from redkit import Redkit  # noqa: E402
from redkit.integrations.django import sessions as engine  # noqa: E402


def write(request: HttpRequest) -> JsonResponse:
    for key, value in request.GET.items():
        request.session[key] = value
    return JsonResponse(dict(request.session))


def read(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dict(request.session))


def login(request: HttpRequest, user: str) -> JsonResponse:
    # what django.contrib.auth.login does to the session
    request.session.cycle_key()
    request.session[engine.USER_KEY] = user
    return JsonResponse({})


def logout(request: HttpRequest) -> JsonResponse:
    request.session.flush()
    return JsonResponse({})


urls = types.ModuleType("redkit_test_sess_urls")
urls.urlpatterns = [  # type: ignore[attr-defined]
    path("write", write),
    path("read", read),
    path("login/<str:user>", login),
    path("logout", logout),
]


@pytest.fixture
def client(target_url: str, prefix: str, rk: Redkit) -> Iterator[Client]:
    options = {"url": target_url, "prefix": prefix}
    with override_settings(
        SESSION_ENGINE="redkit.integrations.django.sessions",
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        ROOT_URLCONF=urls,
        REDKIT_SESSIONS=options,
        ALLOWED_HOSTS=["testserver"],
    ):
        yield Client()
    store = engine._STORES.pop(tuple(sorted(options.items())), None)
    if store is not None:
        store._rk.close()


def test_session_round_trip(client: Client) -> None:
    response = client.get("/write", {"a": "1"})
    assert len(response.cookies["sessionid"].value) == 43
    assert client.get("/read").json() == {"a": "1"}


def test_login_rotates_and_indexes_the_user(client: Client) -> None:
    client.get("/write", {"cart": "2"})
    before = client.cookies["sessionid"].value
    client.get("/login/42")
    after = client.cookies["sessionid"].value
    assert after != before
    assert client.get("/read").json() == {"cart": "2", engine.USER_KEY: "42"}
    assert len(engine.user_sessions(42)) == 1
    client.cookies["sessionid"] = before
    assert client.get("/read").json() == {}


def test_end_all_sessions_logs_the_user_out(client: Client) -> None:
    client.get("/login/7")
    other = Client()
    other.get("/login/7")
    assert engine.end_all_sessions(7) == 2
    assert client.get("/read").json() == {}
    assert other.get("/read").json() == {}


def test_logout_and_tampered_cookies(client: Client) -> None:
    client.get("/login/9")
    stolen = client.cookies["sessionid"].value
    client.get("/logout")
    client.cookies["sessionid"] = stolen
    assert client.get("/read").json() == {}
    client.cookies["sessionid"] = "../../not-a-session"
    response = client.get("/read")
    assert response.status_code == 200
    assert response.json() == {}
