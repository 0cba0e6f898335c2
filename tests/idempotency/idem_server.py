"""The app that uvicorn serves in the hammer test (REDIS_URL, REDKIT_PREFIX): a payment
endpoint under the idempotency middleware whose handler crashes at random, by raising
or by killing its own process (-9), before and after its charge.

The charge and its recovery point are one unit here, as a charge recorded in the same
transaction as its step would be: a kill waits until no request of the process is
between the two (a kill inside that window is the documented at-least-once case).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from redkit import AsyncRedkit
from redkit.integrations.asgi.idempotency import IdempotencyMiddleware

ark = AsyncRedkit()
payments = ark.idempotency("hammer", lease=2.0)
charging = 0  # requests of this process between their charge and its commit
idle = asyncio.Event()  # set while charging == 0
idle.set()
marks = ark.keys.group("test")
CHARGES, NUMBERS = marks.key("charges"), marks.key("numbers")
RAISE = float(os.environ.get("HAMMER_RAISE", "0.2"))
KILL = float(os.environ.get("HAMMER_KILL", "0.02"))


# the first run for these orders always crashes so: every kind of crash happens
FORCED = {
    ("o0", "after"): 0.0,
    ("o1", "before"): 0.0,
    ("o2", "after"): KILL,
    ("o3", "before"): KILL,
}


async def _crash_maybe(order: str, where: str) -> None:
    roll = random.random()
    forced = FORCED.get((order, where))
    if forced is not None and await ark.client.set(marks.key(f"forced:{order}"), 1, nx=True):
        roll = forced
    if roll < KILL:
        await ark.client.incr(marks.key(f"kills:{where}"))
        while charging:
            await idle.wait()
        os.kill(os.getpid(), signal.SIGKILL)
    if roll < KILL + RAISE:
        await ark.client.incr(marks.key(f"raises:{where}"))
        raise RuntimeError(f"crashed {where}")


async def pay(request: Request) -> JSONResponse:
    body: dict[str, Any] = await request.json()
    order = body["order"]

    async def charge() -> int:
        number = int(await ark.client.incr(NUMBERS))
        await ark.client.rpush(CHARGES, order)  # the side effect
        return number

    global charging
    await _crash_maybe(order, "before")
    charging += 1
    idle.clear()
    try:
        number = await payments.step("charge", charge)
    finally:
        charging -= 1
        if not charging:
            idle.set()
    await _crash_maybe(order, "after")
    return JSONResponse({"order": order, "charge": number}, status_code=201)


app = Starlette(routes=[Route("/pay", pay, methods=["POST"])])
app.add_middleware(IdempotencyMiddleware, idempotency=payments, required=True)
