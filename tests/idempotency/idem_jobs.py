"""The queue tasks that worker processes run in the idempotency tests (REDIS_URL,
REDKIT_PREFIX): a charge that may hang (to be killed) after its side effect."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redkit import AsyncRedkit, Redkit
from redkit.queue import job_key

rk = Redkit()
queue = rk.queue("idem", lease=1.0, dead_after=20)
payments = rk.idempotency("jobs", lease=1.0)
marks = rk.keys.group("test")
CHARGES, REACHED = marks.key("charges"), marks.key("reached")


def _hang_once(order: str, where: str, stage: str) -> None:
    """The first time ``stage`` is reached for ``order``, say so and hang (to be killed)."""
    if where == stage and rk.client.set(marks.key("hung", order), 1, nx=True):
        rk.client.rpush(REACHED, order)
        time.sleep(120)


@payments.idempotent(
    key=lambda order, amount, die: f"order:{order}",
    fingerprint=lambda order, amount, die: f"{order}:{amount}",  # not how it may die
)
def charge(order: str, amount: int, die: str) -> dict[str, Any]:
    """Charge once (a recovery point), then ship; may hang after the charge."""
    number = payments.step("charge", lambda: rk.client.rpush(CHARGES, order))
    _hang_once(order, die, "after-charge")
    return {"order": order, "amount": amount, "charge": number}


@queue.task
def pay(order: str, amount: int, die: str = "") -> dict[str, Any]:
    """The job: the idempotent charge; may hang after it completed, before the ack."""
    result = charge(order, amount, die)
    _hang_once(order, die, "before-ack")
    return result


# --- keyed by the job (job_key): sync, async and process-pool handlers -----------------

apayments = AsyncRedkit().idempotency("jobs-async", lease=1.0)


@payments.idempotent(key=job_key)
def _charge_by_job(order: str, amount: int, die: str) -> dict[str, Any]:
    number = payments.step("charge", lambda: rk.client.rpush(CHARGES, order))
    _hang_once(order, die, "after-charge")
    return {"order": order, "amount": amount, "charge": number}


@queue.task
def pay_by_job(order: str, amount: int, die: str = "") -> dict[str, Any]:
    """Charge once per job (a recovery point); may hang after the charge or the call."""
    result = _charge_by_job(order, amount, die)
    _hang_once(order, die, "before-ack")
    return result


async def _ahang_once(order: str, where: str, stage: str) -> None:
    if where == stage and rk.client.set(marks.key("hung", order), 1, nx=True):
        rk.client.rpush(REACHED, order)
        await asyncio.sleep(120)


@apayments.idempotent(key=job_key)
async def _acharge(order: str, amount: int, die: str) -> dict[str, Any]:
    number = await apayments.step("charge", lambda: rk.client.rpush(CHARGES, order))
    await _ahang_once(order, die, "after-charge")
    return {"order": order, "amount": amount, "charge": number}


@queue.task
async def apay_by_job(order: str, amount: int, die: str = "") -> dict[str, Any]:
    """The async twin; the idempotent part is inside, the hang before the ack outside."""
    result = await _acharge(order, amount, die)
    await _ahang_once(order, die, "before-ack")
    return result


@queue.task(process=True)
@payments.idempotent(key=job_key)
def pay_in_process(order: str, amount: int, die: str = "") -> dict[str, Any]:
    """In the worker's process pool, decorated directly (job_key works there too); may
    hang after the charge."""
    number = payments.step("charge", lambda: rk.client.rpush(CHARGES, order))
    _hang_once(order, die, "after-charge")
    return {"order": order, "amount": amount, "charge": number}
