"""A FastAPI dependency that verifies a bearer JWT (PyJWT) and checks it is not revoked.

::

    from fastapi import Depends, FastAPI
    from redkit.integrations.asgi.jwt import JWTBearer

    auth = JWTBearer(ark.tokens(), key=SECRET, algorithms=["HS256"])

    @app.get("/me")
    async def me(claims: dict = Depends(auth)):
        return {"user": claims["sub"]}

The signature, ``exp``, ``iat``, and (when configured) ``aud``/``iss`` are verified by
PyJWT first; only a genuine token costs a Redis round trip (its id, its user's watermark
and its refresh family). Every token that cannot be verified is a 401 with
``WWW-Authenticate: Bearer`` -- a forged signature, a header naming an algorithm the key
does not fit, a validly signed token whose ``sub``/``jti``/``fam`` has the wrong shape;
only a Redis outage is a 503 (fail closed), never a pass.

To accept two algorithm families (say RS256 and ES256 during a key migration), give a key
per algorithm: ``key={"RS256": rsa_public, "ES256": ec_public}``; the token's header
picks the key, and only among ``algorithms``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
        key: the verification key (a secret for HS*, a public key for RS*/ES*/EdDSA),
            or a mapping from each algorithm to its key.
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
        self.algorithms = list(algorithms)
        self._keys = _keys_by_algorithm(key, self.algorithms)
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
        except ConfigError as exc:  # signed, but a claim has a shape no issuer of ours makes
            raise _unauthorized("invalid token claims") from exc
        except RedkitError as exc:
            raise HTTPException(503, "cannot check token revocation") from exc
        if revoked:
            raise _unauthorized("token revoked")
        return claims

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims of an ``Authorization`` header value; 401 when it is not valid."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("missing bearer token")
        try:
            alg = jwt.get_unverified_header(token).get("alg")
            # the allow-list, before any key is touched
            if not isinstance(alg, str) or alg not in self._keys:
                raise jwt.InvalidAlgorithmError("algorithm not allowed")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._keys[alg],
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": self.require},
            )
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            # PyJWT reports a key that does not fit the header's algorithm as TypeError or
            # InvalidKeyError: an attacker's choice of header, so a 401 like any other
            raise _unauthorized("invalid token") from exc
        return claims


def _keys_by_algorithm(key: Any, algorithms: list[str]) -> dict[str, Any]:
    """One key per accepted algorithm, each checked to fit it (a ConfigError if not)."""
    if isinstance(key, Mapping):
        unknown = sorted(set(key) - set(algorithms))
        missing = [a for a in algorithms if a not in key]
        if unknown or missing:
            raise ConfigError(
                f"JWTBearer key mapping must name exactly the algorithms {algorithms}: "
                f"missing {missing}, not accepted {unknown}"
            )
        keys = {alg: key[alg] for alg in algorithms}
    else:
        keys = dict.fromkeys(algorithms, key)
    for alg, value in keys.items():
        _check_fits(alg, value)
    return keys


def _check_fits(alg: str, key: Any) -> None:
    if isinstance(key, jwt.PyJWK):
        return  # bound to its own algorithm; PyJWT checks it against the header
    try:
        jwt.get_algorithm_by_name(alg).prepare_key(key)
    except NotImplementedError:
        raise ConfigError(f"JWTBearer: algorithm {alg!r} is not supported by PyJWT") from None
    except (jwt.PyJWTError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"JWTBearer: the key does not fit {alg} ({type(exc).__name__}); to accept "
            f"several algorithm families give a key per algorithm, key={{'{alg}': ..., ...}}"
        ) from None


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
