"""Token revocation on every target: deny-list TTLs, watermarks, refresh families."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest
from tests.conftest import ON_SENTINEL_TOO
from tests.flavours import Either, threaded

from redkit import Redkit, ops
from redkit.errors import ConfigError
from redkit.sessions import AsyncTokenRevoker, RefreshResult, Revocation, TokenRevoker
from redkit.sessions import ops as sops


def _claims(user: str = "alice", *, jti: str | None = None, iat: float | None = None) -> dict:
    now = time.time()
    return {"sub": user, "jti": jti or TokenRevoker.new_id(), "iat": iat or now, "exp": now + 60}


@ON_SENTINEL_TOO
def test_revoked_token_is_rejected_until_expiry_and_the_entry_goes_with_it(rk: Redkit) -> None:
    tokens = rk.tokens()
    claims = _claims()
    claims["exp"] = time.time() + 1.5
    assert not tokens.is_revoked(claims)
    assert tokens.revoke(claims["jti"], claims["exp"])
    assert tokens.status(claims) is Revocation.TOKEN
    key = sops.deny_key(rk.keys, claims["jti"])
    assert 0 < rk.client.pttl(key) <= 1500, "the entry's TTL must match the token's expiry"
    deadline = time.monotonic() + 5
    while rk.client.exists(key):
        assert time.monotonic() < deadline, "the deny-list entry outlived the token"
        time.sleep(0.05)
    assert time.time() >= claims["exp"] - 0.05
    assert not tokens.is_revoked(claims)  # the token's own exp rejects it from here on


def test_revoking_an_expired_token_stores_nothing(rk: Redkit) -> None:
    tokens = rk.tokens()
    assert not tokens.revoke("old", time.time() - 1)
    assert not rk.client.exists(sops.deny_key(rk.keys, "old"))


def test_leeway_keeps_the_entry_longer(rk: Redkit) -> None:
    tokens = rk.tokens(leeway=30)
    assert tokens.revoke("j", datetime.now(timezone.utc) + timedelta(seconds=1))
    key = sops.deny_key(rk.keys, "j")
    assert 30_000 < rk.client.pttl(key) <= 31_000


def test_revoke_all_is_a_watermark_per_user(rk: Redkit) -> None:
    tokens = rk.tokens()
    now = time.time()
    earlier, same_second = _claims(iat=now - 100), _claims(iat=float(int(now)))
    bob = _claims("bob", iat=now - 100)
    mark = tokens.revoke_all("alice")
    assert tokens.status(earlier) is Revocation.ALL
    assert tokens.is_revoked(same_second), "a token from the same second must not slip through"
    assert not tokens.is_revoked(bob)
    later = _claims(iat=mark.timestamp() + 0.5)
    assert not tokens.is_revoked(later)
    assert tokens.is_revoked({"sub": "alice", "jti": "x"}), "no iat under a watermark: reject"
    assert tokens.revoke_all("alice", before=now - 1000) == mark, "the watermark never moves back"


def test_a_token_issued_just_before_revoke_all_is_revoked(rk: Redkit) -> None:
    # the watermark is the server's clock rounded down to the millisecond: an iat rounded
    # to the nearest one landed past it about half the time when revoke_all came in the
    # same millisecond, and the token stayed valid
    tokens = rk.tokens()
    mark = tokens.revoke_all("alice")
    within = mark.timestamp() + 0.0009  # the watermark's own millisecond
    assert tokens.is_revoked(_claims(iat=within)), "epoch seconds"
    instant = datetime.fromtimestamp(within, tz=timezone.utc)
    assert tokens.is_revoked({**_claims(), "iat": instant}), "a datetime"
    assert not tokens.is_revoked(_claims(iat=mark.timestamp() + 0.001)), "the next one"
    for _ in range(50):  # the race itself: ~half of these slipped through
        issued = _claims("bob", iat=datetime.now(timezone.utc).timestamp())
        tokens.revoke_all("bob")
        assert tokens.is_revoked(issued), issued["iat"]


def test_new_claims_iat_is_never_ahead_of_the_clock(rk: Redkit) -> None:
    tokens = rk.tokens()
    for _ in range(200):  # rounded to the nearest millisecond, about half were
        claims = tokens.new_claims("alice", ttl=60)
        assert claims["iat"] <= time.time()
        assert sops.epoch_ms(claims["iat"]) == round(claims["iat"] * 1000)


def test_revoke_keeps_the_entry_until_a_fractional_expiry(rk: Redkit) -> None:
    tokens = rk.tokens()
    expires = int(time.time()) + 60.0004  # rounded down, the entry went 0.4 ms early
    assert tokens.revoke("j", expires)
    key = sops.deny_key(rk.keys, "j")
    assert rk.client.pexpiretime(key) == int(expires * 1000) + 1


def test_watermark_lives_as_long_as_the_longest_token(rk: Redkit) -> None:
    tokens = rk.tokens(max_token_age=3600)
    tokens.revoke_all("alice")
    ttl = rk.client.pttl(sops.token_group(rk.keys, "alice").key("before"))
    assert 3_590_000 < ttl <= 3_600_000


def test_refresh_reuse_revokes_the_family(rk: Redkit) -> None:
    tokens = rk.tokens()
    exp = time.time() + 600
    first = _claims()
    family = tokens.start_family("alice", first["jti"], exp)
    first["fam"] = family
    second = {**_claims(), "fam": family}
    assert tokens.rotate_refresh(first, second["jti"], exp) is RefreshResult.ROTATED
    access = {**_claims(), "fam": family}
    assert not tokens.is_revoked(access)
    # the first token is presented again: stolen, or the thief's copy was used first
    assert tokens.rotate_refresh(first, "third", exp) is RefreshResult.REUSED
    assert tokens.rotate_refresh(second, "fourth", exp) is RefreshResult.REVOKED
    assert tokens.status(access) is Revocation.FAMILY
    other = {**_claims(), "fam": tokens.start_family("alice", "z", exp)}
    assert not tokens.is_revoked(other), "other families of the user are untouched"
    assert tokens.rotate_refresh({**first, "fam": "nope"}, "x", exp) is RefreshResult.UNKNOWN


async def test_only_one_of_many_concurrent_refreshes_wins(kit: Either) -> None:
    kit = threaded(kit)  # sync: each refresh runs in a thread of its own, at once
    tokens = await kit.tokens()
    exp = time.time() + 600
    first = _claims()
    first["fam"] = await tokens.start_family("alice", first["jti"], exp)
    results = await asyncio.gather(*(tokens.rotate_refresh(first, f"n{i}", exp) for i in range(8)))
    assert results.count(RefreshResult.ROTATED) == 1
    assert results.count(RefreshResult.REUSED) == 1
    assert all(r is not RefreshResult.UNKNOWN for r in results)


def test_revoke_family_explicitly(rk: Redkit) -> None:
    tokens = rk.tokens()
    family = tokens.start_family(7, "r1", time.time() + 60)
    assert tokens.revoke_family(7, family)
    assert not tokens.revoke_family(7, family)
    assert tokens.is_revoked({"sub": 7, "jti": "a1", "iat": time.time(), "fam": family})


def test_is_revoked_is_one_round_trip(rk: Redkit) -> None:
    tokens = rk.tokens(check=False)
    flow = tokens._status_flow({**_claims(), "fam": "f"})
    effect = next(flow)
    assert isinstance(effect, ops.Batch), "the id and the user's keys in one pipeline"
    deny, check = effect.effects
    assert isinstance(deny, ops.Call)
    assert deny.args[0] == "EXISTS"
    assert isinstance(check, ops.Eval)
    assert check.script.name == "tok_check"
    with pytest.raises(StopIteration) as done:
        flow.send([0, 0])
    assert done.value.value is Revocation.VALID


@pytest.mark.parametrize("sub", [None, "alice", 7, "a:b{c}*"], ids=repr)
def test_a_revocation_is_found_whatever_the_claims_say_about_the_user(
    rk: Redkit, sub: object
) -> None:
    tokens = rk.tokens()
    jti = tokens.new_id()
    assert tokens.revoke(jti, time.time() + 60)
    for seen in (None, "alice", "bob", 7, "a:b{c}*"):
        claims = {"jti": jti, "iat": time.time(), "exp": time.time() + 60}
        if seen is not None:
            claims["sub"] = seen
        assert tokens.status(claims) is Revocation.TOKEN, (sub, seen)


def test_new_claims_are_fresh_unique_and_survive_a_revoke_all_just_before(rk: Redkit) -> None:
    tokens = rk.tokens(max_token_age=3600)
    first, second = tokens.new_claims("alice", ttl=900), tokens.new_claims(7, ttl=900)
    assert set(first) == {"sub", "jti", "iat", "exp"}
    assert (first["sub"], second["sub"]) == ("alice", "7")
    assert first["jti"] != second["jti"]
    assert len(first["jti"]) >= 22
    assert first["iat"] == round(first["iat"], 3)
    assert abs(first["iat"] - time.time()) < 5
    assert first["exp"] == int(first["iat"] + 900)
    same_second = 0
    for _ in range(20):  # a revoke_all, then a new token within the same second, many times
        mark = tokens.revoke_all("carol")
        time.sleep(0.002)  # a later millisecond (one server, one clock, in this test)
        fresh = tokens.new_claims("carol", ttl=60)
        if int(fresh["iat"]) == int(mark.timestamp()):
            same_second += 1
            assert not tokens.is_revoked(fresh), "a token issued after revoke_all is valid"
    assert same_second, "no token was issued in the same second as its watermark"
    assert tokens.new_claims("a", ttl=timedelta(minutes=1), family="f")["fam"] == "f"


def test_new_claims_refuse_a_ttl_the_watermark_would_not_cover(rk: Redkit) -> None:
    tokens = rk.tokens(max_token_age=3600)
    for ttl in (0, -5, float("nan"), 3601, timedelta(hours=2), "60"):
        with pytest.raises(ConfigError):
            tokens.new_claims("alice", ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        tokens.new_claims(None, ttl=60)  # type: ignore[arg-type]


def test_bad_arguments_are_config_errors(rk: Redkit) -> None:
    tokens = rk.tokens()
    with pytest.raises(ConfigError):
        tokens.revoke("", time.time() + 5)
    with pytest.raises(ConfigError):
        tokens.revoke("j", "tomorrow")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        tokens.start_family("alice", "j", time.time() - 5)
    with pytest.raises(ConfigError):
        rk.tokens(max_token_age=0)


async def test_tokens_with_and_without_subject_are_revocable(kit: Either) -> None:
    tokens = await kit.tokens()
    claims = {"jti": "anon", "iat": time.time(), "exp": time.time() + 60}
    assert await tokens.revoke("anon", claims["exp"])
    assert await tokens.is_revoked(claims)
    assert not await tokens.is_revoked({**claims, "jti": "other"})
    await tokens.revoke_all("bob")
    assert await tokens.is_revoked(_claims("bob", iat=time.time() - 5))
    assert not await tokens.is_revoked(_claims("carol", iat=time.time() - 5))


def test_sync_and_async_revokers_have_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    assert public(TokenRevoker) == public(AsyncTokenRevoker)
