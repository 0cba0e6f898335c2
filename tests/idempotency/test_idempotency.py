"""Idempotency keys on every target: exactly once under races and crashes, replay,
mismatch, failure policies; sync and async as the ``kit`` parameter, and the races with
threads and with tasks."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.flavours import Either

from redkit import AsyncRedkit, Redkit
from redkit.errors import (
    ConfigError,
    DataError,
    IdempotencyConflictError,
    IdempotencyMismatchError,
    IdempotentCallFailedError,
)
from redkit.errors import (
    ConnectionError as RedkitConnectionError,
)

KEYS = 4
DUPLICATES = 50


def test_threads_run_each_key_exactly_once(rk: Redkit) -> None:
    idem = rk.idempotency("pay", lease=5, wait_timeout=30)
    effects: Counter[str] = Counter()
    lock = threading.Lock()
    gate = threading.Event()

    @idem.idempotent(key=lambda order, amount: order)
    def charge(order: str, amount: int) -> dict[str, Any]:
        with lock:
            effects[order] += 1
        return {"order": order, "charged": amount, "nonce": os.urandom(4).hex()}

    def client(order: str) -> dict[str, Any]:
        assert gate.wait(10)
        return charge(order, 10)

    orders = [f"o{i % KEYS}" for i in range(KEYS * DUPLICATES)]
    with ThreadPoolExecutor(64) as pool:
        futures = [pool.submit(client, order) for order in orders]
        gate.set()
        answers = [future.result() for future in futures]
    assert effects == dict.fromkeys({*orders}, 1)
    by_order: dict[str, set[str]] = {}
    for answer in answers:
        by_order.setdefault(answer["order"], set()).add(answer["nonce"])
    assert all(len(nonces) == 1 for nonces in by_order.values()), "answers differ"


async def test_tasks_run_each_key_exactly_once(ark: AsyncRedkit) -> None:
    idem = ark.idempotency("pay", lease=5, wait_timeout=30)
    effects: Counter[str] = Counter()
    gate = asyncio.Event()

    @idem.idempotent(key=lambda order: order)
    async def charge(order: str) -> str:
        effects[order] += 1
        await asyncio.sleep(0.05)  # stay in flight while the duplicates arrive
        return order + ":" + os.urandom(4).hex()

    async def client(order: str) -> str:
        await gate.wait()
        return await charge(order)

    orders = [f"o{i % KEYS}" for i in range(KEYS * DUPLICATES)]
    tasks = [asyncio.create_task(client(order)) for order in orders]
    gate.set()
    answers = await asyncio.gather(*tasks)
    assert effects == dict.fromkeys({*orders}, 1)
    assert len(set(answers)) == KEYS


def test_repeat_replays_without_running(rk: Redkit) -> None:
    idem = rk.idempotency("pay")
    calls: list[int] = []

    def charge() -> int:
        calls.append(1)
        return len(calls)

    assert idem.do("k", charge) == 1
    assert idem.do("k", charge) == 1
    assert calls == [1]
    assert idem.do("other", charge) == 2


def test_other_arguments_raise_mismatch(rk: Redkit) -> None:
    idem = rk.idempotency("pay")

    @idem.idempotent(key=lambda order, amount: order)
    def charge(order: str, amount: int) -> int:
        return amount

    assert charge("o1", 10) == 10
    assert charge("o1", 10) == 10
    with pytest.raises(IdempotencyMismatchError):
        charge("o1", 99)


def test_release_on_failure_lets_a_retry_run(rk: Redkit) -> None:
    idem = rk.idempotency("pay")  # on_failure="release" by default
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("gateway timeout")
        return "paid"

    with pytest.raises(RuntimeError, match="gateway timeout"):
        idem.do("k", flaky)
    assert idem.do("k", flaky) == "paid"
    assert idem.do("k", flaky) == "paid"
    assert len(attempts) == 2


async def test_keep_on_failure_replays_the_error_and_other_arguments_mismatch(
    kit: Either,
) -> None:
    idem = await kit.idempotency("pay", on_failure="keep")
    attempts: list[int] = []

    def declined() -> str:
        attempts.append(1)
        raise ValueError("card declined")

    with pytest.raises(ValueError, match="card declined"):
        await idem.do("k", declined)
    with pytest.raises(IdempotentCallFailedError, match="card declined") as info:
        await idem.do("k", declined)
    assert info.value.error == {"type": "ValueError", "message": "card declined"}
    assert attempts == [1]
    assert await idem.do("a", lambda: 5, fingerprint="amount=5") == 5
    with pytest.raises(IdempotencyMismatchError):
        await idem.do("a", lambda: 6, fingerprint="amount=6")


def test_failed_predicate_releases_a_returned_failure(rk: Redkit) -> None:
    idem = rk.idempotency("pay")
    answers = iter([500, 200])
    assert idem.do("k", lambda: next(answers), failed=lambda s: s >= 500) == 500
    assert idem.do("k", lambda: next(answers), failed=lambda s: s >= 500) == 200
    assert idem.do("k", lambda: 0, failed=lambda s: s >= 500) == 200


def test_no_wait_raises_conflict_while_running(rk: Redkit) -> None:
    idem = rk.idempotency("pay", wait=False)
    inside, leave = threading.Event(), threading.Event()

    def slow() -> str:
        inside.set()
        assert leave.wait(10)
        return "done"

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(idem.do, "k", slow)
        assert inside.wait(10)
        with pytest.raises(IdempotencyConflictError):
            idem.do("k", slow)
        leave.set()
        assert first.result() == "done"
    assert idem.do("k", slow) == "done"


def test_waiting_duplicates_get_the_same_answer(rk: Redkit) -> None:
    idem = rk.idempotency("pay", wait_timeout=20)
    inside, leave = threading.Event(), threading.Event()
    runs: list[int] = []

    def slow() -> list[int]:
        runs.append(1)
        inside.set()
        assert leave.wait(10)
        return [1, 2, 3]

    with ThreadPoolExecutor(9) as pool:
        first = pool.submit(idem.do, "k", slow)
        assert inside.wait(10)
        waiters = [pool.submit(idem.do, "k", slow) for _ in range(8)]
        leave.set()
        assert first.result() == [1, 2, 3]
        assert [w.result() for w in waiters] == [[1, 2, 3]] * 8
    assert runs == [1]


def test_lease_is_renewed_while_the_call_runs(rk: Redkit) -> None:
    idem = rk.idempotency("pay", lease=0.3, wait=False)
    inside, leave = threading.Event(), threading.Event()

    def slow() -> str:
        inside.set()
        assert leave.wait(10)
        return "done"

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(idem.do, "k", slow)
        assert inside.wait(10)
        for _ in range(10):  # about 1s, three leases: still held, thanks to renewal
            with pytest.raises(IdempotencyConflictError):
                idem.do("k", slow)
            leave.wait(0.1)
        leave.set()
        assert first.result() == "done"


def _dying_holder(url: str, prefix: str, ready: Any) -> None:
    with Redkit(url, prefix=prefix) as rk:
        idem = rk.idempotency("pay", lease=1)

        def hang() -> str:
            ready.set()
            threading.Event().wait(60)
            return "never"

        idem.do("k", hang)


def test_a_killed_holder_frees_the_key_after_its_lease(
    rk: Redkit, target_url: str, prefix: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_dying_holder, args=(target_url, prefix, ready))
    holder.start()
    try:
        assert ready.wait(30)
        idem = rk.idempotency("pay", wait=False)
        with pytest.raises(IdempotencyConflictError):
            idem.do("k", lambda: "retry")
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
        # a waiting retry wakes when the dead holder's lease runs out, and runs
        assert rk.idempotency("pay", wait_timeout=10).do("k", lambda: "retry") == "retry"
    finally:
        holder.kill()
        holder.join()


async def test_cancelled_call_releases_the_key(ark: AsyncRedkit) -> None:
    idem = ark.idempotency("pay")
    inside = asyncio.Event()

    async def hang() -> str:
        inside.set()
        await asyncio.Event().wait()
        return "never"

    task: asyncio.Task[str] = asyncio.create_task(idem.do("k", hang))
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def again() -> str:
        return "again"

    assert await idem.do("k", again) == "again"


def test_store_down_fails_closed_and_never_runs(standalone_url: str) -> None:
    with Redkit("redis://127.0.0.1:1/0", prefix="down") as rk:
        idem = rk.idempotency("pay", deadline=0.2)
        ran: list[int] = []
        with pytest.raises(RedkitConnectionError):
            idem.do("k", lambda: ran.append(1))
        assert ran == []
        open_idem = rk.idempotency("pay", deadline=0.2, on_error="open")
        assert open_idem.do("k", lambda: "unprotected") == "unprotected"


def test_bad_options_and_data(rk: Redkit) -> None:
    with pytest.raises(ConfigError):
        rk.idempotency("pay", lease=0)
    with pytest.raises(ConfigError):
        rk.idempotency("pay", on_failure="retry")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        rk.idempotency("pay", leese=1)  # type: ignore[call-arg]
    idem = rk.idempotency("pay")
    with pytest.raises(ConfigError):
        idem.do("", lambda: 1)
    with pytest.raises(ConfigError):
        idem.idempotent(key=lambda x: x)(lambda x: 1)(object())
    rk.client.set(rk.keys.group("idem", "pay", "str").key("rec"), "x")
    with pytest.raises(DataError):
        idem.do("str", lambda: 1)
