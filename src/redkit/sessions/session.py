"""The session object a request sees: a dict-like view that remembers what it changed.

A :class:`Session` does no I/O. The store loads it, the request reads and writes it like
a dict, and the store saves only the keys whose serialized value changed (including
values mutated in place, such as a list that was appended to) and deletes only the keys
that were removed. Two requests that change different keys of one session therefore keep
each other's writes.

Actions that need the server — :meth:`login`, :meth:`rotate`, :meth:`destroy` — are
recorded here and carried out by the next save, so framework glue only has to call
``store.save(session)`` at the end of a request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from datetime import datetime
from typing import Any, Literal

from redkit.errors import ConfigError, SerializationError
from redkit.serializers import Serializer
from redkit.sessions.ops import Record, from_ms, handle_of

log = logging.getLogger("redkit.sessions")

Pending = Literal["login", "rotate", "destroy"]


class Session(MutableMapping[str, Any]):
    """One user's server-side session: the data plus who, when and where.

    Build it through :meth:`SessionStore.load` or :meth:`SessionStore.new`, never directly.
    The id is deliberately absent from ``repr``: it is the credential.
    """

    def __init__(
        self,
        serializer: Serializer,
        session_id: str | None = None,
        record: Record | None = None,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        self._serializer = serializer
        self._id = session_id if record is not None else None
        self._raw: dict[str, bytes] = dict(record.raw) if record is not None else {}
        self._data: dict[str, Any] | None = None
        self._user = record.user if record is not None else None
        self._gen = record.generation if record is not None else 0
        self._created_ms = record.created_ms if record is not None else None
        self._seen_ms = record.seen_ms if record is not None else None
        self._deadline_ms = record.deadline_ms if record is not None else None
        self._expiry_ms = record.expiry_ms if record is not None else None
        self._expire_in: float | None = None  # a new expiry, set by the next save
        self.ip = ip if ip is not None or record is None else record.ip
        self.user_agent = (
            user_agent if user_agent is not None or record is None else record.user_agent
        )
        self._touched = False  # a key was read (it may be mutated in place) or written
        self._pending: Pending | None = None
        self._login_user: str | None = None
        self.ended = False
        #: served without Redis by a store with ``on_error="open"``: its saves are skipped
        self.degraded = False

    # --- identity --------------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The session id (the cookie value); None until the session is first saved."""
        return self._id

    @property
    def is_new(self) -> bool:
        """True when no stored session stands behind this object (yet)."""
        return self._id is None

    @property
    def handle(self) -> str | None:
        """The public handle used in session listings (not a credential)."""
        return None if self._id is None else handle_of(self._id)

    @property
    def user(self) -> str | None:
        """The logged-in user, or None for an anonymous session."""
        return self._login_user if self._pending == "login" else self._user

    @property
    def created(self) -> datetime | None:
        """When the session was created (login starts a new one)."""
        return from_ms(self._created_ms)

    @property
    def last_seen(self) -> datetime | None:
        """When a request last used the session, by the server's clock."""
        return from_ms(self._seen_ms)

    @property
    def expires_at(self) -> datetime | None:
        """When the session ends however active it is: its absolute deadline, or its own
        expiry (:meth:`expire_in`) when that comes first."""
        ends = self._deadline_ms
        if self._expiry_ms is not None and (ends is None or self._expiry_ms < ends):
            ends = self._expiry_ms
        return from_ms(ends)

    @property
    def pending(self) -> str | None:
        """The login, rotation or destroy the next save carries out (``"login"``,
        ``"rotate"``, ``"destroy"``), or None. Such a save must never be skipped
        silently: a logout or an id rotation that did not happen is a security hole."""
        return self._pending

    @property
    def modified(self) -> bool:
        """True when the next save has something to do."""
        return self._pending is not None or self._touched or self._expire_in is not None

    def expire_in(self, seconds: float) -> None:
        """End the session ``seconds`` after the next save at the latest (server clock).

        Each call replaces the previous expiry; requests no longer keep the session alive
        past it, and it never extends the absolute timeout. A rotation keeps it (a login
        starts a new session without it). For framework adapters whose own API sets an
        expiry per session (Django's ``set_expiry``).
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ConfigError(f"expire_in needs a number of seconds, got {seconds!r}")
        if not 0 < seconds < float("inf"):
            raise ConfigError(f"expire_in needs a positive number of seconds, got {seconds!r}")
        self._expire_in = float(seconds)

    # --- actions carried out by the next save -----------------------------------------

    def login(self, user: str | int) -> None:
        """Bind the session to ``user`` under a new id (the old id stops working)."""
        if isinstance(user, bool) or not isinstance(user, (str, int)) or user == "":
            raise ConfigError(f"a session user must be a non-empty str or an int, got {user!r}")
        if self._user is not None and self._user != str(user):
            self.clear()  # another user's data never carries over
        self._pending, self._login_user, self.ended = "login", str(user), False

    def rotate(self) -> None:
        """Give the session a new id, keeping its data and deadlines (after a privilege change).

        A new session is stored by the next save even while it holds no data, so it gets
        its first id then (Django's ``save()`` of an empty session relies on this).
        """
        if self._pending is None:
            self._pending = "rotate"

    def destroy(self) -> None:
        """End the session (logout): its data is dropped and its id stops working."""
        self._data, self._raw = {}, {}
        self._pending, self._login_user, self.ended = "destroy", None, True

    # --- the mapping -----------------------------------------------------------------

    def _items(self) -> dict[str, Any]:
        if self._data is None:
            self._data = {}
            for key, raw in self._raw.items():
                try:
                    self._data[key] = self._serializer.loads(raw)
                except SerializationError:
                    log.warning("dropping session key %r: its stored value cannot be decoded", key)
        return self._data

    def __getitem__(self, key: str) -> Any:
        value = self._items()[key]
        self._touched = True
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise ConfigError(f"session keys must be str, got {type(key).__name__}")
        self._items()[key] = value
        self._touched = True

    def __delitem__(self, key: str) -> None:
        del self._items()[key]
        self._touched = True

    def __iter__(self) -> Iterator[str]:
        self._touched = True  # values reached through iteration may be mutated too
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __contains__(self, key: object) -> bool:
        return key in self._items()

    def clear(self) -> None:
        """Remove every key (the session itself lives on; see :meth:`destroy`)."""
        self._data = {}
        self._touched = True

    def __repr__(self) -> str:
        state = "new" if self.is_new else f"handle={self.handle}"
        return f"Session({state}, user={self.user!r}, keys={len(self)})"

    # --- used by the store ----------------------------------------------------------

    def _replace(self, data: dict[str, Any]) -> None:
        """Swap in a whole new dict (framework adapters that keep their own copy)."""
        self._data = dict(data)
        self._touched = True

    def _changes(self) -> tuple[dict[str, bytes], list[str]]:
        """The keys to write (with their new bytes) and the keys to delete."""
        if not self._touched or self._data is None:
            return {}, []
        sets: dict[str, bytes] = {}
        for key, value in self._data.items():
            encoded = self._serializer.dumps(value)
            if self._raw.get(key) != encoded:
                sets[key] = encoded
        return sets, [key for key in self._raw if key not in self._data]

    def _record(self) -> Record:
        """What this request loaded, as a record (a rotation builds the new session from it)."""
        return Record(
            self._created_ms or 0,
            self._seen_ms or 0,
            self._deadline_ms or 0,
            self._user,
            self._gen,
            self.ip,
            self.user_agent,
            dict(self._raw),
            self._expiry_ms,
        )

    def _committed(self, sets: dict[str, bytes], deletes: list[str], expiry_ms: int) -> None:
        """An update went through: the stored copy now has these changes."""
        self._raw.update(sets)
        for key in deletes:
            self._raw.pop(key, None)
        self._touched = False
        self._expire_in, self._expiry_ms = None, expiry_ms or None

    def _stored(self, session_id: str | None, record: Record | None) -> None:
        """The save went through: ``record`` is now what the server holds."""
        self._id = session_id
        self._touched, self._pending, self._login_user = False, None, None
        self._expire_in = None
        if record is None:
            self._raw, self._data, self._user, self._gen = {}, {}, None, 0
            self._created_ms = self._seen_ms = self._deadline_ms = self._expiry_ms = None
            return
        self._raw, self._data, self._user = dict(record.raw), None, record.user
        self._gen = record.generation
        self._created_ms, self._seen_ms = record.created_ms, record.seen_ms
        self._deadline_ms, self._expiry_ms = record.deadline_ms, record.expiry_ms
