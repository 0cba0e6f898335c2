"""Distributed locks: owner-checked, renewable, fenced, and waited on without polling.

::

    with rk.lock("order:42", ttl=10) as lock:
        write_somewhere(fencing_token=lock.fencing_token)

    async with ark.lock("order:42", ttl=10, auto_renew=True):
        ...

Guarantees:

* Only the owner (a random 128-bit token from :mod:`secrets`) can release or extend the
  lock; both are Lua scripts that check the token and act in one step.
* Each successful acquire gets a *fencing token*, larger than every token handed out
  before for that name: ``max(last token + 1, the server's clock in microseconds)``, so
  the tokens keep growing across a restart of a server that lost the counter (no
  persistence). Pass it to the resource you protect and have the resource reject tokens
  lower than the last it saw: that, not the lock alone, protects against a holder that
  stalled past its TTL (a GC pause, a swapped-out VM) and still writes.
* A waiter blocks on a wake-up list (``BLPOP``) that the releasing owner pushes to, so it
  wakes on release, not on a polling interval; if the holder dies instead, the waiter
  wakes when the holder's TTL runs out.
* A lock that expired or passed to another owner while held is reported: ``lock.lost``
  turns true, ``on_lost`` is called (when renewing), and leaving the ``with`` block raises
  :class:`~redkit.errors.LockLostError`.

Not guaranteed: mutual exclusion across a failover of a replicated Redis (a replica may
be promoted before it saw the acquire). The fencing token is the defence there too.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

from typing_extensions import Unpack

from redkit import ops
from redkit.errors import (
    ConfigError,
    LockLostError,
    LockNotAcquiredError,
    LockNotOwnedError,
    RedkitError,
)
from redkit.scripts import check, script

if TYPE_CHECKING:
    from types import TracebackType

    from redkit.client import AsyncRedkitCore, CoreBase, RedkitCore

log = logging.getLogger("redkit.locks")

_ACQUIRE = script("lock_acquire")
_RELEASE = script("lock_release")
_EXTEND = script("lock_extend")
_SIGNAL_TTL_MS = 5_000


class LockOptions(TypedDict, total=False):
    """Options of :meth:`Redkit.lock` (see :class:`redkit.locks.Lock`)."""

    ttl: float
    timeout: float | None
    blocking: bool
    auto_renew: bool
    on_lost: Callable[[str], Any] | None


class _LockCore:
    """The state and flows shared by :class:`Lock` and :class:`AsyncLock`."""

    def __init__(
        self,
        rk: CoreBase,
        name: str,
        *,
        ttl: float = 10.0,
        timeout: float | None = None,
        blocking: bool = True,
        auto_renew: bool = False,
        on_lost: Callable[[str], Any] | None = None,
    ) -> None:
        if not ttl > 0 or math.isinf(ttl):
            raise ConfigError(f"lock ttl must be a positive number of seconds, got {ttl!r}")
        if timeout is not None and timeout < 0:
            raise ConfigError(f"lock timeout must be 0 or more seconds, got {timeout!r}")
        self.name = name
        self.ttl = ttl
        self.timeout = timeout
        self.blocking = blocking
        self.auto_renew = auto_renew
        self.on_lost = on_lost
        group = rk.keys.group("lock", name)
        self._keys = (group.key("owner"), group.key("fence"), group.key("wake"))
        self._released = group.key("released")
        self._token: str | None = None
        self.fencing_token: int | None = None
        self.lost = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, held={self.held}, lost={self.lost})"

    @property
    def held(self) -> bool:
        """True between a successful acquire and its release (as far as this object knows)."""
        return self._token is not None and not self.lost

    def _ttl_ms(self, ttl: float | None = None) -> int:
        return max(1, int((self.ttl if ttl is None else ttl) * 1000))

    def _acquire_flow(self, blocking: bool | None, timeout: float | None) -> ops.Flow[bool]:
        if self._token is not None:
            raise ConfigError(f"lock {self.name!r} is already held by this object")
        blocking = self.blocking if blocking is None else blocking
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        token = secrets.token_hex(16)
        owner, fence, wake = self._keys
        while True:
            try:
                reply = yield ops.Eval(_ACQUIRE, (owner, fence), (token, self._ttl_ms()))
            except BaseException as exc:
                if not isinstance(exc, (RedkitError, GeneratorExit)):  # cancelled mid-call:
                    # the server may have granted it; a lock nobody knows must not linger
                    yield ops.Eval(_RELEASE, (owner, wake, self._released), (token, _SIGNAL_TTL_MS))
                raise
            acquired, fencing_token, holder_pttl = check("lock_acquire", reply)
            if acquired:
                self._token, self.fencing_token, self.lost = token, int(fencing_token), False
                return True
            remaining = math.inf if deadline is None else deadline - time.monotonic()
            if not blocking or remaining <= 0:
                return False
            if holder_pttl != 0:  # 0: the holder's lock is expiring now; try again at once
                # wait for the release signal, at most until the holder's lock expires
                holder_left = holder_pttl / 1000 if holder_pttl > 0 else remaining
                yield from ops.wait_signal(wake, min(remaining, holder_left))

    def _release_flow(self) -> ops.Flow[bool]:
        token = self._require_token("release")
        owner, _, wake = self._keys
        try:
            reply = yield ops.Eval(_RELEASE, (owner, wake, self._released), (token, _SIGNAL_TTL_MS))
        finally:  # released, or (Redis unreachable) left to its ttl: acquirable again
            self._token = None
        released = check("lock_release", reply)
        if not released:
            self.lost = True
        return bool(released)

    def _extend_flow(self, ttl: float | None) -> ops.Flow[bool]:
        token = self._require_token("extend")
        reply = yield ops.Eval(_EXTEND, self._keys[:1], (token, self._ttl_ms(ttl)))
        extended = check("lock_extend", reply)
        if not extended:
            self._mark_lost()
        return bool(extended)

    def _locked_flow(self) -> ops.Flow[bool]:
        return bool((yield ops.Call("EXISTS", self._keys[0])))

    def _require_token(self, action: str) -> str:
        if self._token is None:
            raise LockNotOwnedError(f"cannot {action} lock {self.name!r}: it is not held")
        return self._token

    def _mark_lost(self) -> None:
        if self.lost:
            return
        self.lost = True
        log.warning("lock %r was lost while held (expired or taken over)", self.name)
        if self.on_lost is not None:
            self.on_lost(self.name)

    def _not_acquired(self) -> LockNotAcquiredError:
        return LockNotAcquiredError(f"lock {self.name!r} not acquired within {self.timeout}s")

    def _lost_error(self) -> LockLostError:
        return LockLostError(
            f"lock {self.name!r} expired or was taken over while held; work done under it "
            "may have overlapped with another holder (use the fencing token to guard writes)"
        )

    @property
    def _renew_every(self) -> float:
        return self.ttl / 3


class Lock(_LockCore):
    """A distributed lock for synchronous code. Build it with :meth:`Redkit.lock`.

    Args:
        name: what the lock protects; any string (escaped into the key).
        ttl: seconds until the lock expires if its holder does not release or renew it.
        timeout: seconds to wait for the lock; None waits as long as it takes.
        blocking: False tries once and returns at once.
        auto_renew: renew the lock every ttl/3 seconds in a background thread while held.
        on_lost: called with the lock name when renewal finds the lock lost.
    """

    def __init__(self, rk: RedkitCore, name: str, **options: Unpack[LockOptions]) -> None:
        super().__init__(rk, name, **options)
        self._rk = rk
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self, *, blocking: bool | None = None, timeout: float | None = None) -> bool:
        """Take the lock; True when taken, False when not within the timeout."""
        acquired = self._rk.run(self._acquire_flow(blocking, timeout))
        if acquired and self.auto_renew:
            self._start_renewal()
        return acquired

    def release(self) -> None:
        """Release the lock; raises LockLostError if it had expired or been taken over.

        If Redis cannot be reached it raises ConnectionError; the lock then ends with its
        ttl at the latest, and this object can acquire it again.
        """
        self._stop_renewal()
        if not self._rk.run(self._release_flow()):
            raise self._lost_error()

    def extend(self, ttl: float | None = None) -> bool:
        """Reset the expiry to ``ttl`` (default: the lock's ttl); False if it was lost."""
        return self._rk.run(self._extend_flow(ttl))

    def locked(self) -> bool:
        """True when anyone holds the lock now."""
        return self._rk.run(self._locked_flow())

    def _start_renewal(self) -> None:
        self._stop.clear()
        self._renewer = threading.Thread(
            target=self._renew_loop, name=f"redkit-lock-renew:{self.name}", daemon=True
        )
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._renew_every):
            try:
                if not self.extend():
                    return
            except Exception:  # a blip: keep trying until the ttl says otherwise
                log.warning("renewing lock %r failed; retrying", self.name, exc_info=True)

    def _stop_renewal(self) -> None:
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join()
        self._renewer = None

    def __enter__(self) -> Lock:
        if not self.acquire():
            raise self._not_acquired()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.release()
        except LockLostError:
            if exc is None:
                raise
            log.warning("lock %r was lost while its block raised %r", self.name, exc)


class AsyncLock(_LockCore):
    """A distributed lock for asyncio code. Build it with :meth:`AsyncRedkit.lock`.

    Takes the same options as :class:`Lock`; renewal runs as an asyncio task.
    """

    def __init__(self, rk: AsyncRedkitCore, name: str, **options: Unpack[LockOptions]) -> None:
        super().__init__(rk, name, **options)
        self._rk = rk
        self._renewer: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def acquire(self, *, blocking: bool | None = None, timeout: float | None = None) -> bool:
        """Take the lock; True when taken, False when not within the timeout."""
        acquired = await self._rk.run(self._acquire_flow(blocking, timeout))
        if acquired and self.auto_renew:
            self._stop.clear()
            self._renewer = asyncio.create_task(self._renew_loop())
        return acquired

    async def release(self) -> None:
        """Release the lock; raises LockLostError if it had expired or been taken over.

        If Redis cannot be reached it raises ConnectionError; the lock then ends with its
        ttl at the latest, and this object can acquire it again.
        """
        await self._stop_renewal()
        if not await self._rk.run(self._release_flow()):
            raise self._lost_error()

    async def extend(self, ttl: float | None = None) -> bool:
        """Reset the expiry to ``ttl`` (default: the lock's ttl); False if it was lost."""
        return await self._rk.run(self._extend_flow(ttl))

    async def locked(self) -> bool:
        """True when anyone holds the lock now."""
        return await self._rk.run(self._locked_flow())

    async def _renew_loop(self) -> None:
        while not await self._stopped_within(self._renew_every):
            try:
                if not await self.extend():
                    return
            except Exception:
                log.warning("renewing lock %r failed; retrying", self.name, exc_info=True)

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def _stop_renewal(self) -> None:
        # Never cancel the renewer mid-command: a cancelled redis-py command can leave its
        # connection half-read. Ask it to stop and let its current extend finish.
        task, self._renewer = self._renewer, None
        if task is not None and task is not asyncio.current_task():
            self._stop.set()
            await task

    async def __aenter__(self) -> AsyncLock:
        if not await self.acquire():
            raise self._not_acquired()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.release()
        except LockLostError:
            if exc is None:
                raise
            log.warning("lock %r was lost while its block raised %r", self.name, exc)
