"""Server-side sessions: :class:`SessionStore` (sync) and :class:`AsyncSessionStore`.

::

    store = rk.sessions(idle_timeout=1800, absolute_timeout=12 * 3600)
    session = store.load(cookie_value, ip=peer, user_agent=agent)  # never raises on bad ids
    session["cart"] = [42]
    store.login(session, user_id)          # new id; the old one is dead
    store.save(session)                    # writes only what changed
    response.set_cookie_header(store.cookie.header(session.id))

    store.list_sessions(user_id)           # created, last seen, IP, user agent
    store.end_all(user_id)                 # log out everywhere

Every per-request step is one Lua script that reads the server's clock: loading refreshes
the idle timeout (a key TTL of ``min(now + idle, absolute deadline)``), so Redis itself
ends a session that goes quiet or grows too old. When Redis is unavailable, ``on_error``
decides what load and save do (:mod:`redkit.failure`). See docs/sessions.md for the
guarantees.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from typing_extensions import Unpack

from redkit import errors, ops
from redkit.errors import ConfigError, RedisCommandError, RedkitError
from redkit.failure import FailureOptions, FailurePolicy, Guarded, check_deadline, with_deadline
from redkit.scripts import check
from redkit.sessions import ops as sops
from redkit.sessions.check import check_flow
from redkit.sessions.cookies import CookieConfig
from redkit.sessions.session import Session

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, CoreBase, RedkitCore

log = logging.getLogger("redkit.sessions")

DEFAULT_IDLE = 30 * 60.0
DEFAULT_ABSOLUTE = 12 * 3600.0


class SessionOptions(FailureOptions, total=False):
    """Options of :meth:`Redkit.sessions` (see :class:`redkit.sessions.SessionStore`)."""

    idle_timeout: float
    absolute_timeout: float
    cookie: CookieConfig | None
    check: bool
    on_error: str
    cooldown: float


class _StoreCore(Guarded):
    """Options and flows shared by :class:`SessionStore` and :class:`AsyncSessionStore`."""

    #: the class of the session objects handed out (framework adapters use a subclass)
    session_class: type[Session] = Session

    def __init__(
        self,
        rk: CoreBase,
        *,
        idle_timeout: float = DEFAULT_IDLE,
        absolute_timeout: float = DEFAULT_ABSOLUTE,
        cookie: CookieConfig | None = None,
        check: bool = True,
        on_error: str = "closed",
        deadline: float | None = None,
        cooldown: float = 1.0,
    ) -> None:
        for name, value in (("idle_timeout", idle_timeout), ("absolute_timeout", absolute_timeout)):
            if not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        self._base = rk
        self._keys = rk.keys
        self._serializer = rk.serializer
        self.idle_timeout = float(idle_timeout)
        self.absolute_timeout = float(absolute_timeout)
        self.cookie = cookie or CookieConfig()
        self._check_pending = check
        self.deadline = check_deadline(deadline)
        self._failure = FailurePolicy(
            "redkit sessions",
            on_error,
            cooldown,
            failing={"open": "failing open: fresh sessions are served, writes are skipped"},
            logger=log,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(idle_timeout={self.idle_timeout}, "
            f"absolute_timeout={self.absolute_timeout}, cookie={self.cookie.name!r}, "
            f"on_error={self.on_error!r})"
        )

    def new(self, *, ip: str | None = None, user_agent: str | None = None) -> Session:
        """A fresh, empty session; it is stored (and gets an id) on its first save with data."""
        return self.session_class(self._serializer, ip=ip, user_agent=user_agent)

    def _key(self, session_id: str) -> str:
        return sops.session_key(self._keys, session_id)

    def _check_once(self) -> Iterator[ops.Effect]:
        if self._check_pending:
            self._check_pending = False
            yield from check_flow(self._base, "redkit sessions")

    # --- per request ------------------------------------------------------------------

    def _load_flow(
        self, session_id: str | None, ip: str | None, user_agent: str | None
    ) -> ops.Flow[Session]:
        """Load under the failure policy: failing open serves a fresh, degraded session."""

        def fresh(_: errors.ConnectionError | None) -> Session:
            session = self.new(ip=ip, user_agent=user_agent)
            session.degraded = True
            return session

        loading = self._loaded_flow(session_id, ip, user_agent)
        return (yield from self._failure.guard(loading, fresh))

    def _loaded_flow(
        self, session_id: str | None, ip: str | None, user_agent: str | None
    ) -> ops.Flow[Session]:
        yield from self._check_once()
        if session_id is None or not sops.valid_id(session_id):
            return self.new(ip=ip, user_agent=user_agent)
        args = (sops.ms(self.idle_timeout), sops.clip(ip), sops.clip(user_agent))
        reply = yield from sops.checked(sops.LOAD, (self._key(session_id),), args)
        if not reply:  # unknown, expired or ended: a fresh session, never the client's id
            return self.new(ip=ip, user_agent=user_agent)
        record = sops.Record.parse(sops.pairs(reply))
        return self.session_class(
            self._serializer, session_id, record, ip=ip, user_agent=user_agent
        )

    def _save_flow(self, session: Session) -> ops.Flow[None]:
        """Save under the failure policy: failing open skips the write (a logout never)."""
        if session._pending == "destroy":
            if session.degraded:  # its stored session is unknown, so cannot be ended
                raise errors.ConnectionError(
                    "redkit sessions: cannot log out: this request's session was served "
                    "without Redis (on_error='open'); try again"
                )
            return (yield from self._destroy_flow(session))
        if session.degraded:
            if session.modified:
                log.info("redkit sessions: skipped saving a session served without Redis")
            return None
        return (yield from self._failure.guard(self._write_flow(session), _skipped))

    def _write_flow(self, session: Session) -> ops.Flow[None]:
        pending = session._pending
        if pending in ("login", "rotate"):
            yield from self._rotate_flow(session)
        elif session.is_new:
            if session._touched and len(session) > 0:
                yield from self._rotate_flow(session)
        else:
            yield from self._update_flow(session)

    def _meta(self, session: Session, user: str | None, gen: int) -> list[tuple[str, bytes]]:
        meta = [
            (sops.META_IP, sops.clip(session.ip)),
            (sops.META_UA, sops.clip(session.user_agent)),
        ]
        if user is not None:
            meta += [(sops.META_USER, user), (sops.META_GEN, str(gen))]
        return [(name, value.encode()) for name, value in meta if value]

    def _id_keys(self, session_id: str) -> tuple[str, str]:
        """A session and its end mark (one hash tag): the keys of sess_create and sess_destroy."""
        return self._key(session_id), sops.taken_key(self._keys, session_id)

    def _create(
        self, birth: sops.Birth, fields: list[tuple[str, bytes]], mode: str = ""
    ) -> ops.Eval:
        flat = [part for pair in fields for part in pair]
        idle, absolute = sops.ms(self.idle_timeout), sops.ms(self.absolute_timeout)
        args = (idle, absolute, birth.created, birth.deadline, birth.expire, birth.token, mode)
        return ops.Eval(sops.CREATE, self._id_keys(birth.id), (*args, *flat))

    def _take(self, session_id: str, token: str) -> ops.Eval:
        keys = (self._key(session_id), sops.taken_key(self._keys, session_id))
        return ops.Eval(sops.TAKE, keys, (token, sops.RETRY_MS))

    def _index(
        self, user: str, session_id: str, deadline: int, old: str | None, gen: int
    ) -> ops.Eval:
        """Add the session to the user's index (refused when the generation moved on)."""
        args = (session_id, deadline, old or "", gen)
        return ops.Eval(sops.INDEX_ADD, sops.index_keys(self._keys, user), args)

    def _destroy(self, session_id: str, user: str = "") -> ops.Eval:
        return ops.Eval(sops.DESTROY, self._id_keys(session_id), (user, sops.ENDED_MS))

    def _fields(
        self, session: Session, record: sops.Record | None, user: str | None, gen: int, login: bool
    ) -> tuple[dict[str, bytes], list[tuple[str, bytes]]]:
        """The data and the fields of the session a login or rotation creates from ``record``."""
        raw = self._merged(session, record, user)
        fields = [(sops.DATA + k, v) for k, v in raw.items()] + self._meta(session, user, gen)
        if record is not None and record.expiry_ms is not None and not login:
            fields.append((sops.META_EXPIRY, str(record.expiry_ms).encode()))
        return raw, fields

    def _rotate_flow(self, session: Session) -> ops.Flow[None]:
        """Move the session to a fresh id: a login, or a rotation (the first save included)."""
        user = session._login_user
        if session._pending == "login" and user is not None:
            return (yield from self._login_flow(session, user))
        return (yield from self._rotation_flow(session))

    def _rotation_flow(self, session: Session) -> ops.Flow[None]:
        """Rotate in one round trip: take the old id, create the new one, index it, at once.

        The new session is built from what this request loaded (the stored copy is known
        only once the take answers). A second round trip follows only when the take
        shows another request changed the session meanwhile (the new session is then
        rewritten with the merged data), or when the take found nothing (a concurrent
        rotation or a logout won) or the index refused the id ("end all" ran): then the
        new session, whose id nobody has seen, is ended.
        """
        old_id, user, gen = session.id, session._user, session._gen
        loaded = session._record() if old_id is not None else None
        raw, fields = self._fields(session, loaded, user, gen, False)
        created, deadline = (0, 0) if loaded is None else (loaded.created_ms, loaded.deadline_ms)
        birth = sops.Birth(sops.new_id(), sops.new_id(), created, deadline, _expire_arg(session))
        effects = [] if old_id is None else [self._take(old_id, birth.token)]
        effects.append(self._create(birth, fields))
        if user is not None:
            effects.append(self._index(user, birth.id, deadline, old_id, gen))
        replies = yield from sops.together(effects)
        made = yield from self._born_flow(birth, user, replies[0 if old_id is None else 1 :])
        try:
            taken = sops.taken(replies[0]) if old_id is not None else None
        except RedkitError:
            if made is not None:
                yield from self._undo_flow(birth.id, user)
            raise
        if made is None or (old_id is not None and taken is None):
            if made is not None:  # a concurrent rotation or a logout took the old id first
                yield from self._undo_flow(birth.id, user)
            return self._ended(session)
        if taken is not None:
            raw, target = self._fields(session, taken, user, gen, False)
            if dict(target) != dict(fields):  # another request changed the session meanwhile
                birth = replace(birth, created=made[0], deadline=made[1])
                reply = sops.value((yield self._create(birth, target, "redo")))
                if reply[0] != 1:  # "end all" ended it meanwhile
                    return self._ended(session)
                made = [int(v) for v in reply[1:]]
        return self._born(session, birth.id, made, user, gen, raw)

    def _login_flow(self, session: Session, user: str) -> ops.Flow[None]:
        """Log in under a fresh id, in two round trips.

        The first reads the user's generation and the server's clock, and takes the old
        session (its stored data carries over when it was anonymous or this user's); the
        second creates the new session and indexes it, at once. Reading the generation
        before the session exists is what lets the index refuse a login that "end all"
        overtook.
        """
        old_id, token = session.id, sops.new_id()
        first: list[ops.Call | ops.Eval] = [
            ops.Eval(sops.GEN, (sops.index_keys(self._keys, user)[1],))
        ]
        if old_id is not None:
            first.append(self._take(old_id, token))
            if session._user not in (None, user):  # leaves the other user's index
                index, _ = sops.index_keys(self._keys, session._user)
                first.append(ops.Call("ZREM", index, old_id))
        replies = yield from sops.together(first)
        gen, now = (int(v) for v in check(sops.GEN.name, sops.value(replies[0])))
        taken = sops.taken(replies[1]) if old_id is not None else None
        for reply in replies[2:]:
            sops.value(reply)
        raw, fields = self._fields(session, taken, user, gen, True)
        deadline = now + sops.ms(self.absolute_timeout)
        birth = sops.Birth(sops.new_id(), token, now, deadline, _expire_arg(session))
        old = old_id if session._user == user else None
        effects = [self._create(birth, fields), self._index(user, birth.id, deadline, old, gen)]
        made = yield from self._born_flow(birth, user, (yield from sops.together(effects)))
        if made is None:
            return self._ended(session)
        return self._born(session, birth.id, made, user, gen, raw)

    def _born_flow(
        self, birth: sops.Birth, user: str | None, replies: list[Any]
    ) -> ops.Flow[list[int] | None]:
        """The replies of a creation (and of its index entry when ``user`` is set): the
        new session's created, deadline, now and expiry, or None when it must not live
        (it would have ended, was ended meanwhile, or the index refused it), after it was
        undone. Errors are raised after undoing it."""
        code = -1
        try:
            code = int(sops.value(replies[0])[0])
            if code == 0:  # 256 random bits: never; an answer all the same
                raise RedisCommandError("could not create a session: its fresh id was taken")
            indexed = user is None or check(sops.INDEX_ADD.name, sops.value(replies[1])) == 1
        except RedkitError:
            yield from self._undo_flow(birth.id, user, destroy=code != 0)
            raise
        if code != 1 or not indexed:
            yield from self._undo_flow(birth.id, user)
            return None
        return [int(v) for v in replies[0][1:]]

    def _undo_flow(self, new_id: str, user: str | None, destroy: bool = True) -> ops.Flow[None]:
        """End a new session whose id nobody has seen, and drop its index entry: one round trip."""
        effects: list[ops.Call | ops.Eval] = [self._destroy(new_id)] if destroy else []
        if user is not None:
            effects.append(ops.Call("ZREM", sops.index_keys(self._keys, user)[0], new_id))
        if effects:
            for reply in (yield from sops.together(effects)):
                sops.value(reply)

    def _born(
        self,
        session: Session,
        new_id: str,
        made: list[int],
        user: str | None,
        gen: int,
        raw: dict[str, bytes],
    ) -> None:
        created, deadline, now, expiry = made
        stored = sops.Record(
            created, now, deadline, user, gen, session.ip, session.user_agent, raw, expiry or None
        )
        session._stored(new_id, stored)

    @staticmethod
    def _merged(session: Session, record: sops.Record | None, user: str | None) -> dict[str, bytes]:
        """The stored data (fresher than this request's copy) with this request's changes."""
        carry = record is not None and record.user in (None, user)
        raw = dict(record.raw) if carry and record is not None else dict(session._raw)
        sets, deletes = session._changes()
        raw.update(sets)
        for key in deletes:
            raw.pop(key, None)
        return raw

    def _update_flow(self, session: Session) -> ops.Flow[None]:
        sets, deletes = session._changes()
        expire = _expire_arg(session)
        if session.id is None or (not sets and not deletes and not expire):
            return
        flat = [part for k, v in sets.items() for part in (sops.DATA + k, v)]
        args = (sops.ms(self.idle_timeout), expire, len(sets), *flat, *_data(deletes))
        reply = yield from sops.checked(sops.UPDATE, (self._key(session.id),), args)
        if reply[0] != 1:
            return self._ended(session)
        session._committed(sets, deletes, int(reply[1]))
        return None

    @staticmethod
    def _ended(session: Session) -> None:
        session._stored(None, None)
        session.ended = True

    def _destroy_flow(self, session: Session) -> ops.Flow[None]:
        """Log out: one script. The id stays in its user's index until a listing, "end all"
        or its deadline drops it: the index is never trusted alone (a listing reads every
        session it names), while removing the entry in the same round trip could, were the
        session's node to fail, leave a live session out of the index."""
        if session.id is not None:
            yield from sops.checked(sops.DESTROY, self._id_keys(session.id), ("", sops.ENDED_MS))
        self._ended(session)

    # --- the user's view of their sessions ---------------------------------------------

    def _session_ids_flow(self, user: str) -> ops.Flow[list[str]]:
        index, _ = sops.index_keys(self._keys, user)
        reply = yield from sops.checked(sops.INDEX_LIST, (index,))
        return [sops.text(v) for v in reply]

    def _list_flow(self, user: str, current: Session | None) -> ops.Flow[list[sops.SessionInfo]]:
        ids = yield from self._session_ids_flow(user)
        if not ids:
            return []
        replies = yield ops.Batch([ops.Call("HMGET", self._key(i), *sops.LIST_FIELDS) for i in ids])
        current_id = current.id if current is not None else None
        live, dead = [], []
        for session_id, reply in zip(ids, replies, strict=True):
            if isinstance(reply, RedisCommandError):
                raise reply
            owner = reply[4]
            if reply[0] is None or owner is None or sops.text(owner) != user:
                dead.append(session_id)
            else:
                live.append(sops.info_from_hmget(session_id, reply, current_id))
        if dead:
            yield ops.Call("ZREM", sops.index_keys(self._keys, user)[0], *dead)
        return sorted(live, key=lambda s: s.created.timestamp() if s.created else 0.0)

    def _end_flow(self, user: str, handle: str) -> ops.Flow[bool]:
        """End one of the user's sessions; its index entry goes as a logout's does."""
        ids = yield from self._session_ids_flow(user)
        for session_id in ids:
            if sops.handle_of(session_id) == handle:
                return bool(check(sops.DESTROY.name, (yield self._destroy(session_id, user))))
        return False

    def _end_all_flow(self, user: str, keep: Session | None) -> ops.Flow[int]:
        """Log out everywhere: raise the generation, then end every indexed session.

        Ids leave the index only after their session is gone, so a failure midway leaves
        the rest listed for a retry; the raised generation stops any session that is
        being created or rotated meanwhile from joining the index. ``keep`` (the caller's
        own session) is ended too and comes back under a new id in the new generation.
        """
        keys = sops.index_keys(self._keys, user)
        reply = yield from sops.checked(sops.END_ALL, keys, (sops.ms(self.absolute_timeout),))
        ids = [sops.text(v) for v in reply]
        keep_id = keep.id if keep is not None else None
        ended = (yield from self._destroy_all_flow(user, ids, keep_id)) if ids else 0
        if keep is not None and keep.user == user and not keep.ended:
            keep.login(user)
            yield from self._rotate_flow(keep)
        return ended

    def _destroy_all_flow(self, user: str, ids: list[str], keep_id: str | None) -> ops.Flow[int]:
        """End the sessions ``ids`` of ``user``; those handled leave the index; how many ended.

        A key that holds something else than a session leaves the index too, and then the
        DataError is raised (after the rest are ended).
        """
        replies = yield ops.Batch([self._destroy(i, user) for i in ids])
        pairs = list(zip(ids, replies, strict=True))
        done = [i for i, r in pairs if not isinstance(r, RedisCommandError)]
        if done:
            yield ops.Call("ZREM", sops.index_keys(self._keys, user)[0], *done)
        for r in replies:
            if isinstance(r, RedisCommandError):
                raise r
            check(sops.DESTROY.name, r)
        return sum(1 for i, r in pairs if r == 1 and i != keep_id)


def _skipped(_: errors.ConnectionError | None) -> None:
    log.info("redkit sessions: Redis unavailable, a session write was skipped")


def _expire_arg(session: Session) -> str:
    """The script argument for a pending :meth:`Session.expire_in` ('' when there is none)."""
    return "" if session._expire_in is None else str(sops.ms(session._expire_in))


def _data(keys: list[str]) -> list[str]:
    return [sops.DATA + k for k in keys]


class SessionStore(_StoreCore):
    """Server-side sessions for synchronous code. Build it with :meth:`Redkit.sessions`.

    Args:
        idle_timeout: seconds without a request after which Redis ends the session.
        absolute_timeout: seconds after creation (or login) after which it ends anyway.
        cookie: how the id travels (:class:`CookieConfig`: name, domain, path, secure…).
        check: warn once (a log line) if the server's eviction policy or lack of
            persistence can silently drop sessions.
        on_error: when Redis is unavailable, ``"closed"`` (default) makes load and save
            raise :class:`~redkit.errors.ConnectionError`; ``"open"`` serves a fresh
            session (``session.degraded``) and skips writes, logging it. Logging out
            fails closed either way.
        deadline: seconds each call to Redis may take, connect and reply, no retries;
            None (default) keeps the client's timeouts and retries.
        cooldown: seconds after a failure during which load and save do not ask Redis.
    """

    def __init__(self, rk: RedkitCore, **options: Unpack[SessionOptions]) -> None:
        super().__init__(rk, **options)
        self._rk = with_deadline(rk, self.deadline)

    def load(
        self, session_id: str | None, *, ip: str | None = None, user_agent: str | None = None
    ) -> Session:
        """The session behind ``session_id``, or a fresh one if it is unknown, malformed or over.

        Loading refreshes the idle timeout and records last seen, IP and user agent.
        """
        return self._rk.run(self._load_flow(session_id, ip, user_agent))

    def save(self, session: Session) -> None:
        """Store what changed, and carry out a pending login, rotation or destroy."""
        self._rk.run(self._save_flow(session))

    def login(self, session: Session, user: str | int) -> None:
        """Bind ``session`` to ``user`` under a new id, now (the old id stops working)."""
        session.login(user)
        self.save(session)

    def rotate(self, session: Session) -> None:
        """Give ``session`` a new id now, keeping its data and deadlines."""
        session.rotate()
        self.save(session)

    def destroy(self, session: Session) -> None:
        """End ``session`` now (logout)."""
        session.destroy()
        self.save(session)

    def list_sessions(
        self, user: str | int, *, current: Session | None = None
    ) -> list[sops.SessionInfo]:
        """The user's live sessions, oldest first; ``current`` is marked as such."""
        return self._rk.run(self._list_flow(str(user), current))

    def end(self, user: str | int, handle: str) -> bool:
        """End the user's session with this handle (from :meth:`list_sessions`)."""
        return self._rk.run(self._end_flow(str(user), handle))

    def end_all(self, user: str | int, *, keep: Session | None = None) -> int:
        """End every session of ``user`` (keeping ``keep`` under a new id); returns how many."""
        return self._rk.run(self._end_all_flow(str(user), keep))

    def check(self) -> list[str]:
        """Warnings about the server (eviction policy, persistence); also logged."""
        return self._rk.run(check_flow(self._rk, "redkit sessions"))


class AsyncSessionStore(_StoreCore):
    """Server-side sessions for asyncio code. Build it with :meth:`AsyncRedkit.sessions`.

    Takes the same options as :class:`SessionStore`; every method is awaited.
    """

    def __init__(self, rk: AsyncRedkitCore, **options: Unpack[SessionOptions]) -> None:
        super().__init__(rk, **options)
        self._rk = with_deadline(rk, self.deadline)

    async def load(
        self, session_id: str | None, *, ip: str | None = None, user_agent: str | None = None
    ) -> Session:
        """The session behind ``session_id``, or a fresh one if it is unknown, malformed or over."""
        return await self._rk.run(self._load_flow(session_id, ip, user_agent))

    async def save(self, session: Session) -> None:
        """Store what changed, and carry out a pending login, rotation or destroy."""
        await self._rk.run(self._save_flow(session))

    async def login(self, session: Session, user: str | int) -> None:
        """Bind ``session`` to ``user`` under a new id, now (the old id stops working)."""
        session.login(user)
        await self.save(session)

    async def rotate(self, session: Session) -> None:
        """Give ``session`` a new id now, keeping its data and deadlines."""
        session.rotate()
        await self.save(session)

    async def destroy(self, session: Session) -> None:
        """End ``session`` now (logout)."""
        session.destroy()
        await self.save(session)

    async def list_sessions(
        self, user: str | int, *, current: Session | None = None
    ) -> list[sops.SessionInfo]:
        """The user's live sessions, oldest first; ``current`` is marked as such."""
        return await self._rk.run(self._list_flow(str(user), current))

    async def end(self, user: str | int, handle: str) -> bool:
        """End the user's session with this handle (from :meth:`list_sessions`)."""
        return await self._rk.run(self._end_flow(str(user), handle))

    async def end_all(self, user: str | int, *, keep: Session | None = None) -> int:
        """End every session of ``user`` (keeping ``keep`` under a new id); returns how many."""
        return await self._rk.run(self._end_all_flow(str(user), keep))

    async def check(self) -> list[str]:
        """Warnings about the server (eviction policy, persistence); also logged."""
        return await self._rk.run(check_flow(self._rk, "redkit sessions"))
