"""Idempotency keys for Flask views: a decorator per view.

::

    payments = rk.idempotency("payments")

    @app.post("/payments")
    @idempotent(payments, required=True, wait=True)
    def pay(): ...

The rules are the ASGI middleware's (:mod:`redkit.idempotency.http`): the first request
with an ``Idempotency-Key`` runs and its status, safe headers and body are stored;
repeats get them replayed with ``Idempotent-Replayed: true``; a concurrent duplicate
409 (or, with ``wait=True``, the first response), another payload 422, a missing
required key 400, a store down 503 (``on_error="open"``: the view runs unprotected),
all as ``application/problem+json``. A 5xx response or an exception (``abort()``
included) releases the key. Streamed responses are read whole to be stored.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from redkit._lazy import require
from redkit.idempotency import Idempotency
from redkit.idempotency.http import OnStoreDown, Reply, Request, handle, policy

flask = require("flask", "flask")

F = TypeVar("F", bound=Callable[..., Any])
UserKey = Callable[[Any], "str | None"]

__all__ = ["idempotent"]


def idempotent(
    idempotency: Idempotency,
    *,
    required: bool = False,
    wait: bool = False,
    on_error: OnStoreDown = "closed",
    user: UserKey | None = None,
    methods: Iterable[str] = ("POST", "PATCH"),
    header: str = "idempotency-key",
) -> Callable[[F], F]:
    """Make a view idempotent by key.

    Args:
        idempotency: where keys live (``rk.idempotency("payments")``); its
            ``on_failure``, ``lease``, ``retention`` and ``wait_timeout`` apply.
        required: answer 400 to a request without a key (False: run it unprotected).
        wait: a concurrent duplicate waits for the first response instead of 409.
        on_error: Redis unavailable: ``"closed"`` answers 503, ``"open"`` runs the view.
        user: ``request -> user or tenant`` (keys never meet across users); None scopes
            keys per route only.
        methods: the methods that take a key.
        header: the request header carrying the key.
    """
    rules = policy(required=required, wait=wait, on_error=on_error, methods=methods, header=header)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = flask.request
            incoming = Request(
                request.method,
                request.path,
                request.headers.get(rules.header),
                request.content_type or "",
                request.get_data(cache=True),
                (user(request) or "") if user is not None else "",
            )
            own: list[Any] = []

            def run() -> Reply:
                response = flask.make_response(view(*args, **kwargs))
                own.append(response)
                headers = list(response.headers.items())
                return Reply(response.status_code, headers, response.get_data())

            reply = handle(idempotency, rules, incoming, run)
            if reply is None:
                return own[0]
            return flask.Response(reply.body, status=reply.status, headers=reply.headers)

        return wrapper  # type: ignore[return-value]

    return decorate
