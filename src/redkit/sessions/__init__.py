"""Server-side sessions and token revocation.

:class:`SessionStore` / :class:`AsyncSessionStore` keep sessions in Redis (idle and
absolute timeouts enforced by the server, id rotation at login, per-field writes, a
per-user index for "log out everywhere"); :class:`TokenRevoker` /
:class:`AsyncTokenRevoker` revoke JWTs by id, by user watermark and by refresh family.
Build them with ``rk.sessions(...)`` and ``rk.tokens(...)``.
"""

from __future__ import annotations

from redkit.sessions.cookies import CookieConfig
from redkit.sessions.ops import SessionInfo
from redkit.sessions.revocation import AsyncTokenRevoker, RefreshResult, Revocation, TokenRevoker
from redkit.sessions.session import Session
from redkit.sessions.store import AsyncSessionStore, SessionStore

__all__ = [
    "AsyncSessionStore",
    "AsyncTokenRevoker",
    "CookieConfig",
    "RefreshResult",
    "Revocation",
    "Session",
    "SessionInfo",
    "SessionStore",
    "TokenRevoker",
]
