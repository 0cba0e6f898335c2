"""Rate limiting for Django: a middleware for a global limit, a decorator per view.

Settings::

    MIDDLEWARE = [..., "redkit.integrations.django.ratelimit.RateLimitMiddleware"]
    REDKIT_RATELIMIT = {
        "limiter": "myapp.limits.global_limiter",   # a RateLimiter, or its dotted path
        "trusted_proxies": ["10.0.0.0/8"],          # whose X-Forwarded-For is believed
        "exempt": ["/health"],                      # path prefixes not limited
        "fallback": "ip",                           # no key: "ip", "reject" or a key function
    }

Per view::

    @ratelimit(rk.rate_limiter("5/minute", name="login"))
    def login(request): ...

Rejected requests get 429 with ``Retry-After``, ``RateLimit-Policy`` and ``RateLimit``
and an ``application/problem+json`` body; admitted ones get the two RateLimit fields,
also when the view then fails with ``PermissionDenied``, ``Http404`` or another exception
Django answers with a 4xx (the attempt was charged). A request whose key function finds
no key is limited by ``fallback`` (the client IP by default; ``"reject"`` answers 400).
A fail-closed limiter that cannot reach Redis answers 503. Views are synchronous.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from redkit._lazy import require
from redkit.errors import ConfigError
from redkit.errors import ConnectionError as RedkitConnectionError
from redkit.integrations.clientip import TrustedProxies, client_ip
from redkit.ratelimit import RateLimiter, RateLimitResult
from redkit.ratelimit.http import (
    PROBLEM_TYPE,
    Fallback,
    fallback_key,
    header_key,
    headers,
    missing_key_problem,
    problem,
    unavailable_problem,
)

require("django", "django")
from django.conf import settings  # noqa: E402
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation  # noqa: E402
from django.core.handlers.exception import response_for_exception  # noqa: E402
from django.http import Http404, HttpResponse  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

F = TypeVar("F", bound=Callable[..., Any])
KeyFunc = Callable[[Any], "str | None"]
_RESULTS = "_redkit_ratelimit_results"
# what Django itself answers with a 4xx; anything else propagates untouched
_CLIENT_ERRORS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation)

__all__ = ["RateLimitMiddleware", "header_key", "ip_key", "ratelimit"]


def ip_key(
    trusted_proxies: Iterable[str] | TrustedProxies = (), header: str = "x-forwarded-for"
) -> KeyFunc:
    """Key requests by client IP; proxy headers are believed only from ``trusted_proxies``."""
    trusted = TrustedProxies(trusted_proxies)

    def key(request: Any) -> str | None:
        peer = request.META.get("REMOTE_ADDR")
        ip = client_ip(peer, request.headers, trusted, header=header)
        return None if ip is None else "ip:" + ip

    return key


def _check(
    request: Any, limiter: RateLimiter, key_func: KeyFunc, fallback: KeyFunc | None, cost: int
) -> Any:
    """None when admitted (the result is kept for the headers), else the response to send."""
    key = key_func(request)
    if key is None and fallback is not None:
        key = fallback(request)
    if key is None:
        return HttpResponse(missing_key_problem(), status=400, content_type=PROBLEM_TYPE)
    try:
        result = limiter.hit(key, cost)
    except RedkitConnectionError:
        return HttpResponse(unavailable_problem(), status=503, content_type=PROBLEM_TYPE)
    if not result.allowed:
        response = HttpResponse(
            problem(result, request.path), status=429, content_type=PROBLEM_TYPE
        )
        _add_headers(response, [result])
        return response
    results: list[RateLimitResult] = request.__dict__.setdefault(_RESULTS, [])
    results.append(result)
    return None


def _add_headers(response: Any, results: list[RateLimitResult]) -> None:
    merged: dict[str, str] = {}
    for name, value in headers(results):
        merged[name] = value
    for name, value in merged.items():
        response[name] = value


def ratelimit(
    limiter: RateLimiter,
    *,
    key: KeyFunc | None = None,
    fallback: Fallback = "ip",
    cost: int = 1,
) -> Callable[[F], F]:
    """A per-view limit.

    Args:
        limiter: the :class:`~redkit.ratelimit.RateLimiter`.
        key: ``request -> key`` (default: the socket peer's IP).
        fallback: for a request ``key`` finds no key for: ``"ip"`` (default), ``"reject"``
            (400) or another key function.
        cost: the cost of one request.
    """
    key_func = key or ip_key()
    fallback_func = fallback_key(fallback, ip_key())

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
            rejected = _check(request, limiter, key_func, fallback_func, cost)
            if rejected is not None:
                return rejected
            try:
                response = view(request, *args, **kwargs)
            except _CLIENT_ERRORS as exc:
                # answered here as Django would, so that the charged attempt's headers go out
                response = response_for_exception(request, exc)
            if not getattr(request, "_redkit_ratelimit_middleware", False):
                _add_headers(response, request.__dict__.get(_RESULTS, []))
            return response

        return wrapper  # type: ignore[return-value]

    return decorate


class RateLimitMiddleware:
    """The global limit, configured by ``settings.REDKIT_RATELIMIT`` (see the module docs)."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        config: dict[str, Any] = dict(getattr(settings, "REDKIT_RATELIMIT", {}))
        limiter = config.get("limiter")
        if isinstance(limiter, str):
            limiter = import_string(limiter)
        if callable(limiter) and not isinstance(limiter, RateLimiter):
            limiter = limiter()
        if not isinstance(limiter, RateLimiter):
            raise ConfigError(
                "settings.REDKIT_RATELIMIT['limiter'] must be a redkit RateLimiter, a "
                "callable returning one, or its dotted path"
            )
        self.limiter = limiter
        key = config.get("key")
        if isinstance(key, str):
            key = import_string(key)
        self.key: KeyFunc = key or ip_key(
            config.get("trusted_proxies", ()), config.get("header", "x-forwarded-for")
        )
        fallback = config.get("fallback", "ip")
        if isinstance(fallback, str) and fallback not in ("ip", "reject"):
            fallback = import_string(fallback)
        self.fallback = fallback_key(
            fallback,
            ip_key(config.get("trusted_proxies", ()), config.get("header", "x-forwarded-for")),
        )
        self.exempt = tuple(config.get("exempt", ()))
        self.cost = int(config.get("cost", 1))

    def __call__(self, request: Any) -> Any:
        request._redkit_ratelimit_middleware = True
        if not (self.exempt and request.path.startswith(self.exempt)):
            rejected = _check(request, self.limiter, self.key, self.fallback, self.cost)
            if rejected is not None:
                return rejected
        response = self.get_response(request)
        results = request.__dict__.get(_RESULTS)
        if results and response.status_code != 429:
            _add_headers(response, results)
        return response
