"""Server-side sessions for any ASGI app: a drop-in for Starlette's ``SessionMiddleware``.

::

    from redkit.integrations.asgi.sessions import SessionMiddleware

    app.add_middleware(SessionMiddleware, secret_key=..., https_only=True)  # Starlette's keywords

    async def login(request):
        ...
        request.session.login(user.id)   # new id at the end of this request
        request.session["cart"] = []

It takes Starlette's keywords and writes Starlette's ``Set-Cookie`` header, and
``request.session`` is a ``dict`` (a :class:`DictSession`). The cookie holds only a
random id, so logging out really ends the session. Non-HTTP scopes pass through;
WebSocket scopes get the session to read (a WebSocket cannot set a cookie).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

from redkit.errors import ConfigError
from redkit.errors import ConnectionError as RedkitConnectionError
from redkit.integrations.asgi.session_dict import DictSession
from redkit.sessions import AsyncSessionStore, CookieConfig, Session
from redkit.sessions.cookies import SameSite

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ClientIP = Callable[[Scope], "str | None"]
OnError = Literal["closed", "open"]

__all__ = ["DictSession", "SessionMiddleware", "peer_ip", "session_of"]

log = logging.getLogger("redkit.sessions")

#: Starlette's default ``max_age``: 14 days
DEFAULT_MAX_AGE = 14 * 24 * 60 * 60
_STARLETTE = ("session", DEFAULT_MAX_AGE, "/", "lax", False, None, False)
_UNAVAILABLE = RedkitConnectionError  # a refused command is a bug, never an outage
_PROBLEM = json.dumps(
    {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "Sessions are unavailable; try again shortly.",
    }
).encode()
_LOG_EVERY = 10.0


def peer_ip(scope: Scope) -> str | None:
    """The socket peer's address (behind a proxy, pass a trusted-proxy-aware ``client_ip``)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def session_of(request: Any) -> DictSession:
    """``request.session`` typed as the :class:`DictSession` it is.

    Starlette annotates ``request.session`` as a dict; this helper gives type checkers
    the real type (``login()``, ``rotate()``, ``user``) and fails clearly without the
    middleware.
    """
    session = request.scope.get("session")
    if not isinstance(session, DictSession):
        raise ConfigError("no redkit session on this request: add SessionMiddleware to the app")
    return session


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class SessionMiddleware:
    """Load the session before the app runs; save it and set the cookie as the response starts.

    The first eight arguments are Starlette's, with the same defaults and the same
    ``Set-Cookie`` header (``max_age=None``: a cookie that ends with the browser; 0 or
    less: the browser drops it at once, so nothing is stored).

    Args:
        app: the ASGI app to wrap.
        secret_key: accepted for compatibility and unused: the cookie carries a random
            256-bit id that only the server can resolve, so there is nothing to sign.
        session_cookie, max_age, path, same_site, https_only, domain, partitioned: the
            cookie, as in Starlette.
        store: an :class:`~redkit.sessions.AsyncSessionStore` (``ark.sessions(...)``)
            whose timeouts end sessions on the server. Default: a store on an
            ``AsyncRedkit()`` from the environment, with idle and absolute timeouts of
            ``max_age`` (of the store's defaults when ``max_age`` is None).
        client_ip: ``scope -> address`` recorded as the session's IP (default: the peer).
        on_error: when Redis cannot be reached: ``"closed"`` (default) answers 503 with
            an ``application/problem+json`` body; ``"open"`` runs the request with an
            empty session that is not saved.
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: Any = None,
        session_cookie: str = "session",
        max_age: int | None = DEFAULT_MAX_AGE,
        path: str = "/",
        same_site: SameSite = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
        *,
        store: AsyncSessionStore | None = None,
        client_ip: ClientIP | None = None,
        on_error: OnError = "closed",
    ) -> None:
        if isinstance(secret_key, AsyncSessionStore):
            raise ConfigError("pass the store by keyword: SessionMiddleware(app, store=...)")
        if on_error not in ("closed", "open"):
            raise ConfigError(f"on_error must be 'closed' or 'open', got {on_error!r}")
        if store is not None and not isinstance(store, AsyncSessionStore):
            raise ConfigError("SessionMiddleware needs an AsyncSessionStore (ark.sessions())")
        given = (session_cookie, max_age, path, same_site, https_only, domain, partitioned)
        if store is not None and store.cookie != CookieConfig():
            if given != _STARLETTE:
                raise ConfigError(
                    "the cookie is configured twice: pass either the store's cookie= or the "
                    "middleware's keywords (session_cookie=, max_age=, https_only= ...)"
                )
            cookie = store.cookie
            max_age, https_only = cookie.max_age, cookie.secure
        else:
            cookie = _cookie_config(session_cookie, max_age, path, same_site, https_only, domain)
        self.app = app
        self.max_age = max_age
        self.store = store if store is not None else _default_store(max_age)
        self.store.session_class = DictSession
        self.client_ip = client_ip or peer_ip
        self.on_error = on_error
        self._cookie = cookie
        self._persist = max_age is None or max_age > 0
        flags = f"httponly; samesite={cookie.samesite}"
        flags += "; secure" if https_only else ""
        flags += f"; domain={cookie.domain}" if cookie.domain is not None else ""
        flags += "; partitioned" if partitioned else ""
        self._flags = flags
        self._last_log = -_LOG_EVERY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        cookie_id = self._cookie.read(_header(scope, b"cookie")) if self._persist else None
        session = await self._load(scope, cookie_id)
        if session is None:
            await self._unavailable(scope, send)
            return
        scope["session"] = session
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_with_cookie(message: Message) -> None:
            nonlocal replaced
            if replaced:  # a 503 went out instead of the app's response
                return
            if message["type"] == "http.response.start":
                try:
                    extra = await self._commit(session, cookie_id)
                except _UNAVAILABLE as exc:
                    # a logout (destroy, clear) or an id rotation never fails open
                    if self.on_error == "closed" or session.pending is not None:
                        self._log(exc, "answering 503")
                        replaced = True
                        await self._unavailable(scope, send)
                        return
                    self._log(exc, "the session's changes are lost")
                    extra = [(b"vary", b"Cookie")]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    async def _load(self, scope: Scope, cookie_id: str | None) -> DictSession | None:
        """The request's session; None when Redis is down and the policy is to refuse."""
        ip, agent = self.client_ip(scope), _header(scope, b"user-agent")
        try:
            session = await self.store.load(cookie_id, ip=ip, user_agent=agent)
        except _UNAVAILABLE as exc:
            if self.on_error == "closed":
                self._log(exc, "answering 503")
                return None
            self._log(exc, "serving an empty session")
            session = self.store.new(ip=ip, user_agent=agent)
            session.ended = True  # served without Redis: _commit does not try to save it
        if not isinstance(session, DictSession):
            raise ConfigError("the store's session_class was changed after SessionMiddleware")
        return session

    async def _commit(
        self, session: DictSession, cookie_id: str | None
    ) -> list[tuple[bytes, bytes]]:
        """Save the session; the headers that tell the browser (Starlette's rules)."""
        headers: list[tuple[bytes, bytes]] = []
        if session.accessed:
            headers.append((b"vary", b"Cookie"))
        if session.ended and session.is_new and session.pending is None:
            return headers  # served without Redis (on_error="open"): nothing to save
        if not self._persist:  # the browser drops the cookie at once: nothing to keep
            if session.changed and len(session) > 0:
                headers.append(self._set_cookie(secrets.token_urlsafe(32)))
            return headers
        if self._cleared(session):
            session.destroy()  # Starlette drops an emptied session's cookie; its id dies too
        await self.store.save(session)
        if session.id is not None and (session.id != cookie_id or session.changed):
            headers.append(self._set_cookie(session.id))
        elif session.id is None and cookie_id is not None and session.ended:
            headers.append(self._delete_cookie())
        return headers

    @staticmethod
    def _cleared(session: Session) -> bool:
        return (
            isinstance(session, DictSession)
            and session.changed
            and len(session) == 0
            and not session.is_new
            and session._pending is None
            and session.user is None
        )

    def _set_cookie(self, value: str) -> tuple[bytes, bytes]:
        max_age = f"Max-Age={self.max_age}; " if self.max_age is not None else ""
        header = f"{self._cookie.name}={value}; path={self._cookie.path}; {max_age}{self._flags}"
        return b"set-cookie", header.encode("latin-1")

    def _delete_cookie(self) -> tuple[bytes, bytes]:
        expires = "expires=Thu, 01 Jan 1970 00:00:00 GMT; "
        header = f"{self._cookie.name}=null; path={self._cookie.path}; {expires}{self._flags}"
        return b"set-cookie", header.encode("latin-1")

    async def _unavailable(self, scope: Scope, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})
            return
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(_PROBLEM)).encode()),
            (b"retry-after", b"1"),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": _PROBLEM})

    def _log(self, exc: BaseException, action: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY:  # an outage must not flood the log
            self._last_log = now
            log.warning("session middleware: Redis unavailable (%s); %s", exc, action)


def _cookie_config(
    name: str, max_age: int | None, path: str, same_site: SameSite, secure: bool, domain: str | None
) -> CookieConfig:
    """The cookie's name and attributes, checked (invalid names, SameSite=None without https)."""
    return CookieConfig(
        name=name,
        domain=domain,
        path=path,
        secure=secure,
        samesite=same_site,
        max_age=max_age if max_age is not None and max_age > 0 else None,
    )


def _default_store(max_age: int | None) -> AsyncSessionStore:
    from redkit.facade import AsyncRedkit

    ark = AsyncRedkit()
    if max_age is None or max_age <= 0:
        return ark.sessions()
    return ark.sessions(idle_timeout=max_age, absolute_timeout=max_age)
