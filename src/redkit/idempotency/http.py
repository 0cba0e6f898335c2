"""Idempotency keys over HTTP, written once for every framework integration.

An integration turns its request into a :class:`Request`, its response into a
:class:`Reply`, and calls :func:`handle` (sync views) or :func:`handle_async`::

    reply = handle(idempotency, policy, request, run_view)
    return native_response if reply is None else to_native(reply)

The rules (after the IETF draft "The Idempotency-Key HTTP Header Field" and Stripe):

- a request of the policy's methods with an ``Idempotency-Key`` header runs once per key,
  method, path and user; its status, safe headers and body are stored and replayed to
  repeats with ``Idempotent-Replayed: true``;
- a concurrent duplicate gets 409 with ``Retry-After`` (or, with ``wait=True``, the first
  request's response once it is ready); the same key with another payload 422 (the
  payload's fingerprint is an HMAC of method, path and the canonical body); a missing
  key where one is required 400; a store that cannot be reached 503 (``on_error="open"``:
  the request runs unprotected instead);
- a 5xx response or an exception releases the key so a retry runs, unless the
  idempotency object keeps failures (``on_failure="keep"``: the 5xx is replayed, an
  exception answers 500);
- every error is an RFC 9457 ``application/problem+json`` document.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson

from redkit.errors import (
    ConfigError,
    IdempotencyConflictError,
    IdempotencyError,
    IdempotencyMismatchError,
    IdempotentCallFailedError,
)
from redkit.errors import ConnectionError as RedkitConnectionError

if TYPE_CHECKING:
    from redkit.idempotency.idempotency import AsyncIdempotency, Idempotency

PROBLEM_TYPE = "application/problem+json"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
OnStoreDown = Literal["closed", "open"]
# never replayed: they belong to one response (cookies, dates, framing), not to its result
UNSAFE_HEADERS = frozenset(
    {
        "set-cookie",
        "date",
        "server",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "upgrade",
        "www-authenticate",
        "proxy-authenticate",
        REPLAYED.lower(),
    }
)
PROBLEMS = {
    400: ("Bad Request", "This request needs an Idempotency-Key header (at most 255 characters)."),
    409: ("Conflict", "A request with this Idempotency-Key is still being processed; retry later."),
    422: ("Unprocessable Content", "This Idempotency-Key was used with another request payload."),
    500: ("Internal Server Error", "The first request with this Idempotency-Key failed."),
    503: ("Service Unavailable", "Idempotency keys are unavailable; try again shortly."),
}
_STATUS: dict[type[IdempotencyError], int] = {
    IdempotencyConflictError: 409,
    IdempotencyMismatchError: 422,
    IdempotentCallFailedError: 500,
}


@dataclass(frozen=True, slots=True)
class Policy:
    """How one route (or a whole app) treats idempotency keys.

    Args:
        required: answer 400 to a request of ``methods`` without a key (False: run it
            without idempotency).
        wait: a concurrent duplicate waits for the first response (up to the idempotency
            object's ``wait_timeout``) instead of getting 409.
        on_error: when Redis cannot be reached, ``"closed"`` answers 503 and never runs
            the handler unprotected; ``"open"`` runs it without idempotency.
        methods: the methods that take a key.
        header: the request header carrying the key.
    """

    required: bool = False
    wait: bool = False
    on_error: OnStoreDown = "closed"
    methods: frozenset[str] = field(default=frozenset({"POST", "PATCH"}))
    header: str = "idempotency-key"

    def __post_init__(self) -> None:
        if self.on_error not in ("closed", "open"):
            raise ConfigError(f"on_error must be 'closed' or 'open', got {self.on_error!r}")
        object.__setattr__(self, "methods", frozenset(m.upper() for m in self.methods))
        object.__setattr__(self, "header", self.header.lower())


def policy(
    *,
    required: bool = False,
    wait: bool = False,
    on_error: OnStoreDown = "closed",
    methods: Iterable[str] = ("POST", "PATCH"),
    header: str = "idempotency-key",
) -> Policy:
    """A :class:`Policy` from the keyword arguments every integration takes."""
    return Policy(required, wait, on_error, frozenset(methods), header)


@dataclass(frozen=True, slots=True)
class Request:
    """What the rules need of a request: ``key`` is the header's value (None: absent),
    ``user`` the caller's user or tenant ('' for none)."""

    method: str
    path: str
    key: str | None
    content_type: str
    body: bytes
    user: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """A response: status, headers (name, value) in order, body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def problem(status: int, instance: str) -> Reply:
    """An ``application/problem+json`` reply for one of the statuses in :data:`PROBLEMS`."""
    title, detail = PROBLEMS[status]
    document = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    headers = [("Content-Type", PROBLEM_TYPE)]
    if status in (409, 503):
        headers.append(("Retry-After", "1"))
    return Reply(status, headers, json.dumps(document).encode())


def canonical(content_type: str, body: bytes) -> bytes:
    """A JSON body with sorted keys and no whitespace (two spellings, one payload)."""
    if not content_type.lower().startswith("application/json"):
        return body
    try:
        document = json.loads(body)  # (orjson would read a very large integer as a float)
    except ValueError:
        return body
    try:
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def storable(reply: Reply) -> dict[str, Any]:
    """What is stored of a reply: status, safe headers, body (base64)."""
    safe = [[k, v] for k, v in reply.headers if _safe(k)]
    return {"status": reply.status, "headers": safe, "body": base64.b64encode(reply.body).decode()}


def replay(stored: dict[str, Any]) -> Reply:
    """The stored reply, marked ``Idempotent-Replayed: true``."""
    headers = [(str(k), str(v)) for k, v in stored["headers"]]
    headers.append((REPLAYED, "true"))
    return Reply(int(stored["status"]), headers, base64.b64decode(stored["body"]))


def _safe(name: str) -> bool:
    name = name.lower()
    return name not in UNSAFE_HEADERS and not name.startswith("proxy-")


def _server_error(stored: dict[str, Any]) -> bool:
    return int(stored["status"]) >= 500


class Exchange:
    """One request under the rules: what to do before the handler, and after."""

    def __init__(self, digest: Callable[..., str], rules: Policy, request: Request) -> None:
        self.rules, self.request = rules, request
        self.started = False
        self.own: Reply | None = None
        self.skip = request.method.upper() not in rules.methods or (
            request.key is None and not rules.required
        )
        key = request.key
        self.refused: Reply | None = None
        if not self.skip and (not key or len(key) > MAX_KEY_LENGTH):
            self.refused = problem(400, request.path)
        method, path = request.method.upper(), request.path
        self.key = f"{method} {path}|{request.user}|{key}"
        self.fingerprint = "" if self.skip else digest(
            method.encode(), path.encode(), canonical(request.content_type, request.body)
        )

    def ran(self, reply: Reply) -> dict[str, Any]:
        """Record the handler's own reply; its storable form."""
        self.own = reply
        return storable(reply)

    def answer(self, stored: dict[str, Any]) -> Reply | None:
        """None: send the handler's own response; else the stored one, replayed."""
        return None if self.own is not None else replay(stored)

    def failed(self, exc: Exception) -> Reply | None:
        """The reply for an error of the idempotency layer; None: run unprotected."""
        if isinstance(exc, IdempotencyError):
            return problem(_STATUS.get(type(exc), 409), self.request.path)
        if isinstance(exc, RedkitConnectionError) and not self.started:
            return None if self.rules.on_error == "open" else problem(503, self.request.path)
        raise exc  # the handler's own error (or a bug): the framework answers it


def handle(
    idempotency: Idempotency, rules: Policy, request: Request, handler: Callable[[], Reply]
) -> Reply | None:
    """Run a sync handler under the rules. None: send the handler's own response as it
    is (it ran now); a :class:`Reply`: send that (a replay or a problem)."""
    exchange = Exchange(idempotency.digest, rules, request)
    if exchange.refused is not None:
        return exchange.refused
    if exchange.skip:
        handler()
        return None

    def run() -> dict[str, Any]:
        exchange.started = True
        return exchange.ran(handler())

    try:
        stored = idempotency.do(
            exchange.key, run, fingerprint=exchange.fingerprint, wait=rules.wait,
            failed=_server_error,
        )
    except (IdempotencyError, RedkitConnectionError) as exc:
        reply = exchange.failed(exc)
        if reply is None:
            handler()
        return reply
    return exchange.answer(stored)


async def handle_async(
    idempotency: AsyncIdempotency,
    rules: Policy,
    request: Request,
    handler: Callable[[], Awaitable[Reply]],
) -> Reply | None:
    """:func:`handle` for an async handler."""
    exchange = Exchange(idempotency.digest, rules, request)
    if exchange.refused is not None:
        return exchange.refused
    if exchange.skip:
        await handler()
        return None

    async def run() -> dict[str, Any]:
        exchange.started = True
        return exchange.ran(await handler())

    try:
        stored = await idempotency.do(
            exchange.key, run, fingerprint=exchange.fingerprint, wait=rules.wait,
            failed=_server_error,
        )
    except (IdempotencyError, RedkitConnectionError) as exc:
        reply = exchange.failed(exc)
        if reply is None:
            await handler()
        return reply
    return exchange.answer(stored)
