"""The demo's ``POST /payments``: retried on purpose, charged once, the replay shown."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from redkit import AsyncRedkit
from redkit.demo.app import create_app


@pytest.fixture
def client(target_url: str, prefix: str) -> Iterator[TestClient]:
    app = create_app(AsyncRedkit(target_url, prefix=prefix), jwt_key="k" * 32)
    with TestClient(app) as test_client:
        yield test_client


def test_a_retried_payment_charges_once(client: TestClient) -> None:
    key = {"Idempotency-Key": "pay-1"}
    body = {"amount": 25.0, "item": "Teapot"}
    answers = []

    def pay() -> None:
        answers.append(client.post("/payments", json=body, headers=key))

    clicks = [threading.Thread(target=pay) for _ in range(2)]  # a double click
    for click in clicks:
        click.start()
    for click in clicks:
        click.join(30)
    pay()  # and a retry after both answered
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len({a.json()["payment"] for a in answers}) == 1
    replayed = [a.headers.get("idempotent-replayed") for a in answers]
    assert replayed.count("true") == 2
    assert client.get("/payments").json() == {"charges": 1}


def test_payment_errors(client: TestClient) -> None:
    body = {"amount": 25.0}
    assert client.post("/payments", json=body).status_code == 400
    assert client.post("/payments", json=body, headers={"Idempotency-Key": "k"}).status_code == 201
    other = client.post("/payments", json={"amount": 30.0}, headers={"Idempotency-Key": "k"})
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert client.get("/payments").json() == {"charges": 1}
