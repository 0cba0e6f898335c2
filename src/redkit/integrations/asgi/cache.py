"""An HTTP response cache for ASGI apps (Starlette, FastAPI, any ASGI framework)::

    app.add_middleware(CacheMiddleware, cache=ark.cache("http", ttl=60))

Only ``GET`` requests without ``Authorization`` or ``Cookie`` are served from or stored in
the cache, and only ``200`` responses that are not ``private``/``no-store``, set no cookie
and do not vary on credentials. Each stored response gets a strong ``ETag`` (a digest of
its body, unless the app set one), so every instance hands out the same tag for the same
content; a request whose ``If-None-Match`` matches gets ``304 Not Modified``, whether the
response came from the cache or from the app. Responses carry ``X-Cache: hit|miss``
(``bypass`` when Redis was unavailable and the app answered uncached).
Pure ASGI: no framework is imported.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any, NoReturn

from redkit.cache import AsyncCache
from redkit.errors import RedkitError
from redkit.failure import FailurePolicy, unavailable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["CacheMiddleware", "etag_matches"]

_PRIVATE_REQUEST = (b"authorization", b"cookie")
_NO_STORE = ("no-store", "private", "no-cache")
_UNSAFE_VARY = ("*", "cookie", "authorization")


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of an ``If-None-Match`` header against one ETag."""
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in if_none_match.split(","))


class CacheMiddleware:
    """Cache whole GET responses in a :class:`~redkit.cache.AsyncCache`.

    Args:
        app: the ASGI app.
        cache: where responses are kept (its namespace, ttl and near cache apply).
        ttl: seconds a response stays cached (default: the cache's ttl).
        vary: request headers whose values become part of the key.
        exempt: path prefixes that are never cached.
        max_body: larger responses are passed through and not stored.
        on_error: when Redis is unavailable, ``"open"`` (the default) serves the app's
            response uncached (``X-Cache: bypass``); ``"closed"`` raises
            :class:`redkit.errors.ConnectionError`.
        cooldown: seconds after a failure during which Redis is not asked at all.
    """

    def __init__(
        self,
        app: ASGIApp,
        cache: AsyncCache,
        *,
        ttl: float | None = None,
        vary: Sequence[str] = ("accept", "accept-encoding"),
        exempt: Iterable[str] = (),
        max_body: int = 1 << 20,
        on_error: str = "open",
        cooldown: float = 1.0,
    ) -> None:
        self.app = app
        self._failure = FailurePolicy("response cache", on_error, cooldown)
        self.cache = cache
        self.ttl = ttl
        self.vary = tuple(h.lower().encode() for h in vary)
        self.exempt = tuple(exempt)
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._cacheable_request(scope):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        key = self._key(scope, headers)
        if_none_match = headers.get(b"if-none-match", b"").decode("latin-1")
        try:
            stored = await self._read(key)
        except _Bypass:
            await self.app(scope, receive, _bypassing(send))
            return
        if stored is not None:
            status, response_headers, body = _unpack(stored)
            await _respond(send, status, response_headers, body, if_none_match, b"hit")
            return
        captured = _Capture(send, self.max_body)
        await self.app(scope, receive, captured)
        if captured.passed_through:
            return
        if not captured.cacheable(self.max_body):
            await captured.replay(send)
            return
        response_headers = captured.with_etag()
        state = b"miss"
        try:
            await self._write(key, _pack(captured.status, response_headers, captured.body))
        except _Bypass:
            state = b"bypass"
        await _respond(send, captured.status, response_headers, captured.body, if_none_match, state)

    async def _read(self, key: str) -> Any:
        if self._failure.cooling_down():
            self._failure.failed(None)  # raises when failing closed
            raise _Bypass
        try:
            return await self.cache.get(key)
        except RedkitError as exc:
            self._unavailable(exc)

    async def _write(self, key: str, value: list[Any]) -> None:
        try:
            await self.cache.set(key, value, self.ttl)
        except RedkitError as exc:
            self._unavailable(exc)

    def _unavailable(self, exc: RedkitError) -> NoReturn:
        down = unavailable(exc)
        if down is None:
            raise exc
        self._failure.failed(down)  # raises when failing closed
        raise _Bypass from exc

    def _cacheable_request(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope.get("method") != "GET":
            return False
        if any(scope.get("path", "").startswith(p) for p in self.exempt):
            return False
        return not any(name in _PRIVATE_REQUEST for name, _ in scope.get("headers") or [])

    def _key(self, scope: Scope, headers: dict[bytes, bytes]) -> str:
        digest = hashlib.blake2b(digest_size=16)
        # scheme and Host are part of the key: a response built from the request's own URL
        # must never be served to a request for another host (cache poisoning)
        host = headers.get(b"host", b"")
        digest.update(str(scope.get("scheme", "http")).encode() + b"\0" + host + b"\0")
        for part in (scope.get("root_path", ""), scope.get("path", "")):
            digest.update(part.encode() + b"\0")
        digest.update(scope.get("query_string", b"") + b"\0")
        for name in self.vary:
            digest.update(name + b"=" + headers.get(name, b"") + b"\0")
        return "http:" + digest.hexdigest()


class _Capture:
    """An ASGI ``send`` that records the app's response instead of sending it.

    A streamed response that grows past ``max_body`` (or an event stream, which may never
    end) is handed through to the client from then on and not cached.
    """

    def __init__(self, send: Send, max_body: int) -> None:
        self._send = send
        self._max_body = max_body
        self._size = 0
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.passed_through = False

    async def __call__(self, message: Message) -> None:
        if self.passed_through:
            await self._send(message)
        elif message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
            self._size += len(self.chunks[-1])
            streaming = "text/event-stream" in self.header(b"content-type")
            if message.get("more_body") and (streaming or self._size > self._max_body):
                await self._pass_through()

    async def _pass_through(self) -> None:
        self.passed_through = True
        await self._send(
            {"type": "http.response.start", "status": self.status, "headers": self.headers}
        )
        for chunk in self.chunks:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header(self, name: bytes) -> str:
        return b",".join(v for k, v in self.headers if k == name).decode("latin-1").lower()

    def cacheable(self, max_body: int) -> bool:
        if self.status != 200 or len(self.body) > max_body:
            return False
        if any(k == b"set-cookie" for k, _ in self.headers):
            return False
        control, vary = self.header(b"cache-control"), self.header(b"vary")
        if any(word in control for word in _NO_STORE):
            return False
        return not any(v.strip() in _UNSAFE_VARY for v in vary.split(","))

    def with_etag(self) -> list[tuple[bytes, bytes]]:
        if any(k == b"etag" for k, _ in self.headers):
            return self.headers
        tag = '"' + hashlib.blake2b(self.body, digest_size=16).hexdigest() + '"'
        return [*self.headers, (b"etag", tag.encode())]

    async def replay(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class _Bypass(Exception):
    """Redis is unavailable and the policy is open: answer without the cache."""


def _bypassing(send: Send) -> Send:
    """``send`` with ``X-Cache: bypass`` added to the response's headers."""

    async def with_header(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), (b"x-cache", b"bypass")]
        await send(message)

    return with_header


def _pack(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> list[Any]:
    pairs = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers]
    return [status, pairs, base64.b64encode(body).decode("ascii")]


def _unpack(stored: list[Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status, pairs, body = stored
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]
    return int(status), headers, base64.b64decode(body)


async def _respond(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    if_none_match: str,
    cache_status: bytes,
) -> None:
    etag = next((v.decode("latin-1") for k, v in headers if k == b"etag"), None)
    headers = [*headers, (b"x-cache", cache_status)]
    if if_none_match and etag is not None and etag_matches(if_none_match, etag):
        kept = [(k, v) for k, v in headers if k not in (b"content-length", b"content-type")]
        await send({"type": "http.response.start", "status": 304, "headers": kept})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
