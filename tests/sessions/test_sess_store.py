"""Session store on every target: fixation, timeouts, logout everywhere, concurrent writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.conftest import ON_SENTINEL_TOO
from tests.flavours import Either, threaded, until

from redkit import Redkit
from redkit.errors import ConfigError
from redkit.sessions import AsyncSessionStore, Session, SessionStore
from redkit.sessions import ops as sops
from redkit.sessions.check import server_warnings

from .conftest import saved


def _poll(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@ON_SENTINEL_TOO
def test_login_changes_the_id_and_kills_the_old_one(rk: Redkit) -> None:
    store = rk.sessions()
    session = saved(store, cart=[1, 2])
    before = session.id
    store.login(session, "alice")
    assert session.id is not None
    assert session.id != before
    assert store.load(before).is_new, "the pre-login id must be dead"
    again = store.load(session.id)
    assert again.user == "alice"
    assert again["cart"] == [1, 2]


def test_rotate_keeps_data_and_absolute_deadline(rk: Redkit) -> None:
    store = rk.sessions()
    session = saved(store, "alice", role="user")
    old_id, deadline = session.id, session.expires_at
    session["role"] = "admin"
    store.rotate(session)
    assert session.id != old_id
    assert store.load(old_id).is_new
    loaded = store.load(session.id)
    assert loaded["role"] == "admin"
    assert loaded.expires_at == deadline, "rotation must not extend the absolute timeout"
    assert [s.handle for s in store.list_sessions("alice")] == [loaded.handle]


def test_login_as_another_user_drops_the_previous_users_data(rk: Redkit) -> None:
    store = rk.sessions()
    session = saved(store, "alice", secret="alice's")
    store.login(session, "bob")
    assert "secret" not in store.load(session.id)
    assert store.list_sessions("alice") == []
    assert len(store.list_sessions("bob")) == 1


async def test_idle_timeout_is_enforced_by_redis(kit: Either) -> None:
    store = await kit.sessions(idle_timeout=0.4, absolute_timeout=60)
    session = await _stored(store)
    assert (await store.load(session.id + "x")).is_new  # type: ignore[operator]
    key = sops.session_key(kit.keys, session.id or "")
    assert 0 < await kit.client.pttl(key) <= 400
    await until(lambda: _gone(kit, key), 5)  # Redis expired it, nobody had to
    assert (await store.load(session.id)).is_new


async def _gone(kit: Either, key: str) -> bool:
    return not await kit.client.exists(key)


def test_activity_extends_idle_but_not_absolute(rk: Redkit) -> None:
    store = rk.sessions(idle_timeout=0.5, absolute_timeout=2.0)
    session = saved(store)
    start = time.monotonic()
    alive_until = start
    while time.monotonic() - start < 6:
        if store.load(session.id).is_new:
            break
        alive_until = time.monotonic()
        time.sleep(0.1)  # a request every 100 ms: idle never runs out
    lived = alive_until - start
    # past two idle timeouts (renewed), ended long before the loop's 6 s (absolute)
    assert 1.0 < lived < 3.0, f"lived {lived:.2f}s; expected idle renewed, absolute enforced"


def test_end_all_ends_every_session_of_one_user_and_no_other(rk: Redkit) -> None:
    store = rk.sessions()
    alice = [saved(store, "alice") for _ in range(3)]
    bob = saved(store, "bob")
    anonymous = saved(store)
    assert len(store.list_sessions("alice")) == 3
    assert store.end_all("alice") == 3
    assert all(store.load(s.id).is_new for s in alice)
    assert store.list_sessions("alice") == []
    assert not store.load(bob.id).is_new
    assert not store.load(anonymous.id).is_new
    assert len(store.list_sessions("bob")) == 1


def test_end_all_can_keep_the_callers_session_under_a_new_id(rk: Redkit) -> None:
    store = rk.sessions()
    other = saved(store, "alice")
    mine = saved(store, "alice", theme="dark")
    my_old_id = mine.id
    assert store.end_all("alice", keep=mine) == 1
    assert store.load(other.id).is_new
    assert store.load(my_old_id).is_new
    kept = store.load(mine.id)
    assert kept.user == "alice"
    assert kept["theme"] == "dark"
    assert [s.handle for s in store.list_sessions("alice", current=kept)] == [kept.handle]
    assert store.list_sessions("alice", current=kept)[0].current


def test_list_shows_metadata_and_end_one_by_handle(rk: Redkit) -> None:
    store = rk.sessions()
    first = saved(store, "carol")
    second = saved(store, "carol")
    infos = store.list_sessions("carol", current=second)
    assert {i.handle for i in infos} == {first.handle, second.handle}
    info = next(i for i in infos if i.handle == first.handle)
    assert info.ip == "10.0.0.1"
    assert info.user_agent == "pytest"
    assert info.created is not None
    assert info.last_seen is not None
    assert first.id not in repr(infos), "listings must not reveal session ids"
    assert store.end("carol", first.handle or "")
    assert not store.end("carol", first.handle or "")
    assert store.load(first.id).is_new
    assert not store.load(second.id).is_new


@pytest.mark.parametrize(
    "cookie", ["", "garbage", "x" * 43, "a" * 42 + "!", "../../etc", "{tag}:s" + "a" * 36]
)
def test_tampered_or_unknown_ids_start_a_fresh_session(rk: Redkit, cookie: str) -> None:
    store = rk.sessions()
    session = store.load(cookie)
    assert session.is_new
    assert len(session) == 0
    session["x"] = 1
    store.save(session)
    assert session.id != cookie, "a client-chosen id must never be adopted"


def test_a_fresh_session_without_data_is_not_stored(rk: Redkit) -> None:
    store = rk.sessions()
    session = store.load(None)
    _ = session.get("anything")
    store.save(session)
    assert session.id is None


@ON_SENTINEL_TOO
async def test_concurrent_requests_writing_different_keys_all_persist(kit: Either) -> None:
    kit = threaded(kit)  # sync: the saves run in threads of their own, at once
    store = await kit.sessions()
    session_id = (await _stored(store, items=[])).id
    loaded = [await store.load(session_id) for _ in range(8)]  # all load before any saves
    for i, copy in enumerate(loaded):
        copy[f"k{i}"] = i
        copy["items"].append(i)  # same key: last write wins, but the other keys survive
    await asyncio.gather(*(store.save(copy) for copy in loaded))
    final = await store.load(session_id)
    assert all(final[f"k{i}"] == i for i in range(8))
    assert final["items"] in [[i] for i in range(8)]


def test_a_save_after_logout_does_not_resurrect_the_session(rk: Redkit) -> None:
    store = rk.sessions()
    original = saved(store, "dave")
    late = store.load(original.id)
    store.destroy(store.load(original.id))
    late["written"] = "after logout"
    store.save(late)
    assert late.ended
    assert late.id is None
    assert store.load(original.id).is_new


def test_options_are_checked(rk: Redkit) -> None:
    with pytest.raises(ConfigError):
        rk.sessions(idle_timeout=0)
    with pytest.raises(ConfigError):
        rk.sessions(absolute_timeout=-1)
    with pytest.raises(ConfigError):
        rk.sessions().new().login("")


def test_startup_check_names_the_risks() -> None:
    assert any("noeviction" in w for w in server_warnings("allkeys-lru", True))
    assert any("evict" in w for w in server_warnings("volatile-ttl", True))
    assert any("persistence" in w for w in server_warnings("noeviction", False))
    assert server_warnings("noeviction", True) == []


def test_startup_check_reports_the_servers_settings(
    rk: Redkit, caplog: pytest.LogCaptureFixture
) -> None:
    info = rk.info()
    found = rk.sessions().check()
    assert found == server_warnings(info.maxmemory_policy, info.persistence)
    assert all(w in caplog.text for w in found)


async def _stored(store: Either, user: str | None = None, **data: Any) -> Session:
    session = await store.new(ip="10.0.0.1", user_agent="pytest")
    session.update(data or {"k": 1})
    await store.save(session)
    if user is not None:
        await store.login(session, user)
    assert session.id is not None
    return session


def test_sync_and_async_stores_have_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    assert public(SessionStore) == public(AsyncSessionStore)
