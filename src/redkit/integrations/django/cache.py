"""A Django cache backend on redkit's cache: cluster-safe, versioned ``clear()``, near cache.

::

    CACHES = {
        "default": {
            "BACKEND": "redkit.integrations.django.RedkitCache",
            "LOCATION": "redis://127.0.0.1:6379/0",     # or omit: REDIS_URL / embedded
            "TIMEOUT": 300,
            "OPTIONS": {"namespace": "django", "prefix": "myapp", "near": 0},
        }
    }

Values are pickled (Django caches model instances, querysets, responses) and signed with
``SECRET_KEY``, so a value written by anyone without the key is rejected, never unpickled;
set ``OPTIONS["serializer"] = "json"`` for JSON. ``clear()`` bumps the namespace version:
it invalidates this cache's entries only and never flushes the server.
"""

from __future__ import annotations

import hashlib
from typing import Any

from redkit._lazy import require

require("django", "django")

from django.conf import settings  # noqa: E402
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache  # noqa: E402

from redkit.facade import Redkit  # noqa: E402

_FOREVER: Any = object()


class RedkitCache(BaseCache):  # type: ignore[misc]  # django ships no type hints
    """Django's cache API on a :class:`redkit.cache.Cache` namespace."""

    def __init__(self, server: str | None, params: dict[str, Any]) -> None:
        super().__init__(params)
        options = dict(params.get("OPTIONS") or {})
        serializer = options.pop("serializer", "pickle")
        secret = options.pop("secret", None)
        if secret is None and serializer == "pickle":
            # a key of its own, derived from SECRET_KEY (never the SECRET_KEY itself)
            secret = hashlib.sha256(b"redkit.cache:" + settings.SECRET_KEY.encode()).digest()
        self._rk = Redkit(
            server or None, prefix=options.pop("prefix", None), serializer=serializer, secret=secret
        )
        options.setdefault("jitter", 0.0)
        options.setdefault("beta", 0.0)
        self._cache = self._rk.cache(options.pop("namespace", "django"), ttl=None, **options)

    def _ttl(self, timeout: Any) -> Any:
        """None for no expiry, a positive number of seconds, or 0 for "already expired"."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return _FOREVER
        return max(0.0, float(timeout))

    def _store(self, key: str, value: Any, ttl: Any, only_new: bool = False) -> bool:
        if ttl == 0:
            self._cache.delete(key)
            return False
        ttl = None if ttl is _FOREVER else ttl
        if only_new:
            return self._cache.add(key, value, ttl)
        self._cache.set(key, value, ttl)
        return True

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        return self._cache.get(self.make_and_validate_key(key, version=version), default)

    def set(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        self._store(self.make_and_validate_key(key, version=version), value, self._ttl(timeout))

    def add(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._store(key, value, self._ttl(timeout), only_new=True)

    def delete(self, key: str, version: int | None = None) -> bool:
        return bool(self._cache.delete(self.make_and_validate_key(key, version=version)))

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        made = [self.make_and_validate_key(k, version=version) for k in keys]
        if made:
            self._cache.delete(*made)

    def get_many(self, keys: Any, version: int | None = None) -> dict[str, Any]:
        made = {self.make_and_validate_key(k, version=version): k for k in keys}
        if not made:
            return {}
        found = self._cache.get_many(list(made))
        return {made[str(k)]: v for k, v in found.items()}

    def set_many(
        self, data: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        ttl = self._ttl(timeout)
        items = {self.make_and_validate_key(k, version=version): v for k, v in data.items()}
        if ttl == 0:
            self.delete_many(list(data), version=version)
        elif items:
            self._cache.set_many(items, None if ttl is _FOREVER else ttl)
        return []

    def has_key(self, key: str, version: int | None = None) -> bool:
        return (
            self._cache.get(self.make_and_validate_key(key, version=version), _FOREVER)
            is not _FOREVER
        )

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        made = self.make_and_validate_key(key, version=version)
        value = self._cache.incr(made, delta)
        if value is None:
            raise ValueError(f"Key '{key}' not found")
        return value

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        ttl = self._ttl(timeout)
        made = self.make_and_validate_key(key, version=version)
        if ttl == 0:
            return bool(self._cache.delete(made))
        return self._cache.touch(made, None if ttl is _FOREVER else ttl)

    def clear(self) -> None:
        self._cache.clear()

    def close(self, **kwargs: Any) -> None:
        """Django calls this at the end of each request; the pool stays open."""
