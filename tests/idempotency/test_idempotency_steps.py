"""Recovery points (``step``) for functions, the settings' secret, and the STATUS codes."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from redkit import AsyncRedkit, Redkit, Settings
from redkit.errors import ConfigError, IdempotencyConflictError, IdempotencyMismatchError
from redkit.idempotency import ops, renewal
from redkit.idempotency.http import canonical
from redkit.scripts import STATUS


def test_a_retry_resumes_after_the_last_committed_step(rk: Redkit) -> None:
    payments = rk.idempotency("orders")
    done: list[str] = []
    crash = {"ship": True}

    @payments.idempotent(key=lambda order: order)
    def place(order: str) -> dict[str, Any]:
        charge = payments.step("charge", lambda: done.append("charge") or "ch_1")
        if crash["ship"]:
            crash["ship"] = False
            raise RuntimeError("the process died after the charge")
        label = payments.step("ship", lambda: done.append("ship") or "lbl_1")
        return {"charge": charge, "label": label}

    with pytest.raises(RuntimeError):
        place("o1")
    assert place("o1") == {"charge": "ch_1", "label": "lbl_1"}
    assert place("o1") == {"charge": "ch_1", "label": "lbl_1"}  # replayed
    assert done == ["charge", "ship"]
    keys = ops.keys_for(rk.keys, "orders", "o1")
    assert rk.client.exists(keys.steps) == 0  # the stored result superseded the steps


def test_steps_of_another_payload_are_a_mismatch(rk: Redkit) -> None:
    payments = rk.idempotency("orders")

    @payments.idempotent(key=lambda order, amount: order)
    def place(order: str, amount: int) -> int:
        payments.step("charge", lambda: amount)
        raise RuntimeError("crash after the charge")

    with pytest.raises(RuntimeError):
        place("o1", 5)
    with pytest.raises(IdempotencyMismatchError):
        place("o1", 6)


def test_step_outside_an_idempotent_call_is_refused(rk: Redkit) -> None:
    with pytest.raises(ConfigError):
        rk.idempotency("orders").step("charge", lambda: 1)
    with pytest.raises(ConfigError):
        rk.idempotency("orders").do("k", lambda: rk.idempotency("other").step("s", lambda: 1))


def test_a_step_after_the_lease_was_lost_raises(rk: Redkit) -> None:
    payments = rk.idempotency("orders")
    keys = ops.keys_for(rk.keys, "orders", "k")

    def call() -> None:
        rk.client.delete(keys.record)  # the lease ran out and the record went with it
        payments.step("charge", lambda: 1)

    with pytest.raises(IdempotencyConflictError):
        payments.do("k", call)


async def test_async_steps_resume(ark: AsyncRedkit) -> None:
    payments = ark.idempotency("orders")
    runs: list[str] = []

    async def charge() -> str:
        runs.append("charge")
        return "ch_1"

    async def place(fail: bool) -> str:
        charged: str = await payments.step("charge", charge)
        if fail:
            raise RuntimeError("crash")
        return charged

    with pytest.raises(RuntimeError):
        await payments.do("k", lambda: place(True))
    assert await payments.do("k", lambda: place(False)) == "ch_1"
    assert runs == ["charge"]


def test_secret_keys_the_fingerprint_and_stays_hidden(standalone_url: str) -> None:
    settings = Settings.from_env(url=standalone_url, secret="s3cret-value-for-tests")
    assert "s3cret" not in repr(settings)
    with Redkit(settings=settings) as keyed, Redkit(standalone_url) as plain:
        one = keyed.idempotency("x")
        assert "s3cret" not in repr(one)
        assert one.digest(b"body") != plain.idempotency("x").digest(b"body")
        assert one.digest(b"body") == ops.hmac_fingerprint(b"s3cret-value-for-tests", b"body")
    env = Settings.from_env({"REDKIT_SECRET": "from-env"})
    assert env.secret == "from-env"


def test_one_secret_signs_pickles_and_keys_digests(standalone_url: str) -> None:
    """``Redkit(secret=...)`` and ``REDKIT_SECRET`` are the same setting."""
    secret = "one-secret-for-both-uses"
    from_settings = Settings.from_env(url=standalone_url, secret=secret)
    with (
        Redkit(standalone_url, secret=secret.encode()) as given,
        Redkit(settings=from_settings, serializer="pickle") as configured,
    ):
        digest = ops.hmac_fingerprint(secret.encode(), b"body")
        assert given.idempotency("x").digest(b"body") == digest
        assert configured.idempotency("x").digest(b"body") == digest
        pickled = given.cache("p", serializer="pickle")
        pickled.set("k", {1, 2})
        assert configured.cache("p").get("k") == {1, 2}  # signed with the same key
        assert secret not in repr(given.settings)


def test_mismatch_and_lost_lease_are_status_codes() -> None:
    assert STATUS[-6][0] is IdempotencyMismatchError
    assert STATUS[-7][0] is IdempotencyConflictError


async def test_async_lease_is_renewed_while_the_call_runs(ark: AsyncRedkit) -> None:
    idem = ark.idempotency("pay", lease=0.3, wait=False)
    inside, leave = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        inside.set()
        await leave.wait()
        return "done"

    first = asyncio.create_task(idem.do("k", slow))
    await inside.wait()
    for _ in range(10):  # about 1s, three leases: still held, thanks to renewal
        with pytest.raises(IdempotencyConflictError):
            await idem.do("k", slow)
        await asyncio.sleep(0.1)
    leave.set()
    assert await first == "done"


def test_one_renewal_thread_per_object_and_none_when_idle(
    rk: Redkit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(renewal, "IDLE_EXIT", 0.2)
    idem = rk.idempotency("pay", lease=0.3)
    names = f"redkit-idem-renew:{idem.name}"

    def threads() -> int:
        return sum(t.name == names for t in threading.enumerate())

    before = threads()
    with ThreadPoolExecutor(8) as pool:
        gate = threading.Event()
        calls = [pool.submit(idem.do, f"k{i}", lambda: gate.wait(10)) for i in range(8)]
        deadline = time.monotonic() + 10
        while threads() == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert threads() == before + 1  # eight calls, one renewer
        gate.set()
        assert all(call.result() for call in calls)
    deadline = time.monotonic() + 10
    while threads() > before:  # it exits once idle
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_the_canonical_body_is_one_spelling_per_payload() -> None:
    json_type = "application/json; charset=utf-8"
    assert canonical(json_type, b'{"b": 1, "a": [2]}') == canonical(json_type, b'{"a":[2],"b":1}')
    big, bigger = b'{"a": 123456789012345678901234567890}', b'{"a": 123456789012345678901234567891}'
    assert canonical(json_type, big) != canonical(json_type, bigger)  # exact, not floats
    assert canonical(json_type, b"not json") == b"not json"
    assert canonical("text/plain", b'{"b": 1, "a": 2}') == b'{"b": 1, "a": 2}'


def test_asgi_rules_per_route(rk: Redkit, ark: AsyncRedkit) -> None:
    from redkit.idempotency.http import policy

    from .http_apps import Shop, build

    shop = Shop()
    routes = {"/other": policy(required=True), "/oth": policy()}
    with build("asgi", rk, ark, shop, routes=routes) as client:
        assert client.post("/pay", {"amount": 1}).status == 201  # the app's rules: optional
        assert client.post("/other", {"amount": 1}).status == 400  # the longest prefix's
    assert shop.charges == [1]
