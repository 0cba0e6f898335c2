"""Rate limiting for ASGI apps (Starlette, FastAPI, any ASGI framework).

A global limit, as pure ASGI middleware::

    app.add_middleware(RateLimitMiddleware, limiter=ark.rate_limiter("100/minute"),
                       key=ip_key(trusted_proxies=["10.0.0.0/8"]), exempt=["/health"])

A per-route limit, as a FastAPI dependency::

    login_limit = RateLimit(ark.rate_limiter("5/minute", name="login"))
    @app.post("/login", dependencies=[Depends(login_limit)])

    install(app)   # render the dependency's 429s as application/problem+json

Rejected requests get 429 with ``Retry-After``, ``RateLimit-Policy`` and ``RateLimit``
and an ``application/problem+json`` body; admitted ones get the two RateLimit fields,
also when the route then fails with an ``HTTPException`` (the attempt was charged). A
request whose key function finds no key is limited by ``fallback`` (the client IP by
default; ``"reject"`` answers 400). A fail-closed limiter that cannot reach Redis answers
503.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from redkit._lazy import require
from redkit.errors import ConnectionError as RedkitConnectionError
from redkit.integrations.clientip import TrustedProxies, client_ip, header_values
from redkit.ratelimit import AsyncRateLimiter, RateLimitResult
from redkit.ratelimit.http import (
    MISSING_KEY,
    PROBLEM_TYPE,
    Fallback,
    fallback_key,
    fingerprint,
    headers,
    missing_key_problem,
    problem,
    unavailable_problem,
)

require("starlette", "asgi")
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
KeyFunc = Callable[[Scope], "Awaitable[str | None] | str | None"]

__all__ = [
    "RateLimit",
    "RateLimitMiddleware",
    "RateLimited",
    "header_key",
    "install",
    "ip_key",
    "rate_limited_handler",
    "user_key",
]


def ip_key(
    trusted_proxies: Iterable[str] | TrustedProxies = (), header: str = "x-forwarded-for"
) -> KeyFunc:
    """Key requests by client IP; proxy headers are believed only from ``trusted_proxies``."""
    trusted = TrustedProxies(trusted_proxies)

    def key(scope: Scope) -> str | None:
        peer = scope.get("client")
        ip = client_ip(
            peer[0] if peer else None, scope.get("headers") or (), trusted, header=header
        )
        return None if ip is None else "ip:" + ip

    return key


def header_key(name: str = "x-api-key") -> KeyFunc:
    """Key requests by a header such as an API key (hashed: no secret in Redis key names)."""

    def key(scope: Scope) -> str | None:
        values = header_values(scope.get("headers") or (), name)
        return fingerprint(values[0]) if values and values[0] else None

    return key


def user_key(attribute: str = "identity") -> KeyFunc:
    """Key requests by ``scope["user"].<attribute>`` (Starlette's AuthenticationMiddleware)."""

    def key(scope: Scope) -> str | None:
        user = scope.get("user")
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        return "user:" + str(getattr(user, attribute))

    return key


async def _call(key: KeyFunc, scope: Scope) -> str | None:
    value = key(scope)
    if inspect.isawaitable(value):
        value = await value
    return value


async def _key_of(key: KeyFunc, fallback: KeyFunc | None, scope: Scope) -> str | None:
    """The request's key, else the fallback's; None: reject the request."""
    value = await _call(key, scope)
    if value is None and fallback is not None:
        value = await _call(fallback, scope)
    return value


def _raw_headers(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


class RateLimitMiddleware:
    """Pure ASGI middleware applying one limiter to every HTTP request it does not exempt.

    Args:
        app: the ASGI app.
        limiter: an :class:`~redkit.ratelimit.AsyncRateLimiter`.
        key: ``scope -> key`` (sync or async). Default: the socket peer (``ip_key()``,
            no proxies trusted).
        fallback: for a request ``key`` finds no key for (None): ``"ip"`` (the socket
            peer's budget, the default), ``"reject"`` (400), or another key function.
        exempt: path prefixes, or ``scope -> bool``, that are not limited.
        cost: the cost of one request.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: AsyncRateLimiter,
        *,
        key: KeyFunc | None = None,
        fallback: Fallback = "ip",
        exempt: Iterable[str] | Callable[[Scope], bool] = (),
        cost: int = 1,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.key = key or ip_key()
        self._fallback = fallback_key(fallback, ip_key())
        self._exempt = exempt if callable(exempt) else _prefixes(tuple(exempt))
        self.cost = cost

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        key = await _key_of(self.key, self._fallback, scope)
        if key is None:
            await _respond(send, 400, missing_key_problem(), [])
            return
        try:
            result = await self.limiter.hit(key, self.cost)
        except RedkitConnectionError:
            await _respond(send, 503, unavailable_problem(), [])
            return
        if not result.allowed:
            await _respond(send, 429, problem(result, scope.get("path")), headers(result))
            return
        extra = _raw_headers(headers(result))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _prefixes(paths: tuple[str, ...]) -> Callable[[Scope], bool]:
    def exempt(scope: Scope) -> bool:
        return bool(paths) and str(scope.get("path", "")).startswith(paths)

    return exempt


async def _respond(send: Send, status: int, body: bytes, extra: list[tuple[str, str]]) -> None:
    raw = [(b"content-type", PROBLEM_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": raw + _raw_headers(extra)}
    )
    await send({"type": "http.response.body", "body": body})


class RateLimited(HTTPException):
    """Raised by :class:`RateLimit` for a rejected request (a 429 with the rate headers)."""

    def __init__(self, result: RateLimitResult, path: str | None = None) -> None:
        super().__init__(429, "Too Many Requests", headers=dict(headers(result)))
        self.result = result
        self.path = path


class RateLimit:
    """A FastAPI dependency that applies ``limiter`` to the routes that depend on it.

    Admitted requests get the RateLimit header fields on their response, also when the
    route raises an ``HTTPException`` (the fields are added to it); rejected ones raise
    :class:`RateLimited` (429). Call :func:`install` once to render those as
    ``application/problem+json``. Takes ``key``, ``fallback`` and ``cost`` as the
    middleware does; a request with no key and no fallback raises a 400 ``HTTPException``.
    """

    def __init__(
        self,
        limiter: AsyncRateLimiter,
        *,
        key: KeyFunc | None = None,
        fallback: Fallback = "ip",
        cost: int = 1,
    ) -> None:
        self.limiter = limiter
        self.key = key or ip_key()
        self._fallback = fallback_key(fallback, ip_key())
        self.cost = cost

    async def __call__(
        self, request: Request, response: Response
    ) -> AsyncIterator[RateLimitResult]:
        key = await _key_of(self.key, self._fallback, request.scope)
        if key is None:
            raise HTTPException(400, MISSING_KEY)
        try:
            result = await self.limiter.hit(key, self.cost)
        except RedkitConnectionError:
            raise HTTPException(503, "Rate limiting is unavailable") from None
        if not result.allowed:
            raise RateLimited(result, request.url.path)
        fields = headers(result)
        for name, value in fields:
            response.headers.append(name, value)
        try:
            yield result
        except HTTPException as exc:
            # the route failed after the hit was charged: its error response still says so
            exc.headers = {**(exc.headers or {}), **dict(fields)}
            raise


async def rate_limited_handler(request: Request, exc: Exception) -> Response:
    """Render :class:`RateLimited` as a 429 ``application/problem+json`` response."""
    if not isinstance(exc, RateLimited):
        raise exc
    body = problem(exc.result, exc.path)
    return Response(body, 429, headers=exc.headers, media_type=PROBLEM_TYPE)


def install(app: Any) -> None:
    """Register :func:`rate_limited_handler` on a Starlette or FastAPI app."""
    app.add_exception_handler(RateLimited, rate_limited_handler)
