"""Server-side sessions for Flask: a ``SessionInterface`` backed by :class:`SessionStore`.

::

    from redkit.integrations.flask.sessions import RedkitSessionInterface

    app.session_interface = RedkitSessionInterface(rk.sessions())

    @app.post("/login")
    def login():
        ...
        session.login(user.id)      # new session id when the response goes out
        return redirect("/")

``flask.session`` keeps Flask's contract: a mutable mapping with ``permanent``,
``modified``, ``accessed`` and ``new``; the cookie follows Flask's ``SESSION_COOKIE_*``
settings (HttpOnly always: it carries an opaque id), permanent sessions last
``PERMANENT_SESSION_LIFETIME`` (enforced in Redis too), and a session emptied by the
request is deleted with its cookie. On top of that only changed keys are written back,
the id is rotated by ``session.login()`` / ``session.rotate()``, and
``session.destroy()`` logs out. See docs/sessions.md ("Migrating from Flask's sessions").
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from redkit._lazy import require
from redkit.errors import ConfigError
from redkit.sessions import Session, SessionStore

require("flask", "flask")

from flask.sessions import (  # noqa: E402
    SessionInterface,
    SessionMixin,
    session_json_serializer,
)

if TYPE_CHECKING:
    from flask import Flask, Request, Response


class _TaggedJSON:
    """Flask's own session serializer (tagged JSON): tuples, bytes, Markup, UUID and
    datetime values come back as they went in, as with Flask's cookie sessions."""

    name = "flask-tagged-json"

    def dumps(self, value: Any) -> bytes:
        return session_json_serializer.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        return session_json_serializer.loads(data.decode())


_TAGGED = _TaggedJSON()


class FlaskSession(Session, SessionMixin):
    """A redkit session that Flask accepts as ``flask.session``.

    ``modified`` means what it means to Flask: True once the request wrote to the
    session (or logged in, rotated or destroyed it), False after reads only. Values
    changed in place are saved either way.
    """

    accessed = False  # set by Flask when the request touches ``flask.session``
    _written = False

    def __init__(self, serializer: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(_TAGGED, *args, **kwargs)

    @property
    def new(self) -> bool:  # type: ignore[override]
        """Flask's name for :attr:`is_new`."""
        return self.is_new

    @property
    def modified(self) -> bool:
        """True when the request wrote to the session (Flask's meaning)."""
        return self._written

    @modified.setter
    def modified(self, value: bool) -> None:
        self._written = bool(value)
        if value:
            self._touched = True  # write everything back, nested changes included

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._written = True

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._written = True

    def clear(self) -> None:
        super().clear()
        self._written = True

    def login(self, user: str | int) -> None:
        super().login(user)
        self._written = True

    def rotate(self) -> None:
        super().rotate()
        self._written = True

    def destroy(self) -> None:
        super().destroy()
        self._written = True


class RedkitSessionInterface(SessionInterface):
    """Use a :class:`~redkit.sessions.SessionStore` as Flask's session.

    Args:
        store: the store (``rk.sessions(...)``). Its idle and absolute timeouts apply on
            top of Flask's ``PERMANENT_SESSION_LIFETIME``; the cookie is configured with
            Flask's ``SESSION_COOKIE_*`` settings.
    """

    def __init__(self, store: SessionStore) -> None:
        if not isinstance(store, SessionStore):
            raise ConfigError("RedkitSessionInterface needs a SessionStore (rk.sessions())")
        store.session_class = FlaskSession
        self.store = store

    def open_session(self, app: Flask, request: Request) -> FlaskSession:
        cookie_id = request.cookies.get(self.get_cookie_name(app))
        agent = request.headers.get("User-Agent")
        session = self.store.load(cookie_id, ip=request.remote_addr, user_agent=agent)
        return session  # type: ignore[return-value]

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        from flask import request

        if session.accessed:
            response.vary.add("Cookie")
        if not isinstance(session, Session):
            return
        sent = request.cookies.get(self.get_cookie_name(app))
        if len(session) == 0 and session.user is None:  # emptied: no session, no cookie
            if session.modified:
                self._end(app, session, response, sent)
            return
        refresh = session.permanent and app.config["SESSION_REFRESH_EACH_REQUEST"]
        if refresh or session.is_new or session.modified:
            # Flask's cookie sessions last PERMANENT_SESSION_LIFETIME from their last write
            # (from every request when refreshed): so does this one, in Redis
            session.expire_in(app.permanent_session_lifetime.total_seconds())
        self.store.save(session)
        if session.ended or session.id is None:
            self._end(app, session, response, sent)
        elif session.id != sent or self.should_set_cookie(app, session):
            self._set_cookie(app, session, response)

    def _end(self, app: Flask, session: Session, response: Response, sent: str | None) -> None:
        """The session is over: gone from Redis, and its cookie from the browser."""
        if not session.is_new:
            self.store.destroy(session)
        if sent is not None:
            response.delete_cookie(self.get_cookie_name(app), **self._options(app))
            response.vary.add("Cookie")

    def _options(self, app: Flask) -> dict[str, Any]:
        return {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "partitioned": self.get_cookie_partitioned(app),
            "samesite": self.get_cookie_samesite(app),
            "httponly": True,  # the cookie is an opaque id: scripts never need to read it
        }

    def _set_cookie(self, app: Flask, session: Session, response: Response) -> None:
        response.set_cookie(
            self.get_cookie_name(app),
            session.id or "",
            expires=self._expires(app, session),
            **self._options(app),
        )
        response.vary.add("Cookie")

    def _expires(self, app: Flask, session: Session) -> datetime | None:
        """Flask's expiry for permanent sessions, never past the server's end of it."""
        if not session.permanent:  # type: ignore[attr-defined]
            return None
        expires = datetime.now(timezone.utc) + app.permanent_session_lifetime
        ends = session.expires_at
        return expires if ends is None else min(expires, ends)
