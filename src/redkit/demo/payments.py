"""Payments: ``POST /payments`` runs once per ``Idempotency-Key``, however often it is sent.

The charge is a recovery point (``payments.step``) recorded in Redis, where two demo
processes share it. A concurrent duplicate (a double click) waits for the first
request's answer; a later retry gets it replayed with ``Idempotent-Replayed: true``;
the same key with another amount gets 422; a request without a key 400.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from redkit import AsyncRedkit, ops
from redkit.integrations.asgi.fastapi_idempotency import Idempotent, IdempotentRoute

GATEWAY_LATENCY = 0.3  # a card network is slow: long enough for a double click to overlap


class Payment(BaseModel):
    """The body of ``POST /payments``."""

    amount: float = Field(gt=0, lt=1_000_000)
    item: str = Field(default="", max_length=100)


def router(ark: AsyncRedkit) -> APIRouter:
    """The payment routes (their own route class applies the idempotency dependency)."""
    payments = ark.idempotency("demo-payments", lease=10)
    guard = Idempotent(payments, required=True, wait=True)
    routes = APIRouter(route_class=IdempotentRoute)
    group = ark.keys.group("demo", "payments")
    counter, ledger = group.key("next"), group.key("ledger")

    async def charge(payment: Payment) -> dict[str, Any]:
        await asyncio.sleep(GATEWAY_LATENCY)
        number = await ark.run(ops.command("INCR", counter))
        await ark.run(ops.command("RPUSH", ledger, f"{number}:{payment.amount:.2f}"))
        return {"payment": int(number), "charged_at": time.time()}

    @routes.post("/payments", status_code=201, dependencies=[Depends(guard)])
    async def pay(payment: Payment) -> dict[str, Any]:
        charged = await payments.step("charge", lambda: charge(payment))
        return {"amount": payment.amount, "item": payment.item, **charged}

    @routes.get("/payments")
    async def charges() -> dict[str, Any]:
        """How many charges the gateway made (each key charges once)."""
        return {"charges": int(await ark.run(ops.command("LLEN", ledger)))}

    return routes
