"""Operations and the two drivers that run them.

The logic of every capability is written once, as a *flow*: a generator that yields
effects (:class:`Call`, :class:`Eval`, :class:`Batch`, :class:`Sleep`), receives each
effect's reply, and returns the result::

    def incr_flow(key: str) -> Flow[int]:
        reply = yield Call("INCR", key)
        return int(reply)

:func:`run` drives a flow on a synchronous redis-py client, :func:`arun` on an asyncio
one. Nothing else differs between sync and async, so the two cannot drift. The drivers
are also the boundary where redis-py's exceptions become :mod:`redkit.errors`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio.cluster
import redis.cluster
import redis.exceptions as rex
from redis.crc import key_slot

from redkit import errors
from redkit.scripts import Script

T = TypeVar("T")

EncodableT = str | bytes | int | float


@dataclass(frozen=True, slots=True)
class Call:
    """One Redis command, e.g. ``Call("GET", key)``."""

    args: tuple[EncodableT, ...]

    def __init__(self, *args: EncodableT) -> None:
        object.__setattr__(self, "args", args)


@dataclass(frozen=True, slots=True)
class Eval:
    """Run a registered Lua script with its keys and arguments (EVALSHA, EVAL on NOSCRIPT)."""

    script: Script
    keys: Sequence[str]
    args: Sequence[EncodableT] = ()


@dataclass(frozen=True, slots=True)
class Batch:
    """Several calls in one round trip (a non-transactional pipeline).

    The effects run in order (a script's first use in the batch is sent as EVAL, so a
    flushed script cache cannot reorder them). The reply is a list in the same order; an
    error reply appears as a
    :class:`redkit.errors.RedisCommandError` *value* in that list, not raised.
    """

    effects: Sequence[Call | Eval]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait without blocking the event loop (async) or the server (both)."""

    seconds: float


Effect = Call | Eval | Batch | Sleep
Flow = Generator[Effect, Any, T]


class Once(Generic[T]):
    """A flow of exactly one effect, driven without a generator: for hot paths.

    ``finish(reply)`` is the result. When the effect fails, ``fail`` (if given) receives
    the redkit error and its return is the result (it may raise); without ``fail`` the
    error is raised. The drivers run a ``Once`` directly (a generator costs a few
    microseconds a call); inside a generator flow, ``yield from once`` runs it like any
    other flow.
    """

    __slots__ = ("effect", "fail", "finish")

    def __init__(
        self,
        effect: Call | Eval,
        finish: Callable[[Any], T],
        fail: Callable[[errors.RedkitError], T] | None = None,
    ) -> None:
        self.effect = effect
        self.finish = finish
        self.fail = fail

    def __iter__(self) -> Generator[Effect, Any, T]:
        try:
            reply = yield self.effect
        except errors.RedkitError as exc:
            if self.fail is None:
                raise
            return self.fail(exc)
        return self.finish(reply)


def evaluate(script: Script, keys: Sequence[str], args: Sequence[EncodableT] = ()) -> Flow[Any]:
    """A flow that runs one script and returns its raw reply."""
    script.check_keys(len(keys))
    return (yield Eval(script, keys, args))


def command(*args: EncodableT) -> Flow[Any]:
    """A flow that runs one command and returns its raw reply."""
    return (yield Call(*args))


def mapped(flow: Flow[Any], parse: Callable[[Any], T]) -> Flow[T]:
    """A flow whose result is ``parse`` of ``flow``'s result."""
    return parse((yield from flow))


# --- the boundary --------------------------------------------------------------------


def wrap_error(exc: BaseException, target: str) -> errors.RedkitError:
    """Translate a redis-py exception into a redkit error naming the (masked) target."""
    if isinstance(exc, errors.RedkitError):
        return exc
    if isinstance(exc, (rex.ConnectionError, rex.TimeoutError, OSError)):
        kind = "timed out" if isinstance(exc, rex.TimeoutError) else "is unreachable"
        return errors.ConnectionError(f"Redis at {target} {kind}: {exc}")
    if isinstance(exc, rex.ClusterDownError):
        return errors.ConnectionError(f"Redis cluster at {target} is down: {exc}")
    if isinstance(exc, rex.RedisClusterException):
        return errors.ConnectionError(f"Redis cluster at {target}: {exc}")
    if isinstance(exc, rex.ResponseError):
        return errors.RedisCommandError(str(exc))
    return errors.RedkitError(f"unexpected error from Redis at {target}: {exc!r}")


_WRAPPED = (rex.RedisError, rex.RedisClusterException, OSError)


def _boundary(exc: BaseException, target: str) -> errors.RedkitError:
    """The wrapped error, chained to the original so tracebacks still show it."""
    wrapped = wrap_error(exc, target)
    wrapped.__cause__ = exc
    return wrapped


def _eval_args(effect: Eval) -> tuple[Any, ...]:
    return (len(effect.keys), *effect.keys, *effect.args)


def _is_noscript(reply: Any) -> bool:
    return isinstance(reply, rex.NoScriptError)


def _queue_batch(client: Any, batch: Batch) -> Any:
    """A pipeline with the batch queued, in order (sync and asyncio pipelines queue alike).

    The first use of a script on a node (a slot, on a cluster) is sent as EVAL, which
    loads it there, and later uses as EVALSHA. Were every use an EVALSHA, a flushed script
    cache would fail those calls while the rest of the batch ran, and re-running them
    afterwards would reorder the batch. (``execute_command`` because redis-py's cluster
    pipeline refuses its ``evalsha`` method.)
    """
    pipe = client.pipeline(transaction=False)
    cluster = isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster))
    loaded: set[tuple[str, int]] = set()
    for effect in batch.effects:
        if isinstance(effect, Call):
            pipe.execute_command(*effect.args)
            continue
        where = (
            effect.script.sha,
            key_slot(effect.keys[0].encode()) if cluster and effect.keys else 0,
        )
        if where in loaded:
            pipe.execute_command("EVALSHA", effect.script.sha, *_eval_args(effect))
        else:
            loaded.add(where)
            pipe.execute_command("EVAL", effect.script.source, *_eval_args(effect))
    return pipe


def _batch_replies(replies: list[Any]) -> list[Any]:
    out: list[Any] = []
    for reply in replies:
        out.append(errors.RedisCommandError(str(reply)) if isinstance(reply, Exception) else reply)
    return out


# --- sync driver ---------------------------------------------------------------------


def _sync_eval(client: Any, effect: Eval) -> Any:
    try:
        return client.evalsha(effect.script.sha, *_eval_args(effect))
    except rex.NoScriptError:
        return client.eval(effect.script.source, *_eval_args(effect))


def _sync_batch(client: Any, batch: Batch) -> list[Any]:
    pipe = _queue_batch(client, batch)
    replies = pipe.execute(raise_on_error=False)
    for i, (effect, reply) in enumerate(zip(batch.effects, replies, strict=True)):
        if isinstance(effect, Eval) and _is_noscript(reply):
            replies[i] = _sync_eval(client, effect)
    return _batch_replies(replies)


def _sync_effect(client: Any, effect: Effect) -> Any:
    if isinstance(effect, Eval):
        return _sync_eval(client, effect)
    if isinstance(effect, Call):
        return client.execute_command(*effect.args)
    if isinstance(effect, Batch):
        return _sync_batch(client, effect)
    time.sleep(effect.seconds)
    return None


def _run_once(client: Any, once: Once[T], target: str) -> T:
    effect = once.effect
    try:
        if type(effect) is Call:  # the common effect, without a dispatch call
            reply = client.execute_command(*effect.args)
        else:
            reply = _sync_effect(client, effect)
    except _WRAPPED as exc:
        error = _boundary(exc, target)
        if once.fail is None:
            raise error from exc
        return once.fail(error)
    return once.finish(reply)


def run(client: redis.Redis | Any, flow: Flow[T] | Once[T], target: str = "redis") -> T:
    """Drive ``flow`` on a synchronous client and return its result."""
    if isinstance(flow, Once):
        return _run_once(client, flow, target)
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(reply) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            if type(effect) is Call:  # the common effect, without a dispatch call
                reply = client.execute_command(*effect.args)
            else:
                reply = _sync_effect(client, effect)
        except _WRAPPED as exc:
            error = _boundary(exc, target)


# --- async driver --------------------------------------------------------------------


async def _async_eval(client: Any, effect: Eval) -> Any:
    try:
        return await client.evalsha(effect.script.sha, *_eval_args(effect))
    except rex.NoScriptError:
        return await client.eval(effect.script.source, *_eval_args(effect))


async def _async_batch(client: Any, batch: Batch) -> list[Any]:
    pipe = _queue_batch(client, batch)
    replies = await pipe.execute(raise_on_error=False)
    for i, (effect, reply) in enumerate(zip(batch.effects, replies, strict=True)):
        if isinstance(effect, Eval) and _is_noscript(reply):
            replies[i] = await _async_eval(client, effect)
    return _batch_replies(list(replies))


async def _async_effect(client: Any, effect: Effect) -> Any:
    if isinstance(effect, Eval):
        return await _async_eval(client, effect)
    if isinstance(effect, Call):
        return await client.execute_command(*effect.args)
    if isinstance(effect, Batch):
        return await _async_batch(client, effect)
    await asyncio.sleep(effect.seconds)
    return None


async def _arun_once(client: Any, once: Once[T], target: str) -> T:
    effect = once.effect
    try:
        if type(effect) is Call:  # the common effect, without a dispatch coroutine
            reply = await client.execute_command(*effect.args)
        else:
            reply = await _async_effect(client, effect)
    except _WRAPPED as exc:
        error = _boundary(exc, target)
        if once.fail is None:
            raise error from exc
        return once.fail(error)
    return once.finish(reply)


async def arun(client: Any, flow: Flow[T] | Once[T], target: str = "redis") -> T:
    """Drive ``flow`` on an asyncio client and return its result."""
    if isinstance(flow, Once):
        return await _arun_once(client, flow, target)
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(reply) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            if type(effect) is Call:  # the common effect, without a dispatch coroutine
                reply = await client.execute_command(*effect.args)
            else:
                reply = await _async_effect(client, effect)
        except _WRAPPED as exc:
            error = _boundary(exc, target)
