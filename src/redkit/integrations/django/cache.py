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

It keeps the contract of Django's own ``django.core.cache.backends.redis.RedisCache``
(timeouts 0 / None / negative, ``add``, ``incr`` errors, versions, key warnings, the async
methods) and accepts that backend's ``OPTIONS``, so switching is a change of ``BACKEND``.
Values are pickled (Django caches model instances, querysets, responses) and signed with
a key derived from ``SECRET_KEY``, so a value written by anyone without the key is
rejected, never unpickled; set ``OPTIONS["serializer"] = "json"`` for JSON. ``clear()``
bumps the namespace version: it invalidates this cache's entries only and never flushes
the server. The differences are listed in docs/cache.md ("Migrating from Django's
Redis backend").
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from redkit._lazy import require
from redkit.config import Settings
from redkit.errors import (
    ConfigError,
    DataError,
    RedisCommandError,
    SerializationError,
    TamperedDataError,
)
from redkit.serializers import PickleSerializer, Serializer, get_serializer

require("django", "django")

from asgiref.sync import sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

from redkit.cache import Cache  # noqa: E402
from redkit.cache.base import CacheOptions  # noqa: E402
from redkit.facade import Redkit  # noqa: E402

log = logging.getLogger("redkit.cache")

_MISSING: Any = object()
# OPTIONS of Django's RedisCache that have a redkit equivalent: option -> Settings field
_MAPPED = {
    "socket_timeout": "socket_timeout",
    "socket_connect_timeout": "connect_timeout",
    "max_connections": "max_connections",
    "username": "username",
    "password": "password",
    "ssl_ca_certs": "ssl_ca_certs",
    "ssl_certfile": "ssl_certfile",
    "ssl_keyfile": "ssl_keyfile",
}
# OPTIONS of Django's RedisCache (redis-py pool and connection arguments) that redkit
# accepts and does without: it builds and manages its own pool and parser
_IGNORED = frozenset(
    {
        "pool_class", "parser_class", "retry_on_timeout", "retry_on_error", "retry",
        "health_check_interval", "socket_keepalive", "socket_keepalive_options",
        "socket_read_size", "client_name", "lib_name", "lib_version", "protocol",
        "encoding", "encoding_errors", "decode_responses", "credential_provider",
        "ssl_cert_reqs", "ssl_check_hostname", "ssl_ca_path", "ssl_ca_data",
        "ssl_password", "ssl_ciphers", "ssl_min_version", "driver_info",
    }
)  # fmt: skip
# redkit's own cache options (see redkit.cache.Cache); the timeout is Django's
_CACHE_OPTIONS = frozenset(CacheOptions.__optional_keys__) - {"ttl", "serializer", "secret"}
_OWN = frozenset({"namespace", "prefix", "serializer", "secret", "db"})
_SHARED: dict[str, Cache] = {}
_LOCK = threading.Lock()


class NotAnIntegerError(RedisCommandError, redis.exceptions.ResponseError):
    """``incr``/``decr`` of a value that is not an integer.

    Also a ``redis.exceptions.ResponseError``: what Django's own Redis backend raises there.
    """


class _DjangoPickle:
    """Signed pickle that lets the pickling error itself through, as Django's backends do.

    Values are signed with the first key; the others (from ``SECRET_KEY_FALLBACKS``) are
    still accepted, so rotating ``SECRET_KEY`` the Django way keeps the cache readable.
    """

    name = "pickle"

    def __init__(self, secret: bytes, *fallbacks: bytes) -> None:
        self._signed = PickleSerializer(secret)
        self._fallbacks = [PickleSerializer(key) for key in fallbacks]

    def dumps(self, value: Any) -> bytes:
        try:
            return self._signed.dumps(value)
        except SerializationError:
            pickle.dumps(value, pickle.HIGHEST_PROTOCOL)  # raises the original error
            raise

    def loads(self, data: bytes) -> Any:
        try:
            return self._signed.loads(data)
        except TamperedDataError:
            for fallback in self._fallbacks:
                try:
                    return fallback.loads(data)
                except TamperedDataError:
                    continue
            raise


class _Adapted:
    """A serializer given as Django's ``OPTIONS["serializer"]`` (anything with dumps/loads)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.name = type(inner).__name__

    def dumps(self, value: Any) -> bytes:
        return bytes(self._inner.dumps(value))

    def loads(self, data: bytes) -> Any:
        return self._inner.loads(data)


class RedkitCache(BaseCache):  # type: ignore[misc]  # django ships no type hints
    """Django's cache API on a :class:`redkit.cache.Cache` namespace.

    ``LOCATION`` is a redkit URL (``redis://``, ``rediss://``, ``unix://``,
    ``redis+sentinel://``, ``redis+cluster://``); several ``;``- or ``,``-separated
    servers, as Django's backend takes for a primary and its replicas, use the first (the
    primary) for reads and writes. Every instance with the same settings shares one
    connection pool per process (Django makes one backend object per thread).
    """

    def __init__(self, server: str | list[str] | None, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._location = _first(server)
        self._options = dict(params.get("OPTIONS") or {})
        self._cache = _shared(self._location, self._options)
        self._serializer = self._cache.serializer

    # --- timeouts -----------------------------------------------------------------------

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> float | None:
        """None for no expiry, else seconds (0 when the value must not be stored).

        Like Django's Redis backend, except that fractions of a second are kept.
        """
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else max(0.0, float(timeout))

    def _check_storable(self, values: Iterable[Any]) -> None:
        # a value that will not be stored (timeout 0) must still be one that could be:
        # Django's backends serialize before they look at the timeout
        for value in values:
            if value is not None and type(value) is not int:
                self._serializer.dumps(value)

    # --- the cache API ------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._cache.get(self.make_and_validate_key(key, version=version), default)

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        made = self.make_and_validate_key(key, version=version)
        ttl = self.get_backend_timeout(timeout)
        if ttl == 0:
            self._check_storable([value])
            self._cache.delete(made)
        else:
            self._cache.set(made, value, ttl)

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        made = self.make_and_validate_key(key, version=version)
        ttl = self.get_backend_timeout(timeout)
        if ttl == 0:  # True when it would have been added; nothing is stored either way
            self._check_storable([value])
            return self._cache.get(made, _MISSING) is _MISSING
        return self._cache.add(made, value, ttl)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version=version)
        ttl = self.get_backend_timeout(timeout)
        if ttl == 0:
            return bool(self._cache.delete(made))
        return self._cache.touch(made, ttl)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return bool(self._cache.delete(self.make_and_validate_key(key, version=version)))

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        made = {self.make_and_validate_key(k, version=version): k for k in keys}
        if not made:
            return {}
        found = self._cache.get_many(list(made))
        return {made[str(k)]: v for k, v in found.items()}

    def set_many(
        self, data: Mapping[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        """Store every item; returns the keys that failed (always none: it raises instead)."""
        if not data:
            return []
        items = {self.make_and_validate_key(k, version=version): v for k, v in data.items()}
        ttl = self.get_backend_timeout(timeout)
        if ttl == 0:
            self._check_storable(items.values())
            self._cache.delete(*items)
        else:
            self._cache.set_many(items, ttl)
        return []

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        made = [self.make_and_validate_key(k, version=version) for k in keys]
        if made:
            self._cache.delete(*made)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version=version)
        return self._cache.get(made, _MISSING) is not _MISSING

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        """Add ``delta`` atomically (expiry kept). ValueError when the key is missing,
        :class:`NotAnIntegerError` (a redis-py ``ResponseError``) when it is not an int."""
        made = self.make_and_validate_key(key, version=version)
        try:
            value = self._cache.incr(made, delta)
        except (DataError, ConfigError) as exc:  # the entry holds something other than an int
            raise NotAnIntegerError(
                f"value is not an integer or out of range (cache key {made!r})"
            ) from exc
        if value is None:
            raise ValueError(f"Key '{made}' not found.")
        return value

    def clear(self) -> bool:
        """Invalidate every entry of this cache's namespace (nothing is scanned or flushed)."""
        self._cache.clear()
        return True

    def close(self, **kwargs: Any) -> None:
        """Django calls this at the end of each request; the shared pool stays open."""

    # --- async: the batch and atomic methods above, not Django's one-key-at-a-time loops ---

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        return await _in_thread(self.get_many, list(keys), version)  # type: ignore[no-any-return]

    async def aset_many(
        self, data: Mapping[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        return await _in_thread(self.set_many, data, timeout, version)  # type: ignore[no-any-return]

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        await _in_thread(self.delete_many, list(keys), version)

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        return await _in_thread(self.has_key, key, version)  # type: ignore[no-any-return]

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await _in_thread(self.incr, key, delta, version)  # type: ignore[no-any-return]


async def _in_thread(method: Callable[..., Any], *args: Any) -> Any:
    """Run a sync method as Django's own async cache methods do."""
    return await sync_to_async(method, thread_sensitive=True)(*args)


# --- configuration ------------------------------------------------------------------------


def _first(server: str | list[str] | tuple[str, ...] | None) -> str | None:
    """The primary of Django's ``LOCATION`` (a string with ``;``/``,`` or a list)."""
    if not server:
        return None
    if isinstance(server, str):
        if "+" in server.split("://", 1)[0]:  # redis+cluster:// and redis+sentinel:// list hosts
            return server
        server = re.split("[;,]", server)
    return str(server[0]).strip() or None


def _shared(location: str | None, options: dict[str, Any]) -> Cache:
    """The cache for these settings: one per distinct configuration in this process."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    signing = [_derived(k).hex() for k in keys]  # a SECRET_KEY change is a new configuration
    key = repr((location, sorted(options.items(), key=lambda kv: kv[0]), signing))
    with _LOCK:
        cache = _SHARED.get(key)
        if cache is None:
            cache = _SHARED[key] = _build(location, dict(options))
        return cache


def _build(location: str | None, options: dict[str, Any]) -> Cache:
    unknown = set(options) - _OWN - _CACHE_OPTIONS - _IGNORED - set(_MAPPED)
    if unknown:
        raise ConfigError(
            f"unknown CACHES OPTIONS for RedkitCache: {', '.join(sorted(unknown))} "
            "(see docs/cache.md for the accepted options)"
        )
    ignored = sorted(set(options) & _IGNORED)
    if ignored:
        log.info("RedkitCache: OPTIONS %s have no effect (redkit manages its pool)", ignored)
    serializer = _serializer(options.pop("serializer", None), options.pop("secret", None))
    url = _with_db(location, options.pop("db", None))
    overrides = {field: options.pop(name) for name, field in _MAPPED.items() if name in options}
    settings_ = Settings.from_env(url=url, prefix=options.pop("prefix", None), **overrides)
    rk = Redkit(settings=settings_, serializer=serializer)
    cache_options = {k: v for k, v in options.items() if k in _CACHE_OPTIONS}
    cache_options.setdefault("jitter", 0.0)
    cache_options.setdefault("beta", 0.0)
    cache_options.setdefault("on_error", "closed")  # Django's RedisCache raises when Redis does
    return rk.cache(options.get("namespace", "django"), ttl=None, **cache_options)


def _serializer(spec: Any, secret: str | bytes | None) -> Serializer:
    """Signed pickle by default; "json"/"msgpack"; or Django's serializer option."""
    if spec is None or spec == "pickle":
        if secret is not None:
            return _DjangoPickle(secret.encode() if isinstance(secret, str) else secret)
        # keys of its own, derived from SECRET_KEY (never SECRET_KEY itself)
        keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
        return _DjangoPickle(*(_derived(key) for key in keys))
    if spec in ("json", "msgpack"):
        return get_serializer(spec)
    if isinstance(spec, str):
        spec = import_string(spec)
    if isinstance(spec, type):
        spec = spec()
    if type(spec).__module__ == "django.core.cache.backends.redis":  # Django's RedisSerializer
        return _serializer(None, secret)
    if not (callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None))):
        raise ConfigError("OPTIONS['serializer'] needs dumps(value) and loads(bytes)")
    return _Adapted(spec)


def _derived(secret_key: str | bytes) -> bytes:
    raw = secret_key.encode() if isinstance(secret_key, str) else secret_key
    return hashlib.sha256(b"redkit.cache:" + raw).digest()


def _with_db(url: str | None, db: Any) -> str | None:
    """``url`` with ``OPTIONS["db"]`` applied when the URL names no database itself."""
    if url is None or db is None:
        if db is not None:
            raise ConfigError("OPTIONS['db'] needs a LOCATION (a redis:// URL)")
        return url
    if isinstance(db, bool) or not isinstance(db, int) or db < 0:
        raise ConfigError(f"OPTIONS['db'] must be a database number, got {db!r}")
    parts = urlsplit(url)
    if "db=" in parts.query:
        return url
    if parts.scheme in ("redis", "rediss") and parts.path.strip("/") == "":
        return urlunsplit(parts._replace(path=f"/{db}"))
    if parts.scheme == "unix":
        query = f"{parts.query}&db={db}" if parts.query else f"db={db}"
        return urlunsplit(parts._replace(query=query))
    return url
