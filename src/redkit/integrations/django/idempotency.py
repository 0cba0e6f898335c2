"""Idempotency keys for Django views: a decorator per view.

::

    payments = rk.idempotency("payments")

    @idempotent(payments, required=True, user=lambda request: str(request.user.pk))
    def pay(request): ...

The rules are the ASGI middleware's (:mod:`redkit.idempotency.http`): the first request
with an ``Idempotency-Key`` runs and its status, safe headers and body are stored;
repeats get them replayed with ``Idempotent-Replayed: true``; a concurrent duplicate
409 (or, with ``wait=True``, the first response), another payload 422, a missing
required key 400, a store down 503 (``on_error="open"``: the view runs unprotected),
all as ``application/problem+json``. A 5xx response or an exception (``Http404``
included) releases the key. Views are synchronous; a streaming response cannot be
stored and raises ``ConfigError``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from redkit._lazy import require
from redkit.errors import ConfigError
from redkit.idempotency import Idempotency
from redkit.idempotency.http import OnStoreDown, Reply, Request, handle, policy

require("django", "django")
from django.http import HttpResponse  # noqa: E402

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
    """Make a view idempotent by key (the options are those of
    :func:`redkit.integrations.flask.idempotency.idempotent`)."""
    rules = policy(required=required, wait=wait, on_error=on_error, methods=methods, header=header)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
            incoming = Request(
                request.method,
                request.path,
                request.headers.get(rules.header),
                request.content_type or "",
                request.body,
                (user(request) or "") if user is not None else "",
            )
            own: list[Any] = []

            def run() -> Reply:
                response = view(request, *args, **kwargs)
                own.append(response)
                if getattr(response, "streaming", False):
                    raise ConfigError("an idempotent view cannot return a streaming response")
                return Reply(response.status_code, list(response.items()), response.content)

            reply = handle(idempotency, rules, incoming, run)
            if reply is None:
                return own[0]
            response = HttpResponse(reply.body, status=reply.status)
            for name, value in reply.headers:
                response[name] = value
            return response

        return wrapper  # type: ignore[return-value]

    return decorate
