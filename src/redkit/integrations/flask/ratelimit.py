"""Rate limiting for Flask: an extension for a global limit, a decorator per view.

::

    limits = FlaskRateLimit(app, rk.rate_limiter("100/minute"),
                            key=ip_key(trusted_proxies=["10.0.0.0/8"]), exempt=["/health"])

    @app.post("/login")
    @limits.limit(rk.rate_limiter("5/minute", name="login"))
    def login(): ...

    @app.get("/metrics")
    @limits.exempt
    def metrics(): ...

Rejected requests get 429 with ``Retry-After``, ``RateLimit-Policy`` and ``RateLimit``
and an ``application/problem+json`` body; admitted ones get the two RateLimit fields,
also when the view then fails (``abort(401)``: the attempt was charged). A request whose
key function finds no key is limited by ``fallback`` (the client IP by default;
``"reject"`` answers 400). A fail-closed limiter that cannot reach Redis answers 503.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from redkit._lazy import require
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

flask = require("flask", "flask")

F = TypeVar("F", bound=Callable[..., Any])
KeyFunc = Callable[[Any], "str | None"]
_RESULTS = "redkit_ratelimit_results"
_EXEMPT = "_redkit_ratelimit_exempt"

__all__ = ["FlaskRateLimit", "header_key", "ip_key"]


def ip_key(
    trusted_proxies: Iterable[str] | TrustedProxies = (), header: str = "x-forwarded-for"
) -> KeyFunc:
    """Key requests by client IP; proxy headers are believed only from ``trusted_proxies``."""
    trusted = TrustedProxies(trusted_proxies)

    def key(request: Any) -> str | None:
        ip = client_ip(request.remote_addr, request.headers, trusted, header=header)
        return None if ip is None else "ip:" + ip

    return key


class FlaskRateLimit:
    """The Flask extension. ``init_app`` style is supported.

    Args:
        app: the Flask app (or None, then call :meth:`init_app`).
        limiter: the global limiter; None for per-view limits only.
        key: ``request -> key``. Default: ``ip_key()``.
        fallback: for a request ``key`` finds no key for (None): ``"ip"`` (the socket
            peer's budget, the default), ``"reject"`` (400), or another key function.
        exempt: path prefixes that the global limit skips.
        cost: the cost of one request.
    """

    def __init__(
        self,
        app: Any = None,
        limiter: RateLimiter | None = None,
        *,
        key: KeyFunc | None = None,
        fallback: Fallback = "ip",
        exempt: Iterable[str] = (),
        cost: int = 1,
    ) -> None:
        self.limiter = limiter
        self.key = key or ip_key()
        self.fallback = fallback_key(fallback, ip_key())
        self.exempt_paths = tuple(exempt)
        self.cost = cost
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        """Register the before/after request hooks on ``app``."""
        app.extensions["redkit_ratelimit"] = self
        app.before_request(self._before)
        app.after_request(self._after)

    def exempt(self, view: F) -> F:
        """Mark a view as not subject to the global limit."""
        setattr(view, _EXEMPT, True)
        return view

    def limit(
        self,
        limiter: RateLimiter,
        *,
        key: KeyFunc | None = None,
        fallback: Fallback | None = None,
        cost: int = 1,
    ) -> Callable[[F], F]:
        """A per-view limit, checked after the global one (``fallback``: the extension's)."""
        key_func = key or self.key
        fallback_func = self.fallback if fallback is None else fallback_key(fallback, ip_key())

        def decorate(view: F) -> F:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                rejected = _check(limiter, key_func, fallback_func, cost)
                return rejected if rejected is not None else view(*args, **kwargs)

            return wrapper  # type: ignore[return-value]

        return decorate

    def _before(self) -> Any:
        request = flask.request
        if self.limiter is None or request.path.startswith(self.exempt_paths or ("\0",)):
            return None
        view = flask.current_app.view_functions.get(request.endpoint or "")
        if view is not None and getattr(view, _EXEMPT, False):
            return None
        return _check(self.limiter, self.key, self.fallback, self.cost)

    def _after(self, response: Any) -> Any:
        results = flask.g.get(_RESULTS)
        if results and response.status_code != 429:
            for name, value in headers(results):
                response.headers.add(name, value)
        return response


def _check(limiter: RateLimiter, key_func: KeyFunc, fallback: KeyFunc | None, cost: int) -> Any:
    """None when admitted (the result is kept for the headers), else the response to send."""
    key = key_func(flask.request)
    if key is None and fallback is not None:
        key = fallback(flask.request)
    if key is None:
        return flask.Response(missing_key_problem(), 400, mimetype=PROBLEM_TYPE)
    try:
        result = limiter.hit(key, cost)
    except RedkitConnectionError:
        return flask.Response(unavailable_problem(), 503, mimetype=PROBLEM_TYPE)
    if not result.allowed:
        return _rejected(result)
    results: list[RateLimitResult] = flask.g.setdefault(_RESULTS, [])
    results.append(result)
    return None


def _rejected(result: RateLimitResult) -> Any:
    body = problem(result, flask.request.path)
    return flask.Response(body, 429, headers=headers(result), mimetype=PROBLEM_TYPE)
