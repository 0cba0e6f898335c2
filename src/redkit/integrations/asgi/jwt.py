"""A FastAPI dependency that verifies a bearer JWT (PyJWT) and checks it is not revoked.

::

    from fastapi import Depends, FastAPI
    from redkit.integrations.asgi.jwt import JWTBearer

    auth = JWTBearer(ark.tokens(), key=SECRET, algorithms=["HS256"])

    @app.get("/me")
    async def me(claims: dict = Depends(auth)):
        return {"user": claims["sub"]}

The signature, ``exp``, ``iat``, and (when configured) ``aud``/``iss`` are verified by
PyJWT first; only a genuine token costs a Redis round trip (one script: its id, its
user's watermark and its refresh family). Every failure is a 401 with
``WWW-Authenticate: Bearer``; a Redis outage is a 503 (fail closed), never a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redkit.errors import ConfigError, MissingDependencyError, RedkitError
from redkit.sessions import AsyncTokenRevoker

try:
    import jwt
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("pyjwt", "jwt") from None
try:
    from starlette.exceptions import HTTPException
    from starlette.requests import HTTPConnection
except ImportError:  # pragma: no cover
    raise MissingDependencyError("starlette", "asgi") from None

REQUIRED = ("exp", "iat", "sub", "jti")


class JWTBearer:
    """Verify ``Authorization: Bearer <jwt>`` and reject revoked tokens.

    Args:
        tokens: the :class:`~redkit.sessions.AsyncTokenRevoker` (``ark.tokens()``).
        key: the verification key (a secret for HS*, a public key for RS*/ES*/EdDSA).
        algorithms: the accepted algorithms; never inferred from the token.
        audience: the required ``aud``, if any.
        issuer: the required ``iss``, if any.
        require: claims that must be present (default ``exp``, ``iat``, ``sub``, ``jti``).
        leeway: seconds of clock skew allowed on ``exp``/``iat``; defaults to the
            revoker's leeway, so deny-list entries outlive what this accepts.
    """

    def __init__(
        self,
        tokens: AsyncTokenRevoker,
        key: Any,
        *,
        algorithms: Sequence[str] = ("HS256",),
        audience: str | None = None,
        issuer: str | None = None,
        require: Sequence[str] = REQUIRED,
        leeway: float | None = None,
    ) -> None:
        if not isinstance(tokens, AsyncTokenRevoker):
            raise ConfigError("JWTBearer needs an AsyncTokenRevoker (ark.tokens())")
        if not algorithms or "none" in {a.lower() for a in algorithms}:
            raise ConfigError("JWTBearer needs explicit signing algorithms, never 'none'")
        self.tokens = tokens
        self._key = key
        self.algorithms = list(algorithms)
        self.audience = audience
        self.issuer = issuer
        self.require = list(require)
        self.leeway = tokens.leeway if leeway is None else leeway
        if self.leeway > tokens.leeway:
            raise ConfigError("JWTBearer leeway exceeds the revoker's: revocations would end early")

    def __repr__(self) -> str:
        return f"JWTBearer(algorithms={self.algorithms!r}, audience={self.audience!r})"

    async def __call__(self, request: HTTPConnection) -> dict[str, Any]:
        claims = self.verify(request.headers.get("authorization"))
        try:
            revoked = await self.tokens.is_revoked(claims)
        except RedkitError as exc:
            raise HTTPException(503, "cannot check token revocation") from exc
        if revoked:
            raise _unauthorized("token revoked")
        return claims

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims of an ``Authorization`` header value; 401 when it is not valid."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("missing bearer token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                self._key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": self.require},
            )
        except jwt.InvalidTokenError as exc:
            raise _unauthorized("invalid token") from exc
        return claims


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
