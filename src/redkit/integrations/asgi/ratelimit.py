"""Rate limiting for ASGI apps (Starlette, FastAPI, any ASGI framework).

A global limit, as pure ASGI middleware::

    app.add_middleware(RateLimitMiddleware, limiter=ark.rate_limiter("100/minute"),
                       key=ip_key(trusted_proxies=["10.0.0.0/8"]), exempt=["/health"])

A per-route limit, as a FastAPI dependency::

    login_limit = RateLimit(ark.rate_limiter("5/minute", name="login"))
    @app.post("/login", dependencies=[Depends(login_limit)])

    install(app)   # render the dependency's 429s as application/problem+json

Rejected requests get 429 with ``Retry-After``, ``RateLimit-Policy`` and ``RateLimit``
and an ``application/problem+json`` body; admitted ones get the two RateLimit fields.
A fail-closed limiter that cannot reach Redis answers 503.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from redkit._lazy import require
from redkit.errors import ConnectionError as RedkitConnectionError
from redkit.errors import RedisCommandError
from redkit.integrations.clientip import TrustedProxies, client_ip, header_values
from redkit.ratelimit import AsyncRateLimiter, RateLimitResult
from redkit.ratelimit.http import PROBLEM_TYPE, fingerprint, headers, problem, unavailable_problem

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


async def _key_of(key: KeyFunc, scope: Scope) -> str | None:
    value = key(scope)
    if inspect.isawaitable(value):
        value = await value
    return value


def _raw_headers(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


class RateLimitMiddleware:
    """Pure ASGI middleware applying one limiter to every HTTP request it does not exempt.

    Args:
        app: the ASGI app.
        limiter: an :class:`~redkit.ratelimit.AsyncRateLimiter`.
        key: ``scope -> key`` (sync or async); None from it means "do not limit".
            Default: the socket peer (``ip_key()``, no proxies trusted).
        exempt: path prefixes, or ``scope -> bool``, that are not limited.
        cost: the cost of one request.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: AsyncRateLimiter,
        *,
        key: KeyFunc | None = None,
        exempt: Iterable[str] | Callable[[Scope], bool] = (),
        cost: int = 1,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.key = key or ip_key()
        self._exempt = exempt if callable(exempt) else _prefixes(tuple(exempt))
        self.cost = cost

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        key = await _key_of(self.key, scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        try:
            result = await self.limiter.hit(key, self.cost)
        except (RedkitConnectionError, RedisCommandError):
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

    Admitted requests get the RateLimit header fields on their response; rejected ones
    raise :class:`RateLimited` (429). Call :func:`install` once to render those as
    ``application/problem+json``. Takes ``key`` and ``cost`` as the middleware does.
    """

    def __init__(
        self, limiter: AsyncRateLimiter, *, key: KeyFunc | None = None, cost: int = 1
    ) -> None:
        self.limiter = limiter
        self.key = key or ip_key()
        self.cost = cost

    async def __call__(self, request: Request, response: Response) -> RateLimitResult | None:
        key = await _key_of(self.key, request.scope)
        if key is None:
            return None
        try:
            result = await self.limiter.hit(key, self.cost)
        except (RedkitConnectionError, RedisCommandError):
            raise HTTPException(503, "Rate limiting is unavailable") from None
        if not result.allowed:
            raise RateLimited(result, request.url.path)
        for name, value in headers(result):
            response.headers.append(name, value)
        return result


async def rate_limited_handler(request: Request, exc: Exception) -> Response:
    """Render :class:`RateLimited` as a 429 ``application/problem+json`` response."""
    if not isinstance(exc, RateLimited):
        raise exc
    body = problem(exc.result, exc.path)
    return Response(body, 429, headers=exc.headers, media_type=PROBLEM_TYPE)


def install(app: Any) -> None:
    """Register :func:`rate_limited_handler` on a Starlette or FastAPI app."""
    app.add_exception_handler(RateLimited, rate_limited_handler)
