"""The demo shop: one FastAPI app, one :class:`~redkit.AsyncRedkit`, every capability.

``create_app()`` connects to ``REDIS_URL`` (the embedded Valkey when unset); tests pass
their own ``AsyncRedkit``. Environment:

``REDKIT_DEMO_SECRET``
    the JWT signing key. Without it the first demo on a server stores a random key in
    Redis and every demo on that server (and prefix) uses it, so they accept each
    other's tokens; anyone who can read that Redis can then sign demo tokens.
``REDKIT_DEMO_TRUSTED_PROXIES``
    comma-separated proxy networks whose ``X-Forwarded-For`` is believed (none by default).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from redkit import AsyncRedkit
from redkit.dashboard import create_dashboard
from redkit.demo import auth, live, orders, payments, products
from redkit.demo.auth import SigningKey
from redkit.demo.catalog import Catalog
from redkit.demo.limits import Limits
from redkit.errors import RedkitError
from redkit.integrations.asgi.ratelimit import install as install_rate_limit_errors
from redkit.integrations.asgi.sessions import SessionMiddleware
from redkit.sessions import CookieConfig
from redkit.sessions.check import server_warnings

log = logging.getLogger("redkit.demo")


def create_app(
    ark: AsyncRedkit | None = None,
    *,
    jwt_key: str | None = None,
    check_server: bool | None = None,
) -> FastAPI:
    """Build the demo app on ``ark`` (created from the environment when omitted).

    ``check_server``: warn (once) when the server could drop sessions or revocations;
    by default not on the embedded server, which the demo starts without persistence on
    purpose.
    """
    ark = ark or AsyncRedkit(prefix=os.environ.get("REDKIT_PREFIX") or "redkit-demo")
    if check_server is None:
        check_server = ark.settings.configured
    key = SigningKey(ark, jwt_key or os.environ.get("REDKIT_DEMO_SECRET") or None)
    trusted = [p for p in os.environ.get("REDKIT_DEMO_TRUSTED_PROXIES", "").split(",") if p]
    catalog = Catalog(ark)
    # Secure=False only because the demo is served over plain http://localhost.
    # check=False: the app checks the server once below, for both.
    store = ark.sessions(cookie=CookieConfig(secure=False), check=False)
    tokens = ark.tokens(check=False)
    limits = Limits(ark, trusted_proxies=trusted)
    dashboard = create_dashboard(ark)  # at /dashboard/: open to anyone, as the demo is
    order_queue = orders.Orders(ark, catalog)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await catalog.seed()
        await key.get()
        if check_server:
            await _warn_once(ark)
        await order_queue.start()
        await dashboard.state.dashboard.start()
        try:
            yield
        finally:
            await dashboard.state.dashboard.stop()
            await order_queue.stop()

    app = FastAPI(title="redkit demo shop", lifespan=lifespan)
    app.state.redkit = ark
    app.add_middleware(SessionMiddleware, store=store, client_ip=limits.client_ip)
    install_rate_limit_errors(app)
    app.include_router(
        products.router(
            ark.cache("demo-products"),
            catalog,
            api_limit=limits.api,
            login_required=auth.current_user,
        )
    )
    app.include_router(auth.router(store, tokens, key, login_limit=limits.login))
    app.include_router(payments.router(ark))
    app.include_router(orders.router(order_queue, api_limit=limits.api))
    live.install(app, ark)
    app.mount("/dashboard", dashboard)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("redkit.demo").joinpath("static/index.html").read_text()

    @app.get("/info")
    async def info() -> dict[str, Any]:
        found = await ark.info()
        return {"engine": found.engine, "version": found.version, "mode": found.mode}

    return app


async def _warn_once(ark: AsyncRedkit) -> None:
    """One log line for everything that can make the demo forget logins or revocations."""
    try:
        info = await ark.info()
    except RedkitError as exc:  # e.g. INFO disabled on a managed service
        log.info("redkit demo: could not check the server's persistence: %s", exc)
        return
    found = server_warnings(info.maxmemory_policy, info.persistence)
    if found:
        log.warning("redkit demo on %s: %s", ark.target, "; ".join(found))
