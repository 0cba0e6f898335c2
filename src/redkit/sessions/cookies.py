"""The session cookie: an opaque id, HttpOnly, Secure and SameSite=Lax unless told otherwise."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from redkit.errors import ConfigError

SameSite = Literal["lax", "strict", "none"]
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


@dataclass(frozen=True)
class CookieConfig:
    """How the session id travels. HttpOnly is always set; there is no switch for it.

    Args:
        name: the cookie name. ``"__Host-session"`` makes browsers refuse it unless it is
            Secure, has Path=/ and no Domain, which blocks cookie injection from subdomains.
        domain: the Domain attribute; None (default) keeps the cookie on this host only.
        path: the Path attribute.
        secure: send the cookie over HTTPS only. Turn off only for local development.
        samesite: ``"lax"`` (default), ``"strict"`` or ``"none"`` (which requires secure).
        max_age: seconds the browser keeps the cookie; None (default) ends it with the
            browser session. The server-side timeouts apply either way.
    """

    name: str = "session"
    domain: str | None = None
    path: str = "/"
    secure: bool = True
    samesite: SameSite = "lax"
    max_age: int | None = None

    def __post_init__(self) -> None:
        if not _TOKEN.match(self.name):
            raise ConfigError(f"cookie name {self.name!r} is not a valid cookie name")
        if self.samesite not in ("lax", "strict", "none"):
            raise ConfigError(f"samesite must be 'lax', 'strict' or 'none', not {self.samesite!r}")
        if self.samesite == "none" and not self.secure:
            raise ConfigError("samesite='none' requires secure=True (browsers reject it otherwise)")
        if self.name.startswith("__Host-") and (not self.secure or self.domain or self.path != "/"):
            raise ConfigError("a __Host- cookie needs secure=True, path='/' and no domain")
        if self.max_age is not None and self.max_age <= 0:
            raise ConfigError("max_age must be a positive number of seconds or None")

    def _attributes(self) -> list[str]:
        parts = [f"Path={self.path}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        parts.append(f"SameSite={self.samesite.capitalize()}")
        return parts

    def header(self, session_id: str) -> str:
        """The ``Set-Cookie`` value that hands ``session_id`` to the browser."""
        parts = [f"{self.name}={session_id}"]
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        return "; ".join(parts + self._attributes())

    def deletion_header(self) -> str:
        """The ``Set-Cookie`` value that makes the browser drop the cookie."""
        return "; ".join([f"{self.name}=", f"expires={_EPOCH}", "Max-Age=0", *self._attributes()])

    def read(self, cookie_header: str | None) -> str | None:
        """The session id in a ``Cookie`` request header, or None (first one wins)."""
        if not cookie_header:
            return None
        for chunk in cookie_header.split(";"):
            name, sep, value = chunk.strip().partition("=")
            if sep and name == self.name:
                return value.strip().strip('"') or None
        return None
