"""Server-side sessions for any ASGI app: a drop-in for Starlette's ``SessionMiddleware``.

::

    from redkit.integrations.asgi.sessions import SessionMiddleware

    app.add_middleware(SessionMiddleware, store=ark.sessions())

    async def login(request):
        ...
        request.session.login(user.id)   # new id at the end of this request
        request.session["cart"] = []

``request.session`` is a :class:`redkit.sessions.Session` (a mutable mapping, like
Starlette's dict). Unlike signed-cookie sessions, the cookie holds only a random id, so
logging out really ends the session. Non-HTTP scopes pass through; WebSocket scopes get
the session to read (a WebSocket cannot set a cookie, so nothing is saved there).

When the store cannot reach Redis and fails closed (its ``on_error``, the default), the
request is answered 503 instead of the app's response; a store that fails open serves
a fresh session and the app runs as usual.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from redkit.errors import ConfigError
from redkit.errors import ConnectionError as RedkitConnectionError
from redkit.sessions import AsyncSessionStore, Session

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ClientIP = Callable[[Scope], "str | None"]


def peer_ip(scope: Scope) -> str | None:
    """The socket peer's address (behind a proxy, pass a trusted-proxy-aware ``client_ip``)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def session_of(request: Any) -> Session:
    """``request.session`` typed as the :class:`~redkit.sessions.Session` it is.

    Starlette annotates ``request.session`` as a dict; this helper gives type checkers
    the real type (``login()``, ``rotate()``, ``user``) and fails clearly without the
    middleware.
    """
    session = request.scope.get("session")
    if not isinstance(session, Session):
        raise ConfigError("no redkit session on this request: add SessionMiddleware to the app")
    return session


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _unavailable(send: Send) -> None:
    """Answer 503: the session store cannot reach Redis (and fails closed)."""
    body = b"Service Unavailable: the session store cannot reach Redis"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SessionMiddleware:
    """Load the session before the app runs; save it and set the cookie as the response starts.

    Args:
        app: the ASGI app to wrap.
        store: an :class:`~redkit.sessions.AsyncSessionStore` (``ark.sessions(...)``); its
            ``cookie`` settings name the cookie.
        client_ip: ``scope -> address`` recorded as the session's IP (default: the socket
            peer).
    """

    def __init__(
        self, app: ASGIApp, store: AsyncSessionStore, *, client_ip: ClientIP | None = None
    ) -> None:
        if not isinstance(store, AsyncSessionStore):
            raise ConfigError("SessionMiddleware needs an AsyncSessionStore (ark.sessions())")
        self.app = app
        self.store = store
        self.client_ip = client_ip or peer_ip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        cookie_id = self.store.cookie.read(_header(scope, b"cookie"))
        try:
            session = await self.store.load(
                cookie_id, ip=self.client_ip(scope), user_agent=_header(scope, b"user-agent")
            )
        except RedkitConnectionError:
            if scope["type"] == "websocket":
                raise
            await _unavailable(send)
            return
        scope["session"] = session
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        replaced = False  # the save failed: a 503 went out instead of the app's response

        async def send_with_cookie(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                try:
                    await self.store.save(session)
                except RedkitConnectionError:
                    replaced = True
                    await _unavailable(send)
                    return
                cookie = self._cookie(session, cookie_id)
                if cookie is not None:
                    headers = list(message.get("headers", ()))
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                    headers.append((b"vary", b"Cookie"))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _cookie(self, session: Session, cookie_id: str | None) -> str | None:
        config = self.store.cookie
        if session.id is not None and (session.id != cookie_id or config.max_age is not None):
            return config.header(session.id)
        if session.id is None and cookie_id is not None and session.ended:
            return config.deletion_header()
        return None
