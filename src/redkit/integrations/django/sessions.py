"""A Django session engine on redkit: ``SESSION_ENGINE = "redkit.integrations.django.sessions"``.

Settings (all optional)::

    REDKIT_SESSIONS = {
        "url": "redis://localhost:6379/0",   # default: REDIS_URL, else the embedded server
        "prefix": "myapp",                   # default: REDKIT_PREFIX or "redkit"
        "idle_timeout": 1800,                # seconds without a request
        "absolute_timeout": 12 * 3600,       # seconds after login, however active
    }

Django's own login() rotates the id (``cycle_key``); this engine makes the rotation
atomic (the old id is dead before the new one exists), records the logged-in user in
the per-user index (``user_sessions()`` / ``end_all_sessions()`` below), writes only the
keys a request changed, and leaves expiry to Redis (``clear_expired`` has nothing to do).
The cookie itself is Django's: set ``SESSION_COOKIE_SECURE = True`` in production.
"""

from __future__ import annotations

import threading
from typing import Any

from redkit._lazy import require
from redkit.errors import ConfigError
from redkit.facade import Redkit
from redkit.sessions import Session, SessionInfo
from redkit.sessions import SessionStore as RedkitSessionStore
from redkit.sessions import ops as sops

require("django", "django")

from django.conf import settings  # noqa: E402
from django.contrib.sessions.backends.base import SessionBase, UpdateError  # noqa: E402

USER_KEY = "_auth_user_id"  # django.contrib.auth's SESSION_KEY
_STORES: dict[tuple[Any, ...], RedkitSessionStore] = {}
_LOCK = threading.Lock()
_ALLOWED = {"url", "prefix", "idle_timeout", "absolute_timeout"}


def get_store() -> RedkitSessionStore:
    """The redkit store for the current ``REDKIT_SESSIONS`` setting (one per distinct value)."""
    options: dict[str, Any] = dict(getattr(settings, "REDKIT_SESSIONS", None) or {})
    unknown = set(options) - _ALLOWED
    if unknown:
        raise ConfigError(f"REDKIT_SESSIONS has unknown keys: {', '.join(sorted(unknown))}")
    cache_key = tuple(sorted(options.items()))
    with _LOCK:
        store = _STORES.get(cache_key)
        if store is None:
            rk = Redkit(options.pop("url", None), prefix=options.pop("prefix", None))
            store = _STORES[cache_key] = rk.sessions(**options)
        return store


def user_sessions(user_id: Any, *, current: SessionBase | None = None) -> list[SessionInfo]:
    """The user's live sessions (created, last seen, IP, user agent), oldest first."""
    backing = current._backing if isinstance(current, SessionStore) else None
    return get_store().list_sessions(str(user_id), current=backing)


def end_all_sessions(user_id: Any) -> int:
    """Log ``user_id`` out everywhere; returns how many sessions ended."""
    return get_store().end_all(str(user_id))


class SessionStore(SessionBase):  # type: ignore[misc]  # django ships no type hints
    """Django's session API over a redkit :class:`~redkit.sessions.SessionStore`."""

    _session_key: str | None

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._backing: Session | None = None

    @property
    def _store(self) -> RedkitSessionStore:
        return get_store()

    def _validate_session_key(self, key: str | None) -> bool:
        return sops.valid_id(key)

    def _get_new_session_key(self) -> str:
        return sops.new_id()

    def get_session_cookie_age(self) -> int:
        return int(self._store.absolute_timeout)

    def load(self) -> dict[str, Any]:
        backing = self._store.load(self._session_key)
        self._backing = backing
        if backing.is_new:
            self._session_key = None
        return dict(backing)

    def exists(self, session_key: str | None) -> bool:
        return sops.valid_id(session_key) and not self._store.load(session_key).is_new

    def create(self) -> None:
        self._backing = None
        self._session_key = None
        self.save(must_create=True)
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        data = self._get_session(no_load=must_create)
        backing = self._backing if self._backing is not None else self._store.new()
        if must_create and not backing.is_new:
            backing = self._store.new()
        backing._replace(data)
        user = data.get(USER_KEY)
        if user is not None and backing.user != str(user):
            backing.login(str(user))  # bound to a user: a new id, listed in the user's index
        self._store.save(backing)
        if backing.ended:
            raise UpdateError  # Django turns this into SessionInterrupted
        self._backing = backing
        self._session_key = backing.id

    def cycle_key(self) -> None:
        data = self._get_session()
        backing = self._backing or self._store.new()
        backing._replace(data)
        backing.rotate()
        self._store.save(backing)
        self._backing = backing
        self._session_cache = data
        self._session_key = backing.id
        self.modified = True

    def delete(self, session_key: str | None = None) -> None:
        key = self.session_key if session_key is None else session_key
        if self._backing is not None and self._backing.id == key:
            self._store.destroy(self._backing)
            self._backing = None
        elif sops.valid_id(key):
            self._store.destroy(self._store.load(key))

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: Redis expires sessions itself."""
