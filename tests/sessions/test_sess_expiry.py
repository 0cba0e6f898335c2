"""A session's own expiry (``Session.expire_in``), enforced by the server on every target."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from tests.flavours import Either

from redkit import Redkit
from redkit.errors import ConfigError
from redkit.sessions import Session, SessionStore
from redkit.sessions import ops as sops


def _pttl(rk: Redkit, session: Session) -> int:
    return int(rk.client.pttl(sops.session_key(rk.keys, session.id or "")))


def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


def _new(store: SessionStore, **data: object) -> Session:
    session = store.new()
    session.update(data or {"k": 1})
    return session


def test_expiry_of_a_new_session_sets_its_ttl(rk: Redkit) -> None:
    store = rk.sessions(idle_timeout=3600, absolute_timeout=7200)
    session = _new(store)
    session.expire_in(5)
    store.save(session)
    assert 4_000 < _pttl(rk, session) <= 5_000
    expires = session.expires_at
    assert expires is not None
    assert 4 < expires.timestamp() - time.time() <= 5


def test_loads_do_not_keep_the_session_alive_past_its_expiry(rk: Redkit) -> None:
    store = rk.sessions(idle_timeout=3600, absolute_timeout=7200)
    session = _new(store)
    session.expire_in(1.0)
    store.save(session)
    assert not store.load(session.id).is_new
    assert _pttl(rk, session) <= 1_000  # the load's idle refresh stayed under the expiry
    _until(lambda: store.load(session.id).is_new)


async def test_expiry_of_a_stored_session_can_shorten_and_lengthen(kit: Either) -> None:
    store = await kit.sessions(idle_timeout=60, absolute_timeout=7200)

    async def pttl() -> int:
        return int(await kit.client.pttl(sops.session_key(kit.keys, session.id or "")))

    session = await store.new()
    session["k"] = 1
    await store.save(session)
    assert 59_000 < await pttl() <= 60_000
    session.expire_in(5)  # no data change: the expiry alone is written
    await store.save(session)
    assert 4_000 < await pttl() <= 5_000
    session.expire_in(3000)  # longer again; the idle timeout still applies as well
    await store.save(session)
    assert 59_000 < await pttl() <= 60_000
    loaded = await store.load(session.id)
    assert loaded.expires_at == session.expires_at
    expires = session.expires_at
    assert expires is not None
    assert 2990 < expires.timestamp() - time.time() <= 3000


def test_an_expiry_past_the_idle_timeout_rules_when_idle_is_longer(rk: Redkit) -> None:
    store = rk.sessions(idle_timeout=7200, absolute_timeout=7200)
    session = _new(store)
    session.expire_in(3000)
    store.save(session)
    assert 2_990_000 < _pttl(rk, session) <= 3_000_000
    store.load(session.id)
    assert 2_990_000 < _pttl(rk, session) <= 3_000_000


def test_expiry_never_passes_the_absolute_timeout(rk: Redkit) -> None:
    store = rk.sessions(idle_timeout=1000, absolute_timeout=1000)
    session = _new(store)
    session.expire_in(10**6)
    store.save(session)
    assert 990_000 < _pttl(rk, session) <= 1_000_000
    session.expire_in(10**6)
    session["k"] = 2
    store.save(session)
    assert _pttl(rk, session) <= 1_000_000


def test_rotation_keeps_the_expiry_and_login_drops_it(rk: Redkit) -> None:
    store = rk.sessions(idle_timeout=3600, absolute_timeout=7200)
    session = _new(store)
    session.expire_in(30)
    store.save(session)
    store.rotate(session)
    assert 20_000 < _pttl(rk, session) <= 30_000
    store.login(session, "alice")
    assert _pttl(rk, session) > 3_000_000


def test_an_expired_session_is_not_saved_again(rk: Redkit) -> None:
    store = rk.sessions(idle_timeout=3600, absolute_timeout=7200)
    session = _new(store)
    session.expire_in(0.3)
    store.save(session)
    old = session.id
    _until(lambda: not rk.client.exists(sops.session_key(rk.keys, old or "")))
    session["k"] = 2
    store.save(session)
    assert session.ended
    assert session.id is None
    assert store.load(old).is_new


def test_an_empty_session_is_stored_by_rotate(rk: Redkit) -> None:
    store = rk.sessions()
    session = store.new()
    store.save(session)
    assert session.is_new  # nothing to store
    session.rotate()
    store.save(session)
    assert session.id is not None
    assert not store.load(session.id).is_new


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), float("nan"), True, "5"])
def test_expire_in_needs_a_positive_number(rk: Redkit, seconds: object) -> None:
    with pytest.raises(ConfigError):
        rk.sessions().new().expire_in(seconds)  # type: ignore[arg-type]
