"""Idempotency keys for ASGI apps (Starlette, FastAPI, any ASGI framework).

::

    app.add_middleware(IdempotencyMiddleware, idempotency=ark.idempotency("http"),
                       required=True)

A ``POST`` or ``PATCH`` with an ``Idempotency-Key`` header runs once per key, route and
user: the response (status, safe headers, body) is stored and replayed to repeats with
``Idempotent-Replayed: true``. A concurrent duplicate gets 409 (or, with ``wait=True``,
the first request's response once it is ready), the same key with another payload 422,
a missing key on a route that requires one 400, and a store that cannot be reached 503:
the request is not processed without protection (``on_error="open"`` processes it).
Errors are ``application/problem+json``. A 5xx response (or an exception) releases the
key so a retry may run, unless the idempotency object was built with
``on_failure="keep"``. The rules are :mod:`redkit.idempotency.http`'s, shared with the
FastAPI, Flask and Django integrations; for per-route options in FastAPI, see
:mod:`redkit.integrations.asgi.fastapi_idempotency`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from redkit.idempotency import AsyncIdempotency
from redkit.idempotency.http import OnStoreDown, Policy, Reply, Request, handle_async, policy

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
UserKey = Callable[[Scope], "Awaitable[str | None] | str | None"]

__all__ = ["IdempotencyMiddleware"]


class IdempotencyMiddleware:
    """Pure ASGI middleware that makes ``POST``/``PATCH`` requests idempotent by key.

    Args:
        app: the ASGI app.
        idempotency: where keys live (``ark.idempotency("http", ...)``); its
            ``on_failure``, ``lease``, ``retention`` and ``wait_timeout`` apply, and the
            payload fingerprints are HMACs keyed by its settings' ``secret``
            (``REDKIT_SECRET``).
        methods: the methods that take a key.
        required: answer 400 to such a request without a key (False: pass it through).
        user: a function of the scope naming the user or tenant, so two users' keys never
            meet; None scopes keys per route only.
        wait: a concurrent duplicate waits for the first response instead of getting 409.
        on_error: Redis unavailable: ``"closed"`` answers 503, ``"open"`` runs the app.
        header: the request header carrying the key.
        routes: per-route rules that replace the ones above, by path prefix (the longest
            matching prefix wins): ``{"/payments": policy(required=True, wait=True)}``
            with :func:`redkit.idempotency.http.policy`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        idempotency: AsyncIdempotency,
        methods: Iterable[str] = ("POST", "PATCH"),
        required: bool = False,
        user: UserKey | None = None,
        wait: bool = False,
        on_error: OnStoreDown = "closed",
        header: str = "idempotency-key",
        routes: Mapping[str, Policy] | None = None,
    ) -> None:
        self.app = app
        self.idempotency = idempotency
        self.rules = policy(
            required=required, wait=wait, on_error=on_error, methods=methods, header=header
        )
        self.user = user
        # longest prefix first, so that the first match is the most specific one
        self.routes = sorted((routes or {}).items(), key=lambda item: -len(item[0]))

    def rules_for(self, path: str) -> Policy:
        """The rules of the route at ``path``."""
        for prefix, rules in self.routes:
            if path.startswith(prefix):
                return rules
        return self.rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rules = self.rules_for(str(scope.get("path", "")))
        key = _header(scope, rules.header.encode("latin-1"))
        if scope["method"] not in rules.methods or (key is None and not rules.required):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        request = Request(
            scope["method"],
            str(scope.get("path", "")),
            key,
            _header(scope, b"content-type") or "",
            body,
            await self._user(scope),
        )
        own: list[Message] = []

        async def run() -> Reply:
            return await _run_app(self.app, scope, body, own)

        reply = await handle_async(self.idempotency, rules, request, run)
        if reply is None:
            for message in own:
                await send(message)
            return
        await send_reply(send, reply)

    async def _user(self, scope: Scope) -> str:
        if self.user is None:
            return ""
        user = self.user(scope)
        if not isinstance(user, str) and user is not None:
            user = await user
        return user or ""


async def _run_app(app: ASGIApp, scope: Scope, body: bytes, messages: list[Message]) -> Reply:
    """Run the app on the buffered request; keep its messages, return its reply."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    status, headers, chunks = 500, [], []
    for message in messages:
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
    return Reply(status, pairs, b"".join(chunks))


async def send_reply(send: Send, reply: Reply) -> None:
    """Send a :class:`Reply` (a replay or a problem) as one response."""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return str(value.decode("latin-1")).strip()
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
