"""HTTP presentation of a rate limit result, shared by every framework integration.

The header fields follow draft-ietf-httpapi-ratelimit-headers (RateLimit-Policy and
RateLimit, as Structured Field lists with one member per limit)::

    RateLimit-Policy: "10-per-1s";q=10;w=1, "1000-per-3600s";q=1000;w=3600
    RateLimit: "10-per-1s";r=7;t=1, "1000-per-3600s";r=993;t=3598

A rejected request also gets ``Retry-After`` (whole seconds, rounded up) and an RFC 9457
``application/problem+json`` body.

A key function that finds no key (``header_key("X-Api-Key")`` on a request without the
header) never lets the request skip the limit: the integration's ``fallback`` decides,
``"ip"`` (the default: the client IP's budget), ``"reject"`` (400), or another key
function (a request for which that finds no key either is rejected).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from typing import Any, Literal

from redkit.errors import ConfigError
from redkit.ratelimit.ops import RateLimitResult
from redkit.ratelimit.policy import Limit

PROBLEM_TYPE = "application/problem+json"
MISSING_KEY = "The request carries nothing to rate limit it by."
Fallback = Literal["ip", "reject"] | Callable[[Any], Any]


def _policy_member(limit: Limit) -> str:
    window = max(1, math.ceil(limit.period))
    return f'"{limit.name}";q={limit.capacity};w={window}'


def headers(results: RateLimitResult | list[RateLimitResult]) -> list[tuple[str, str]]:
    """``RateLimit-Policy``, ``RateLimit`` (and ``Retry-After`` when rejected) for results."""
    if isinstance(results, RateLimitResult):
        results = [results]
    policy: list[str] = []
    current: list[str] = []
    retry = 0.0
    for result in results:
        for state in result.states:
            policy.append(_policy_member(state.limit))
            reset = max(0, math.ceil(state.reset_after))
            current.append(f'"{state.limit.name}";r={max(0, state.remaining)};t={reset}')
        if not result.allowed:
            retry = max(retry, result.retry_after)
    out = [("RateLimit-Policy", ", ".join(policy)), ("RateLimit", ", ".join(current))]
    if retry > 0:
        out.append(("Retry-After", str(_retry_seconds(retry))))
    return out


def _retry_seconds(retry_after: float) -> int:
    # a cost that never fits has no honest Retry-After; a day says "do not retry soon"
    return 86400 if math.isinf(retry_after) else max(1, math.ceil(retry_after))


def problem(results: RateLimitResult | list[RateLimitResult], instance: str | None = None) -> bytes:
    """The RFC 9457 problem document of a 429 response."""
    if isinstance(results, RateLimitResult):
        results = [results]
    rejected = [r for r in results if not r.allowed] or results
    retry = max(r.retry_after for r in rejected)
    body: dict[str, object] = {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": f"Rate limit exceeded; retry after {_retry_seconds(retry)} seconds.",
    }
    if instance is not None:
        body["instance"] = instance
    return json.dumps(body).encode()


def fallback_key(fallback: Fallback, ip: Callable[[Any], Any]) -> Callable[[Any], Any] | None:
    """The key function for requests that the key function found no key for (None: reject).

    ``ip`` is the framework's client-IP key function, used for ``fallback="ip"``.
    """
    if fallback == "ip":
        return ip
    if fallback == "reject":
        return None
    if callable(fallback):
        return fallback
    raise ConfigError(f"fallback must be 'ip', 'reject' or a key function, got {fallback!r}")


def missing_key_problem() -> bytes:
    """The problem document of a 400 answered when a request has no key and none falls back."""
    body = {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": MISSING_KEY}
    return json.dumps(body).encode()


def unavailable_problem() -> bytes:
    """The problem document of a 503 answered when a fail-closed limiter cannot reach Redis."""
    body = {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "Rate limiting is unavailable; try again shortly.",
    }
    return json.dumps(body).encode()


def fingerprint(secret: str | bytes) -> str:
    """A stable, non-reversible stand-in for an API key or token used as a limiter key.

    Limiter keys end up in Redis key names (visible to SCAN and MONITOR); a secret must not.
    """
    raw = secret.encode() if isinstance(secret, str) else secret
    return "fp:" + hashlib.sha256(raw).hexdigest()[:32]


def header_key(name: str = "X-Api-Key") -> Callable[[Any], str | None]:
    """Key requests by a header such as an API key (hashed: no secret in Redis key names).

    Works with any request object whose ``headers.get(name)`` reads a header (Flask,
    Django); the ASGI integration has its own, over raw ASGI headers. A request without
    the header has no key: the integration's ``fallback`` applies.
    """

    def key(request: Any) -> str | None:
        value = request.headers.get(name)
        return fingerprint(value) if value else None

    return key
