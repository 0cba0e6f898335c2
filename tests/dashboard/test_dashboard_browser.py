"""The dashboard in headless Chromium, against a live worker and a real server.

A job enqueued appears; a failing job is retried from the page (with its traceback shown)
and completes; the rate-limit, cache and session panels show the numbers the server holds.
Each panel's screenshot is saved into docs/img for docs/dashboard.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.dashboard import create_dashboard
from redkit.metrics import Recorder
from redkit.metrics.recorder import read_series, read_top_keys

from ..queue.conftest import running
from .conftest import serving, sync_api

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"


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
    assert emails.counts()["done"] == 0
    rk.close()


def test_rate_limit_cache_and_session_panels_match_the_server(
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
    expect(ns.locator("td.loads")).to_have_text("1")
    expect(ns.locator("td.ratio")).to_have_text("75.0 %")
    _shot(page, "caches")

    page.click('#tabs button[data-tab="sessions"]')
    stored = sum(1 for _ in app.client.scan_iter(match="{" + prefix + ":sess:*}:s"))
    assert stored == 2
    expect(page.locator("#sessions-active")).to_have_text("2")
    _shot(page, "sessions")

    page.click('#tabs button[data-tab="overview"]')
    expect(page.locator('#ops-table tr[data-cap="ratelimit"] td').nth(1)).to_have_text(
        str(series.total("op|ratelimit"))
    )
    _shot(page, "overview")
    app.close()
