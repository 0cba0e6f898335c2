"""Idempotency keys per FastAPI route: a dependency, and the route class that applies it.

::

    app = FastAPI()
    app.router.route_class = IdempotentRoute          # before the routes are added
    payments = Idempotent(ark.idempotency("payments"), required=True, wait=True)

    @app.post("/payments", dependencies=[Depends(payments)])
    async def pay(order: Order) -> dict: ...

The rules are the ASGI middleware's (:mod:`redkit.idempotency.http`), with the options
per route: the first request with a key runs and its response is stored; repeats get it
replayed with ``Idempotent-Replayed: true``; a concurrent duplicate 409 (or, with
``wait=True``, the first response), another payload 422, a missing required key 400, a
store down 503 (``on_error="open"``: the route runs unprotected). An exception raised
by the endpoint (``HTTPException`` included) releases the key, as a 5xx response does.
The dependency's value is the request's key (None when it has none). Streaming
responses cannot be stored: such a route raises ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from redkit._lazy import require
from redkit.errors import ConfigError
from redkit.idempotency import AsyncIdempotency
from redkit.idempotency.http import OnStoreDown, Reply, handle_async, policy
from redkit.idempotency.http import Request as IdemRequest

require("fastapi", "fastapi")
from fastapi.routing import APIRoute  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402

UserKey = Callable[[Request], "str | None"]
_MARK = "redkit.idempotent"

__all__ = ["Idempotent", "IdempotentRoute"]


class Idempotent:
    """A FastAPI dependency that makes the routes depending on it idempotent by key.

    Needs :class:`IdempotentRoute` as the router's ``route_class`` (a request through
    another route class raises ``ConfigError``).

    Args:
        idempotency: where keys live (``ark.idempotency("payments")``); its
            ``on_failure``, ``lease``, ``retention`` and ``wait_timeout`` apply.
        required: answer 400 to a request without a key (False: run it unprotected).
        wait: a concurrent duplicate waits for the first response instead of 409.
        on_error: Redis unavailable: ``"closed"`` answers 503, ``"open"`` runs the route.
        user: a function of the request naming the user or tenant (keys never meet
            across users); None scopes keys per route only.
        methods: the methods that take a key.
        header: the request header carrying the key.
    """

    def __init__(
        self,
        idempotency: AsyncIdempotency,
        *,
        required: bool = False,
        wait: bool = False,
        on_error: OnStoreDown = "closed",
        user: UserKey | None = None,
        methods: Iterable[str] = ("POST", "PATCH"),
        header: str = "idempotency-key",
    ) -> None:
        self.idempotency = idempotency
        self.rules = policy(
            required=required, wait=wait, on_error=on_error, methods=methods, header=header
        )
        self.user = user

    async def __call__(self, request: Request) -> str | None:
        if request.scope.get(_MARK) is not self:
            raise ConfigError(
                "Idempotent needs IdempotentRoute: set app.router.route_class = "
                "IdempotentRoute before adding the route"
            )
        return request.headers.get(self.rules.header)

    def request(self, request: Request, body: bytes) -> IdemRequest:
        """What the rules need of ``request``."""
        return IdemRequest(
            request.method,
            request.url.path,
            request.headers.get(self.rules.header),
            request.headers.get("content-type", ""),
            body,
            (self.user(request) or "") if self.user is not None else "",
        )


def _find(dependant: Any) -> Idempotent | None:
    for dependency in getattr(dependant, "dependencies", ()):
        if isinstance(dependency.call, Idempotent):
            return dependency.call
        found = _find(dependency)
        if found is not None:
            return found
    return None


class IdempotentRoute(APIRoute):
    """A route class that runs the routes depending on an :class:`Idempotent` under its
    rules (other routes run as usual)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        guard = _find(self.dependant)
        if guard is None:
            return original

        async def handler(request: Request) -> Response:
            request.scope[_MARK] = guard
            own: list[Response] = []

            async def run() -> Reply:
                response = await original(request)
                own.append(response)
                return _reply(response)

            reply = await handle_async(
                guard.idempotency, guard.rules, guard.request(request, await request.body()), run
            )
            if reply is None:
                return own[0]
            response = Response(reply.body, reply.status)
            response.raw_headers = [
                *(
                    (k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in reply.headers
                ),
                (b"content-length", str(len(reply.body)).encode()),
            ]
            return response

        return handler


def _reply(response: Response) -> Reply:
    body = getattr(response, "body", None)
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ConfigError(
            f"an idempotent route must return a complete response, not a "
            f"{type(response).__name__} (its body cannot be stored)"
        )
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]
    return Reply(response.status_code, headers, bytes(body))
