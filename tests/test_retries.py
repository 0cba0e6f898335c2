"""Scripts retried after a lost reply give their first answer again.

redis-py retries a command whose connection failed or timed out, and a timeout can come
after the server ran the script: the script then runs twice with the same arguments. A
``LostReplies`` facade runs the named scripts exactly so (each one twice in a row, the
first reply dropped), on a real server, and the operations must answer as if it ran once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from redkit import Redkit, ops
from redkit.ratelimit import ConcurrencyLimiter
from redkit.sessions import RefreshResult


def _runs(effect: ops.Effect, lost: frozenset[str] | set[str]) -> bool:
    """Whether ``effect`` runs a script or a command in ``lost`` (itself, or in its batch)."""
    inner = effect.effects if isinstance(effect, ops.Batch) else [effect]
    return any(
        (isinstance(e, ops.Eval) and e.script.name in lost)
        or (isinstance(e, ops.Call) and e.args[0] in lost)
        for e in inner
    )


def _twice(flow: ops.Flow[Any] | ops.Once[Any], lost: frozenset[str] | set[str]) -> ops.Flow[Any]:
    """``flow``, with each Eval of a script in ``lost``, and each batch with one in it
    (redis-py retries a pipeline whole), sent twice (the first reply lost)."""
    inner = iter(flow)
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = inner.throw(error) if error is not None else inner.send(reply)
        except StopIteration as stop:
            return stop.value
        error = None
        try:
            reply = yield effect
            if _runs(effect, lost):
                reply = yield effect
        except BaseException as exc:  # handed to the flow, as the driver would
            error = exc


class LostReplies(Redkit):
    """A facade whose driver 'retries' the scripts named in ``lost``."""

    lost: frozenset[str] | set[str] = frozenset()

    def run(self, flow: ops.Flow[Any] | ops.Once[Any]) -> Any:
        return super().run(_twice(flow, self.lost))


@pytest.fixture
def lossy(target_url: str, prefix: str) -> Iterator[LostReplies]:
    with LostReplies(target_url, prefix=prefix) as rk:
        yield rk


def test_the_harness_runs_the_script_twice(lossy: LostReplies) -> None:
    lossy.lost = {"cache_incr"}
    seen: list[str] = []
    lossy.observe(lambda event: seen.append(event.name))
    cache = lossy.cache("twice")
    cache.set("n", 1)
    cache.incr("n")
    assert seen.count("script cache_incr") == 2


@pytest.mark.parametrize("how", ["login", "rotate"])
def test_a_retried_session_take_keeps_the_session(lossy: LostReplies, how: str) -> None:
    lossy.lost = {"sess_take"}
    store = lossy.sessions()
    session = store.new()
    session["cart"] = [1, 2]
    store.login(session, "ada")
    old_id = session.id
    other = store.load(old_id)  # another request of the same session writes meanwhile
    other["seen"] = True
    store.save(other)
    if how == "login":
        store.login(session, "ada")
    else:
        store.rotate(session)
    assert not session.ended  # the retry found its own take: no spurious logout
    assert session.id not in (None, old_id)
    stored = store.load(session.id)
    assert stored["cart"] == [1, 2]
    assert stored["seen"]  # the stored data, not only this request's copy
    assert len(store.list_sessions("ada")) == 1
    stale = store.load(old_id)  # the old id is dead for everyone
    assert stale.is_new
    assert "cart" not in stale


@pytest.mark.parametrize("how", ["first save", "login", "rotate", "logout"])
def test_retried_session_batches_answer_as_the_first_time(lossy: LostReplies, how: str) -> None:
    # a login or rotation sends its take, creation and index entry in pipelined batches;
    # a batch retried whole after its reply was lost finds its own take and creation
    lossy.lost = {"sess_gen", "sess_take", "sess_create", "sess_index_add", "sess_destroy"}
    store = lossy.sessions()
    session = store.new()
    session["cart"] = [1]
    if how != "first save":
        lossy.lost, fresh = set(), session
        store.save(fresh)
        store.login(fresh, "ada")
        lossy.lost = {"sess_gen", "sess_take", "sess_create", "sess_index_add", "sess_destroy"}
    old_id = session.id
    if how == "login":
        store.login(session, "ada")
    elif how == "rotate":
        store.rotate(session)
    elif how == "logout":
        store.destroy(session)
        assert store.load(old_id).is_new
        assert store.list_sessions("ada") == []
        return
    else:
        store.save(session)
    assert not session.ended
    assert session.id not in (None, old_id)
    stored = store.load(session.id)
    assert stored["cart"] == [1]
    assert stored.user == (None if how == "first save" else "ada")
    if old_id is not None:
        assert store.load(old_id).is_new
        assert [s.handle for s in store.list_sessions("ada")] == [session.handle]


def test_a_taken_session_is_not_given_to_another_taker(rk: Redkit) -> None:
    from redkit.sessions import ops as sops

    store = rk.sessions()
    session = store.new()
    session["x"] = 1
    store.save(session)
    assert session.id is not None
    keys = (sops.session_key(rk.keys, session.id), sops.taken_key(rk.keys, session.id))
    first = rk.run(ops.evaluate(sops.TAKE, keys, ("me", 5000)))
    assert sops.pairs(first)["d:x"]
    assert rk.run(ops.evaluate(sops.TAKE, keys, ("me", 5000))) == first
    assert rk.run(ops.evaluate(sops.TAKE, keys, ("someone-else", 5000))) == []


def test_a_retried_refresh_rotation_is_not_a_reuse(lossy: LostReplies) -> None:
    lossy.lost = {"tok_family_rotate"}
    tokens = lossy.tokens()
    expires = time.time() + 600
    family = tokens.start_family("ada", "r1", expires)
    claims = {"sub": "ada", "jti": "r1", "fam": family}
    assert tokens.rotate_refresh(claims, "r2", expires) is RefreshResult.ROTATED
    next_claims = {**claims, "jti": "r2"}
    assert tokens.rotate_refresh(next_claims, "r3", expires) is RefreshResult.ROTATED
    # a replay of an old token with another next id is still a reuse
    lossy.lost = set()
    assert tokens.rotate_refresh(claims, "r9", expires) is RefreshResult.REUSED
    assert tokens.rotate_refresh({**claims, "jti": "r3"}, "r4", expires) is RefreshResult.REVOKED


def test_a_retried_concurrency_acquire_holds_one_lease(lossy: LostReplies) -> None:
    lossy.lost = {"rl_conc_acquire"}
    # (with a deadline, the default, nothing is retried: see Redkit.with_timeout)
    limiter: ConcurrencyLimiter = lossy.concurrency_limiter(
        1, name="retried", lease=30, deadline=None
    )
    lease = limiter.try_acquire("k")  # the retry finds its own lease, not a full limiter
    assert lease is not None
    assert limiter.try_acquire("k") is None  # one slot, held once
    assert lease.release()
    assert limiter.acquire("k", timeout=5).release()


def test_a_retried_cache_add_reports_added(lossy: LostReplies) -> None:
    lossy.lost = {"cache_add"}
    cache = lossy.cache("retried")
    assert cache.add("k", "v")
    assert cache.get("k") == "v"
    assert not cache.add("k", "w")


def test_a_retried_fill_lock_does_not_wait_for_itself(lossy: LostReplies) -> None:
    lossy.lost = {"cache_acquire"}
    seen: list[str] = []
    lossy.observe(lambda event: seen.append(event.name))
    cache = lossy.cache("retried", lock_ttl=30)
    cache.set("other", 1)  # the namespace's version exists: the acquire is sent alone
    assert cache.get_or_set("k", lambda: "loaded") == "loaded"
    assert seen.count("script cache_acquire") == 2  # the acquire and its retry, no more
    assert not any(name.startswith("BLPOP") for name in seen)  # it never waited


def test_a_retried_idempotent_completion_is_not_a_lost_lease(
    lossy: LostReplies, caplog: pytest.LogCaptureFixture
) -> None:
    lossy.lost = {"idem_complete"}
    keys = lossy.idempotency("retried")
    calls: list[str] = []

    def work(answer: str) -> str:
        calls.append(answer)
        return answer

    with caplog.at_level(logging.WARNING, logger="redkit"):
        assert keys.do("k", lambda: work("done")) == "done"
    assert not [r for r in caplog.records if "expired" in r.getMessage()]
    assert keys.do("k", lambda: work("again")) == "done"
    assert calls == ["done"]


def test_a_retried_enqueue_adds_each_job_once(lossy: LostReplies) -> None:
    lossy.lost = {"queue_add", "XADD"}  # a plain job is one XADD to the queue's inbox
    q = lossy.queue("retried")
    q.task(name="noop")(lambda i: None)
    one = q.enqueue("noop", 1)
    many = q.enqueue_many("noop", [(2,), (3,)], priority=1, delay=60)
    counts = q.counts()
    assert (counts["waiting"], counts["delayed"], counts["enqueued"]) == (1, 2, 3)
    assert one.status() == "waiting"
    assert [job.status() for job in many] == ["delayed", "delayed"]


def test_a_retried_cache_set_stores_once(lossy: LostReplies) -> None:
    lossy.lost = {"cache_set"}
    cache = lossy.cache("retried-set")
    cache.set("k", "v")  # the first write also creates the namespace version: so does its retry
    assert cache.get("k") == "v"
    cache.set("k", "w", tags=["t"])
    assert cache.get("k", tags=["t"]) == "w"
