"""Idempotency keys for ASGI apps (Starlette, FastAPI, any ASGI framework).

::

    app.add_middleware(IdempotencyMiddleware, idempotency=ark.idempotency("http"),
                       secret=settings.IDEMPOTENCY_SECRET, required=True)

A ``POST`` or ``PATCH`` with an ``Idempotency-Key`` header runs once per key, route and
user: the response (status, safe headers, body) is stored and replayed to repeats with
``Idempotent-Replayed: true``. A concurrent duplicate gets 409 (or, with ``wait=True``,
the first request's response once it is ready), the same key with another payload 422,
a missing key on a route that requires one 400, and a store that cannot be reached 503:
the request is not processed without protection. Errors are
``application/problem+json``. A 5xx response (or an exception) releases the key so a
retry may run, unless the idempotency object was built with ``on_failure="keep"``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from redkit.errors import (
    ConnectionError as RedkitConnectionError,
)
from redkit.errors import (
    IdempotencyConflictError,
    IdempotencyError,
    IdempotencyMismatchError,
    IdempotentCallFailedError,
)
from redkit.idempotency import AsyncIdempotency
from redkit.idempotency.ops import hmac_fingerprint

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
UserKey = Callable[[Scope], "Awaitable[str | None] | str | None"]

__all__ = ["IdempotencyMiddleware"]

PROBLEM_TYPE = b"application/problem+json"
MAX_KEY_LENGTH = 255
# never replayed: they belong to one response (cookies, dates, framing), not to its result
UNSAFE_HEADERS = frozenset(
    {
        b"set-cookie",
        b"date",
        b"server",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"upgrade",
        b"www-authenticate",
        b"proxy-authenticate",
    }
)
_PROBLEMS = {
    400: ("Bad Request", "This request needs an Idempotency-Key header (at most 255 characters)."),
    409: ("Conflict", "A request with this Idempotency-Key is still being processed; retry later."),
    422: ("Unprocessable Content", "This Idempotency-Key was used with another request payload."),
    500: ("Internal Server Error", "The first request with this Idempotency-Key failed."),
    503: ("Service Unavailable", "Idempotency keys are unavailable; try again shortly."),
}


class IdempotencyMiddleware:
    """Pure ASGI middleware that makes ``POST``/``PATCH`` requests idempotent by key.

    Args:
        app: the ASGI app.
        idempotency: where keys live (``ark.idempotency("http", ...)``); its
            ``on_failure``, ``lease``, ``retention`` and ``on_error`` apply.
        secret: the HMAC key of the payload fingerprints (so that Redis never holds a
            digest of a guessable body); None uses an unkeyed digest.
        methods: the methods that take a key.
        required: answer 400 to such a request without a key (False: pass it through).
        user: a function of the scope naming the user or tenant, so two users' keys never
            meet; None scopes keys per route only.
        wait: a concurrent duplicate waits for the first response instead of getting 409.
        header: the request header carrying the key.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        idempotency: AsyncIdempotency,
        secret: str | bytes | None = None,
        methods: Iterable[str] = ("POST", "PATCH"),
        required: bool = False,
        user: UserKey | None = None,
        wait: bool = False,
        header: str = "idempotency-key",
    ) -> None:
        self.app = app
        self.idempotency = idempotency
        self._secret = secret.encode() if isinstance(secret, str) else (secret or b"")
        self.methods = frozenset(m.upper() for m in methods)
        self.required = required
        self.user = user
        self.wait = wait
        self._header = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in self.methods:
            await self.app(scope, receive, send)
            return
        key = _header(scope, self._header)
        if key is None and not self.required:
            await self.app(scope, receive, send)
            return
        if not key or len(key) > MAX_KEY_LENGTH:
            await _problem(send, 400, scope)
            return
        body = await _read_body(receive)
        scoped = f"{scope['method']} {scope.get('path', '')}|{await self._user(scope)}|{key}"
        exchange = _Exchange(self.app, scope, body)
        try:
            stored = await self.idempotency.do(
                scoped, exchange.run, fingerprint=self._fingerprint(scope, body),
                wait=self.wait, failed=_server_error,
            )
        except IdempotencyError as exc:
            await _problem(send, _STATUS[type(exc)], scope)
            return
        except RedkitConnectionError:
            if exchange.started:  # the app's own error, not the store's
                raise
            await _problem(send, 503, scope)
            return
        await exchange.respond(send, stored)

    async def _user(self, scope: Scope) -> str:
        if self.user is None:
            return ""
        user = self.user(scope)
        if not isinstance(user, str) and user is not None:
            user = await user
        return user or ""

    def _fingerprint(self, scope: Scope, body: bytes) -> str:
        method, path = scope["method"].encode(), str(scope.get("path", "")).encode()
        return hmac_fingerprint(self._secret, method, path, _canonical(scope, body))


_STATUS: dict[type[IdempotencyError], int] = {
    IdempotencyConflictError: 409,
    IdempotencyMismatchError: 422,
    IdempotentCallFailedError: 500,
}


def _server_error(stored: dict[str, Any]) -> bool:
    return int(stored["status"]) >= 500


class _Exchange:
    """One request run through the app, its response captured (and stored)."""

    def __init__(self, app: ASGIApp, scope: Scope, body: bytes) -> None:
        self.app, self.scope, self.body = app, scope, body
        self.started = False
        self.response: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None

    async def run(self) -> dict[str, Any]:
        """Run the app on the buffered request; the storable form of its response."""
        self.started = True
        status, headers, chunks = 500, [], []
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(self.scope, receive, send)
        self.response = (status, headers, b"".join(chunks))
        safe = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers if _safe(k)]
        body = base64.b64encode(self.response[2]).decode()
        return {"status": status, "headers": safe, "body": body}

    async def respond(self, send: Send, stored: dict[str, Any]) -> None:
        """Send this request's own response, or replay the stored one."""
        if self.response is not None:
            status, headers, body = self.response
        else:
            status, body = int(stored["status"]), base64.b64decode(stored["body"])
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored["headers"]]
            headers = [*headers, (b"idempotent-replayed", b"true")]
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _safe(name: bytes) -> bool:
    name = name.lower()
    return name not in UNSAFE_HEADERS and not name.startswith(b"proxy-")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return str(value.decode("latin-1")).strip()
    return None


def _canonical(scope: Scope, body: bytes) -> bytes:
    """A JSON body with sorted keys and no whitespace (two spellings, one payload)."""
    content_type = _header(scope, b"content-type") or ""
    if not content_type.startswith("application/json"):
        return body
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        return body


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


async def _problem(send: Send, status: int, scope: Scope) -> None:
    title, detail = _PROBLEMS[status]
    document = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    document["instance"] = str(scope.get("path", ""))
    body = json.dumps(document).encode()
    headers = [(b"content-type", PROBLEM_TYPE), (b"content-length", str(len(body)).encode())]
    if status in (409, 503):
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
