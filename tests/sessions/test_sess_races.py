"""Logins and rotations racing each other and "log out everywhere", on every target.

A rotation sends the take of the old session, the creation of the new one and its entry
in the user's index in one pipelined batch; a login reads the user's generation first,
then sends the creation and the index entry together. The keys live in different slots,
so on a cluster each part runs on its own node, in any order relative to another
client's calls: these tests run "end all" between the parts, and many rotations or
logins of one session at once (threads on the sync facade, tasks on the async one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from tests.flavours import Either, threaded

from redkit import Redkit, ops
from redkit.sessions import Session, SessionStore
from redkit.sessions import ops as sops

from .conftest import saved


def _one(effect: ops.Effect) -> ops.Flow[Any]:
    return (yield effect)


def _execute(rk: Redkit, effect: ops.Effect) -> Any:
    return rk.run(_one(effect))


def _evals(effect: ops.Effect) -> list[ops.Eval]:
    """The scripts an effect runs: itself, or those of a batch."""
    inner = effect.effects if isinstance(effect, ops.Batch) else [effect]
    return [e for e in inner if isinstance(e, ops.Eval)]


def _drive_until(rk: Redkit, flow: ops.Flow[Any], script: str) -> ops.Effect:
    """Run ``flow`` until the effect that runs ``script`` (alone or in a batch): returned."""
    reply: Any = None
    while True:
        effect = flow.send(reply)
        if any(e.script.name == script for e in _evals(effect)):
            return effect
        reply = _execute(rk, effect)


def _finish(rk: Redkit, flow: ops.Flow[Any], reply: Any) -> None:
    while True:
        try:
            effect = flow.send(reply)
        except StopIteration:
            return
        reply = _execute(rk, effect)


def _split(rk: Redkit, batch: ops.Effect, first: set[str], between: Callable[[], Any]) -> Any:
    """``batch`` run part by part, as nodes of a cluster may run it: the scripts named in
    ``first``, then ``between()``, then the rest; the replies in the batch's order."""
    assert isinstance(batch, ops.Batch)
    effects = list(batch.effects)
    early = [i for i, e in enumerate(effects) if isinstance(e, ops.Eval) and e.script.name in first]
    replies: list[Any] = [None] * len(effects)
    for i in early:
        replies[i] = _execute(rk, ops.Batch([effects[i]]))[0]
    between()
    for i, effect in enumerate(effects):
        if i not in early:
            replies[i] = _execute(rk, ops.Batch([effect]))[0]
    return replies


def _new_id(batch: ops.Effect) -> str:
    """The id a batch creates (its sess_create's session key names it)."""
    (create,) = [e for e in _evals(batch) if e.script.name == "sess_create"]
    return create.keys[0].split("sess:", 1)[1].split("}", 1)[0]


def _index(rk: Redkit, user: str) -> list[str]:
    """The ids in the user's index, as stored (not filtered by a listing)."""
    index, _ = sops.index_keys(rk.keys, user)
    return sorted(sops.text(v) for v in rk.client.zrange(index, 0, -1))


# (when "end all" runs, relative to the parts of the batch that creates the session)
_WHEN = {
    "before": None,  # the whole batch after it
    "after the take and the creation": {"sess_take", "sess_create"},
    "after the index entry": {"sess_index_add"},  # its creation arrives after the end
}


def _save_racing_end_all(
    rk: Redkit, store: SessionStore, session: Session, script: str, user: str, when: str
) -> str:
    """Save ``session`` with "log out everywhere" for ``user`` run ``when`` (a key of
    _WHEN) against the batch that holds ``script``; the id the save created."""
    flow = store._save_flow(session)
    batch = _drive_until(rk, flow, script)
    new_id = _new_id(batch)
    parts = _WHEN[when]
    if parts is None:
        store.end_all(user)
        _finish(rk, flow, _execute(rk, batch))
    else:
        _finish(rk, flow, _split(rk, batch, parts, lambda: store.end_all(user)))
    return new_id


@pytest.mark.parametrize("when", [w for w in _WHEN if w != "after the take and the creation"])
def test_a_login_racing_logout_everywhere_does_not_survive_it(rk: Redkit, when: str) -> None:
    store = rk.sessions()
    session = saved(store, "erin")
    session.login("erin")
    new_id = _save_racing_end_all(rk, store, session, "sess_index_add", "erin", when)
    assert session.ended
    assert session.id is None
    assert store.load(new_id).is_new
    assert store.list_sessions("erin") == []
    assert _index(rk, "erin") == []


@pytest.mark.parametrize("when", list(_WHEN))
def test_a_rotation_racing_logout_everywhere_does_not_survive_it(rk: Redkit, when: str) -> None:
    store = rk.sessions()
    session = saved(store, "frank")
    copy = store.load(session.id)
    copy.rotate()
    new_id = _save_racing_end_all(rk, store, copy, "sess_create", "frank", when)
    assert copy.ended
    assert store.load(new_id).is_new
    assert store.load(session.id).is_new
    assert store.list_sessions("frank") == []
    assert _index(rk, "frank") == []


def _created_ids(kit: Either) -> tuple[list[str], Callable[[], None]]:
    """Every id a sess_create is sent for, from now on; and the function that stops it."""
    ids: list[str] = []

    def seen(event: ops.Event) -> None:
        for e in _evals(event.effect):
            if e.script.name == "sess_create" and e.args[6] == "":
                ids.append(_new_id(ops.Batch([e])))

    return ids, kit.target.observe(seen)


async def test_concurrent_rotations_of_one_session_one_wins(kit: Either) -> None:
    kit = threaded(kit)  # sync: each rotation in a thread of its own, at once
    store = await kit.sessions()
    first = await store.new()
    first["k"] = 1
    await store.save(first)
    await store.login(first, "ada")
    copies = [await store.load(first.id) for _ in range(8)]
    ids, stop = _created_ids(kit)
    for copy in copies:
        copy.rotate()
    await asyncio.gather(*(store.save(copy) for copy in copies))
    stop()
    (winner,) = [copy for copy in copies if not copy.ended]
    assert all(copy.id is None for copy in copies if copy.ended)
    assert (await store.load(first.id)).is_new  # the old id is dead
    assert (await store.load(winner.id))["k"] == 1
    assert len(ids) == len(copies)
    for new_id in ids:  # the losers' sessions do not survive
        assert (await store.load(new_id)).is_new is (new_id != winner.id)
    index, _ = sops.index_keys(kit.keys, "ada")
    assert [sops.text(v) for v in await kit.client.zrange(index, 0, -1)] == [winner.id]
    assert [s.handle for s in await store.list_sessions("ada")] == [winner.handle]


async def test_concurrent_logins_of_one_session_one_takes_it(kit: Either) -> None:
    # A login is a new authentication: each one gets a session. Exactly one takes the old
    # session (and carries what was stored in it); the others start from their own copy.
    kit = threaded(kit)
    store = await kit.sessions()
    first = await store.new()
    first["cart"] = [1]
    await store.save(first)
    copies = [await store.load(first.id) for _ in range(6)]
    meanwhile = await store.load(first.id)
    meanwhile["later"] = True  # written after the copies were loaded
    await store.save(meanwhile)
    await asyncio.gather(*(store.login(copy, "bea") for copy in copies))
    assert not any(copy.ended for copy in copies)
    assert (await store.load(first.id)).is_new
    stored = [await store.load(copy.id) for copy in copies]
    assert all(s.user == "bea" and s["cart"] == [1] for s in stored)
    assert sum("later" in s for s in stored) == 1
    index, _ = sops.index_keys(kit.keys, "bea")
    listed = sorted(sops.text(v) for v in await kit.client.zrange(index, 0, -1))
    assert listed == sorted(str(copy.id) for copy in copies)
    assert len(await store.list_sessions("bea")) == len(copies)


def test_a_rotation_keeps_what_another_request_changed_meanwhile(rk: Redkit) -> None:
    store = rk.sessions()
    session = saved(store, "gus", keep=1, gone=2)
    copy = store.load(session.id)
    other = store.load(session.id)
    other["added"] = 3
    del other["gone"]
    other.expire_in(600)
    store.save(other)
    copy["mine"] = 4
    store.rotate(copy)
    assert not copy.ended
    stored = store.load(copy.id)
    assert dict(stored) == {"keep": 1, "added": 3, "mine": 4}
    assert stored.expires_at == other.expires_at
    assert dict(copy) == dict(stored)


def test_a_crash_before_the_undo_leaves_nothing_reachable(rk: Redkit) -> None:
    # The loser of a race stops after its batch (the process dies): its new session lives
    # until its idle timeout, but no cookie names it and "end all" still ends it.
    store = rk.sessions()
    session = saved(store, "hal")
    loser = store.load(session.id)
    store.rotate(store.load(session.id))
    loser.rotate()
    flow = store._save_flow(loser)
    batch = _drive_until(rk, flow, "sess_create")
    _execute(rk, batch)
    flow.close()  # the process died here
    assert loser.id == session.id  # this request never learnt the new id
    assert store.end_all("hal") == 2  # the winner's session and the orphan
    assert _index(rk, "hal") == []
