"""Server-side sessions for Flask: a ``SessionInterface`` backed by :class:`SessionStore`.

::

    from redkit.integrations.flask.sessions import RedkitSessionInterface

    app.session_interface = RedkitSessionInterface(rk.sessions())

    @app.post("/login")
    def login():
        ...
        session.login(user.id)      # new session id when the response goes out
        return redirect("/")

``flask.session`` keeps working as before (a mutable mapping), with only changed keys
written back, the id rotated by ``session.login()`` / ``session.rotate()``, and
``session.destroy()`` for logout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redkit._lazy import require
from redkit.errors import ConfigError
from redkit.sessions import Session, SessionStore

require("flask", "flask")

from flask.sessions import SessionInterface, SessionMixin  # noqa: E402

if TYPE_CHECKING:
    from flask import Flask, Request, Response


class FlaskSession(Session, SessionMixin):  # type: ignore[override]
    """A redkit session that Flask accepts as ``flask.session``."""

    @property
    def new(self) -> bool:  # type: ignore[override]
        """Flask's name for :attr:`is_new`."""
        return self.is_new

    accessed = True


class RedkitSessionInterface(SessionInterface):
    """Use a :class:`~redkit.sessions.SessionStore` as Flask's session.

    Args:
        store: the store (``rk.sessions(...)``); its ``cookie`` settings name the cookie.
    """

    def __init__(self, store: SessionStore) -> None:
        if not isinstance(store, SessionStore):
            raise ConfigError("RedkitSessionInterface needs a SessionStore (rk.sessions())")
        store.session_class = FlaskSession
        self.store = store

    def open_session(self, app: Flask, request: Request) -> FlaskSession:
        cookie_id = request.cookies.get(self.store.cookie.name)
        agent = request.headers.get("User-Agent")
        session = self.store.load(cookie_id, ip=request.remote_addr, user_agent=agent)
        return session  # type: ignore[return-value]

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        from flask import request

        if not isinstance(session, Session):
            return
        cookie_id = request.cookies.get(self.store.cookie.name)
        self.store.save(session)
        config = self.store.cookie
        if session.id is not None and (session.id != cookie_id or config.max_age is not None):
            response.headers.add("Set-Cookie", config.header(session.id))
            response.vary.add("Cookie")
        elif session.id is None and cookie_id is not None and session.ended:
            response.headers.add("Set-Cookie", config.deletion_header())
            response.vary.add("Cookie")
