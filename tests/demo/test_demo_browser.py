"""The demo page in headless Chromium, as a person uses it.

Place an order and watch its confirmation job go through a retry to "done", pay with
a key sent three times (one charge, two replays shown), set a price anonymously (401
shown) and logged in ("saved" shown), reload the page and check the JWT (still
valid), two devices and "log out everywhere" (the JWT revoked), and
the login limit's 429 shown as one message. Uses Debian's ``chromium`` (``.ci/run``
installs it) driven by Playwright through ``executable_path``. Skipped, with the reason,
where no browser is installed -- except under ``CI=true``, where that is a failure: a
fresh machine's CI must not pass without ever opening the page.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from .demo_process import demo_process

try:
    from playwright import sync_api
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_api = None  # type: ignore[assignment]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}: CI=true requires the browser test (.ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[Any]:
    if sync_api is None:
        _unavailable("playwright is not installed")
    if CHROMIUM is None:
        _unavailable("no chromium binary (apt-get install chromium)")
    sync_api.expect.set_options(timeout=15_000)  # loose: the machine may be loaded
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


OUTCOME = """() => document.getElementById('auth-message').textContent.includes('Wrong')
    || document.getElementById('limit-message').textContent.includes('Too many')"""


def _log_in(page: Any, password: str = "redkit") -> None:
    page.fill("#username", "alice")
    page.fill("#password", password)
    page.click("#login")


def _set_first_price(page: Any, price: str) -> None:
    row = page.locator("#products tr").first
    row.locator("input").fill(price)
    row.locator("button").click()


def test_a_person_can_use_the_shop(browser: Any, standalone_url: str, prefix: str) -> None:
    expect = sync_api.expect
    with demo_process(standalone_url, prefix) as url:
        laptop = browser.new_context().new_page()
        laptop.goto(url)
        expect(laptop.locator("#products tr")).to_have_count(4)
        expect(laptop.locator("#cache-badge")).to_have_text("miss")
        laptop.click("#reload")
        expect(laptop.locator("#cache-badge")).to_have_text("hit")
        expect(laptop.locator("#limit-budget")).to_contain_text("/products")

        # an order: its confirmation job runs in the background, the page follows it
        laptop.select_option("#order-product", "2")
        laptop.check("#order-outage")
        laptop.click("#order")
        order = laptop.locator("#order-rows tr").first
        expect(order).to_contain_text("Espresso cup")
        expect(order.locator(".badge")).to_have_text("delayed", timeout=20_000)
        expect(order).to_contain_text("retrying: the mail server did not answer")
        expect(order.locator(".badge")).to_have_text("done", timeout=20_000)
        expect(order).to_contain_text("Confirmation sent: 1 x Espresso cup")

        # a payment sent three times on purpose (a double click, a retry): charged once
        laptop.fill("#pay-amount", "12.50")
        laptop.click("#pay")
        expect(laptop.locator("#pay-message")).to_contain_text("3 requests, 2 replays, one charge")
        expect(laptop.locator("#pay-attempts tr")).to_have_count(3)
        expect(laptop.locator("#pay-message")).to_contain_text("1 charge in all")

        # anonymous: the 401 is shown, not wiped by the product reload that follows
        _set_first_price(laptop, "31")
        expect(laptop.locator("#catalog-message")).to_contain_text("Log in to change prices")
        expect(laptop.locator("#products tr").first).to_contain_text("25.00")

        _log_in(laptop)
        expect(laptop.locator("#whoami")).to_have_text("alice")
        _set_first_price(laptop, "31")
        expect(laptop.locator("#catalog-message")).to_contain_text("Saved")
        expect(laptop.locator("#products tr").first).to_contain_text("31.00")
        expect(laptop.locator("#cache-badge")).to_have_text("miss")  # the tag was invalidated

        # the JWT survives a reload, and nobody revoked it
        laptop.reload()
        expect(laptop.locator("#jwt-row")).to_be_visible()
        laptop.click("#check-jwt")
        expect(laptop.locator("#jwt-status")).to_have_text("valid (user alice)")

        phone = browser.new_context().new_page()  # a second device
        phone.goto(url)
        _log_in(phone)
        expect(phone.locator("#whoami")).to_have_text("alice")
        laptop.reload()
        sessions = laptop.locator("#sessions tr")
        expect(sessions).to_have_count(2)
        for cell in sessions.locator("td").all_text_contents():
            assert not ISO_TIME.search(cell), f"a raw ISO timestamp is shown: {cell!r}"
            assert len(cell) <= 40, f"a long value (a whole user agent?) is shown: {cell!r}"
        expect(sessions.first).to_contain_text(re.compile(r"Chrome \d+ on Linux"))

        laptop.click("#logout-everywhere")
        expect(laptop.locator("#auth-message")).to_contain_text("2 sessions ended")
        expect(laptop.locator("#login-form")).to_be_visible()
        laptop.click("#check-jwt")
        expect(laptop.locator("#jwt-status")).to_have_text("revoked")
        phone.reload()
        expect(phone.locator("#login-form")).to_be_visible()

        # two logins spent of the per-IP budget; wrong passwords spend the rest
        for _ in range(10):
            laptop.evaluate("document.getElementById('auth-message').textContent = ''")
            _log_in(laptop, password="wrong")
            laptop.wait_for_function(OUTCOME)
            if laptop.locator("#limit-message").text_content():
                break
        message = laptop.locator("#limit-message").text_content() or ""
        found = re.fullmatch(r"Too many requests to /login: try again in (\d+) (\w+)\.", message)
        assert found, message
        assert found.group(2) == ("second" if found.group(1) == "1" else "seconds"), message
        budget = laptop.locator("#limit-budget").text_content() or ""
        assert budget == "/login: 0 of 5 left.", budget
        assert "again in" not in budget, "two different waits on one page"
        expect(laptop.locator("#auth-message")).to_contain_text("too many attempts")
