"""The Flask session interface against Flask's session contract, through Flask's test client.

Modelled on Flask's own session tests (tests/test_basic.py): the ``SESSION_COOKIE_*``
settings, permanent sessions and ``PERMANENT_SESSION_LIFETIME``,
``SESSION_REFRESH_EACH_REQUEST``, ``modified`` / ``accessed`` and ``Vary: Cookie``,
emptied sessions, special value types, flashing; plus what redkit adds (server-side
expiry, login rotation, logout).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask, flash, get_flashed_messages, jsonify, request, session
from flask.testing import FlaskClient
from markupsafe import Markup
from werkzeug.http import parse_date

from redkit import Redkit
from redkit.errors import ConfigError
from redkit.integrations.flask.sessions import RedkitSessionInterface
from redkit.sessions import ops as sops

BASE = "https://localhost"


def _app(rk: Redkit) -> Flask:
    app = Flask(__name__)
    app.testing = True
    app.session_interface = RedkitSessionInterface(rk.sessions(idle_timeout=3600))

    @app.get("/write")
    def write() -> Any:
        session.update(request.args.to_dict())
        return jsonify(dict(session))

    @app.get("/append")
    def append() -> Any:
        session.setdefault("items", []).append(request.args["item"])
        return jsonify(dict(session))

    @app.get("/read")
    def read() -> Any:
        return jsonify({"data": dict(session), "user": session.user})  # type: ignore[attr-defined]

    @app.get("/login/<user>")
    def login(user: str) -> Any:
        session.login(user)  # type: ignore[attr-defined]
        return jsonify({})

    @app.get("/logout")
    def logout() -> Any:
        session.destroy()  # type: ignore[attr-defined]
        return jsonify({})

    @app.get("/clear")
    def clear() -> Any:
        session.clear()
        return ""

    @app.get("/permanent/<int:on>")
    def permanent(on: int) -> Any:
        session["test"] = 42
        session.permanent = bool(on)
        return ""

    @app.get("/bump")
    def bump() -> Any:
        value = session["foo"] = session.get("foo", 0) + 1
        session.permanent = request.args.get("permanent") == "1"
        return str(value)

    @app.get("/peek")
    def peek() -> Any:
        return str(session.get("foo", 0))

    @app.get("/nothing")
    def nothing() -> Any:
        return ""

    return app


@pytest.fixture
def app(rk: Redkit) -> Flask:
    return _app(rk)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as c:
        yield c


def _cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie("session", domain="localhost")
    return cookie.value if cookie else None


def _modified() -> bool:
    return bool(session.modified)


def _pttl(rk: Redkit, session_id: str | None) -> int:
    return int(rk.client.pttl(sops.session_key(rk.keys, session_id or "")))


# --- the cookie follows Flask's settings -------------------------------------------------


def test_session_round_trip(client: FlaskClient) -> None:
    response = client.get("/write", query_string={"a": "1"})
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header
    assert "a=1" not in header
    assert response.headers["Vary"] == "Cookie"
    assert client.get("/read").json == {"data": {"a": "1"}, "user": None}


def test_session_cookie_settings(app: Flask, client: FlaskClient) -> None:
    app.config.update(
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_DOMAIN=".example.com",
        SESSION_COOKIE_PATH="/",
        APPLICATION_ROOT="/test",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PARTITIONED=True,
        SESSION_COOKIE_HTTPONLY=False,  # redkit's cookie is HttpOnly anyway
    )
    cookie = client.get("/write?a=1", "https://www.example.com/").headers["Set-Cookie"].lower()
    assert cookie.startswith("sid=")
    assert "domain=example.com" in cookie
    assert "path=/;" in cookie or cookie.endswith("path=/")
    assert "secure" in cookie
    assert "samesite=lax" in cookie
    assert "partitioned" in cookie
    assert "httponly" in cookie


def test_session_cookie_path_falls_back_to_application_root(
    app: Flask, client: FlaskClient
) -> None:
    app.config.update(APPLICATION_ROOT="/bar")
    assert "path=/bar" in client.get("/write?a=1").headers["Set-Cookie"].lower()


def test_samesite_attribute(app: Flask, client: FlaskClient) -> None:
    app.config.update(SESSION_COOKIE_SAMESITE="invalid")
    with pytest.raises(ValueError):
        client.get("/write?a=1")
    app.config.update(SESSION_COOKIE_SAMESITE=None)
    assert "samesite" not in client.get("/write?a=2").headers["Set-Cookie"].lower()
    app.config.update(SESSION_COOKIE_SAMESITE="Strict")
    assert "samesite=strict" in client.get("/write?a=3").headers["Set-Cookie"].lower()


# --- permanent sessions and their lifetime -------------------------------------------------


def test_permanent_session_expiration(app: Flask, client: FlaskClient, rk: Redkit) -> None:
    app.permanent_session_lifetime = timedelta(seconds=600)
    response = client.get("/permanent/1")
    match = re.search(r"(?i)\bexpires=([^;]+)", response.headers["Set-Cookie"])
    assert match is not None
    expires = parse_date(match.group(1))
    assert expires is not None
    expected = datetime.now(timezone.utc) + timedelta(seconds=600)
    assert abs((expires - expected).total_seconds()) < 5
    assert 590_000 < _pttl(rk, _cookie(client)) <= 600_000  # Redis agrees with the cookie
    response = client.get("/permanent/0")
    assert "expires" not in response.headers["Set-Cookie"].lower()


def test_a_new_session_ends_after_the_lifetime_on_the_server(
    app: Flask, client: FlaskClient, rk: Redkit
) -> None:
    app.permanent_session_lifetime = timedelta(seconds=120)
    client.get("/write?a=1")
    assert 110_000 < _pttl(rk, _cookie(client)) <= 120_000


@pytest.mark.parametrize(
    ("permanent", "refresh", "expect_header"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_session_cookie_setting(
    app: Flask, permanent: bool, refresh: bool, expect_header: bool
) -> None:
    app.config["SESSION_REFRESH_EACH_REQUEST"] = refresh
    flag = "1" if permanent else "0"
    with app.test_client() as c:
        assert c.get(f"/bump?permanent={flag}").data == b"1"
        assert c.get(f"/bump?permanent={flag}").data == b"2"
        response = c.get("/peek")
        assert ("Set-Cookie" in response.headers) is expect_header
        assert response.data == b"2"


def test_refresh_each_request_extends_a_permanent_session_on_the_server(
    app: Flask, client: FlaskClient, rk: Redkit
) -> None:
    app.permanent_session_lifetime = timedelta(seconds=600)
    client.get("/permanent/1")
    app.permanent_session_lifetime = timedelta(seconds=900)
    client.get("/peek")
    assert 890_000 < _pttl(rk, _cookie(client)) <= 900_000


def test_a_write_restarts_the_lifetime_on_the_server(
    app: Flask, client: FlaskClient, rk: Redkit
) -> None:
    app.permanent_session_lifetime = timedelta(seconds=600)
    client.get("/write?a=1")
    app.permanent_session_lifetime = timedelta(seconds=900)
    client.get("/peek")  # a read of a session that is not permanent: no change
    assert _pttl(rk, _cookie(client)) <= 600_000
    client.get("/write?a=2")
    assert 890_000 < _pttl(rk, _cookie(client)) <= 900_000


# --- modified / accessed / Vary ------------------------------------------------------------


def test_vary_cookie(app: Flask, client: FlaskClient) -> None:
    @app.get("/getitem")
    def getitem() -> Any:
        return str(session.get("test"))

    @app.get("/vary-header-set")
    def vary_header_set() -> Any:
        response = app.make_response("")
        response.vary.update(("Accept-Encoding", "Accept-Language"))
        session["test"] = "test"
        return response

    for path in ("/write?test=1", "/getitem", "/peek"):
        response = client.get(path)
        assert response.headers.get_all("Vary") == ["Cookie"], path
    response = client.get("/vary-header-set")
    assert response.headers["Vary"] == "Accept-Encoding, Accept-Language, Cookie"
    assert "Vary" not in client.get("/nothing").headers


def test_modified_and_accessed_mean_what_they_mean_to_flask(app: Flask) -> None:
    with app.test_request_context():
        assert _modified() is False
        assert session.accessed
        session.get("missing")
        assert _modified() is False  # a read is not a change
        flash("Zap")
        assert _modified() is True
        session.modified = False
        flash("Zip")
        assert _modified() is True
        assert list(get_flashed_messages()) == ["Zap", "Zip"]
        assert session.new


def test_flashes_survive_a_redirect(app: Flask, client: FlaskClient) -> None:
    @app.get("/flash")
    def do_flash() -> Any:
        flash("Hello World")
        flash(Markup("<em>Testing</em>"), "warning")
        return ""

    @app.get("/messages")
    def messages() -> Any:
        pairs: list[Any] = get_flashed_messages(with_categories=True)
        return jsonify([[category, str(message)] for category, message in pairs])

    client.get("/flash")
    assert client.get("/messages").json == [
        ["message", "Hello World"],
        ["warning", "<em>Testing</em>"],
    ]
    assert client.get("/messages").json == []


def test_in_place_mutation_is_saved(client: FlaskClient) -> None:
    client.get("/append", query_string={"item": "x"})
    client.get("/append", query_string={"item": "y"})
    assert client.get("/read").json == {"data": {"items": ["x", "y"]}, "user": None}


def test_session_stored_last(app: Flask, client: FlaskClient) -> None:
    @app.after_request
    def modify_session(response: object) -> Any:
        session["foo"] = 42
        return response

    assert client.get("/peek").data == b"0"
    assert client.get("/peek").data == b"42"


def test_special_value_types_round_trip(app: Flask, client: FlaskClient) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    the_uuid = uuid.uuid4()

    @app.get("/special")
    def special() -> Any:
        session["t"] = (1, 2, 3)
        session["b"] = b"\xff"
        session["m"] = Markup("<html>")
        session["u"] = the_uuid
        session["d"] = now
        session["t_tag"] = {" t": "not-a-tuple"}
        return "", 204

    client.get("/special")
    client.get("/nothing")  # the client keeps this request's context: its session loaded
    assert session["t"] == (1, 2, 3)
    assert session["b"] == b"\xff"
    assert type(session["m"]) is Markup
    assert session["u"] == the_uuid
    assert session["d"] == now
    assert session["t_tag"] == {" t": "not-a-tuple"}


# --- empty sessions ------------------------------------------------------------------------


def test_an_emptied_session_is_deleted_with_its_cookie(client: FlaskClient, rk: Redkit) -> None:
    client.get("/write?a=1")
    stored = _cookie(client)
    response = client.get("/clear")
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert response.headers["Vary"] == "Cookie"
    assert _pttl(rk, stored) == -2  # gone from Redis too
    assert _cookie(client) is None


def test_an_empty_session_is_not_stored_and_sets_no_cookie(client: FlaskClient, rk: Redkit) -> None:
    response = client.get("/clear")
    assert "Set-Cookie" not in response.headers
    assert client.get("/read").json == {"data": {}, "user": None}
    assert "Set-Cookie" not in client.get("/read").headers


# --- what redkit adds ----------------------------------------------------------------------


def test_login_rotates_and_logout_kills(client: FlaskClient) -> None:
    client.get("/write", base_url=BASE, query_string={"a": "1"})
    before = _cookie(client)
    client.get("/login/alice", base_url=BASE)
    after = _cookie(client)
    assert after is not None
    assert after != before
    assert client.get("/read", base_url=BASE).json == {"data": {"a": "1"}, "user": "alice"}
    client.set_cookie("session", before or "", domain="localhost")
    assert client.get("/read", base_url=BASE).json == {"data": {}, "user": None}
    client.set_cookie("session", after, domain="localhost")
    response = client.get("/logout", base_url=BASE)
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    client.set_cookie("session", after, domain="localhost")
    assert client.get("/read", base_url=BASE).json == {"data": {}, "user": None}


def test_login_of_an_empty_session_is_stored(client: FlaskClient) -> None:
    client.get("/login/bob")
    assert client.get("/read").json == {"data": {}, "user": "bob"}


@pytest.mark.parametrize("cookie", ["", "tampered", "B" * 43])
def test_tampered_cookie_gets_a_fresh_session(client: FlaskClient, cookie: str) -> None:
    client.set_cookie("session", cookie, domain="localhost")
    response = client.get("/read")
    assert response.status_code == 200
    assert response.json == {"data": {}, "user": None}


def test_interface_needs_the_sync_store() -> None:
    with pytest.raises(ConfigError):
        RedkitSessionInterface(object())  # type: ignore[arg-type]
