"""JWTBearer against hostile tokens: every token that cannot be verified is a 401."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from base64 import urlsafe_b64encode
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI
from starlette.testclient import TestClient

from redkit import AsyncRedkit, Redkit
from redkit.embedded import free_port
from redkit.errors import ConfigError
from redkit.integrations.asgi.jwt import JWTBearer

RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP256R1())
ATTACKER_EC = ec.generate_private_key(ec.SECP256R1())
HMAC = "hmac-secret-that-is-long-enough-for-hs256"
RSA_PEM = RSA.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def _app(ark: AsyncRedkit, key: Any, algorithms: list[str]) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await ark.aclose()

    app = FastAPI(lifespan=lifespan)
    auth = JWTBearer(ark.tokens(), key, algorithms=algorithms)

    @app.get("/me")
    async def me(claims: dict = Depends(auth)) -> dict:  # noqa: B008 - FastAPI's idiom
        return {"user": claims["sub"]}

    return app


@pytest.fixture
def two_families(target_url: str, prefix: str) -> Iterator[TestClient]:
    """RS256 and ES256 accepted (a key migration), HS256 not."""
    keys = {"RS256": RSA.public_key(), "ES256": EC.public_key()}
    app = _app(AsyncRedkit(target_url, prefix=prefix), keys, ["RS256", "ES256"])
    with TestClient(app) as client:
        yield client


def _claims(**extra: Any) -> dict[str, Any]:
    now = round(time.time(), 3)
    return {"sub": "alice", "jti": f"j{time.monotonic_ns()}", "iat": now, "exp": now + 300, **extra}


def _status(client: TestClient, token: str) -> int:
    return client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_token(header: dict[str, Any], claims: dict[str, Any]) -> str:
    body = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    return body + "." + _b64(b"not-a-signature")


def _confused_token(claims: dict[str, Any]) -> str:
    """The algorithm-confusion attack: HMAC with the server's public key as the secret."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = header + "." + _b64(json.dumps(claims).encode())
    signature = hmac.new(RSA_PEM, body.encode(), hashlib.sha256).digest()
    return body + "." + _b64(signature)


def test_each_family_verifies_with_its_own_key(two_families: TestClient) -> None:
    assert _status(two_families, jwt.encode(_claims(), RSA, algorithm="RS256")) == 200
    assert _status(two_families, jwt.encode(_claims(), EC, algorithm="ES256")) == 200


def test_hostile_tokens_are_401_never_500(two_families: TestClient) -> None:
    hostile = [
        jwt.encode(_claims(), ATTACKER_EC, algorithm="ES256"),  # the other family, wrong key
        _confused_token(_claims()),  # HS256 "signed" with the RSA public key
        jwt.encode(_claims(), HMAC, algorithm="HS256"),  # a family not accepted
        _raw_token({"alg": "ES256", "typ": "JWT"}, _claims()),
        _raw_token({"alg": ["RS256"], "typ": "JWT"}, _claims()),
        _raw_token({"alg": "none"}, _claims()),
        _raw_token({"typ": "JWT"}, _claims()),
        "not.a.jwt",
        "a" * 5000,
    ]
    for token in hostile:
        response = two_families.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token[:60]
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("fam", ["", 7, ["f"], {"x": 1}], ids=repr)
def test_a_signed_token_with_a_malformed_family_claim_is_401(
    two_families: TestClient, fam: object
) -> None:
    token = jwt.encode(_claims(fam=fam), RSA, algorithm="RS256")
    assert _status(two_families, token) == 401


def test_one_key_for_two_families_is_refused_when_configured(ark: AsyncRedkit) -> None:
    for key, algorithms in (
        (RSA.public_key(), ["RS256", "ES256"]),
        (RSA.public_key(), ["RS256", "HS256"]),
        (RSA_PEM, ["RS256", "HS256"]),
        (HMAC, ["HS256", "RS256"]),
    ):
        with pytest.raises(ConfigError, match="key per algorithm"):
            JWTBearer(ark.tokens(), key, algorithms=algorithms)
    with pytest.raises(ConfigError, match="missing"):
        JWTBearer(ark.tokens(), {"RS256": RSA.public_key()}, algorithms=["RS256", "ES256"])
    with pytest.raises(ConfigError, match="not accepted"):
        JWTBearer(ark.tokens(), {"RS256": RSA.public_key(), "HS256": HMAC}, algorithms=["RS256"])
    # one key that fits both algorithms of its family is fine
    JWTBearer(ark.tokens(), RSA.public_key(), algorithms=["RS256", "PS256"])


def test_a_revoked_token_is_401_and_an_unreachable_server_is_503(
    two_families: TestClient, rk: Redkit
) -> None:
    claims = _claims()
    token = jwt.encode(claims, RSA, algorithm="RS256")
    assert _status(two_families, token) == 200
    rk.tokens().revoke(claims["jti"], claims["exp"])
    assert _status(two_families, token) == 401

    down = AsyncRedkit(f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(_app(down, RSA.public_key(), ["RS256"])) as client:
        assert _status(client, jwt.encode(_claims(), RSA, algorithm="RS256")) == 503
