"""The demo's order confirmation: a background job run by the worker inside the app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from redkit import AsyncRedkit
from redkit.demo import orders
from redkit.demo.app import create_app

FINAL = {"done", "failed"}


@pytest.fixture
def client(target_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(orders, "CONFIRM_SECONDS", 0.3)
    monkeypatch.setattr(orders, "RETRY_SECONDS", 0.2)
    app = create_app(AsyncRedkit(target_url, prefix=prefix), jwt_key="k" * 32)
    with TestClient(app) as test_client:
        yield test_client


def _follow(client: TestClient, order_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every distinct state the order went through, as the page's polling sees them."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(f"/orders/{order_id}").json()
        if not seen or seen[-1]["state"] != answer["state"]:
            seen.append(answer)
        if answer["state"] in FINAL:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"order {order_id} did not finish in {timeout} s: {seen}")


def test_an_order_is_confirmed_in_the_background(client: TestClient) -> None:
    placed = client.post("/orders", json={"product_id": "2", "quantity": 3})
    assert placed.status_code == 202
    body = placed.json()
    assert body["state"] == "waiting"
    assert body["total"] == 28.5
    states = _follow(client, body["order_id"])
    assert [s["state"] for s in states][-2:] == ["active", "done"]
    assert states[-1]["result"]["message"].startswith("Confirmation sent: 3 x Espresso cup")
    assert states[-1]["error"] is None


def test_a_mail_outage_is_retried_and_the_page_sees_it(client: TestClient) -> None:
    order_id = client.post("/orders", json={"product_id": "1", "mail_outage": True}).json()[
        "order_id"
    ]
    states = _follow(client, order_id)
    names = [s["state"] for s in states]
    assert names[-1] == "done"
    assert "delayed" in names, names  # the retry's backoff
    delayed = states[names.index("delayed")]
    assert "simulated outage" in delayed["error"]
    assert "attempt 1" in delayed["error"]


def test_unknown_orders_and_products(client: TestClient) -> None:
    assert client.get("/orders/o-nothing").status_code == 404
    assert client.post("/orders", json={"product_id": "999"}).status_code == 404
    assert client.post("/orders", json={"product_id": "1", "quantity": 0}).status_code == 422
