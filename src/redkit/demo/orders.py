"""Orders: a background job (the order confirmation) whose state the page shows live.

``POST /orders`` enqueues a confirmation job and answers at once with the order's id;
``GET /orders/{id}`` reports the job's state (``waiting``, ``active``, ``delayed`` while a
retry waits, ``done`` with the result, ``failed`` with the error), which the page polls.
The worker runs inside the demo process, started and drained by the app's lifespan; with
two demo processes on one server, either one's worker may confirm an order.

"Simulate a mail outage" makes the first attempt fail, so the page shows the retry: the
job goes ``active`` -> ``delayed`` -> ``active`` -> ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from redkit import AsyncRedkit, ops
from redkit.demo import live
from redkit.demo.catalog import Catalog
from redkit.errors import JobFailedError, RedkitError
from redkit.queue import AsyncQueue, Worker

log = logging.getLogger("redkit.demo")

QUEUE = "demo-orders"
#: How long "sending the confirmation email" takes, so the page can show the job active.
CONFIRM_SECONDS = 1.0
#: The pause before the retry after a simulated mail outage.
RETRY_SECONDS = 1.0


class OrderIn(BaseModel):
    """The body of ``POST /orders``."""

    product_id: str = Field(min_length=1, max_length=20)
    quantity: int = Field(default=1, ge=1, le=99)
    mail_outage: bool = False


class Orders:
    """The confirmation queue, its task, and the worker that runs inside the demo."""

    def __init__(
        self, ark: AsyncRedkit, catalog: Catalog, *, confirm_seconds: float | None = None
    ) -> None:
        self.ark, self.catalog = ark, catalog
        seconds = CONFIRM_SECONDS if confirm_seconds is None else confirm_seconds
        self.queue: AsyncQueue = ark.queue(QUEUE, lease=5.0, result_ttl=3600.0)
        self._outages = ark.keys.group("demo", "orders")
        self.created = live.topic(ark)  # every page's live panel hears of each new order
        self._worker: Worker | None = None
        self._running: asyncio.Task[None] | None = None

        @self.queue.task(
            name="confirm_order", retries=2, backoff="fixed", backoff_base=RETRY_SECONDS,
            jitter=False, timeout=30,
        )  # fmt: skip
        async def confirm_order(
            order_id: str, product: str, quantity: int, total: float, mail_outage: bool
        ) -> dict[str, Any]:
            await asyncio.sleep(seconds)  # "sending the email"
            if mail_outage and await self._first_attempt(order_id):
                raise ConnectionError("the mail server did not answer (simulated outage)")
            return {
                "message": f"Confirmation sent: {quantity} x {product}, {total:.2f} in total",
                "total": total,
            }

        self.confirm = confirm_order

    async def _first_attempt(self, order_id: str) -> bool:
        """True once per order (SET NX, shared by every demo process on the server)."""
        key = self._outages.key("outage", order_id)
        return bool(await self.ark.run(ops.command("SET", key, 1, "NX", "EX", 3600)))

    async def start(self) -> None:
        """Start the worker in this event loop (the app's lifespan calls it)."""
        if not self.ark.owns_client:  # a worker opens its own connections from settings
            log.warning("redkit demo: no order worker (the app was given a client)")
            return
        self._worker = Worker(self.queue, concurrency=20, grace=5.0)
        self._running = asyncio.ensure_future(self._worker.run())
        while not self._worker.started.is_set():
            if self._running.done():
                self._running.result()  # the worker could not start: raise why
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Drain the worker: running confirmations finish, or go back to the queue."""
        if self._worker is not None and self._running is not None:
            await self._worker.stop(grace=5.0)
            with contextlib.suppress(RedkitError):
                await self._running

    async def place(self, order: OrderIn) -> dict[str, Any]:
        """Enqueue the confirmation of ``order``; 404 for an unknown product."""
        products = {p["id"]: p for p in await self.catalog.all("en")}
        product = products.get(order.product_id)
        if product is None:
            raise HTTPException(404, "No such product")
        order_id = "o-" + secrets.token_hex(6)
        total = round(product["price"] * order.quantity, 2)
        await self.confirm.enqueue(
            order_id, product["name"], order.quantity, total, order.mail_outage, job_id=order_id
        )
        placed = {"order_id": order_id, "product": product["name"], "quantity": order.quantity,
                  "total": total}  # fmt: skip
        await self.created.publish(placed)
        return {**placed, "state": "waiting"}

    async def state(self, order_id: str) -> dict[str, Any]:
        """The order's confirmation job: its state, result or last error; 404 when unknown."""
        job = self.queue.job(order_id)
        state = await job.status()
        if state is None:
            raise HTTPException(404, "No such order (or it was confirmed over an hour ago)")
        answer: dict[str, Any] = {"order_id": order_id, "state": state, "result": None,
                                  "error": None}  # fmt: skip
        if state == "done":
            with contextlib.suppress(JobFailedError):
                answer["result"] = await job.result()
        error = await job.error()
        if error is not None and state != "done":
            answer["error"] = f"{error.get('message')} (attempt {error.get('attempts')})"
        return answer


def router(orders: Orders, *, api_limit: Any) -> APIRouter:
    """``POST /orders`` (rate limited by ``api_limit``) and ``GET /orders/{order_id}``."""
    routes = APIRouter()

    @routes.post("/orders", status_code=202, dependencies=[Depends(api_limit)])
    async def place_order(order: OrderIn) -> dict[str, Any]:
        return await orders.place(order)

    @routes.get("/orders/{order_id}")
    async def order_state(order_id: str) -> dict[str, Any]:
        return await orders.state(order_id)

    return routes
