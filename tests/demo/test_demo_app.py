"""The demo shop through its HTTP API (Starlette's TestClient), on every target."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from redkit import AsyncRedkit
from redkit.demo.app import create_app
from redkit.demo.auth import short_agent
from redkit.demo.limits import LOGIN_POLICY

LOGIN = {"username": "alice", "password": "redkit"}


@pytest.fixture
def client(target_url: str, prefix: str) -> Iterator[TestClient]:
    app = create_app(AsyncRedkit(target_url, prefix=prefix), jwt_key="k" * 32)
    with TestClient(app) as test_client:
        yield test_client


def test_products_are_cached_and_invalidated_by_tag(client: TestClient) -> None:
    first = client.get("/products", params={"lang": "fr"})
    assert first.status_code == 200
    assert first.json()["cache"] == "miss"
    assert first.json()["products"][0]["name"] == "Théière"
    assert client.get("/products", params={"lang": "fr"}).json()["cache"] == "hit"
    assert client.get("/products", params={"lang": "en"}).json()["cache"] == "miss"

    assert client.post("/login", json=LOGIN).status_code == 200
    changed = client.put("/products/1", json={"price": 30.0})
    assert changed.status_code == 200
    after = client.get("/products", params={"lang": "fr"}).json()
    assert after["cache"] == "miss"
    assert after["products"][0]["price"] == 30.0


def test_changing_a_price_needs_a_login(client: TestClient) -> None:
    assert client.put("/products/1", json={"price": 1.0}).status_code == 401
    assert client.post("/login", json=LOGIN).status_code == 200
    assert client.put("/products/1", json={"price": -1}).status_code == 422
    assert client.put("/products/999", json={"price": 1.0}).status_code == 404


def _me(client: TestClient, session_id: str) -> object:
    client.cookies.clear()
    return client.get("/me", headers={"Cookie": f"session={session_id}"}).json()["user"]


def test_login_rotates_the_session_and_the_old_id_is_dead(client: TestClient) -> None:
    chosen = {"Cookie": "session=attacker-chosen-id"}
    response = client.post("/login", json=LOGIN, headers=chosen)
    assert response.status_code == 200
    first = response.cookies["session"]
    assert first != "attacker-chosen-id"
    assert _me(client, "attacker-chosen-id") is None

    again = client.post("/login", json=LOGIN, headers={"Cookie": f"session={first}"})
    second = again.cookies["session"]
    assert second != first
    assert _me(client, second) == "alice"
    assert _me(client, first) is None


def test_wrong_password_is_rejected(client: TestClient) -> None:
    response = client.post("/login", json={"username": "alice", "password": "nope"})
    assert response.status_code == 401
    assert client.get("/me").json() == {"user": None}


def test_logout_everywhere_ends_sessions_and_revokes_tokens(
    target_url: str, prefix: str, client: TestClient
) -> None:
    token = client.post("/login", json=LOGIN).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/token-check", headers=auth).status_code == 200

    other_app = create_app(AsyncRedkit(target_url, prefix=prefix), jwt_key="k" * 32)
    with TestClient(other_app) as other:  # alice on a second device
        assert other.post("/login", json=LOGIN).status_code == 200
        sessions = client.get("/sessions").json()["sessions"]
        assert len(sessions) == 2
        assert sum(s["current"] for s in sessions) == 1

        ended = client.post("/logout-everywhere").json()["ended"]
        assert ended == 2
        assert other.get("/me").json() == {"user": None}
    assert client.get("/me").json() == {"user": None}
    assert client.get("/token-check", headers=auth).status_code == 401


def test_login_is_rate_limited_per_ip_with_standard_headers(client: TestClient) -> None:
    allowed = int(LOGIN_POLICY.split("/")[0])
    wrong = {"username": "alice", "password": "wrong"}
    statuses = [client.post("/login", json=wrong).status_code for _ in range(allowed)]
    assert statuses == [401] * allowed
    limited = client.post("/login", json=LOGIN)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["Content-Type"].startswith("application/problem+json")
    assert "RateLimit" in limited.headers
    assert "RateLimit-Policy" in limited.headers


def test_api_responses_carry_the_remaining_budget(client: TestClient) -> None:
    first = client.get("/products").headers["RateLimit"]
    second = client.get("/products").headers["RateLimit"]
    remaining = [int(h.split("r=")[1].split(";")[0]) for h in (first, second)]
    assert remaining[1] == remaining[0] - 1


def test_page_is_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "redkit demo shop" in page.text


def test_a_login_right_after_logout_everywhere_gets_a_valid_token(client: TestClient) -> None:
    client.post("/login", json=LOGIN)
    client.post("/logout-everywhere")
    token = client.post("/login", json=LOGIN).json()["access_token"]
    check = client.get("/token-check", headers={"Authorization": f"Bearer {token}"})
    assert check.status_code == 200


def test_logout_with_the_bearer_token_revokes_that_token(client: TestClient) -> None:
    token = client.post("/login", json=LOGIN).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert client.post("/logout", headers=auth).json() == {"ok": True, "token_revoked": True}
    assert client.get("/token-check", headers=auth).json()["detail"] == "token revoked"
    assert client.post("/logout").json() == {"ok": True, "token_revoked": False}


def test_apps_without_a_secret_share_one_through_redis(target_url: str, prefix: str) -> None:
    apps = [create_app(AsyncRedkit(target_url, prefix=prefix)) for _ in range(2)]
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
        token = first.post("/login", json=LOGIN).json()["access_token"]
        check = second.get("/token-check", headers={"Authorization": f"Bearer {token}"})
        assert check.status_code == 200
    other = create_app(AsyncRedkit(target_url, prefix=prefix), jwt_key="o" * 32)
    with TestClient(other) as elsewhere:  # a given key wins over the shared one
        check = elsewhere.get("/token-check", headers={"Authorization": f"Bearer {token}"})
        assert check.status_code == 401


def test_sessions_list_a_short_browser_name(client: TestClient) -> None:
    agent = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36"
    )
    client.post("/login", json=LOGIN, headers={"User-Agent": agent})
    row = client.get("/sessions", headers={"User-Agent": agent}).json()["sessions"][0]
    assert row["browser"] == "Chrome 126 on Linux"
    assert row["user_agent"] == agent


@pytest.mark.parametrize(
    ("agent", "short"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/125.0.0.0 Safari/537.36 Edg/125.0.2535.67",
            "Edge 125 on Windows",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0",
            "Firefox 127 on macOS",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari 17 on iOS",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Mobile Safari/537.36",
            "Chrome 126 on Android",
        ),
        ("python-httpx/0.27.0", "python-httpx/0.27.0"),
        ("curl/8.5.0", "curl/8.5.0"),
        ("x" * 500, "x" * 40),
        (None, ""),
    ],
)
def test_short_agent(agent: str | None, short: str) -> None:
    assert short_agent(agent) == short


def test_the_server_warning_is_logged_once(
    target_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(AsyncRedkit(target_url, prefix=prefix))) as app:
        token = app.post("/login", json=LOGIN).json()["access_token"]
        app.get("/token-check", headers={"Authorization": f"Bearer {token}"})
        app.post("/logout-everywhere")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "no persistence" in warnings[0].getMessage()  # the test servers keep no data


def test_no_server_warning_when_told_not_to(
    target_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(AsyncRedkit(target_url, prefix=prefix), check_server=False)
    with TestClient(app) as client:
        client.post("/login", json=LOGIN)
        client.get("/token-check")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
