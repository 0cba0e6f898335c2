"""Rate limits: a strict per-IP limit on ``/login`` (GCRA), a per-user limit on the API.

Both answer 429 with ``Retry-After`` and the IETF ``RateLimit`` fields; the page reads
those headers to show the remaining budget.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from redkit import AsyncRedkit
from redkit.integrations.asgi.ratelimit import RateLimit
from redkit.integrations.clientip import TrustedProxies, client_ip

LOGIN_POLICY = "5/minute"
API_POLICY = "30/10 seconds"


DEADLINE = 2.0  # seconds a limit check may take


class Limits:
    """The demo's two limits, as FastAPI dependencies, and the client-IP function."""

    def __init__(self, ark: AsyncRedkit, *, trusted_proxies: list[str]) -> None:
        self._trusted = TrustedProxies(trusted_proxies)
        # a demo's first request also discovers a cluster's slots and opens connections:
        # allow that on a busy machine instead of the default half-second (fail closed)
        self.login = RateLimit(
            ark.rate_limiter(LOGIN_POLICY, algorithm="gcra", name="login", deadline=DEADLINE),
            key=self._ip_key,
        )
        self.api = RateLimit(
            ark.rate_limiter(API_POLICY, name="api", deadline=DEADLINE), key=self._user_key
        )

    def client_ip(self, scope: MutableMapping[str, Any]) -> str | None:
        """The client's address; proxy headers only from the trusted proxies."""
        peer = scope.get("client")
        return client_ip(peer[0] if peer else None, scope.get("headers") or (), self._trusted)

    def _ip_key(self, scope: MutableMapping[str, Any]) -> str | None:
        ip = self.client_ip(scope)
        return None if ip is None else "ip:" + ip

    def _user_key(self, scope: MutableMapping[str, Any]) -> str | None:
        session = scope.get("session")
        user = session.user if session is not None else None
        return "user:" + user if user else self._ip_key(scope)
