"""The demo page in headless Chromium: log in, products, the 429 shown, log out everywhere.

Uses Debian's ``chromium`` (``.ci/run`` installs it) driven by Playwright through
``executable_path``; skipped, with the reason, only where no browser is installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from .demo_process import demo_process

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (apt-get install chromium)"
)
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


@pytest.fixture
def browser() -> Iterator[Any]:
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


def test_a_person_can_use_the_shop(browser: Any, standalone_url: str, prefix: str) -> None:
    expect = sync_api.expect
    with demo_process(standalone_url, prefix) as url:
        laptop = browser.new_context().new_page()
        laptop.goto(url)
        expect(laptop.locator("#products tr")).to_have_count(4)
        expect(laptop.locator("#cache-badge")).to_have_text("miss")
        laptop.click("#reload")
        expect(laptop.locator("#cache-badge")).to_have_text("hit")
        placeholder = "\u2013"  # the page's dash before any limited request
        expect(laptop.locator("#limit-remaining")).not_to_have_text(placeholder)

        _log_in(laptop)
        expect(laptop.locator("#whoami")).to_have_text("alice")

        phone = browser.new_context().new_page()  # a second device
        phone.goto(url)
        _log_in(phone)
        expect(phone.locator("#whoami")).to_have_text("alice")
        expect(laptop.locator("#sessions tr")).to_have_count(1)  # listed before the phone
        laptop.reload()
        expect(laptop.locator("#sessions tr")).to_have_count(2)

        laptop.click("#logout-everywhere")
        expect(laptop.locator("#auth-message")).to_contain_text("2 session(s) ended")
        expect(laptop.locator("#login-form")).to_be_visible()
        phone.reload()
        expect(phone.locator("#login-form")).to_be_visible()

        # two logins spent of the per-IP budget; wrong passwords spend the rest
        for _ in range(10):
            laptop.evaluate("document.getElementById('auth-message').textContent = ''")
            _log_in(laptop, password="wrong")
            laptop.wait_for_function(OUTCOME)
            if laptop.locator("#limit-message").text_content():
                break
        expect(laptop.locator("#limit-message")).to_contain_text("Too many requests to /login")
