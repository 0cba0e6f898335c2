"""Helpers for the dashboard's browser tests: Chromium through Playwright, a live server."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

from redkit.demo.serve import listen

try:
    from playwright import sync_api
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_api = None  # type: ignore[assignment]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}: CI=true requires the browser test (.ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), driven by Playwright; offline: no request leaves."""
    if sync_api is None:
        _unavailable("playwright is not installed")
    if CHROMIUM is None:
        _unavailable("no chromium binary (apt-get install chromium)")
    sync_api.expect.set_options(timeout=15_000)  # loose: the machine may be loaded
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free port; yield its base URL."""
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
