"""A Django session engine on redkit: ``SESSION_ENGINE = "redkit.integrations.django.sessions"``.

Settings (all optional)::

    REDKIT_SESSIONS = {
        "url": "redis://localhost:6379/0",   # default: REDIS_URL, else the embedded server
        "prefix": "myapp",                   # default: REDKIT_PREFIX or "redkit"
        "absolute_timeout": 14 * 24 * 3600,  # seconds after login, however active
        "idle_timeout": 1800,                # seconds without a request (default: off)
    }

It keeps the contract of Django's session stores: ``save()`` / ``create()`` give even an
empty session a key, ``set_expiry()`` in all its forms and ``SESSION_COOKIE_AGE`` decide
when the session ends (enforced by Redis, not only by the cookie), ``exists``,
``delete``, ``cycle_key``, ``flush``, ``clear_expired`` and their async twins behave as
Django documents. On top of that it makes ``cycle_key`` (Django's login rotation)
atomic, records the logged-in user in a per-user index (``user_sessions()`` /
``end_all_sessions()`` below), writes only the keys a request changed, and ends every
session ``absolute_timeout`` seconds after login (default: ``SESSION_COOKIE_AGE`` or 12
hours, whichever is longer). Session keys are 256-bit random ids issued by redkit; a
cookie value of any other shape starts a fresh session without reaching Redis. See
docs/sessions.md ("Migrating from Django's session engines").
"""

from __future__ import annotations

import threading
import time
from typing import Any

from redkit._lazy import require
from redkit.errors import ConfigError
from redkit.facade import Redkit
from redkit.sessions import Session, SessionInfo
from redkit.sessions import SessionStore as RedkitSessionStore
from redkit.sessions import ops as sops
from redkit.sessions.store import DEFAULT_ABSOLUTE

require("django", "django")

from asgiref.sync import sync_to_async  # noqa: E402
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
    cache_key = (*sorted(options.items()), settings.SESSION_COOKIE_AGE)
    with _LOCK:
        store = _STORES.get(cache_key)
        if store is None:
            rk = Redkit(options.pop("url", None), prefix=options.pop("prefix", None))
            absolute = options.get("absolute_timeout")
            if absolute is None:
                absolute = max(DEFAULT_ABSOLUTE, float(settings.SESSION_COOKIE_AGE))
            # Django has no idle timeout on reads: off unless asked for (the absolute
            # timeout as idle timeout never ends a session earlier than its deadline)
            idle = options.get("idle_timeout", absolute)
            store = _STORES[cache_key] = rk.sessions(idle_timeout=idle, absolute_timeout=absolute)
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

    def _get_new_session_key(self) -> str:
        return sops.new_id()

    async def _aget_new_session_key(self) -> str:
        return sops.new_id()

    # --- expiry: Django's, capped where the server ends the session anyway --------------

    def _seconds_left(self) -> float:
        """Seconds until the absolute deadline (the whole timeout for a session that the
        next save creates, or logs in: that starts a new one)."""
        store = self._store
        backing = self._backing
        created = backing.created if backing is not None else None
        if backing is None or created is None:
            return store.absolute_timeout
        user = self._get_session().get(USER_KEY)
        if user is not None and backing.user != str(user):
            return store.absolute_timeout
        return created.timestamp() + store.absolute_timeout - time.time()

    def get_expiry_age(self, **kwargs: Any) -> int:
        """Django's expiry age, never past the absolute deadline (so the cookie's Max-Age
        says what the server enforces)."""
        age: int = super().get_expiry_age(**kwargs)
        return age if "expiry" in kwargs else min(age, int(self._seconds_left()))

    async def aget_expiry_age(self, **kwargs: Any) -> int:
        age: int = await super().aget_expiry_age(**kwargs)
        if "expiry" in kwargs:
            return age
        return min(age, int(await sync_to_async(self._seconds_left)()))

    # --- the store methods ---------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        key = self._session_key
        # a key redkit did not issue (a forged or foreign cookie) never reaches Redis
        backing = self._store.load(key) if sops.valid_id(key) else None
        if backing is None or backing.is_new:
            self._backing = None
            self._session_key = None
            return {}
        self._backing = backing
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
        backing = None if must_create else self._backing
        if backing is None:  # a new session (Django's create()): stored even when empty
            backing = self._store.new()
            backing.rotate()
            self.modified = True  # so the middleware sends the new key
        if self._write(backing, data):
            self._backing = None
            raise UpdateError  # Django turns this into SessionInterrupted

    def cycle_key(self) -> None:
        data = self._get_session()
        backing = self._backing or self._store.new()
        backing.rotate()
        if self._write(backing, data):  # ended meanwhile: the data goes on in a new session
            backing = self._store.new()
            backing.rotate()
            self._write(backing, data)
        self._session_cache = data
        self.modified = True

    async def acycle_key(self) -> None:
        await sync_to_async(self.cycle_key)()

    def _write(self, backing: Session, data: dict[str, Any]) -> bool:
        """Store ``data`` in ``backing`` with Django's expiry; the key follows the backing.

        Returns True when the stored session had ended meanwhile (nothing was written).
        """
        age = self.get_expiry_age()
        if age <= 0:  # an expiry in the past: the session ends now
            if not backing.is_new:
                self._store.destroy(backing)
            self._backing = None
            self._session_key = sops.new_id()  # a key that was never stored, as in Django
            return False
        user = data.get(USER_KEY)
        if user is not None and backing.user != str(user):
            backing.login(str(user))  # bound to a user: a new id, listed in the user's index
        backing._replace(data)
        backing.expire_in(age)
        self._store.save(backing)
        if backing.ended:
            return True
        self._backing = backing
        self._session_key = backing.id
        return False

    def delete(self, session_key: str | None = None) -> None:
        key = self.session_key if session_key is None else session_key
        if key is None:
            return
        if self._backing is not None and self._backing.id == key:
            self._store.destroy(self._backing)
            self._backing = None
        elif sops.valid_id(key):
            self._store.destroy(self._store.load(key))

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: Redis expires sessions itself."""
