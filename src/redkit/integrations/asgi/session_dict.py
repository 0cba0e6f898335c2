"""``request.session`` for ASGI apps: a redkit :class:`~redkit.sessions.Session` that is a dict.

Starlette types ``request.session`` as a ``dict`` and apps use it as one:
``JSONResponse(request.session)``, ``request.session == {...}``, ``dict`` methods. A
:class:`DictSession` holds its decoded data in the dict itself, so all of that works,
and it is still a redkit session: ``login()``, ``rotate()``, ``destroy()``, ``user``,
and saves that write only the keys whose value changed (values mutated in place
included: a save compares serialized values, so it needs no notice of the change).

It keeps Starlette's two flags for its middleware: ``accessed`` (the session was read or
written: the response varies on the cookie) and ``changed`` (the app wrote to it: the
cookie is sent again, as Starlette sends it after every write).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from redkit.errors import ConfigError, SerializationError
from redkit.serializers import Serializer
from redkit.sessions import Session
from redkit.sessions.ops import Record

log = logging.getLogger("redkit.sessions")

_MISSING = object()


class DictSession(Session, dict[str, Any]):
    """A redkit session that is also a ``dict`` (what ``request.session`` is under the middleware).

    Built by the store (``store.session_class``), never directly.
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
        dict.__init__(self)
        self.accessed = False
        self.changed = False
        super().__init__(serializer, session_id, record, ip=ip, user_agent=user_agent)

    # Session keeps its decoded data in ``_data``; here the dict itself is that data.
    @property
    def _data(self) -> dict[str, Any]:
        return self

    @_data.setter
    def _data(self, data: dict[str, Any] | None) -> None:
        dict.clear(self)
        if data is not None:
            dict.update(self, data)
            return
        for key, raw in self._raw.items():  # None: decode what the server holds
            try:
                dict.__setitem__(self, key, self._serializer.loads(raw))
            except SerializationError:
                log.warning("dropping session key %r: its stored value cannot be decoded", key)

    def _changes(self) -> tuple[dict[str, bytes], list[str]]:
        # dict's own API (``session | {}``, C-level copies) hands out values without telling
        # us, and any of them may be mutated in place: always compare
        self._touched = True
        return super()._changes()

    def mark_accessed(self) -> None:
        """Record that the request used the session (Starlette calls this on access)."""
        self.accessed = True

    def _read(self) -> None:
        # a value read may be mutated in place: the next save compares it
        self.accessed = self._touched = True

    def _write(self) -> None:
        self.accessed = self.changed = self._touched = True

    # --- reads --------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        self._read()
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """``dict.get``."""
        self._read()
        return dict.get(self, key, default)

    def __iter__(self) -> Iterator[str]:
        self._read()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self.accessed = True
        return dict.__len__(self)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return dict.__contains__(self, key)

    def keys(self) -> Any:
        """``dict.keys``."""
        self.accessed = True
        return dict.keys(self)

    def values(self) -> Any:
        """``dict.values``."""
        self._read()
        return dict.values(self)

    def items(self) -> Any:
        """``dict.items``."""
        self._read()
        return dict.items(self)

    def copy(self) -> dict[str, Any]:
        """A plain ``dict`` with the session's data (not a session)."""
        self._read()
        return dict(dict.items(self))

    def __eq__(self, other: object) -> bool:
        self.accessed = True
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    # --- writes -------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise ConfigError(f"session keys must be str, got {type(key).__name__}")
        self._write()
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self._write()
        dict.__delitem__(self, key)

    def clear(self) -> None:
        """Remove every key (the session itself lives on; see :meth:`destroy`)."""
        self._write()
        dict.clear(self)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """``dict.pop``."""
        if dict.__contains__(self, key):
            self._write()
            return dict.pop(self, key)
        self.accessed = True
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[str, Any]:
        """``dict.popitem``."""
        self._write()
        return dict.popitem(self)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """``dict.setdefault``."""
        if not dict.__contains__(self, key):
            self[key] = default
        self._read()
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """``dict.update``."""
        for key, value in dict(*args, **kwargs).items():
            self[key] = value
        self._write()

    def __ior__(self, other: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> DictSession:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __repr__(self) -> str:
        return Session.__repr__(self)
