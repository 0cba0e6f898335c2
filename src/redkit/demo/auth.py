"""Accounts: server-side sessions rotated at login, a revocable JWT, log out everywhere.

The demo's users are fixed (``alice`` and ``bob``, password ``redkit``): the point is
what happens to sessions and tokens, not a user database.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from redkit import AsyncRedkit, ops
from redkit.integrations.asgi.jwt import JWTBearer
from redkit.integrations.asgi.sessions import session_of
from redkit.sessions import AsyncSessionStore, AsyncTokenRevoker

USERS = {"alice": "redkit", "bob": "redkit"}
TOKEN_TTL = 15 * 60


def current_user(request: Request) -> str:
    """A dependency: the logged-in user, or 401."""
    user = session_of(request).user
    if user is None:
        raise HTTPException(401, "Log in first")
    return str(user)


User = Annotated[str, Depends(current_user)]


class SigningKey:
    """The JWT signing key: given, or one generated secret shared by every demo on a server.

    Without a given key, the first demo process to start stores a random one in Redis
    (``SET NX``) and every process reads back whichever was stored first (``GET``), so
    two demos on one ``REDIS_URL`` accept each other's tokens.
    """

    def __init__(self, ark: AsyncRedkit, given: str | None = None) -> None:
        self._ark = ark
        self._value = given
        self._key = ark.keys.group("demo", "jwt").key("secret")

    async def get(self) -> str:
        """The key (read from Redis on the first call when none was given)."""
        if self._value is None:
            self._value = await self._ark.run(_shared(self._key, secrets.token_urlsafe(32)))
        return self._value


def _shared(key: str, candidate: str) -> ops.Flow[str]:
    """SET NX, then GET, in one round trip: every process reads the first value stored."""
    _, stored = yield ops.Batch((ops.Call("SET", key, candidate, "NX"), ops.Call("GET", key)))
    if isinstance(stored, Exception):  # an error reply comes back as a value in a batch
        raise stored
    return stored.decode() if isinstance(stored, bytes) else str(stored)


class _Bearer:
    """:class:`JWTBearer` built on first use, once the signing key is known."""

    def __init__(self, tokens: AsyncTokenRevoker, key: SigningKey) -> None:
        self._tokens, self._key = tokens, key
        self._bearer: JWTBearer | None = None

    async def __call__(self, request: HTTPConnection) -> dict[str, Any]:
        if self._bearer is None:
            self._bearer = JWTBearer(self._tokens, key=await self._key.get(), algorithms=["HS256"])
        return await self._bearer(request)


def _check_password(username: str, password: str) -> bool:
    expected = USERS.get(username, "\0invalid")
    return hmac.compare_digest(expected.encode(), password.encode()) and username in USERS


def router(
    store: AsyncSessionStore, tokens: AsyncTokenRevoker, key: SigningKey, *, login_limit: Any
) -> APIRouter:
    """The account routes; ``login_limit`` is a FastAPI dependency applied to ``/login``."""
    routes = APIRouter()
    bearer = _Bearer(tokens, key)

    @routes.post("/login", dependencies=[Depends(login_limit)])
    async def login(request: Request, body: dict[str, str]) -> dict[str, Any]:
        username, password = body.get("username", ""), body.get("password", "")
        if not _check_password(username, password):
            raise HTTPException(401, "Wrong username or password")
        session_of(request).login(username)  # a new session id when this response is sent
        # sub, a random jti, iat in milliseconds (so a login right after "log out
        # everywhere" is not caught by its watermark) and exp
        claims = tokens.new_claims(username, ttl=TOKEN_TTL)
        token = jwt.encode(claims, await key.get(), algorithm="HS256")
        return {"user": username, "access_token": token}

    @routes.post("/logout")
    async def logout(request: Request) -> dict[str, bool]:
        """End this session; with a valid bearer token, revoke that token too (by its id)."""
        session_of(request).destroy()
        return {"ok": True, "token_revoked": await _revoke_presented(request, bearer, tokens)}

    @routes.post("/logout-everywhere")
    async def logout_everywhere(user: User) -> dict[str, int]:
        ended = await store.end_all(user)
        await tokens.revoke_all(user)  # every JWT issued until now is rejected
        return {"ended": ended}

    @routes.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return {"user": session_of(request).user}

    @routes.get("/sessions")
    async def sessions(request: Request, user: User) -> dict[str, Any]:
        listed = await store.list_sessions(user, current=session_of(request))
        return {"sessions": [_session_row(info) for info in listed]}

    @routes.get("/token-check")
    # A default rather than Annotated: ``bearer`` is local, and FastAPI resolves
    # string annotations in the module's globals.
    async def token_check(claims: dict[str, Any] = Depends(bearer)) -> dict[str, Any]:  # noqa: B008
        return {"valid": True, "user": claims["sub"]}

    return routes


async def _revoke_presented(request: Request, bearer: _Bearer, tokens: AsyncTokenRevoker) -> bool:
    """Revoke the request's bearer token, if it has a valid one (no subject needed)."""
    if not request.headers.get("authorization"):
        return False
    try:
        claims = await bearer(request)
    except HTTPException:
        return False  # already invalid or revoked: nothing to revoke
    return await tokens.revoke(claims["jti"], claims["exp"])


def _session_row(info: Any) -> dict[str, Any]:
    return {
        "created": info.created.isoformat(timespec="seconds"),
        "last_seen": info.last_seen.isoformat(timespec="seconds"),
        "ip": info.ip,
        "user_agent": info.user_agent,
        "browser": short_agent(info.user_agent),
        "current": info.current,
    }


# Most specific first: Edge and Opera also say "Chrome", Chrome also says "Safari".
_BROWSERS = (
    ("Edge", r"Edg(?:e|A|iOS)?/(\d+)"),
    ("Opera", r"OPR/(\d+)"),
    ("Firefox", r"Firefox/(\d+)"),
    ("Chrome", r"(?:Headless)?Chrom(?:e|ium)/(\d+)"),
    ("Safari", r"Version/(\d+)[.\d]* .*Safari/"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iOS", "iPhone"),
    ("iOS", "iPad"),
    ("Windows", "Windows"),
    ("macOS", "Mac OS X"),
    ("Linux", "Linux"),
)


def short_agent(agent: str | None) -> str:
    """ "Chrome 126 on Linux" from a full User-Agent; the first product for anything else."""
    if not agent:
        return ""
    system = next((name for name, marker in _SYSTEMS if marker in agent), None)
    for name, pattern in _BROWSERS:
        found = re.search(pattern, agent)
        if found:
            browser = f"{name} {found.group(1)}"
            return f"{browser} on {system}" if system else browser
    return agent.split()[0][:40]
