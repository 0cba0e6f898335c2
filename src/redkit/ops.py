"""Operations and the two drivers that run them.

The logic of every capability is written once, as a *flow*: a generator that yields
effects, receives each effect's reply, and returns the result::

    def incr_flow(key: str) -> Flow[int]:
        reply = yield Call("INCR", key)
        return int(reply)

The effects: :class:`Call` (a command), :class:`Eval` (a script), :class:`Batch` (a
pipeline), :class:`Sleep`, :class:`UserCall` (user code: a loader, a handler),
:class:`Block` (a blocking command on a dedicated connection; see :func:`wait_signal`)
and :class:`Note` (tells the observers something). :class:`Driver` runs flows on a
synchronous redis-py client and :class:`AsyncDriver` on an asyncio one; nothing else
differs between sync and async. The drivers are the boundary where redis-py's
exceptions become :mod:`redkit.errors`; what user code raises (cancellation included)
is thrown into the flow unchanged, so it can clean up. Every effect reports its name,
duration and error to the registered observers (:class:`Event`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio.cluster
import redis.cluster
import redis.exceptions as rex
from redis.crc import key_slot

from redkit import errors
from redkit.scripts import Script

T = TypeVar("T")
log = logging.getLogger("redkit")

EncodableT = str | bytes | int | float


@dataclass(frozen=True, slots=True)
class Call:
    """One Redis command, e.g. ``Call("GET", key)``."""

    args: tuple[EncodableT, ...]

    def __init__(self, *args: EncodableT) -> None:
        object.__setattr__(self, "args", args)


# Not frozen, unlike the other effects: one is built per script call, and a frozen
# dataclass's object.__setattr__ per field doubles the cost of building it. Nothing
# changes an Eval once built.
@dataclass(slots=True)
class Eval:
    """Run a registered Lua script with its keys and arguments (EVALSHA, EVAL on NOSCRIPT)."""

    script: Script
    keys: Sequence[str]
    args: Sequence[EncodableT] = ()
    #: the EVALSHA command, built once (effects that are reused skip rebuilding it)
    command: tuple[EncodableT, ...] = field(init=False, repr=False, compare=False)

    def __init__(
        self, script: Script, keys: Sequence[str], args: Sequence[EncodableT] = ()
    ) -> None:
        numkeys = script.numkeys
        if numkeys is not None and len(keys) != numkeys:
            script.check_keys(len(keys))
        self.script, self.keys, self.args = script, keys, args
        self.command = ("EVALSHA", script.sha, len(keys), *keys, *args)


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


@dataclass(frozen=True, slots=True)
class UserCall:
    """Call user code from a flow: ``UserCall(loader, key)``; the reply is what it returns.

    The sync driver calls it. The async driver calls it and awaits the result when it is
    awaitable; with ``thread=True`` a plain function runs in a worker thread instead of on
    the event loop. Whatever it raises (cancellation included) is thrown into the flow
    unwrapped, so the flow can clean up (release a lock, wake waiters) and re-raise.
    """

    func: Callable[..., Any]
    args: tuple[Any, ...]
    thread: bool

    def __init__(self, func: Callable[..., Any], *args: Any, thread: bool = False) -> None:
        object.__setattr__(self, "func", func)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "thread", thread)


@dataclass(frozen=True, slots=True)
class Block:
    """A blocking command (``BLPOP``, ``BLMOVE``, ``BZPOPMIN`` ...) on a dedicated connection.

    ``command(seconds)`` renders the command for a block of ``seconds``. The driver blocks
    at most ``timeout`` seconds, and less when its connection's timeout demands it: a reply
    of None means nothing arrived *in that call*, and callers loop until their own
    deadline (:func:`wait_signal` does). The connection never comes from the shared pool,
    so many waiters cannot starve other calls; a cancelled wait discards its connection.

    ``then`` is a script sent right behind the command, on the same connection: the
    server runs it the moment the wait ends (with a reply or without), with no round trip
    from the waiter in between; a queue worker claims its jobs this way. The reply is
    then the pair (the command's reply, the script's reply), an error reply of the script
    as a :class:`redkit.errors.RedisCommandError` *value*. Observers see the wait, then
    the script with 0 seconds (it took no round trip of its own). A wait whose reply is
    lost may have run its script: send such a pair on a client without retries (the
    queue worker's has none) and treat a failed call as "the script may have run"; the
    script itself is not run again after a failed wait.
    """

    command: Callable[[float], tuple[EncodableT, ...]]
    timeout: float
    then: Eval | None = None


@dataclass(frozen=True, slots=True)
class Note:
    """Tell the observers something (``Note("cache.hit", "products")``); no I/O, reply None."""

    name: str
    data: Any = None


Effect = Call | Eval | Batch | Sleep | UserCall | Block | Note
Flow = Generator[Effect, Any, T]


@dataclass(frozen=True, slots=True)
class Event:
    """What an observer receives for each effect a driver ran (and each :class:`Note`).

    ``name`` is the command (``"GET"``), ``"script lock_acquire"``, ``"batch"`` (``"batch
    sess_take"`` when it runs scripts: named by the first),
    ``"sleep"``, ``"call <qualname>"`` or the note's name; ``seconds`` is how long the
    effect took; ``error`` what it raised, if anything.
    """

    name: str
    seconds: float
    error: BaseException | None
    effect: Effect
    data: Any = None


Observer = Callable[[Event], None]

#: The shortest block a blocking command is given (BLPOP's 0 would mean forever).
MIN_BLOCK = 0.01


class Blocker:
    """Where :class:`Block` effects run: a dedicated client, made on first use.

    ``max_block`` is the longest a single blocking call may wait, so that it returns well
    within the dedicated client's socket timeout.
    """

    __slots__ = ("_client", "_lock", "_make", "_ready", "max_block")

    def __init__(self, make: Callable[[], Any], max_block: float) -> None:
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()
        self._ready: asyncio.Task[Any] | None = None
        self.max_block = max(MIN_BLOCK, max_block)

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:  # threads waiting at once must not each make (and leak) one
                if self._client is None:
                    self._client = self._make()
        return self._client

    async def aclient(self) -> Any:
        """The client, initialized once (redis-py's asyncio cluster races on lazy init)."""
        client = self.client
        if isinstance(client, redis.asyncio.cluster.RedisCluster):
            if self._ready is None:
                self._ready = asyncio.ensure_future(client.initialize())
            await asyncio.shield(self._ready)
        return client

    @property
    def made(self) -> Any:
        """The client if one was made (to close it), else None."""
        return self._client

    def refresh(self) -> None:
        """After a connection error: a cluster client reads the slot map again.

        redis-py's sync cluster client does not refresh it after a blocking command
        failed to connect, so a dedicated client would keep waiting on a dead primary
        after its replica took over.
        """
        if isinstance(self._client, redis.cluster.RedisCluster):
            try:
                self._client.nodes_manager.initialize()
            except (rex.RedisError, rex.RedisClusterException, OSError) as exc:
                log.debug("could not read the cluster's slot map again (%s)", exc)


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
    return (yield Eval(script, keys, args))


def command(*args: EncodableT) -> Flow[Any]:
    """A flow that runs one command and returns its raw reply."""
    return (yield Call(*args))


def mapped(flow: Flow[Any], parse: Callable[[Any], T]) -> Flow[T]:
    """A flow whose result is ``parse`` of ``flow``'s result."""
    return parse((yield from flow))


def wait_signal(key: str, seconds: float) -> Flow[bool]:
    """Wait until a signal is pushed onto the list ``key``, or ``seconds`` pass.

    The one wait-for-a-signal helper: locks, cache fills and the queue push one element
    per waiter onto a wake list when something changes; waiters pop it here (``BLPOP`` on
    a dedicated connection, in calls short enough for that connection's timeout). True
    when a signal arrived, False when the time ran out.
    """
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        reply = yield Block(lambda block: ("BLPOP", key, round(block, 3)), remaining)
        if reply is not None:
            return True


# --- the boundary --------------------------------------------------------------------


_CREDENTIALS = (rex.AuthenticationError, rex.AuthorizationError, rex.NoPermissionError)
_UNREACHABLE = (rex.ConnectionError, rex.TimeoutError, rex.InvalidResponse, OSError)
_CLUSTER = (rex.ClusterDownError, rex.ClusterError, rex.RedisClusterException)


def wrap_error(exc: BaseException, target: str) -> errors.RedkitError:
    """Translate a redis-py exception into a redkit error naming the (masked) target."""
    if isinstance(exc, errors.RedkitError):
        return exc
    if isinstance(exc, AttributeError):
        if not _closed_under_us(exc):
            raise exc  # a bug, not an outage: as it is
        return errors.ConnectionError(
            f"Redis at {target} is unreachable: the connection was closed while in use ({exc})"
        )
    if isinstance(exc, _CREDENTIALS):  # a setting to fix, not an outage to ride out
        return errors.ConfigError(f"Redis at {target} refused the credentials: {exc}")
    if isinstance(exc, _CLUSTER):  # CLUSTERDOWN is a reply, but means the cluster is down
        return errors.ConnectionError(f"Redis cluster at {target} is unavailable: {exc}")
    if isinstance(exc, rex.ResponseError):
        if str(exc).startswith("WRONGTYPE"):
            return errors.DataError(f"the key holds another Redis type: {exc}")
        return errors.RedisCommandError(str(exc))
    if isinstance(exc, _UNREACHABLE) or type(exc).__name__ == "TLSHandshakeError":
        return errors.ConnectionError(_unreachable(exc, target))
    return errors.RedkitError(f"unexpected error from Redis at {target}: {exc!r}")


def _unreachable(exc: BaseException, target: str) -> str:
    """What went wrong reaching ``target``, with a hint where one helps."""
    if isinstance(exc, rex.InvalidResponse):
        return (
            f"the server at {target} does not speak the Redis protocol ({exc}); "
            "check the host and port"
        )
    if not isinstance(exc, rex.TimeoutError):
        return f"Redis at {target} is unreachable: {exc}"
    hint = ""
    if target.startswith("rediss") and "connect" in str(exc).lower():
        hint = " (a TLS handshake with a server that does not speak TLS hangs like this: "
        hint += "use redis:// if the server has no TLS)"
    return f"Redis at {target} timed out: {exc}{hint}"


def _closed_under_us(exc: AttributeError) -> bool:
    """redis-py's asyncio cluster client closes a node's connections on a connection
    error, also those other tasks are using at that moment: their next write or read
    finds the stream gone (``'NoneType' object has no attribute 'writelines'``). That
    is the server being unreachable, as the other calls see it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_filename if tb is not None else ""
    return "'NoneType' object has no attribute" in str(exc) and (
        f"{os.sep}redis{os.sep}" in where
    )


_WRAPPED = (rex.RedisError, rex.RedisClusterException, OSError, AttributeError)
_FAILURES = (*_WRAPPED, errors.RedkitError)


def _boundary(exc: BaseException, target: str) -> errors.RedkitError:
    """The wrapped error, chained to the original so tracebacks still show it."""
    wrapped = wrap_error(exc, target)
    if wrapped is not exc:
        wrapped.__cause__ = exc
    return wrapped


def _thrown(exc: BaseException, effect: Effect, target: str) -> BaseException:
    """What the flow receives when ``effect`` raised ``exc``: user code's errors as they are."""
    if isinstance(exc, AttributeError) and not _closed_under_us(exc):
        return exc
    if isinstance(exc, _WRAPPED) and type(effect) is not UserCall:
        return _boundary(exc, target)
    return exc


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

    On a synchronous cluster each script names the primary of its slot: without that,
    redis-py's cluster pipeline asks the server for a script's keys (``COMMAND
    GETKEYS``, one round trip per script) before it sends the batch. A stale slot map is
    answered MOVED, and redis-py then resends the call by its keys.
    """
    pipe = client.pipeline(transaction=False)
    cluster = isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster))
    route = isinstance(client, redis.cluster.RedisCluster)
    loaded: set[tuple[str, int]] = set()
    for effect in batch.effects:
        if isinstance(effect, Call):
            pipe.execute_command(*effect.args)
            continue
        slot = key_slot(effect.keys[0].encode()) if cluster and effect.keys else 0
        options = (
            {"target_nodes": client.nodes_manager.get_node_from_slot(slot)}
            if route and effect.keys
            else {}
        )
        if (effect.script.sha, slot) in loaded:
            pipe.execute_command("EVALSHA", effect.script.sha, *_eval_args(effect), **options)
        else:
            loaded.add((effect.script.sha, slot))
            pipe.execute_command("EVAL", effect.script.source, *_eval_args(effect), **options)
    return pipe


_UNREACHED = (rex.ConnectionError, rex.TimeoutError, rex.ClusterError, OSError)


def _batch_replies(replies: list[Any]) -> list[Any]:
    """Error replies as :class:`~redkit.errors.RedisCommandError` values; a node that could
    not be reached (a timeout, a dropped connection) raises instead: that is no reply."""
    out: list[Any] = []
    for reply in replies:
        if isinstance(reply, _UNREACHED):
            raise reply
        if isinstance(reply, Exception):
            error = errors.RedisCommandError(str(reply))
            error.__cause__ = reply  # the reply's class tells what it was (READONLY ...)
            reply = error
        out.append(reply)
    return out


def _queue_block(client: Any, args: tuple[EncodableT, ...], then: Eval) -> Any:
    """A pipeline with a blocking command and the script that rides behind it (see
    :class:`Block`); on a cluster both name the primary of the script's slot (see
    :func:`_queue_batch`; the asyncio cluster pipeline too would ask the server for the
    keys of a command that names them after a keyword, as ``XREAD`` does)."""
    pipe = client.pipeline(transaction=False)
    options: dict[str, Any] = {}
    cluster = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)
    if isinstance(client, cluster) and then.keys:
        slot = key_slot(then.keys[0].encode())
        options["target_nodes"] = client.nodes_manager.get_node_from_slot(slot)
    pipe.execute_command(*args, **options)
    pipe.execute_command(*then.command, **options)
    return pipe


def _block_replies(replies: list[Any]) -> tuple[Any, Any]:
    """The replies of :func:`_queue_block`: the command's error raised (as a lone blocking
    command's is), the script's error reply as a value."""
    if isinstance(replies[0], Exception):
        raise replies[0]
    reply, after = _batch_replies(list(replies))
    return reply, after


def _name(effect: Effect) -> str:
    """An effect's name for observers."""
    if isinstance(effect, Call):
        name = effect.args[0]
        return name.decode() if isinstance(name, bytes) else str(name).upper()
    if isinstance(effect, Eval):
        return f"script {effect.script.name}"
    if isinstance(effect, UserCall):
        return f"call {getattr(effect.func, '__qualname__', repr(effect.func))}"
    if isinstance(effect, Block):
        return str(effect.command(0)[0])
    if isinstance(effect, Note):
        return effect.name
    if isinstance(effect, Batch):  # named by its first script: metrics file it by capability
        first = next((e for e in effect.effects if isinstance(e, Eval)), None)
        return "batch" if first is None else f"batch {first.script.name}"
    return "sleep"


def _none(*args: Any) -> Any:
    """The command path of a driver made without a client (one that only reports)."""
    raise errors.ConfigError("this driver has no client to run commands on")


class _Driver:
    """What both drivers share: the client, the target's name, observers, the blocker."""

    __slots__ = ("_execute", "blocker", "client", "observers", "target")

    def __init__(
        self,
        client: Any,
        target: str = "redis",
        observers: Sequence[Observer] = (),
        blocker: Blocker | None = None,
        execute: Callable[..., Any] | None = None,
    ) -> None:
        self.client = client
        self.target = target
        self.observers = observers
        self.blocker = blocker or Blocker(lambda: client, 1.0)
        self._execute: Callable[..., Any] = (
            getattr(client, "execute_command", _none) if execute is None else execute
        )

    def _block_args(self, effect: Block) -> tuple[EncodableT, ...]:
        return effect.command(max(MIN_BLOCK, min(effect.timeout, self.blocker.max_block)))

    def _report(
        self, effect: Effect, started: float, error: BaseException | None, reply: Any = None
    ) -> None:
        data = effect.data if isinstance(effect, Note) else None
        events = [Event(_name(effect), time.perf_counter() - started, error, effect, data)]
        if type(effect) is Block and effect.then is not None:  # the script behind the wait
            after = error
            if after is None and isinstance(reply[1], Exception):  # its error reply, a value
                after = reply[1]
            events.append(Event(_name(effect.then), 0.0, after, effect.then))
        for event in events:
            for observer in self.observers:
                try:
                    observer(event)
                except Exception:  # an observer must never break the call it watches
                    log.exception("redkit observer %r failed", observer)


# --- sync driver ---------------------------------------------------------------------


def _sync_eval(execute: Callable[..., Any], effect: Eval) -> Any:
    try:
        return execute(*effect.command)
    except rex.NoScriptError:
        return execute("EVAL", effect.script.source, *effect.command[2:])


def _sync_block_then(client: Any, args: tuple[EncodableT, ...], then: Eval) -> tuple[Any, Any]:
    replies = _queue_block(client, args, then).execute(raise_on_error=False)
    # a flushed script cache: run it (and load it) now, unless the wait failed
    if not isinstance(replies[0], Exception) and _is_noscript(replies[1]):
        try:
            replies[1] = client.execute_command("EVAL", then.script.source, *then.command[2:])
        except rex.ResponseError as exc:  # an error reply: a value, as it would have been
            replies[1] = exc
    return _block_replies(replies)


def _sync_batch(client: Any, batch: Batch) -> list[Any]:
    pipe = _queue_batch(client, batch)
    replies = pipe.execute(raise_on_error=False)
    for i, (effect, reply) in enumerate(zip(batch.effects, replies, strict=True)):
        if isinstance(effect, Eval) and _is_noscript(reply):
            replies[i] = _sync_eval(client.execute_command, effect)
    return _batch_replies(replies)


class Driver(_Driver):
    """Runs flows on a synchronous redis-py client.

    ``execute`` runs one command: the client's ``execute_command``, or the same steps
    without redis-py's per-command observability (:mod:`redkit.direct`). Batches and
    blocking waits always take the client itself.
    """

    __slots__ = ()

    def effect(self, effect: Effect) -> Any:
        """Run one effect; redis-py's errors come out as redkit errors, user code's as is."""
        if not self.observers:
            return self._effect(effect)
        started = time.perf_counter()
        try:
            reply = self._effect(effect)
        except BaseException as exc:
            self._report(effect, started, exc)
            raise
        self._report(effect, started, None, reply)
        return reply

    def _effect(self, effect: Effect) -> Any:
        if isinstance(effect, UserCall):
            return effect.func(*effect.args)
        try:
            if isinstance(effect, Eval):  # the most common effect first
                return _sync_eval(self._execute, effect)
            if isinstance(effect, Call):
                return self._execute(*effect.args)
            if isinstance(effect, Batch):
                return _sync_batch(self.client, effect)
            if isinstance(effect, Block):
                try:
                    if effect.then is not None:
                        args = self._block_args(effect)
                        return _sync_block_then(self.blocker.client, args, effect.then)
                    return self.blocker.client.execute_command(*self._block_args(effect))
                except rex.ConnectionError:
                    self.blocker.refresh()
                    raise
        except _WRAPPED as exc:
            raise _boundary(exc, self.target) from exc
        if isinstance(effect, Note):
            return None
        time.sleep(effect.seconds)
        return None

    def run(self, flow: Flow[T] | Once[T]) -> T:
        """Drive ``flow`` and return its result."""
        if isinstance(flow, Once):
            return self._run_once(flow)
        reply: Any = None
        error: BaseException | None = None
        execute, observed = self._execute, bool(self.observers)
        while True:
            try:
                effect = flow.send(reply) if error is None else flow.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            error = None
            try:
                if observed:
                    reply = self.effect(effect)
                elif type(effect) is Call:  # the common effects, inline
                    reply = execute(*effect.args)
                elif type(effect) is Eval:
                    reply = _sync_eval(execute, effect)
                else:
                    reply = self.effect(effect)
            except BaseException as exc:  # thrown into the flow, which may clean up
                error = _thrown(exc, effect, self.target)

    def _run_once(self, once: Once[T]) -> T:
        effect = once.effect
        try:
            if self.observers:
                reply = self.effect(effect)
            elif type(effect) is Eval:
                reply = _sync_eval(self._execute, effect)
            elif type(effect) is Call:
                reply = self._execute(*effect.args)
            else:
                reply = self.effect(effect)
        except _FAILURES as exc:
            error = _boundary(exc, self.target)
            if once.fail is None:
                raise error from exc
            return once.fail(error)
        return once.finish(reply)


def run(client: redis.Redis | Any, flow: Flow[T] | Once[T], target: str = "redis") -> T:
    """Drive ``flow`` on a synchronous client and return its result."""
    return Driver(client, target).run(flow)


# --- async driver --------------------------------------------------------------------


async def _async_eval(execute: Callable[..., Any], effect: Eval) -> Any:
    try:
        return await execute(*effect.command)
    except rex.NoScriptError:
        return await execute("EVAL", effect.script.source, *effect.command[2:])


async def _async_block_then(
    client: Any, args: tuple[EncodableT, ...], then: Eval
) -> tuple[Any, Any]:
    replies = await _queue_block(client, args, then).execute(raise_on_error=False)
    # a flushed script cache: run it (and load it) now, unless the wait failed
    if not isinstance(replies[0], Exception) and _is_noscript(replies[1]):
        source, rest = then.script.source, then.command[2:]
        try:
            replies[1] = await client.execute_command("EVAL", source, *rest)
        except rex.ResponseError as exc:  # an error reply: a value, as it would have been
            replies[1] = exc
    return _block_replies(replies)


async def _async_batch(client: Any, batch: Batch) -> list[Any]:
    pipe = _queue_batch(client, batch)
    replies = await pipe.execute(raise_on_error=False)
    for i, (effect, reply) in enumerate(zip(batch.effects, replies, strict=True)):
        if isinstance(effect, Eval) and _is_noscript(reply):
            replies[i] = await _async_eval(client.execute_command, effect)
    return _batch_replies(list(replies))


async def _user_call(effect: UserCall) -> Any:
    if effect.thread:
        return await asyncio.to_thread(effect.func, *effect.args)
    result = effect.func(*effect.args)
    if inspect.isawaitable(result):
        return await result
    return result


class AsyncDriver(_Driver):
    """Runs flows on an asyncio redis-py client.

    ``execute`` runs one command: the client's ``execute_command``, or an auto-pipeline's
    (:mod:`redkit.autopipe`) that batches the commands and scripts of concurrent flows.
    Batches and blocking waits always take the client itself.
    """

    __slots__ = ()

    async def effect(self, effect: Effect) -> Any:
        """Run one effect; redis-py's errors come out as redkit errors, user code's as is."""
        if not self.observers:
            return await self._effect(effect)
        started = time.perf_counter()
        try:
            reply = await self._effect(effect)
        except BaseException as exc:
            self._report(effect, started, exc)
            raise
        self._report(effect, started, None, reply)
        return reply

    async def _effect(self, effect: Effect) -> Any:
        if isinstance(effect, UserCall):
            return await _user_call(effect)
        try:
            if isinstance(effect, Eval):  # the most common effect first
                return await _async_eval(self._execute, effect)
            if isinstance(effect, Call):
                return await self._execute(*effect.args)
            if isinstance(effect, Batch):
                return await _async_batch(self.client, effect)
            if isinstance(effect, Block):
                # redis-py discards a connection whose read is cancelled, so a cancelled
                # wait cannot leave a half-read reply behind for the next user
                client, args = await self.blocker.aclient(), self._block_args(effect)
                if effect.then is not None:
                    return await _async_block_then(client, args, effect.then)
                return await client.execute_command(*args)
        except _WRAPPED as exc:
            raise _boundary(exc, self.target) from exc
        if isinstance(effect, Note):
            return None
        await asyncio.sleep(effect.seconds)
        return None

    async def run(self, flow: Flow[T] | Once[T]) -> T:
        """Drive ``flow`` and return its result."""
        if isinstance(flow, Once):
            return await self._run_once(flow)
        reply: Any = None
        error: BaseException | None = None
        execute, observed = self._execute, bool(self.observers)
        while True:
            try:
                effect = flow.send(reply) if error is None else flow.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            error = None
            try:
                if observed:
                    reply = await self.effect(effect)
                elif type(effect) is Call:  # the common effects, inline
                    reply = await execute(*effect.args)
                elif type(effect) is Eval:
                    reply = await _async_eval(execute, effect)
                else:
                    reply = await self.effect(effect)
            except BaseException as exc:  # thrown into the flow, which may clean up
                error = _thrown(exc, effect, self.target)

    async def _run_once(self, once: Once[T]) -> T:
        effect = once.effect
        try:
            if self.observers:
                reply = await self.effect(effect)
            elif type(effect) is Eval:
                reply = await _async_eval(self._execute, effect)
            elif type(effect) is Call:
                reply = await self._execute(*effect.args)
            else:
                reply = await self.effect(effect)
        except _FAILURES as exc:
            error = _boundary(exc, self.target)
            if once.fail is None:
                raise error from exc
            return once.fail(error)
        return once.finish(reply)


async def arun(client: Any, flow: Flow[T] | Once[T], target: str = "redis") -> T:
    """Drive ``flow`` on an asyncio client and return its result."""
    return await AsyncDriver(client, target).run(flow)
