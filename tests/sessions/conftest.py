"""Helpers for the session tests."""

from __future__ import annotations

from typing import Any

from redkit.sessions import Session, SessionStore


def saved(store: SessionStore, user: str | None = None, **data: Any) -> Session:
    """A new session holding ``data`` (``{"k": 1}`` by default), saved, logged in as
    ``user`` when given."""
    session = store.new(ip="10.0.0.1", user_agent="pytest")
    session.update(data or {"k": 1})
    store.save(session)
    if user is not None:
        store.login(session, user)
    assert session.id is not None
    return session
