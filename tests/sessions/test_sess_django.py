"""The Django session engine against Django's session store API, method by method.

Modelled on how Django tests its own stores (tests/sessions_tests/tests.py: one mixin of
tests run against every store, sync and async), here against real servers, plus the
session middleware through Django's test client. Expiry is checked where it must hold:
in Redis (the session's PTTL, and whether its data still loads).
"""

from __future__ import annotations

import time
import types
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

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

from django.contrib.sessions.backends.base import UpdateError  # noqa: E402
from django.contrib.sessions.exceptions import SessionInterrupted  # noqa: E402
from django.contrib.sessions.management.commands import clearsessions  # noqa: E402
from django.contrib.sessions.middleware import SessionMiddleware  # noqa: E402
from django.core import management  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.test import Client, RequestFactory, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils import timezone  # noqa: E402

from redkit import Redkit  # noqa: E402
from redkit.errors import ConfigError  # noqa: E402
from redkit.integrations.django import sessions as engine  # noqa: E402
from redkit.integrations.django.sessions import SessionStore  # noqa: E402
from redkit.sessions import ops as sops  # noqa: E402

COOKIE_AGE = 1209600  # Django's default SESSION_COOKIE_AGE: two weeks


def write(request: HttpRequest) -> JsonResponse:
    for key, value in request.GET.items():
        request.session[key] = value
    return JsonResponse(dict(request.session))


def read(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dict(request.session))


def expiry(request: HttpRequest, seconds: int) -> JsonResponse:
    request.session["x"] = 1
    request.session.set_expiry(seconds)
    return JsonResponse({})


def login(request: HttpRequest, user: str) -> JsonResponse:
    # what django.contrib.auth.login does to the session
    request.session.cycle_key()
    request.session[engine.USER_KEY] = user
    return JsonResponse({})


def logout(request: HttpRequest) -> JsonResponse:
    request.session.flush()
    return JsonResponse({})


def key(request: HttpRequest) -> JsonResponse:
    if not request.session.session_key:
        request.session.save()  # the common idiom for "give me a session key"
    return JsonResponse({"key": request.session.session_key})


urls = types.ModuleType("redkit_test_sess_urls")
urls.urlpatterns = [  # type: ignore[attr-defined]
    path("write", write),
    path("read", read),
    path("expiry/<int:seconds>", expiry),
    path("login/<str:user>", login),
    path("logout", logout),
    path("key", key),
]


@pytest.fixture
def configured(target_url: str, prefix: str, rk: Redkit) -> Iterator[None]:
    before = set(engine._STORES)
    with override_settings(
        SESSION_ENGINE="redkit.integrations.django.sessions",
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        ROOT_URLCONF=urls,
        REDKIT_SESSIONS={"url": target_url, "prefix": prefix},
        ALLOWED_HOSTS=["testserver"],
    ):
        yield
    for cache_key in set(engine._STORES) - before:
        engine._STORES.pop(cache_key)._rk.close()


@pytest.fixture
def session(configured: None) -> Iterator[SessionStore]:
    store = SessionStore()
    yield store
    store.delete()


@pytest.fixture
def client(configured: None) -> Client:
    return Client()


def _key_of(session: SessionStore) -> str | None:
    return session.session_key  # type: ignore[no-any-return]


def _pttl(rk: Redkit, session_key: str | None) -> int:
    return int(rk.client.pttl(sops.session_key(rk.keys, session_key or "")))


# --- the mapping -------------------------------------------------------------------------


def test_new_session(session: SessionStore) -> None:
    assert session.modified is False
    assert session.accessed is False
    assert session.get("cat") is None


def test_store_pop_setdefault_update(session: SessionStore) -> None:
    session["cat"] = "dog"
    assert session.modified is True
    assert session.pop("cat") == "dog"
    assert session.pop("some key", "does not exist") == "does not exist"
    with pytest.raises(KeyError):
        session.pop("some key")
    assert session.setdefault("foo", "bar") == "bar"
    assert session.setdefault("foo", "baz") == "bar"
    session.update({"update key": 1})
    assert session.get("update key") == 1
    session.modified = session.accessed = False
    assert "foo" in session
    assert list(session.keys()) == ["foo", "update key"]
    assert session.accessed is True
    assert session.modified is False


def test_clear(session: SessionStore) -> None:
    session["x"] = 1
    session.save()
    session.clear()
    assert list(session.items()) == []
    assert session.modified is True
    session.save()
    assert dict(SessionStore(session.session_key).items()) == {}


# --- save / create / exists / delete ------------------------------------------------------


def test_save_of_an_empty_session_creates_a_key(session: SessionStore) -> None:
    session.save()
    assert session.session_key is not None
    assert session.exists(session.session_key) is True


def test_create_stores_an_empty_session(session: SessionStore) -> None:
    session.create()
    assert session.session_key is not None
    assert session.modified is True
    assert session.exists(session.session_key) is True
    session.save()
    assert session.exists(session.session_key) is True


def test_save_keeps_data_and_later_loads_see_it(session: SessionStore) -> None:
    session["a"] = "b"
    session.save()
    assert session["a"] == "b"
    assert SessionStore(session.session_key)["a"] == "b"


def test_delete(session: SessionStore) -> None:
    session.save()
    session.delete(session.session_key)
    assert session.exists(session.session_key) is False
    session.delete("not-a-redkit-key")  # nothing to do, no error
    session.delete()


def test_flush(session: SessionStore) -> None:
    session["foo"] = "bar"
    session.save()
    prev_key = session.session_key
    session.flush()
    assert session.exists(prev_key) is False
    assert session.session_key is None
    assert session.modified is True
    assert session.accessed is True


def test_cycle_key(session: SessionStore) -> None:
    session["a"], session["b"] = "c", "d"
    session.save()
    prev_key = session.session_key
    prev_data = list(session.items())
    session.cycle_key()
    assert session.exists(prev_key) is False
    assert session.session_key != prev_key
    assert list(session.items()) == prev_data
    assert dict(SessionStore(session.session_key).items()) == dict(prev_data)


def test_cycle_key_without_a_loaded_session(session: SessionStore) -> None:
    session["a"], session["b"] = "c", "d"
    session.save()
    prev_data = list(session.items())
    fresh = SessionStore(session.session_key)
    assert hasattr(fresh, "_session_cache") is False
    fresh.cycle_key()
    assert sorted(fresh.items()) == sorted(prev_data)


def test_cycle_key_of_a_new_session_gives_it_a_key(session: SessionStore) -> None:
    session["a"] = 1
    session.cycle_key()
    assert session.exists(session.session_key) is True


def test_unknown_or_malformed_keys_start_fresh(session: SessionStore) -> None:
    for bad in ("1", "someunknownkey", "A" * 43):
        store = SessionStore(bad)
        assert store.load() == {}
        assert _key_of(store) is None
        assert store.exists(bad) is False
        store.save()
        assert _key_of(store) not in (None, bad)
        store.delete()


def test_session_keys_follow_djangos_rules(session: SessionStore) -> None:
    session._session_key = ""
    assert _key_of(session) is None
    session._session_key = "1234567"
    assert _key_of(session) is None
    session._session_key = "12345678"  # set by server-side code: kept as the key ...
    assert _key_of(session) == "12345678"
    assert session.load() == {}  # ... but redkit never stored it: unknown, like a bad cookie
    with pytest.raises(AttributeError):
        session.session_key = "x" * 43


def test_save_does_not_resurrect_a_session_deleted_elsewhere(configured: None) -> None:
    s1 = SessionStore()
    s1["test_data"] = "value1"
    s1.save(must_create=True)
    SessionStore(s1.session_key).delete()
    s1["test_data"] = "value2"
    with pytest.raises(UpdateError):
        s1.save()
    assert s1.load() == {}


# --- expiry ------------------------------------------------------------------------------


def test_default_expiry_is_session_cookie_age(session: SessionStore, rk: Redkit) -> None:
    assert session.get_session_cookie_age() == COOKIE_AGE
    assert session.get_expiry_age() == COOKIE_AGE
    session.set_expiry(0)  # a browser-session cookie; the server keeps the default age
    assert session.get_expiry_age() == COOKIE_AGE
    session.save()
    assert COOKIE_AGE * 1000 - 10_000 < _pttl(rk, session.session_key) <= COOKIE_AGE * 1000


def test_session_cookie_age_is_honoured(configured: None, rk: Redkit) -> None:
    with override_settings(SESSION_COOKIE_AGE=3600):
        session = SessionStore()
        assert session.get_session_cookie_age() == 3600
        assert session.get_expiry_age() == 3600
        session["a"] = 1
        session.save()
        assert 3_590_000 < _pttl(rk, session.session_key) <= 3_600_000


@pytest.mark.parametrize("seconds", [5, 3600, 30 * 24 * 3600 // 4])
def test_set_expiry_seconds_sets_the_ttl(session: SessionStore, rk: Redkit, seconds: int) -> None:
    modification = timezone.now()
    session.set_expiry(seconds)
    assert session.get_expiry_age(modification=modification) == seconds
    assert session.get_expiry_date(modification=modification) == modification + timedelta(
        seconds=seconds
    )
    session["a"] = 1
    session.save()
    assert seconds * 1000 - 2_000 < _pttl(rk, session.session_key) <= seconds * 1000


def test_set_expiry_datetime_and_timedelta(session: SessionStore, rk: Redkit) -> None:
    modification = timezone.now()
    session.set_expiry(modification + timedelta(seconds=100))
    assert session.get_expiry_date(modification=modification) == modification + timedelta(
        seconds=100
    )
    assert session.get_expiry_age(modification=modification) == 100
    session.save()
    assert 95_000 < _pttl(rk, session.session_key) <= 100_000
    session.set_expiry(timedelta(seconds=50))
    session.save()
    assert 45_000 < _pttl(rk, session.session_key) <= 50_000


def test_set_expiry_none_goes_back_to_the_default(session: SessionStore, rk: Redkit) -> None:
    session.set_expiry(None)
    session.set_expiry(10)
    session.save()
    assert _pttl(rk, session.session_key) <= 10_000
    session.set_expiry(None)
    # SESSION_COOKIE_AGE, less the seconds since creation (the absolute timeout)
    assert COOKIE_AGE - 10 < session.get_expiry_age() <= COOKIE_AGE
    session.save()
    assert _pttl(rk, session.session_key) > COOKIE_AGE * 1000 - 10_000


@pytest.mark.parametrize("expiry", [-10, timedelta(seconds=-10)])
def test_expiry_in_the_past_ends_the_session(
    session: SessionStore, rk: Redkit, expiry: Any
) -> None:
    session["foo"] = "bar"
    session.save()
    stored_key = session.session_key
    session.set_expiry(expiry)
    session.save()
    assert "foo" not in SessionStore(stored_key)
    assert "foo" not in SessionStore(session.session_key)
    assert session.exists(stored_key) is False


def test_an_expiry_holds_on_the_server_between_saves(session: SessionStore, rk: Redkit) -> None:
    session["a"] = 1
    session.set_expiry(5)
    session.save()
    loaded = SessionStore(session.session_key)
    assert loaded["a"] == 1  # a read does not extend the session past its expiry
    assert _pttl(rk, session.session_key) <= 5_000


def test_absolute_timeout_caps_expiry_and_cookie(configured: None, rk: Redkit) -> None:
    with override_settings(REDKIT_SESSIONS={**settings.REDKIT_SESSIONS, "absolute_timeout": 3600}):
        session = SessionStore()
        session.set_expiry(30 * 24 * 3600)
        assert 3590 < session.get_expiry_age() <= 3600  # what the cookie will say
        session.save()
        assert 3_590_000 < _pttl(rk, session.session_key) <= 3_600_000
        session.delete()


def test_a_login_starts_a_new_absolute_timeout_for_the_cookie(configured: None) -> None:
    with override_settings(REDKIT_SESSIONS={**settings.REDKIT_SESSIONS, "absolute_timeout": 3600}):
        session = SessionStore()
        session["cart"] = 1
        session.save()
        session = SessionStore(session.session_key)
        session["cart"] = 2
        time.sleep(1.2)  # the anonymous session ages
        assert session.get_expiry_age() < 3600
        session[engine.USER_KEY] = "42"  # the save will log in: a new session, a new deadline
        assert session.get_expiry_age() == 3600
        session.save()
        assert session.get_expiry_age() >= 3599  # counted from the login
        session.delete()


def test_get_expire_at_browser_close(session: SessionStore) -> None:
    with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=False):
        session.set_expiry(10)
        assert session.get_expire_at_browser_close() is False
        session.set_expiry(0)
        assert session.get_expire_at_browser_close() is True
        session.set_expiry(None)
        assert session.get_expire_at_browser_close() is False
    with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=True):
        session.set_expiry(None)
        assert session.get_expire_at_browser_close() is True


def test_clear_expired_and_the_clearsessions_command(configured: None) -> None:
    SessionStore.clear_expired()  # Redis expires sessions itself: nothing to do
    management.call_command(clearsessions.Command())


def test_unknown_settings_are_refused(configured: None) -> None:
    with override_settings(REDKIT_SESSIONS={"bogus": 1}), pytest.raises(ConfigError, match="bogus"):
        SessionStore().save()


# --- async -------------------------------------------------------------------------------


async def test_async_api(configured: None, rk: Redkit) -> None:
    session = SessionStore()
    assert await session.aget("cat") is None
    await session.aset("cat", "dog")
    assert session.modified is True
    assert await session.apop("cat") == "dog"
    assert await session.asetdefault("foo", "bar") == "bar"
    await session.aupdate({"update key": 1})
    assert await session.ahas_key("foo") is True
    assert sorted(await session.akeys()) == ["foo", "update key"]
    await session.asave()
    key1 = session.session_key
    assert await session.aexists(key1) is True
    await session.acycle_key()
    assert await session.aexists(key1) is False
    assert await session.aget("foo") == "bar"
    await session.aset_expiry(20)
    assert await session.aget_expiry_age() == 20
    await session.asave()
    assert 15_000 < _pttl(rk, session.session_key) <= 20_000
    key2 = session.session_key
    await session.aflush()
    assert await session.aexists(key2) is False
    assert session.session_key is None
    await SessionStore.aclear_expired()


async def test_async_create_load_delete(configured: None) -> None:
    session = SessionStore()
    await session.acreate()
    assert await session.aexists(session.session_key) is True
    other = SessionStore(session.session_key)
    assert await other.aload() == {}
    await other.adelete()
    assert await session.aexists(session.session_key) is False
    unknown = SessionStore("someunknownkey")
    await unknown.aload()
    assert unknown.session_key is None


async def test_async_save_does_not_resurrect(configured: None) -> None:
    s1 = SessionStore()
    await s1.aset("test_data", "value1")
    await s1.asave(must_create=True)
    await SessionStore(s1.session_key).adelete()
    await s1.aset("test_data", "value2")
    with pytest.raises(UpdateError):
        await s1.asave()
    assert await s1.aload() == {}


async def test_async_expiry_in_the_past(configured: None) -> None:
    session = SessionStore()
    await session.aset("foo", "bar")
    await session.aset_expiry(-timedelta(seconds=10))
    await session.asave()
    assert await SessionStore(session.session_key).ahas_key("foo") is False


# --- the middleware --------------------------------------------------------------------------


def test_session_round_trip(client: Client) -> None:
    response = client.get("/write", {"a": "1"})
    assert len(response.cookies["sessionid"].value) == 43
    assert response["Vary"] == "Cookie"
    assert client.get("/read").json() == {"a": "1"}


def test_request_session_save_idiom_gives_a_key(client: Client) -> None:
    created = client.get("/key").json()["key"]
    assert created is not None
    assert client.cookies["sessionid"].value == created
    assert client.get("/key").json()["key"] == created


def test_cookie_max_age_follows_set_expiry(client: Client, rk: Redkit) -> None:
    response = client.get("/expiry/120")
    cookie = response.cookies["sessionid"]
    assert cookie["max-age"] == 120
    assert 115_000 < _pttl(rk, cookie.value) <= 120_000
    response = client.get("/expiry/0")
    assert response.cookies["sessionid"]["max-age"] == ""  # a browser-session cookie


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


def test_logout_deletes_the_cookie_and_tampered_cookies_are_ignored(client: Client) -> None:
    client.get("/login/9")
    stolen = client.cookies["sessionid"].value
    response = client.get("/logout")
    assert response.cookies["sessionid"]["max-age"] == 0
    client.cookies["sessionid"] = stolen
    assert client.get("/read").json() == {}
    client.cookies["sessionid"] = "../../not-a-session"
    response = client.get("/read")
    assert response.status_code == 200
    assert response.json() == {}


def test_middleware_does_not_save_on_5xx_and_interrupts_a_deleted_session(
    configured: None,
) -> None:
    def failing(request: HttpRequest) -> HttpResponse:
        request.session["hello"] = "world"
        return HttpResponse("boom", status=500)

    request = RequestFactory().get("/")
    SessionMiddleware(failing)(request)
    assert "hello" not in request.session.load()

    def deleting(request: HttpRequest) -> HttpResponse:
        request.session = SessionStore()
        request.session.save(must_create=True)
        request.session["x"] = 1
        SessionStore(request.session.session_key).delete()
        return HttpResponse()

    with pytest.raises(SessionInterrupted):
        SessionMiddleware(deleting)(RequestFactory().get("/"))
