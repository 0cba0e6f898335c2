"""The demo shop through its HTTP API (Starlette's TestClient), on every target."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from redkit import AsyncRedkit
from redkit.demo.app import create_app
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
