"""The demo shop: one FastAPI app, one :class:`~redkit.AsyncRedkit`, every capability.

``create_app()`` connects to ``REDIS_URL`` (the embedded Valkey when unset); tests pass
their own ``AsyncRedkit``. Environment:

``REDKIT_DEMO_SECRET``
    the JWT signing key. Set the same value on every demo process that should accept
    the others' tokens; without it each process makes a random one.
``REDKIT_DEMO_TRUSTED_PROXIES``
    comma-separated proxy networks whose ``X-Forwarded-For`` is believed (none by default).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from redkit import AsyncRedkit
from redkit.demo import auth, products
from redkit.demo.catalog import Catalog
from redkit.demo.limits import Limits
from redkit.integrations.asgi.ratelimit import install as install_rate_limit_errors
from redkit.integrations.asgi.sessions import SessionMiddleware
from redkit.sessions import CookieConfig


def create_app(ark: AsyncRedkit | None = None, *, jwt_key: str | None = None) -> FastAPI:
    """Build the demo app on ``ark`` (created from the environment when omitted)."""
    ark = ark or AsyncRedkit(prefix=os.environ.get("REDKIT_PREFIX") or "redkit-demo")
    jwt_key = jwt_key or os.environ.get("REDKIT_DEMO_SECRET") or secrets.token_urlsafe(32)
    trusted = [p for p in os.environ.get("REDKIT_DEMO_TRUSTED_PROXIES", "").split(",") if p]
    catalog = Catalog(ark)
    # Secure=False only because the demo is served over plain http://localhost.
    store = ark.sessions(cookie=CookieConfig(secure=False))
    tokens = ark.tokens()
    limits = Limits(ark, trusted_proxies=trusted)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await catalog.seed()
        yield

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
    app.include_router(auth.router(store, tokens, jwt_key, login_limit=limits.login))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("redkit.demo").joinpath("static/index.html").read_text()

    @app.get("/info")
    async def info() -> dict[str, Any]:
        found = await ark.info()
        return {"engine": found.engine, "version": found.version, "mode": found.mode}

    return app
