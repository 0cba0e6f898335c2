"""Token revocation: :class:`TokenRevoker` (sync) and :class:`AsyncTokenRevoker`.

::

    tokens = rk.tokens(max_token_age=30 * 86400)
    claims = tokens.new_claims(user_id, ttl=900)   # sub, jti, millisecond iat, exp
    tokens.revoke(claims["jti"], claims["exp"])    # gone when the token is
    tokens.revoke_all(user_id)                     # every token issued until now, one key
    tokens.is_revoked(claims)                      # id, watermark and family: one round trip

    family = tokens.start_family(user_id, refresh_jti, refresh_exp)   # at login
    result = tokens.rotate_refresh(refresh_claims, next_jti, next_exp) # at /refresh
    if result is not RefreshResult.ROTATED: reject()    # REUSED revoked the whole family

The claims are those of a token whose signature you already verified (PyJWT or any other
library); redkit only decides whether it has been revoked. A deny-list entry is keyed by
the token id alone, so ``revoke`` needs no subject and ``is_revoked`` finds the entry
whatever the claims say about the user. A user's watermark and refresh families share one
hash tag. Tokens without a ``sub`` share one tag for those (a hot slot on a big cluster
only if they use watermarks or families: give tokens a subject).
"""

from __future__ import annotations

import enum
import logging
import math
import secrets
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from typing_extensions import Unpack

from redkit import errors, ops
from redkit.errors import ConfigError, RedkitError
from redkit.failure import FailureOptions, FailurePolicy, Guarded, check_deadline, with_deadline
from redkit.scripts import check
from redkit.sessions import ops as sops
from redkit.sessions.check import check_flow

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, CoreBase, RedkitCore

_log = logging.getLogger("redkit.sessions")

Claims = Mapping[str, Any]
When = datetime | float | int
Seconds = timedelta | float | int


class TokenOptions(FailureOptions, total=False):
    """Options of :meth:`Redkit.tokens` (see :class:`redkit.sessions.TokenRevoker`)."""

    max_token_age: float
    leeway: float
    family_claim: str
    check: bool
    on_error: str
    cooldown: float


class Revocation(enum.IntEnum):
    """Why a token is rejected (``VALID`` when it is not).

    ``TOKEN`` comes from the deny-list lookup; ``ALL`` and ``FAMILY`` are tok_check's codes.
    """

    VALID = 0
    TOKEN = 1  # its id is on the deny-list
    ALL = 2  # issued at or before the user's watermark (revoke_all)
    FAMILY = 3  # its refresh family was revoked (reuse detected, or revoke_family)


class RefreshResult(enum.Enum):
    """What happened when a refresh token was used."""

    ROTATED = "rotated"  # it was the current token; the next one is now current
    REUSED = "reused"  # an older token of the family: the family is revoked now
    REVOKED = "revoked"  # the family had already been revoked
    UNKNOWN = "unknown"  # no such family (never started, or expired)


_ROTATE_CODES = {
    0: RefreshResult.UNKNOWN,
    1: RefreshResult.ROTATED,
    2: RefreshResult.REUSED,
    3: RefreshResult.REVOKED,
}


def _user(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise ConfigError(f"a token subject must be a non-empty str or an int, got {value!r}")
    return str(value)


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be seconds or a timedelta, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


def _id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a non-empty string, got {value!r}")
    return value


class _RevokerCore(Guarded):
    """Options and flows shared by :class:`TokenRevoker` and :class:`AsyncTokenRevoker`."""

    def __init__(
        self,
        rk: CoreBase,
        *,
        max_token_age: float = 30 * 86400.0,
        leeway: float = 0.0,
        family_claim: str = "fam",
        check: bool = True,
        on_error: str = "closed",
        deadline: float | None = None,
        cooldown: float = 1.0,
    ) -> None:
        if not isinstance(max_token_age, (int, float)) or not max_token_age > 0:
            raise ConfigError(
                f"max_token_age must be a positive number of seconds, got {max_token_age!r}"
            )
        if not isinstance(leeway, (int, float)) or leeway < 0:
            raise ConfigError(f"leeway must be 0 or more seconds, got {leeway!r}")
        self._base = rk
        self._keys = rk.keys
        self.max_token_age = float(max_token_age)
        self.leeway = float(leeway)
        self.family_claim = family_claim
        self._check_pending = check
        self.deadline = check_deadline(deadline)
        self._failure = FailurePolicy(
            "redkit token revocation",
            on_error,
            cooldown,
            failing={"open": "failing OPEN: every token counts as not revoked"},
            logger=_log,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_token_age={self.max_token_age}, leeway={self.leeway})"

    @staticmethod
    def new_id() -> str:
        """A fresh token or family id (128 random bits) for ``jti`` claims."""
        return secrets.token_urlsafe(16)

    def new_claims(
        self, user: str | int, ttl: Seconds, *, family: str | None = None
    ) -> dict[str, Any]:
        """The registered claims of a new token: ``sub``, ``jti``, ``iat``, ``exp``.

        ``jti`` is 128 random bits from :mod:`secrets`; ``iat`` is the local clock with
        millisecond precision, so a token issued right after :meth:`revoke_all` (whose
        watermark is in milliseconds) is not mistaken for one issued before it (rounded
        down, as the watermark is: one issued just before is not taken for later); ``exp``
        is ``iat + ttl`` in whole seconds. ``family`` (from :meth:`start_family`) goes in
        the family claim. Add your own claims to the returned dict, then sign it.

        Raises:
            ConfigError: ``ttl`` is not positive, or longer than ``max_token_age`` (a
                watermark would expire before the tokens it revokes).
        """
        seconds = _seconds(ttl, "ttl")
        if seconds > self.max_token_age:
            raise ConfigError(
                f"ttl {seconds:g} s exceeds max_token_age {self.max_token_age:g} s: "
                "raise max_token_age, or revoke_all would forget these tokens too early"
            )
        subject = _user(user)
        if subject is None:
            raise ConfigError("new_claims needs the token's subject (a user id), got None")
        issued = time.time_ns() // 1_000_000 / 1000  # this millisecond, as epoch_ms reads it
        claims: dict[str, Any] = {
            "sub": subject,
            "jti": self.new_id(),
            "iat": issued,
            "exp": math.floor(issued + seconds),
        }
        if family is not None:
            claims[self.family_claim] = _id(family, "family")
        return claims

    def _check_once(self) -> ops.Flow[None]:
        if self._check_pending:
            self._check_pending = False
            yield from check_flow(self._base, "redkit token revocation")

    def _revoke_flow(self, jti: str, expires_at: When) -> ops.Flow[bool]:
        yield from self._check_once()
        until = sops.epoch_ms(expires_at, up=True) + sops.ms(self.leeway)
        key = sops.deny_key(self._keys, _id(jti, "jti"))
        return bool((yield ops.Eval(sops.TOK_REVOKE, (key,), (until,))))

    def _revoke_all_flow(self, user: Any, before: When | None) -> ops.Flow[datetime]:
        yield from self._check_once()
        key = sops.token_group(self._keys, _user(user)).key("before")
        mark = "" if before is None else sops.epoch_ms(before)
        keep = sops.ms(self.max_token_age + self.leeway)
        reply = yield from sops.checked(sops.TOK_REVOKE_ALL, (key,), (mark, keep))
        return datetime.fromtimestamp(int(reply) / 1000, tz=timezone.utc)

    def _status_flow(self, claims: Claims) -> ops.Flow[Revocation]:
        """The check under the failure policy: failing open, a token counts as valid."""
        return (yield from self._failure.guard(self._checked_flow(claims), _not_revoked))

    def _checked_flow(self, claims: Claims) -> ops.Flow[Revocation]:
        yield from self._check_once()
        group = sops.token_group(self._keys, _user(claims.get("sub")))
        jti, family, iat = claims.get("jti"), claims.get(self.family_claim), claims.get("iat")
        family_key = (
            group.user_key("fam", _id(family, "family")) if family is not None else group.key("fam")
        )
        issued = "" if iat is None else sops.epoch_ms(iat)
        lookup = ops.Eval(
            sops.TOK_CHECK,
            (group.key("before"), family_key),
            (issued, "1" if family is not None else "0"),
        )
        if jti is None:
            return Revocation(check(sops.TOK_CHECK.name, (yield lookup)))
        # the deny-list entry is keyed by the id alone (its own slot on a cluster): one
        # pipelined round trip for both
        deny = ops.Call("EXISTS", sops.deny_key(self._keys, _id(jti, "jti")))
        denied, code = yield ops.Batch((deny, lookup))
        for reply in (denied, code):
            if isinstance(reply, RedkitError):
                raise reply
        if int(denied):
            return Revocation.TOKEN
        return Revocation(check(sops.TOK_CHECK.name, code))

    def _family_key(self, user: Any, family: Any) -> str:
        return sops.token_group(self._keys, _user(user)).user_key("fam", _id(family, "family"))

    def _start_flow(self, user: Any, jti: str, expires_at: When) -> ops.Flow[str]:
        yield from self._check_once()
        args = (_id(jti, "jti"), sops.epoch_ms(expires_at, up=True) + sops.ms(self.leeway))
        while True:  # a 128-bit family id collides never; the loop is for form's sake
            family = self.new_id()
            started = yield ops.Eval(sops.TOK_FAMILY_NEW, (self._family_key(user, family),), args)
            try:
                if check(sops.TOK_FAMILY_NEW.name, started) == 1:
                    return family
            except ConfigError:
                raise ConfigError(
                    f"cannot start a refresh family: expires_at {expires_at!r} has passed"
                ) from None

    def _rotate_flow(
        self, claims: Claims, next_jti: str, next_expires_at: When
    ) -> ops.Flow[RefreshResult]:
        key = self._family_key(claims.get("sub"), claims.get(self.family_claim))
        until = sops.epoch_ms(next_expires_at, up=True) + sops.ms(self.leeway)
        args = (_id(claims.get("jti"), "jti"), _id(next_jti, "next jti"), until, sops.RETRY_MS)
        return _ROTATE_CODES[(yield from sops.checked(sops.TOK_FAMILY_ROTATE, (key,), args))]

    def _revoke_family_flow(self, user: Any, family: str) -> ops.Flow[bool]:
        key = self._family_key(user, family)
        return bool((yield from sops.checked(sops.TOK_FAMILY_REVOKE, (key,))))


def _not_revoked(_: errors.ConnectionError | None) -> Revocation:
    return Revocation.VALID


class TokenRevoker(_RevokerCore):
    """Token revocation for synchronous code. Build it with :meth:`Redkit.tokens`.

    Args:
        max_token_age: the longest lifetime of any token you issue, in seconds; a
            ``revoke_all`` watermark is kept that long.
        leeway: seconds your verifier accepts tokens past ``exp``; deny-list entries
            live that much longer.
        family_claim: the claim that names a token's refresh family (default ``fam``).
        check: warn once if the server can silently forget revocations.
        on_error: when Redis is unavailable, ``"closed"`` (default) makes ``status`` and
            ``is_revoked`` raise :class:`~redkit.errors.ConnectionError`; ``"open"``
            treats every token as not revoked (logged) -- dangerous: a revoked or stolen
            token is accepted for as long as Redis is down. Revoking always fails closed.
        deadline: seconds each call to Redis may take, connect and reply, no retries;
            None (default) keeps the client's timeouts and retries.
        cooldown: seconds after a failure during which checks do not ask Redis.
    """

    def __init__(self, rk: RedkitCore, **options: Unpack[TokenOptions]) -> None:
        super().__init__(rk, **options)
        self._rk = with_deadline(rk, self.deadline)

    def revoke(self, jti: str, expires_at: When) -> bool:
        """Deny token ``jti`` until it expires; False when it has expired already.

        The entry is keyed by the token id alone: :meth:`is_revoked` finds it whatever
        the token's ``sub``, so no subject is needed (``jti`` must be unique, as RFC 7519
        requires; :meth:`new_claims` makes it 128 random bits).
        """
        return self._rk.run(self._revoke_flow(jti, expires_at))

    def revoke_all(self, user: str | int, *, before: When | None = None) -> datetime:
        """Revoke every token of ``user`` issued at or before ``before`` (default: now)."""
        return self._rk.run(self._revoke_all_flow(user, before))

    def status(self, claims: Claims) -> Revocation:
        """Why the token with these (verified) claims is revoked, or ``VALID``."""
        return self._rk.run(self._status_flow(claims))

    def is_revoked(self, claims: Claims) -> bool:
        """True when the token with these (verified) claims must be rejected. One round trip.

        Raises:
            ConfigError: a claim has the wrong shape (``sub`` not a str or int; ``jti``
                or the family claim not a non-empty string).
        """
        return self.status(claims) is not Revocation.VALID

    def start_family(self, user: str | int, jti: str, expires_at: When) -> str:
        """Start a refresh family whose current token is ``jti``; returns the family id."""
        return self._rk.run(self._start_flow(user, jti, expires_at))

    def rotate_refresh(self, claims: Claims, next_jti: str, next_expires_at: When) -> RefreshResult:
        """Use refresh token ``claims`` and make ``next_jti`` current; reuse revokes the family."""
        return self._rk.run(self._rotate_flow(claims, next_jti, next_expires_at))

    def revoke_family(self, user: str | int, family: str) -> bool:
        """Revoke a refresh family: its refresh tokens and the access tokens that carry it."""
        return self._rk.run(self._revoke_family_flow(user, family))

    def check(self) -> list[str]:
        """Warnings about the server (eviction policy, persistence); also logged."""
        return self._rk.run(check_flow(self._rk, "redkit token revocation"))


class AsyncTokenRevoker(_RevokerCore):
    """Token revocation for asyncio code. Build it with :meth:`AsyncRedkit.tokens`.

    Takes the same options as :class:`TokenRevoker`; every method is awaited.
    """

    def __init__(self, rk: AsyncRedkitCore, **options: Unpack[TokenOptions]) -> None:
        super().__init__(rk, **options)
        self._rk = with_deadline(rk, self.deadline)

    async def revoke(self, jti: str, expires_at: When) -> bool:
        """Deny token ``jti`` until it expires; False when it has expired already.

        The entry is keyed by the token id alone: :meth:`is_revoked` finds it whatever
        the token's ``sub``, so no subject is needed.
        """
        return await self._rk.run(self._revoke_flow(jti, expires_at))

    async def revoke_all(self, user: str | int, *, before: When | None = None) -> datetime:
        """Revoke every token of ``user`` issued at or before ``before`` (default: now)."""
        return await self._rk.run(self._revoke_all_flow(user, before))

    async def status(self, claims: Claims) -> Revocation:
        """Why the token with these (verified) claims is revoked, or ``VALID``."""
        return await self._rk.run(self._status_flow(claims))

    async def is_revoked(self, claims: Claims) -> bool:
        """True when the token with these (verified) claims must be rejected. One round trip.

        Raises:
            ConfigError: a claim has the wrong shape (``sub`` not a str or int; ``jti``
                or the family claim not a non-empty string).
        """
        return (await self.status(claims)) is not Revocation.VALID

    async def start_family(self, user: str | int, jti: str, expires_at: When) -> str:
        """Start a refresh family whose current token is ``jti``; returns the family id."""
        return await self._rk.run(self._start_flow(user, jti, expires_at))

    async def rotate_refresh(
        self, claims: Claims, next_jti: str, next_expires_at: When
    ) -> RefreshResult:
        """Use refresh token ``claims`` and make ``next_jti`` current; reuse revokes the family."""
        return await self._rk.run(self._rotate_flow(claims, next_jti, next_expires_at))

    async def revoke_family(self, user: str | int, family: str) -> bool:
        """Revoke a refresh family: its refresh tokens and the access tokens that carry it."""
        return await self._rk.run(self._revoke_family_flow(user, family))

    async def check(self) -> list[str]:
        """Warnings about the server (eviction policy, persistence); also logged."""
        return await self._rk.run(check_flow(self._rk, "redkit token revocation"))
