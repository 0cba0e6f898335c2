"""Settings: where redkit connects and how, from arguments, the environment, or defaults.

Precedence is explicit argument > environment > default. The environment variables:

``REDIS_URL``
    ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS), ``unix:///path.sock?db=0``,
    ``redis+sentinel://[:password@]host:26379,host2:26379/service_name[/db]``,
    ``redis+cluster://[:password@]host:7000,host2:7001`` (``rediss+cluster://`` for TLS).
``REDIS_HOST`` / ``REDIS_PORT`` / ``REDIS_PASSWORD`` / ``REDIS_USERNAME`` / ``REDIS_DB``
    used when ``REDIS_URL`` is not set (the password and user name also fill in a URL
    that has none).
``REDIS_TLS``
    ``1`` turns TLS on for the host/port form.
``REDKIT_PREFIX``
    the first part of every key redkit writes (default ``redkit``).
``REDKIT_CONNECT_TIMEOUT`` / ``REDKIT_SOCKET_TIMEOUT`` / ``REDKIT_RETRIES``
    seconds, seconds, count.
``REDKIT_MAX_CONNECTIONS``
    connections per pool (per node on a cluster); past it, callers wait for a free one up
    to the socket timeout instead of failing at once (default 100).
``REDKIT_AUTO_PIPELINE``
    ``0`` turns off auto-pipelining in the asyncio facade (on by default: concurrent
    calls of one event loop share a connection and go out as one write).
``REDKIT_EMBEDDED``
    ``0`` forbids falling back to the embedded server when nothing else is configured.
``REDIS_SSL_CA_CERTS`` / ``REDIS_SSL_CERTFILE`` / ``REDIS_SSL_KEYFILE``
    TLS files for ``rediss://``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from redkit.errors import ConfigError

Mode = Literal["standalone", "unix", "sentinel", "cluster", "embedded"]

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_SCHEMES: dict[str, tuple[Mode, bool]] = {
    "redis": ("standalone", False),
    "rediss": ("standalone", True),
    "unix": ("unix", False),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Target:
    """Where to connect, parsed from a URL or the host/port triple."""

    mode: Mode
    hosts: tuple[tuple[str, int], ...] = ()
    path: str | None = None
    tls: bool = False
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    db: int = 0
    service_name: str | None = None

    def describe(self) -> str:
        """A human-readable location with the password masked."""
        auth = ""
        if self.password is not None:
            auth = f"{self.username or ''}:***@"
        elif self.username:
            auth = f"{self.username}@"
        if self.mode == "unix":
            return f"unix://{auth}{self.path}?db={self.db}"
        hosts = ",".join(f"{h}:{p}" for h, p in self.hosts)
        scheme = "rediss" if self.tls else "redis"
        if self.mode == "sentinel":
            return f"{scheme}+sentinel://{auth}{hosts}/{self.service_name}/{self.db}"
        if self.mode == "cluster":
            return f"{scheme}+cluster://{auth}{hosts}"
        if self.mode == "embedded":
            return "embedded Valkey (started on demand)"
        return f"{scheme}://{auth}{hosts}/{self.db}"


@dataclass(frozen=True)
class Settings:
    """How redkit connects. Build it with :meth:`from_env`, or pass fields directly.

    The repr never shows the password.
    """

    url: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    prefix: str = "redkit"
    connect_timeout: float = 2.0
    socket_timeout: float = 5.0
    retries: int = 3
    max_connections: int = 100
    auto_pipeline: bool = True
    embedded: bool = True
    tls: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = field(default=None, repr=False)
    secret: str | bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.prefix):
            raise ConfigError(
                f"prefix {self.prefix!r} is not valid: use 1-64 characters from "
                "letters, digits, '_', '.', '-'"
            )
        for name in ("connect_timeout", "socket_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds")
        if self.retries < 0:
            raise ConfigError("retries must be 0 or more")
        if self.max_connections < 1:
            raise ConfigError("max_connections must be 1 or more")
        if self.url is not None:
            _parse_url(self.url, source="url")  # fail early, with the field's name

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from the environment; keyword arguments win over it."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        readers: dict[str, tuple[str, Any]] = {
            "url": ("REDIS_URL", str),
            "host": ("REDIS_HOST", str),
            "port": ("REDIS_PORT", _port),
            "username": ("REDIS_USERNAME", str),
            "password": ("REDIS_PASSWORD", str),
            "db": ("REDIS_DB", _nonneg_int),
            "prefix": ("REDKIT_PREFIX", _prefix),
            "connect_timeout": ("REDKIT_CONNECT_TIMEOUT", _pos_float),
            "socket_timeout": ("REDKIT_SOCKET_TIMEOUT", _pos_float),
            "retries": ("REDKIT_RETRIES", _nonneg_int),
            "max_connections": ("REDKIT_MAX_CONNECTIONS", _nonneg_int),
            "auto_pipeline": ("REDKIT_AUTO_PIPELINE", _bool),
            "embedded": ("REDKIT_EMBEDDED", _bool),
            "tls": ("REDIS_TLS", _bool),
            "ssl_ca_certs": ("REDIS_SSL_CA_CERTS", str),
            "ssl_certfile": ("REDIS_SSL_CERTFILE", str),
            "ssl_keyfile": ("REDIS_SSL_KEYFILE", str),
            "secret": ("REDKIT_SECRET", str),
        }
        for attr, (var, convert) in readers.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[attr] = convert(raw)
            except ValueError as exc:
                shown = "***" if "PASSWORD" in var or "SECRET" in var else raw
                raise ConfigError(f"{var} has value {shown!r}. {exc}") from None
        if "url" in values:
            try:
                _parse_url(values["url"], source="REDIS_URL")
            except ConfigError:
                raise
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def configured(self) -> bool:
        """True when a server was named (URL or host), False when only defaults apply."""
        return self.url is not None or self.host is not None or self.port is not None

    def target(self) -> Target:
        """Parse the settings into a :class:`Target`; ``embedded`` when nothing is set."""
        if self.url is not None:
            target = _parse_url(self.url, source="REDIS_URL")
            if self.password is not None and target.password is None:
                target = dataclasses.replace(target, password=self.password)
            if self.username is not None and target.username is None:
                target = dataclasses.replace(target, username=self.username)
            return target
        if self.host is not None or self.port is not None:
            return Target(
                mode="standalone",
                hosts=((self.host or "127.0.0.1", self.port or 6379),),
                username=self.username,
                password=self.password,
                db=self.db,
                tls=self.tls or self.ssl_ca_certs is not None,
            )
        if not self.embedded:
            raise ConfigError(
                "no Redis server is configured and REDKIT_EMBEDDED=0 forbids the embedded "
                "one: set REDIS_URL (or REDIS_HOST/REDIS_PORT)"
            )
        return Target(mode="embedded")


def _parse_url(url: str, *, source: str) -> Target:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"{source} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        expected = ", ".join(f"{s}://" for s in _SCHEMES)
        raise ConfigError(f"{source} has scheme {scheme!r}; expected one of {expected}")
    mode, tls = _SCHEMES[scheme]
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if mode == "unix":
        if not parts.path:
            raise ConfigError(f"{source} needs a socket path: unix:///path/to/redis.sock")
        db = _query_db(parts.query, source)
        return Target("unix", path=parts.path, username=username, password=password, db=db)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    default_port = 26379 if mode == "sentinel" else 6379
    hosts = tuple(_host_port(h, default_port, source) for h in netloc.split(",") if h)
    if not hosts:
        raise ConfigError(f"{source} names no host")
    segments = [s for s in parts.path.split("/") if s]
    if mode == "sentinel":
        if not segments:
            raise ConfigError(
                f"{source} needs the service name: redis+sentinel://host:26379/mymaster"
            )
        db = _db(segments[1], source) if len(segments) > 1 else 0
        return Target(mode, hosts, None, tls, username, password, db, segments[0])
    if mode == "cluster":
        return Target(mode, hosts, None, tls, username, password, 0)
    if len(hosts) > 1:
        raise ConfigError(
            f"{source} names several hosts; use redis+cluster:// or redis+sentinel://"
        )
    db = _db(segments[0], source) if segments else _query_db(parts.query, source)
    return Target(mode, hosts, None, tls, username, password, db)


def _host_port(text: str, default: int, source: str) -> tuple[str, int]:
    if text.startswith("["):  # IPv6 literal
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ConfigError(f"{source} has an empty host in {text!r}")
    if not port_text:
        return host, default
    try:
        return host, _port(port_text)
    except ValueError as exc:
        raise ConfigError(f"{source} has host {text!r}. {exc}") from None


def _query_db(query: str, source: str) -> int:
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if key == "db":
            return _db(value, source)
    return 0


def _db(text: str, source: str) -> int:
    try:
        return _nonneg_int(text)
    except ValueError as exc:
        raise ConfigError(f"{source} has database {text!r}. {exc}") from None


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"Not a valid port: {text!r} is not a whole number.") from None
    if not 0 < value < 65536:
        raise ValueError(f"Not a valid port: {value} is outside 1-65535.")
    return value


def _prefix(text: str) -> str:
    if not _PREFIX_RE.match(text):
        raise ValueError("Not a valid prefix: use 1-64 letters, digits, '_', '.' or '-'.")
    return text


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"Not a valid whole number: {text!r}.") from None
    if value < 0:
        raise ValueError(f"Must be 0 or more, got {value}.")
    return value


def _pos_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"Not a valid number of seconds: {text!r}.") from None
    if value <= 0:
        raise ValueError(f"Must be more than 0 seconds, got {value}.")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("Not a valid boolean: use 1/0, true/false, yes/no or on/off.")
