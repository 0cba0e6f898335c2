"""Idempotency keys for functions: run once per key, replay the result to repeats.

::

    payments = rk.idempotency("payments")

    @payments.idempotent(key=lambda order_id, amount: f"charge:{order_id}")
    def charge(order_id: str, amount: int) -> dict:
        return gateway.charge(order_id, amount)

The first call with a key claims it (an owner token and a lease, renewed while the call
runs), runs the function and stores its result; a repeat returns the stored result
without running; a concurrent repeat waits for it; a repeat with other arguments raises
:class:`~redkit.errors.IdempotencyMismatchError`. Inside the call, ``step(name, fn)``
commits a recovery point, so that a retry after a crash resumes after the last one.
See ``docs/idempotency.md``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from typing_extensions import Unpack

from redkit.errors import ConfigError
from redkit.failure import FailureOptions, FailurePolicy, Guarded, check_deadline, with_deadline
from redkit.idempotency import ops
from redkit.idempotency.renewal import Renewals
from redkit.ops import Flow

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, CoreBase, RedkitCore
    from redkit.failure import OnError

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("redkit.idempotency")

KeyFunc = Callable[..., str]
FingerprintSpec = bool | Callable[..., str]


class IdempotencyOptions(FailureOptions, total=False):
    """Options of :meth:`Redkit.idempotency` (see :class:`redkit.idempotency.Idempotency`)."""

    lease: float
    retention: float
    wait: bool
    wait_timeout: float
    on_failure: ops.OnFailure
    on_error: OnError


class _IdempotencyBase(Guarded):
    """What :class:`Idempotency` and :class:`AsyncIdempotency` share."""

    def __init__(
        self,
        rk: CoreBase,
        name: str,
        *,
        lease: float = 30.0,
        retention: float = 86_400.0,
        wait: bool = True,
        wait_timeout: float = 30.0,
        on_failure: ops.OnFailure = "release",
        on_error: OnError = "closed",
        deadline: float | None = None,
        cooldown: float = 1.0,
    ) -> None:
        self.name = name
        self.settings = ops.Settings(name, lease, retention, wait, wait_timeout, on_failure)
        self.deadline = check_deadline(deadline)
        self._failure = FailurePolicy(
            f"idempotency {name!r}",
            on_error,
            cooldown,
            failing={"open": "running calls without idempotency"},
        )
        self._keyspace = rk.keys
        self._serializer = rk.serializer
        secret = rk.settings.secret
        self._secret = (secret.encode() if isinstance(secret, str) else secret) or b""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, on_failure={self.settings.on_failure!r})"

    def _flow(
        self,
        key: str,
        call: Callable[[ops.Current], Any],
        fingerprint: str | None,
        wait: bool | None,
        failed: Callable[[Any], bool] | None,
    ) -> Flow[Any]:
        keys = ops.keys_for(self._keyspace, self.name, key)
        wait = self.settings.wait if wait is None else wait
        run = ops.Run(keys, key, fingerprint or "", call, wait, failed)
        return ops.run_flow(self.settings, self._serializer, self._failure, run)

    def _step(self, step: str, call: Callable[[], Any]) -> Flow[Any]:
        current = ops.CURRENT.get()
        if current is None or current.name != self.name:
            raise ConfigError(
                f"step({step!r}) runs inside a call made idempotent by idempotency "
                f"{self.name!r} (its do(), a function it decorates, or an HTTP handler)"
            )
        return ops.step_flow(self.settings, self._serializer, current, step, call)

    def digest(self, *parts: bytes) -> str:
        """An HMAC-SHA256 of ``parts`` keyed by the settings' ``secret`` (``REDKIT_SECRET``;
        unkeyed without one): the fingerprint of a payload."""
        return ops.hmac_fingerprint(self._secret, *parts)

    @property
    def _renew_every(self) -> float:
        return self.settings.lease / 3


def _key_and_fingerprint(
    key: KeyFunc,
    fingerprint: FingerprintSpec,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    secret: bytes,
) -> tuple[str, str | None]:
    value = key(*args, **kwargs)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the key function must return a non-empty string, got {value!r}")
    if fingerprint is True:
        return value, ops.fingerprint_of(args, kwargs, secret)
    if callable(fingerprint):
        return value, str(fingerprint(*args, **kwargs))
    return value, None


class Idempotency(_IdempotencyBase):
    """Idempotency keys for synchronous code. Build it with :meth:`Redkit.idempotency`.

    Args:
        name: the namespace of the keys (one per operation kind: ``"payments"``).
        lease: seconds a claim lives unless renewed; renewed every lease/3 while the call
            runs, so a caller that dies frees its key after at most this long.
        retention: seconds a result is kept and replayed.
        wait: a concurrent repeat waits for the running call's result (False: it raises
            :class:`~redkit.errors.IdempotencyConflictError` at once).
        wait_timeout: the longest a repeat waits before raising that error.
        on_failure: when the call raises, ``"release"`` the key so a retry may run, or
            ``"keep"`` the failure and raise :class:`~redkit.errors.IdempotentCallFailedError`
            to repeats.
        on_error: ``"closed"`` (raise, never run unprotected) or ``"open"`` (run the call
            without idempotency) when Redis is unavailable.
        deadline: seconds one call to Redis may take.
        cooldown: seconds to skip Redis after it failed.
    """

    def __init__(self, rk: RedkitCore, name: str, **options: Unpack[IdempotencyOptions]) -> None:
        super().__init__(rk, name, **options)
        self._rk = with_deadline(rk, self.deadline)
        self._renewals = Renewals(name, self._renew_every, self._renew)

    def do(
        self,
        key: str,
        call: Callable[[], R],
        *,
        fingerprint: str | None = None,
        wait: bool | None = None,
        failed: Callable[[R], bool] | None = None,
    ) -> R:
        """``call()`` once per ``key``; repeats get the stored result.

        Args:
            key: the idempotency key.
            call: what to run (``functools.partial(charge, order, 10)``).
            fingerprint: what identifies the arguments; a repeat with another one raises
                :class:`~redkit.errors.IdempotencyMismatchError`. None: not checked.
            wait: overrides the object's ``wait`` for this call.
            failed: tells whether a returned value is a failure (handled by
                ``on_failure`` like an exception, but returned, not raised).
        """
        flow = self._flow(key, functools.partial(self._renewed, call), fingerprint, wait, failed)
        result: R = self._rk.run(flow)
        return result

    def idempotent(
        self, key: KeyFunc, *, fingerprint: FingerprintSpec = True
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a function: ``key(*args, **kwargs)`` names the call; ``fingerprint``
        (True: a hash of the JSON arguments; a function of the arguments; False: none)
        detects a key reused with other arguments."""

        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            @functools.wraps(func)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                name, fp = _key_and_fingerprint(key, fingerprint, args, kwargs, self._secret)
                return self.do(name, functools.partial(func, *args, **kwargs), fingerprint=fp)

            return wrapper

        return decorate

    def step(self, step: str, call: Callable[[], R]) -> R:
        """A recovery point inside an idempotent call: ``call()`` runs and its result is
        committed under ``step``; when a retry of the same key runs after a failure or a
        crash, the committed steps return their stored result instead of running again.

        Args:
            step: the step's name, unique within the call (``"charge"``).
            call: what the step does; its result must be serializable.
        """
        result: R = self._rk.run(self._step(step, call))
        return result

    def _renewed(self, call: Callable[[], Any], current: ops.Current) -> Any:
        """Run ``call`` while the object's renewal thread renews the lease of ``current``."""
        reset = ops.CURRENT.set(current)
        handle = self._renewals.add(current.keys, current.token) if current.token else None
        try:
            return call()
        finally:
            ops.CURRENT.reset(reset)
            if handle is not None:
                self._renewals.remove(handle)

    def _renew(self, keys: ops.Keys, token: str) -> bool:
        return bool(self._rk.run(ops.renew_flow(self.settings, keys, token)))


class AsyncIdempotency(_IdempotencyBase):
    """Idempotency keys for asyncio code. Build it with :meth:`AsyncRedkit.idempotency`.

    Takes the same options as :class:`Idempotency`; ``call`` and decorated functions may
    be coroutine functions (or plain ones, run on the event loop); the lease is renewed
    by an asyncio task.
    """

    def __init__(
        self, rk: AsyncRedkitCore, name: str, **options: Unpack[IdempotencyOptions]
    ) -> None:
        super().__init__(rk, name, **options)
        self._rk = with_deadline(rk, self.deadline)

    async def do(
        self,
        key: str,
        call: Callable[[], Awaitable[R]],
        *,
        fingerprint: str | None = None,
        wait: bool | None = None,
        failed: Callable[[R], bool] | None = None,
    ) -> R:
        """``call()`` once per ``key``; repeats get the stored result (see
        :meth:`Idempotency.do`)."""
        flow = self._flow(key, functools.partial(self._renewed, call), fingerprint, wait, failed)
        result: R = await self._rk.run(flow)
        return result

    def idempotent(
        self, key: KeyFunc, *, fingerprint: FingerprintSpec = True
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Decorate a coroutine function (see :meth:`Idempotency.idempotent`)."""

        def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
            @functools.wraps(func)
            async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                name, fp = _key_and_fingerprint(key, fingerprint, args, kwargs, self._secret)
                call = functools.partial(func, *args, **kwargs)
                return await self.do(name, call, fingerprint=fp)

            return wrapper

        return decorate

    async def step(self, step: str, call: Callable[[], Awaitable[R]]) -> R:
        """A recovery point inside an idempotent call (see :meth:`Idempotency.step`);
        ``call`` may be a coroutine function or a plain one."""
        result: R = await self._rk.run(self._step(step, call))
        return result

    async def _renewed(self, call: Callable[[], Any], current: ops.Current) -> Any:
        """Await ``call()`` while a task renews the lease of ``current``."""
        reset = ops.CURRENT.set(current)
        if not current.token:
            try:
                return await _awaited(call())
            finally:
                ops.CURRENT.reset(reset)
        # most calls end before the first renewal is due: start the renewer only then
        stop = asyncio.Event()
        renewer: list[asyncio.Task[None]] = []
        start = functools.partial(self._start_renewer, current, stop, renewer)
        timer = asyncio.get_running_loop().call_later(self._renew_every, start)
        try:
            return await _awaited(call())
        finally:
            ops.CURRENT.reset(reset)
            timer.cancel()
            # never cancel the renewer mid-command; ask it to stop and let it finish
            stop.set()
            if renewer:
                await asyncio.shield(renewer[0])

    def _start_renewer(
        self, current: ops.Current, stop: asyncio.Event, started: list[asyncio.Task[None]]
    ) -> None:
        if not stop.is_set():
            started.append(asyncio.ensure_future(self._renew_loop(current, stop)))

    async def _renew_loop(self, current: ops.Current, stop: asyncio.Event) -> None:
        keys, token = current.keys, current.token
        while True:  # started when the first renewal is due
            try:
                if not await self._rk.run(ops.renew_flow(self.settings, keys, token)):
                    if not stop.is_set():  # (a call that ended gave its claim up itself)
                        log.warning(
                            "idempotency %r: a lease was lost while its call ran", self.name
                        )
                    return
            except Exception:
                log.warning("idempotency %r: renewing a lease failed", self.name, exc_info=True)
            if await _stopped_within(stop, self._renew_every):
                return


async def _awaited(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True
