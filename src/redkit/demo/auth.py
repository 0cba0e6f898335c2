"""Accounts: server-side sessions rotated at login, a revocable JWT, log out everywhere.

The demo's users are fixed (``alice`` and ``bob``, password ``redkit``): the point is
what happens to sessions and tokens, not a user database.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, HTTPException, Request

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


def _issue_token(user: str, key: str) -> str:
    # iat with millisecond precision: "log out everywhere" sets a watermark in ms, and a
    # whole-second iat issued in the same second after it would count as revoked
    now = round(time.time(), 3)
    claims = {
        "sub": user,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": int(now) + TOKEN_TTL,
    }
    return jwt.encode(claims, key, algorithm="HS256")


def _check_password(username: str, password: str) -> bool:
    expected = USERS.get(username, "\0invalid")
    return hmac.compare_digest(expected.encode(), password.encode()) and username in USERS


def router(
    store: AsyncSessionStore, tokens: AsyncTokenRevoker, jwt_key: str, *, login_limit: Any
) -> APIRouter:
    """The account routes; ``login_limit`` is a FastAPI dependency applied to ``/login``."""
    routes = APIRouter()
    bearer = JWTBearer(tokens, key=jwt_key, algorithms=["HS256"])

    @routes.post("/login", dependencies=[Depends(login_limit)])
    async def login(request: Request, body: dict[str, str]) -> dict[str, Any]:
        username, password = body.get("username", ""), body.get("password", "")
        if not _check_password(username, password):
            raise HTTPException(401, "Wrong username or password")
        session_of(request).login(username)  # a new session id when this response is sent
        return {"user": username, "access_token": _issue_token(username, jwt_key)}

    @routes.post("/logout")
    async def logout(request: Request) -> dict[str, bool]:
        session_of(request).destroy()
        return {"ok": True}

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


def _session_row(info: Any) -> dict[str, Any]:
    return {
        "created": info.created.isoformat(timespec="seconds"),
        "last_seen": info.last_seen.isoformat(timespec="seconds"),
        "ip": info.ip,
        "user_agent": info.user_agent,
        "current": info.current,
    }
