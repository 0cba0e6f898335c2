"""The live orders panel: an order placed on one demo instance reaches the page of another."""

from __future__ import annotations

import json

import httpx
import pytest

from .demo_process import demo_process
from .test_demo_browser import browser, sync_api

__all__ = ["browser"]


def test_an_order_on_one_instance_reaches_the_page_of_the_other(
    standalone_url: str, prefix: str, request: pytest.FixtureRequest
) -> None:
    with (
        demo_process(standalone_url, prefix) as a_url,
        demo_process(standalone_url, prefix) as b_url,
        httpx.Client(base_url=a_url, timeout=10) as a,
        httpx.Client(base_url=b_url, timeout=10) as b,
    ):
        _streamed(a, b)
        browser = request.getfixturevalue("browser")  # skipped without one, except in CI
        expect = sync_api.expect
        page = browser.new_context().new_page()
        page.goto(b_url)
        expect(page.locator("#live-state")).to_have_text("live")
        placed = a.post("/orders", json={"product_id": "2", "quantity": 2}).json()
        row = page.locator("#live-orders tr").first
        expect(row).to_contain_text(placed["order_id"])
        expect(row).to_contain_text("2 x Espresso cup")


def _streamed(a: httpx.Client, b: httpx.Client) -> None:
    """B's SSE stream carries A's order, and resumes after a dropped connection."""
    with b.stream("GET", "/events/orders") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"  # the stream is positioned: orders from now on
        placed = a.post("/orders", json={"product_id": "2", "quantity": 3}).json()
        event: dict[str, str] = {}
        for line in lines:
            if line.startswith("data: "):
                event["data"] = line[6:]
            elif line.startswith("id: "):
                event["id"] = line[4:]
            elif not line and "data" in event:
                break
    order = json.loads(event["data"])
    assert order["order_id"] == placed["order_id"]
    assert (order["product"], order["quantity"]) == (placed["product"], 3)
    # a browser that reconnects with the last id it saw gets what came after it
    later = a.post("/orders", json={"product_id": "1"}).json()
    with b.stream("GET", "/events/orders", headers={"Last-Event-ID": event["id"]}) as again:
        data = next(line for line in again.iter_lines() if line.startswith("data: "))
        assert json.loads(data[6:])["order_id"] == later["order_id"]
