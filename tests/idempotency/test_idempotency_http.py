"""Every HTTP status of idempotency keys, on ASGI middleware, FastAPI, Flask and Django.

The same payment endpoint is served by each framework (``http_apps``); each test runs
once per framework and target, so the four integrations answer alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.idempotency import ops

from .http_apps import FRAMEWORKS, Answer, Shop, build

pytestmark = pytest.mark.parametrize("framework", FRAMEWORKS)
PROBLEM = "application/problem+json"


def _problem(answer: Answer, status: int) -> None:
    assert answer.status == status, answer
    assert answer.headers["content-type"] == PROBLEM
    assert answer.body["status"] == status
    assert "idempotent-replayed" not in answer.headers


def _poll(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_first_runs_and_repeats_replay(framework: str, rk: Redkit, ark: AsyncRedkit) -> None:
    shop = Shop()
    with build(framework, rk, ark, shop) as client:
        first = client.post("/pay", {"amount": 5}, key="k1")
        again = client.post("/pay", {"amount": 5}, key="k1")
    assert first.status == 201
    assert first.body == {"payment": 1, "amount": 5}
    assert "idempotent-replayed" not in first.headers
    assert "set-cookie" in first.headers
    assert again.status == 201
    assert again.body == first.body
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-a"] == "1"
    assert again.headers["content-type"].startswith("application/json")
    assert "set-cookie" not in again.headers  # belongs to one response, never replayed
    assert shop.charges == [5]


def test_same_json_spelled_differently_is_the_same_payload(
    framework: str, rk: Redkit, ark: AsyncRedkit
) -> None:
    shop = Shop()
    with build(framework, rk, ark, shop) as client:
        first = client.post("/pay", {"amount": 5, "note": "x"}, key="k")
        again = client.post("/pay", {"note": "x", "amount": 5}, key="k")
    assert (first.status, again.status) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"


def test_other_payload_is_422(framework: str, rk: Redkit, ark: AsyncRedkit) -> None:
    shop = Shop()
    with build(framework, rk, ark, shop) as client:
        assert client.post("/pay", {"amount": 5}, key="k").status == 201
        _problem(client.post("/pay", {"amount": 9}, key="k"), 422)
    assert shop.charges == [5]


def test_missing_key_is_400_where_required(framework: str, rk: Redkit, ark: AsyncRedkit) -> None:
    shop = Shop()
    with build(framework, rk, ark, shop, required=True) as client:
        _problem(client.post("/pay", {"amount": 5}), 400)
        _problem(client.post("/pay", {"amount": 5}, key="x" * 256), 400)
    with build(framework, rk, ark, shop, name="optional") as client:
        assert client.post("/pay", {"amount": 1}).status == 201
        assert client.post("/pay", {"amount": 1}).status == 201  # no key: no protection
    assert shop.charges == [1, 1]


def test_keys_are_scoped_per_user_and_route(framework: str, rk: Redkit, ark: AsyncRedkit) -> None:
    shop = Shop()
    with build(framework, rk, ark, shop) as client:
        alice = client.post("/pay", {"amount": 5}, key="k", user="alice")
        bob = client.post("/pay", {"amount": 5}, key="k", user="bob")
        other = client.post("/other", {"amount": 5}, key="k", user="alice")
        again = client.post("/pay", {"amount": 5}, key="k", user="alice")
    assert [a.status for a in (alice, bob, other, again)] == [201] * 4
    assert "idempotent-replayed" not in bob.headers
    assert "idempotent-replayed" not in other.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert shop.charges == [5, 5, 5]


def _record(rk: Redkit, scoped: str) -> str:
    return ops.keys_for(rk.keys, "http", scoped).record


def test_concurrent_duplicate_is_409(framework: str, rk: Redkit, ark: AsyncRedkit) -> None:
    shop = Shop()
    with build(framework, rk, ark, shop) as client:
        answers: list[Answer] = []
        first = threading.Thread(
            target=lambda: answers.append(client.post("/pay", {"amount": 5, "slow": 1}, key="k"))
        )
        first.start()
        try:
            assert shop.entered.wait(20)
            duplicate = client.post("/pay", {"amount": 5, "slow": 1}, key="k")
        finally:
            shop.gate.set()
            first.join(30)
    _problem(duplicate, 409)
    assert duplicate.headers["retry-after"] == "1"
    assert answers[0].status == 201
    assert shop.charges == [5]


def test_concurrent_duplicate_waits_where_asked(
    framework: str, rk: Redkit, ark: AsyncRedkit
) -> None:
    shop = Shop()
    record = _record(rk, "POST /pay||k")
    with build(framework, rk, ark, shop, wait=True) as client:
        answers: dict[str, Answer] = {}

        def post(name: str) -> None:
            answers[name] = client.post("/pay", {"amount": 5, "slow": 1}, key="k")

        first = threading.Thread(target=post, args=("first",))
        first.start()
        assert shop.entered.wait(20)
        second = threading.Thread(target=post, args=("second",))
        second.start()
        try:  # the duplicate is registered as a waiter before the first may finish
            _poll(lambda: int(rk.client.hget(record, "waiters") or 0) >= 1)
        finally:
            shop.gate.set()
            first.join(30)
            second.join(30)
    assert answers["first"].status == answers["second"].status == 201
    assert answers["second"].body == answers["first"].body
    assert answers["second"].headers["idempotent-replayed"] == "true"
    assert shop.charges == [5]


def test_server_error_releases_unless_kept(framework: str, rk: Redkit, ark: AsyncRedkit) -> None:
    shop = Shop()
    with build(framework, rk, ark, shop) as client:
        failed = client.post("/pay", {"fail": 1}, key="k")
        retry = client.post("/pay", {"fail": 1}, key="k")
    assert (failed.status, retry.status) == (503, 503)
    assert "idempotent-replayed" not in retry.headers  # it ran again
    keep = {"on_failure": "keep"}
    with build(framework, rk, ark, shop, name="kept", idem_options=keep) as client:
        failed = client.post("/pay", {"fail": 1}, key="k")
        retry = client.post("/pay", {"fail": 1}, key="k")
    assert (failed.status, retry.status) == (503, 503)
    assert retry.headers["idempotent-replayed"] == "true"  # Stripe's behaviour


def test_exception_releases_unless_kept(framework: str, rk: Redkit, ark: AsyncRedkit) -> None:
    shop = Shop()
    with build(framework, rk, ark, shop) as client:
        assert client.post("/pay", {"boom": 1}, key="k").status == 500
        assert client.post("/pay", {"boom": 1}, key="k").status == 500
    keep = {"on_failure": "keep"}
    with build(framework, rk, ark, shop, name="kept", idem_options=keep) as client:
        assert client.post("/pay", {"boom": 1}, key="k").status == 500
        _problem(client.post("/pay", {"boom": 1}, key="k"), 500)  # the stored failure


def test_store_down_is_503_unless_open(framework: str) -> None:
    dead, adead = Redkit("redis://127.0.0.1:1/0"), AsyncRedkit("redis://127.0.0.1:1/0")
    shop = Shop()
    fast = {"idem_options": {"deadline": 0.5}}
    with build(framework, dead, adead, shop, **fast) as client:
        _problem(client.post("/pay", {"amount": 5}, key="k"), 503)
    assert shop.charges == []
    with build(framework, dead, adead, shop, on_error="open", **fast) as client:
        assert client.post("/pay", {"amount": 5}, key="k").status == 201
    assert shop.charges == [5]


def test_retry_resumes_after_the_last_committed_step(
    framework: str, rk: Redkit, ark: AsyncRedkit
) -> None:
    shop = Shop(crash_after_charge=1)
    with build(framework, rk, ark, shop) as client:
        crashed = client.post("/pay", {"amount": 7, "steps": 1}, key="k")
        retry = client.post("/pay", {"amount": 7, "steps": 1}, key="k")
        replay = client.post("/pay", {"amount": 7, "steps": 1}, key="k")
    assert crashed.status == 500
    assert retry.status == 201
    assert retry.body == {"payment": 1, "amount": 7}  # the first run's charge, resumed
    assert replay.headers["idempotent-replayed"] == "true"
    assert shop.charges == [7]
    assert shop.shipped == [1]
