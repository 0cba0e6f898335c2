"""The Flask session interface through Flask's test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask, jsonify, request, session
from flask.testing import FlaskClient

from redkit import Redkit
from redkit.errors import ConfigError
from redkit.integrations.flask.sessions import RedkitSessionInterface

BASE = "https://localhost"


def _app(rk: Redkit) -> Flask:
    app = Flask(__name__)
    app.session_interface = RedkitSessionInterface(rk.sessions())

    @app.get("/write")
    def write() -> object:
        session.update(request.args.to_dict())
        return jsonify(dict(session))

    @app.get("/append")
    def append() -> object:
        session.setdefault("items", []).append(request.args["item"])
        return jsonify(dict(session))

    @app.get("/read")
    def read() -> object:
        return jsonify({"data": dict(session), "user": session.user})  # type: ignore[attr-defined]

    @app.get("/login/<user>")
    def login(user: str) -> object:
        session.login(user)  # type: ignore[attr-defined]
        return jsonify({})

    @app.get("/logout")
    def logout() -> object:
        session.destroy()  # type: ignore[attr-defined]
        return jsonify({})

    return app


@pytest.fixture
def client(rk: Redkit) -> Iterator[FlaskClient]:
    with _app(rk).test_client() as c:
        yield c


def _cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie("session", domain="localhost")
    return cookie.value if cookie else None


def test_session_round_trip_with_secure_cookie(client: FlaskClient) -> None:
    response = client.get("/write", base_url=BASE, query_string={"a": "1"})
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header
    assert "Secure" in header
    assert "SameSite=Lax" in header
    assert "a=1" not in header
    assert client.get("/read", base_url=BASE).json == {"data": {"a": "1"}, "user": None}


def test_in_place_mutation_is_saved(client: FlaskClient) -> None:
    client.get("/append", base_url=BASE, query_string={"item": "x"})
    client.get("/append", base_url=BASE, query_string={"item": "y"})
    assert client.get("/read", base_url=BASE).json["data"] == {"items": ["x", "y"]}


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


@pytest.mark.parametrize("cookie", ["", "tampered", "B" * 43])
def test_tampered_cookie_gets_a_fresh_session(client: FlaskClient, cookie: str) -> None:
    client.set_cookie("session", cookie, domain="localhost")
    response = client.get("/read", base_url=BASE)
    assert response.status_code == 200
    assert response.json == {"data": {}, "user": None}


def test_interface_needs_the_sync_store() -> None:
    with pytest.raises(ConfigError):
        RedkitSessionInterface(object())  # type: ignore[arg-type]
