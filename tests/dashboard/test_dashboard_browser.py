"""The dashboard in headless Chromium, against a live worker and a real server.

A job enqueued appears; a failing job is retried from the page (with its traceback shown)
and completes; a pause from the page stops claims and a resume lets the job run; the
rate-limit, cache, session and event panels show the numbers the server holds. Each panel
is screenshotted; with REDKIT_SCREENSHOTS=1 the pictures replace those in docs/img (for
docs/dashboard.md), otherwise they go to a temporary folder and the tree stays clean.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.dashboard import create_dashboard
from redkit.metrics import Recorder
from redkit.metrics.recorder import read_series, read_top_keys
from redkit.queue import current_job

from ..queue.conftest import poll, running
from .conftest import serving, sync_api


@dataclass
class Shipment:
    id: int


IMAGES = (
    Path(__file__).resolve().parents[2] / "docs" / "img"
    if os.environ.get("REDKIT_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "redkit-dashboard-shots"
)


def _shot(page: Any, panel: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.locator(f"#panel-{panel}").screenshot(path=str(IMAGES / f"dashboard-{panel}.png"))


@pytest.fixture
def dashboard(standalone_url: str, prefix: str) -> Iterator[str]:
    app = create_dashboard(AsyncRedkit(standalone_url, prefix=prefix), poll=0.3, sample_every=0.5)
    with serving(app) as base:
        yield base + "/"


def test_jobs_appear_and_a_failed_job_is_retried_from_the_page(
    browser: Any, dashboard: str, standalone_url: str, prefix: str
) -> None:
    expect = sync_api.expect
    rk = Redkit(standalone_url, prefix=prefix)
    emails = rk.queue("emails")
    fixed = threading.Event()

    @emails.task
    def send(to: str) -> str:
        return f"sent to {to}"

    @emails.task
    def charge(order: int) -> str:
        current_job().progress({"step": "card"})
        if not fixed.is_set():
            raise ValueError(f"card declined for order {order}")
        return "charged"

    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.route(
        "http*://**",
        lambda route: (
            route.continue_() if route.request.url.startswith(dashboard) else route.abort()
        ),
    )  # offline: nothing but the dashboard itself
    page.goto(dashboard)
    expect(page.locator("#no-queues")).to_be_visible()

    send.enqueue("ada@example.com", job_id="welcome-ada")
    row = page.locator('#queues-table tr[data-queue="emails"]')
    expect(row.locator("td.c-waiting")).to_have_text("1")  # live: no reload
    expect(page.locator('#jobs-table tr[data-job="welcome-ada"]')).to_be_visible()
    page.locator('#jobs-table tr[data-job="welcome-ada"] td.id').click()
    expect(page.locator("#job-payload")).to_contain_text("ada@example.com")

    takes: list[float] = []  # when each of the worker's claims started
    rk.observe(
        lambda e: takes.append(time.perf_counter() - e.seconds)
        if e.name == "script queue_take" else None
    )  # fmt: skip
    charge.enqueue(42, job_id="order-42")
    with running(emails, concurrency=2) as worker:
        expect(page.locator(f'#workers-table tr[data-worker="{worker.worker.id}"]')).to_be_visible()
        expect(row.locator("td.c-failed")).to_have_text("1")
        expect(row.locator("td.c-done")).to_have_text("1")
        page.click('#state-tabs button[data-state="failed"]')
        failed = page.locator('#jobs-table tr[data-job="order-42"]')
        failed.locator("td.id").click()
        expect(page.locator("#job-error")).to_contain_text("ValueError: card declined for order 42")
        expect(page.locator("#job-error")).to_contain_text("Traceback")
        _shot(page, "queues")

        fixed.set()
        failed.locator('button[data-action="retry"]').click()
        expect(row.locator("td.c-failed")).to_have_text("0")
        expect(row.locator("td.c-done")).to_have_text("2")
        assert emails.job("order-42").result(timeout=10) == "charged"
        page.click('#state-tabs button[data-state="done"]')
        expect(page.locator('#jobs-table tr[data-job="order-42"] td.state')).to_have_text("done")
        expect(page.locator('#job-fields dd[data-field="attempts"]')).to_have_text("1")
        expect(page.locator('#job-fields dd[data-field="progress"]')).to_have_text(
            '{"step":"card"}'
        )

        # a destructive action asks first; cancelling the question changes nothing
        page.click("#purge-state >> nth=0")
        page.select_option("#purge-state", "done")
        page.click("#purge")
        expect(page.locator("#confirm")).to_be_visible()
        page.click("#confirm-no")
        expect(row.locator("td.c-done")).to_have_text("2")
        page.click("#purge")
        page.click("#confirm-yes")
        expect(row.locator("td.c-done")).to_have_text("0")

        # a pause stops claims: the worker asks for jobs after the enqueue and gets none
        page.click("#pause")
        expect(page.locator("#status")).to_contain_text("pause: true")
        expect(row.locator("td.paused")).to_have_text("paused")
        expect(page.locator("#resume")).to_be_visible()
        assert emails.is_paused()
        held = send.enqueue("grace@example.com", job_id="while-paused")
        enqueued = time.perf_counter()
        poll(lambda: any(started > enqueued for started in takes))
        assert held.status() == "waiting"
        expect(row.locator("td.c-waiting")).to_have_text("1")
        page.click("#resume")
        assert held.result(timeout=10) == "sent to grace@example.com"
        expect(row.locator("td.paused")).to_have_text("running")
        expect(row.locator("td.c-done")).to_have_text("1")
    assert emails.counts()["done"] == 1
    rk.close()


def test_limits_caches_sessions_and_events_panels_match_the_server(
    browser: Any, dashboard: str, standalone_url: str, prefix: str
) -> None:
    expect = sync_api.expect
    app = Redkit(standalone_url, prefix=prefix)  # the application's process, recording
    recorder = Recorder(app, interval=0.2).start()
    login = app.rate_limiter("3/minute", name="login")
    for _ in range(5):
        login.hit("alice")  # two rejected
    for _ in range(4):
        login.hit("bob")  # one rejected
    products = app.cache("products")
    for _ in range(4):
        products.get_or_set("p1", lambda: {"price": 3})  # one load, three hits
    app.client.set(app.keys.group("cache", "products", "p2").key(), b"not a cache entry")
    products.get_or_set("p2", lambda: {"price": 4})  # corrupt: replaced by a second load
    store = app.sessions(check=False)
    for user in ("ada", "bob"):
        session = store.new()
        session["user"] = user
        store.save(session)
    recorder.stop()  # writes what is left

    series = app.run(read_series(app.keys, minutes=30))
    top = app.run(read_top_keys(app.keys, minutes=30))
    assert series.total("ratelimit.rejected|login") == 3
    assert top == [("login", "alice", 2), ("login", "bob", 1)]

    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(dashboard + "#ratelimits")
    expect(page.locator('#rl-table tr[data-limiter="login"] td.total')).to_have_text("3")
    expect(page.locator("#rl-checks")).to_have_text(str(series.total("op|ratelimit")))
    keys = page.locator("#rl-keys tbody tr")
    expect(keys).to_have_count(2)
    expect(keys.nth(0).locator("td.key")).to_have_text("alice")
    expect(keys.nth(0).locator("td.count")).to_have_text("2")
    _shot(page, "ratelimits")

    page.click('#tabs button[data-tab="caches"]')
    ns = page.locator('#cache-table tr[data-ns="products"]')
    expect(ns.locator("td.hits")).to_have_text(str(series.total("cache.hit|products")))
    expect(ns.locator("td.loads")).to_have_text("2")
    expect(ns.locator("td.corrupt")).to_have_text("1")
    expect(ns.locator("td.ratio")).to_have_text("60.0 %")
    _shot(page, "caches")

    page.click('#tabs button[data-tab="sessions"]')
    stored = sum(1 for _ in app.client.scan_iter(match="{" + prefix + ":sess:*}:s"))
    assert stored == 2
    expect(page.locator("#sessions-active")).to_have_text("2")
    _shot(page, "sessions")

    # events: lag and pending per consumer group, dead letters
    orders = app.events.topic("orders", durable=True)
    billing = orders.consumer("billing", count=2)
    billing.create()
    orders.publish_many([{"order": i} for i in range(5)])
    billing.ack(billing.read(timeout=1)[0])  # two delivered, one acknowledged
    billing.flush()
    typed = app.events.topic("shipments", durable=True, model=Shipment)
    shipping = typed.consumer("shipping")
    shipping.create()
    app.events.topic("shipments", durable=True).publish({"id": "oops"})  # not a Shipment
    assert shipping.read(timeout=1) == []
    (group,) = app.events.info("orders").groups
    assert (group.pending, group.lag) == (1, 3)
    page.click('#tabs button[data-tab="events"]')
    row = page.locator('#groups-table tr[data-group="orders/billing"]')
    expect(row.locator("td.pending")).to_have_text(str(group.pending))
    expect(row.locator("td.lag")).to_have_text(str(group.lag))
    expect(page.locator('#topics-table tr[data-topic="shipments"] td.dead')).to_have_text("1")
    expect(page.locator('#dead-table tr[data-topic="shipments"] td.reason')).to_contain_text(
        "not a valid Shipment"
    )
    _shot(page, "events")

    page.click('#tabs button[data-tab="overview"]')
    expect(page.locator('#ops-table tr[data-cap="ratelimit"] td').nth(1)).to_have_text(
        str(series.total("op|ratelimit"))
    )
    _shot(page, "overview")
    app.close()
