"""The Flask extension and decorator, through Flask's test client."""

from __future__ import annotations

import flask

from redkit import Redkit
from redkit.embedded import EmbeddedServer
from redkit.integrations.flask.ratelimit import FlaskRateLimit, header_key, ip_key


def _app(rk: Redkit) -> flask.Flask:
    app = flask.Flask(__name__)
    limits = FlaskRateLimit(
        app,
        rk.rate_limiter("3/minute", name="global"),
        key=ip_key(trusted_proxies=["10.0.0.0/8"]),
        exempt=["/health"],
    )

    @app.get("/")
    def index() -> str:
        return "ok"

    @app.get("/health")
    def health() -> str:
        return "ok"

    @app.get("/metrics")
    @limits.exempt
    def metrics() -> str:
        return "ok"

    @app.post("/login")
    @limits.limit(rk.rate_limiter("1/minute", name="login"), key=header_key("X-Api-Key"))
    def login() -> str:
        return "in"

    return app


def test_global_limit_and_headers(rk: Redkit) -> None:
    client = _app(rk).test_client()
    env = {"REMOTE_ADDR": "10.0.0.2"}
    xff = {"X-Forwarded-For": "198.51.100.1"}
    first = client.get("/", headers=xff, environ_base=env)
    assert first.status_code == 200
    assert first.headers["RateLimit-Policy"] == '"3-per-60s";q=3;w=60'
    assert first.headers["RateLimit"].startswith('"3-per-60s";r=2;t=')
    for _ in range(2):
        assert client.get("/", headers=xff, environ_base=env).status_code == 200
    rejected = client.get("/", headers=xff, environ_base=env)
    assert rejected.status_code == 429
    assert rejected.content_type == "application/problem+json"
    assert rejected.json["status"] == 429  # type: ignore[index]
    assert 1 <= int(rejected.headers["Retry-After"]) <= 60
    for path in ("/health", "/metrics"):
        assert client.get(path, headers=xff, environ_base=env).status_code == 200


def test_spoofed_forwarded_for_is_ignored(rk: Redkit) -> None:
    client = _app(rk).test_client()
    env = {"REMOTE_ADDR": "203.0.113.50"}
    codes = [
        client.get(
            "/", headers={"X-Forwarded-For": f"198.51.100.{i}"}, environ_base=env
        ).status_code
        for i in range(4)
    ]
    assert codes == [200, 200, 200, 429]


def test_per_view_limit(rk: Redkit) -> None:
    client = _app(rk).test_client()
    env = {"REMOTE_ADDR": "203.0.113.60"}
    ok = client.post("/login", headers={"X-Api-Key": "k"}, environ_base=env)
    assert ok.status_code == 200
    assert ok.headers.getlist("RateLimit-Policy") == ['"3-per-60s";q=3;w=60, "1-per-60s";q=1;w=60']
    rejected = client.post("/login", headers={"X-Api-Key": "k"}, environ_base=env)
    assert rejected.status_code == 429
    assert rejected.content_type == "application/problem+json"
    assert (
        client.post("/login", headers={"X-Api-Key": "other"}, environ_base=env).status_code == 200
    )


def test_fail_closed_answers_503() -> None:
    with EmbeddedServer() as server, Redkit(server.url, prefix="flask503") as rk:
        client = _app(rk).test_client()
        server.stop()
        response = client.get("/")
        assert response.status_code == 503
        assert response.content_type == "application/problem+json"


def _login_app(rk: Redkit, **options: object) -> flask.Flask:
    """A login view that refuses every attempt with 401, behind a per-view limit."""
    app = flask.Flask(__name__)
    limits = FlaskRateLimit(app)

    @app.post("/login")
    @limits.limit(
        rk.rate_limiter("2/minute", name="login401"),
        key=header_key("X-Api-Key"),
        **options,  # type: ignore[arg-type]
    )
    def login() -> str:
        flask.abort(401)

    return app


def test_headers_survive_an_abort(rk: Redkit) -> None:
    client = _login_app(rk).test_client()
    first = client.post("/login", headers={"X-Api-Key": "k"})
    assert first.status_code == 401
    assert first.headers["RateLimit-Policy"] == '"2-per-60s";q=2;w=60'
    assert first.headers["RateLimit"].startswith('"2-per-60s";r=1;t=')
    second = client.post("/login", headers={"X-Api-Key": "k"})
    assert second.headers["RateLimit"].startswith('"2-per-60s";r=0;t=')
    assert client.post("/login", headers={"X-Api-Key": "k"}).status_code == 429


def test_a_missing_key_falls_back_to_the_client_ip(rk: Redkit) -> None:
    client = _login_app(rk).test_client()
    env = {"REMOTE_ADDR": "198.51.100.80"}
    codes = [client.post("/login", environ_base=env).status_code for _ in range(3)]
    assert codes == [401, 401, 429], "no header is no way around the limit"
    other = client.post("/login", environ_base={"REMOTE_ADDR": "198.51.100.81"})
    assert other.status_code == 401


def test_a_missing_key_can_be_rejected(rk: Redkit) -> None:
    client = _login_app(rk, fallback="reject").test_client()
    response = client.post("/login")
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert client.post("/login", headers={"X-Api-Key": "k"}).status_code == 401
