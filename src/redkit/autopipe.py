"""Auto-pipelining for the async driver: concurrent calls share one write and one read.

With 50 tasks each awaiting a command on a pooled connection, most of the cost is one
``write`` and one ``read`` system call per command on both sides. :class:`AutoPipeline`
sends the commands that tasks issue in the same event-loop iteration as one write on one
shared connection (a *lane*; one per cluster node) and hands the replies back in order:

- a caller alone (nothing queued, nothing in flight) is written at once, so one task
  pays no batching delay; calls that arrive while replies are outstanding are queued and
  written together at the end of the current loop iteration (``call_soon``);
- each caller gets its own reply, or its own error reply raised as redis-py raises it
  (the driver turns it into a :mod:`redkit.errors` error);
- a cancelled caller's command is dropped if it was not written yet, and its reply is
  read and discarded if it was, so the reply stream never shifts;
- a lane whose connection drops or times out fails only the calls in flight on it, and
  only when the client does not retry: with retries, those calls (and every call not yet
  written) run again on the client's own path, as they would have without pipelining;
- a redirection (``MOVED``, ``ASK``, ``TRYAGAIN``, ``CLUSTERDOWN``) or a ``LOADING`` reply
  runs that one call again on the client's own path, which follows the redirect or
  waits; a ``READONLY`` reply (a failover) retires the lane, so the next calls connect
  anew.

What never goes through a lane: blocking commands, pub/sub, transactions and commands
that change the connection's state (:data:`NEVER`), commands whose keys a cluster client
cannot place on one node, and every :class:`~redkit.ops.Block` and ``Batch`` effect (the
driver sends those itself). A client that does not use redis-py's hiredis parser, or a
Sentinel client (whose connections find the master on connect), is not pipelined.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
import redis.exceptions as rex
from redis.crc import key_slot

#: Commands that never go through a lane: they block, subscribe, open a transaction or
#: change the state of the connection they run on.
NEVER = frozenset(
    {
        "AUTH", "BLMOVE", "BLMPOP", "BLPOP", "BRPOP", "BRPOPLPUSH", "BZMPOP", "BZPOPMAX",
        "BZPOPMIN", "CLIENT", "DISCARD", "EXEC", "HELLO", "MONITOR", "MULTI", "PSUBSCRIBE",
        "PUNSUBSCRIBE", "QUIT", "READONLY", "READWRITE", "RESET", "SELECT", "SSUBSCRIBE",
        "SUBSCRIBE", "SUNSUBSCRIBE", "SYNC", "PSYNC", "UNSUBSCRIBE", "UNWATCH", "WAIT",
        "WAITAOF", "WATCH", "XREAD", "XREADGROUP", "SHUTDOWN", "DEBUG", "FAILOVER",
    }
)  # fmt: skip

#: Commands whose first key is their first argument and whose keys (if several) follow
#: it: a cluster lane is picked from that key's slot. Others take the client's own path
#: on a cluster.
_KEYED = frozenset(
    {
        "APPEND", "DECR", "DECRBY", "DEL", "EXISTS", "EXPIRE", "EXPIREAT", "GET", "GETDEL",
        "GETEX", "GETRANGE", "GETSET", "HDEL", "HEXISTS", "HGET", "HGETALL", "HINCRBY",
        "HINCRBYFLOAT", "HKEYS", "HLEN", "HMGET", "HMSET", "HSET", "HSETNX", "HVALS",
        "INCR", "INCRBY", "INCRBYFLOAT", "LINDEX", "LLEN", "LPOP", "LPUSH", "LRANGE",
        "LREM", "LTRIM", "MGET", "PERSIST", "PEXPIRE", "PEXPIREAT", "PTTL", "RPOP",
        "RPUSH", "SADD", "SCARD", "SET", "SETEX", "SETNX", "SISMEMBER", "SMEMBERS",
        "SREM", "STRLEN", "TOUCH", "TTL", "TYPE", "UNLINK", "XACK", "XADD", "XDEL",
        "XLEN", "XRANGE", "XREVRANGE", "XTRIM", "ZADD", "ZCARD", "ZCOUNT", "ZINCRBY",
        "ZRANGE", "ZRANGEBYSCORE", "ZREM", "ZREMRANGEBYSCORE", "ZREVRANGE", "ZSCORE",
        "PFADD", "PFCOUNT",
    }
)  # fmt: skip
_MULTI_KEY = frozenset({"DEL", "EXISTS", "MGET", "TOUCH", "UNLINK", "PFCOUNT"})

#: Error replies that a call answers by running again on the client's own path (which
#: follows a redirection or waits out a loading server); nothing ran on the server.
_AGAIN_REPLIES: tuple[type[BaseException], ...] = (
    rex.MovedError,
    rex.AskError,
    rex.TryAgainError,
    rex.ClusterDownError,
    rex.ConnectionError,  # LOADING (BusyLoadingError) and the like
)
_RETIRE_REPLIES = (rex.ReadOnlyError,)

#: A sentinel result: run this call on the client's own path.
AGAIN: Any = object()
#: How long a lane that failed to connect stays closed; calls take the client's path.
_BROKEN_FOR = 1.0
#: a lane's wait for a reply when the client sets no socket timeout
_NO_TIMEOUT = 3600.0

_HiredisParser: Any = None
_NOT_ENOUGH: Any = object()
_PUSH: Any = None
with contextlib.suppress(ImportError):  # hiredis < 3.2 has no push type
    from hiredis import PushNotification as _PUSH
_hiredis_pack: Any = None
with contextlib.suppress(ImportError):
    from hiredis import pack_command as _hiredis_pack
try:  # the parser whose reader a lane takes over, and the reader's "incomplete" sentinel
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH
    from redis._parsers.hiredis import _AsyncHiredisParser as _HiredisParser
except ImportError:  # pragma: no cover - a redis-py without that module: no pipelining
    pass


class _Entry:
    __slots__ = ("args", "future")

    def __init__(self, args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        self.args = args
        self.future = future


class Lane(asyncio.Protocol):
    """One connection: batches go out as one write, replies come back in order."""

    def __init__(self, owner: AutoPipeline, node: Any) -> None:
        self.owner = owner
        self.node = node  # the cluster node (None on a standalone server)
        self.loop = owner.loop
        self.pending: list[_Entry] = []
        self.inflight: deque[_Entry] = deque()
        self.open = False  # connected: writes go straight to the transport
        self.closed = False
        self.retiring = False
        self.scheduled = False
        self._transport: Any = None
        self._writer: Any = None  # keeps asyncio's StreamWriter (which closes on GC) alive
        self._reader: Any = None
        self._pack: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._progress = 0.0
        self.gone: asyncio.Future[None] = self.loop.create_future()  # the socket is closed
        self._connecting = self.loop.create_task(self._connect())

    # --- submitting ------------------------------------------------------------------

    def submit(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue ``args``; the future gets the reply (or :data:`AGAIN`)."""
        future = self.loop.create_future()
        pending = self.pending
        pending.append(_Entry(args, future))
        if self.open and not self.scheduled:
            if self.inflight or len(pending) > 1:
                self.scheduled = True
                self.loop.call_soon(self.flush)
            else:  # alone: no batching delay
                self.flush()
        return future

    def flush(self) -> None:
        """Write every queued call that is still wanted, as one write."""
        self.scheduled = False
        batch, self.pending = self.pending, []
        if not self.open:  # lost meanwhile: connection_lost handed these back
            _again(batch)
            return
        pack, parts, inflight = self._pack, [], self.inflight
        was_idle, written = not inflight, len(inflight)
        for entry in batch:
            if entry.future.done():  # cancelled before it was written: never sent
                continue
            try:
                parts.extend(pack(*entry.args))
            except Exception as exc:  # an argument redis-py cannot encode
                entry.future.set_exception(exc)
                continue
            inflight.append(entry)
        written = len(inflight) - written
        if not parts:
            return
        self._transport.write(b"".join(parts))
        self.owner.writes += 1
        self.owner.commands += written
        if was_idle:
            self._progress = self.loop.time()
            if self._timer is None:
                self._timer = self.loop.call_at(
                    self._progress + self.owner.timeout, self._check_timeout
                )

    # --- the connection --------------------------------------------------------------

    async def _connect(self) -> None:
        conn = None
        try:
            conn = self.owner.make_connection(self.node)
            await conn.connect()
            parser = conn._parser
            if _HiredisParser is None or not isinstance(parser, _HiredisParser):
                raise _NotPipelinable
            writer, stream = conn._writer, conn._reader
            self._reader, self._pack, self._writer = parser._reader, _packer(conn), writer
            self._transport = writer.transport
            leftover = bytes(getattr(stream, "_buffer", b""))
            if leftover:
                self._reader.feed(leftover)
            conn._reader = conn._writer = None  # the lane owns the socket from here
            self._transport.set_protocol(self)
        except _NotPipelinable:
            self.owner.disable()
            self._give_up(conn)
            return
        except asyncio.CancelledError:  # closed while connecting
            self._give_up(conn)
            return
        except Exception:  # the client's own path reports it (and retries)
            self.owner.broken_until = self.loop.time() + _BROKEN_FOR
            self._give_up(conn)
            return
        if self.closed:  # closed while connecting
            self._transport.close()
            return
        self.open = True
        if self.pending and not self.scheduled:
            self.flush()

    def _give_up(self, conn: Any) -> None:
        self.closed = True
        self._mark_gone()
        self.owner.lane_closed(self)
        if conn is not None and conn._writer is not None:
            conn._writer.transport.close()
            conn._reader = conn._writer = None
        pending, self.pending = self.pending, []
        _again(pending)

    def data_received(self, data: bytes) -> None:
        reader, inflight = self._reader, self.inflight
        reader.feed(data)
        self._progress = self.loop.time()
        callbacks = self.owner.callbacks
        while True:
            reply = reader.gets()
            if reply is _NOT_ENOUGH:
                break
            if _PUSH is not None and type(reply) is _PUSH:  # RESP3 push: nobody's reply
                continue
            if not inflight:  # a reply nobody asked for: the stream cannot be trusted
                self._lost(rex.InvalidResponse("an unexpected reply on a pipelined connection"))
                return
            entry = inflight.popleft()
            future = entry.future
            if future.done():  # its caller was cancelled: the reply is dropped
                continue
            if isinstance(reply, Exception):
                self._error_reply(future, reply)
                continue
            callback = callbacks.get(entry.args[0])
            if callback is not None:
                try:
                    reply = callback(reply)
                except Exception as exc:
                    future.set_exception(exc)
                    continue
            future.set_result(reply)
        if self.retiring and not inflight:
            self.close()

    def _error_reply(self, future: asyncio.Future[Any], reply: Exception) -> None:
        if isinstance(reply, _AGAIN_REPLIES):
            future.set_result(AGAIN)
            return
        if isinstance(reply, _RETIRE_REPLIES):
            self.retire()
        future.set_exception(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._mark_gone()
        if not self.closed:
            self._lost(rex.ConnectionError(f"connection lost ({exc or 'closed by the server'})"))

    def _check_timeout(self) -> None:
        self._timer = None
        if self.closed or not self.inflight:
            return
        waited = self.loop.time() - self._progress
        timeout = self.owner.timeout
        if waited >= timeout:
            self._lost(rex.TimeoutError(f"no reply within {timeout}s"))
        else:
            self._timer = self.loop.call_later(timeout - waited, self._check_timeout)

    def _lost(self, error: BaseException) -> None:
        """The connection is gone: calls in flight fail (or run again), queued ones run again."""
        self.close()
        inflight, self.inflight = self.inflight, deque()
        retry = self.owner.retry
        for entry in inflight:
            if entry.future.done():
                continue
            if retry:
                entry.future.set_result(AGAIN)
            else:
                entry.future.set_exception(type(error)(*error.args))

    def retire(self) -> None:
        """Send nothing more here; close once the replies in flight are read."""
        self.retiring = True
        self.owner.lane_closed(self)

    def close(self) -> None:
        """Close the connection; queued calls run on the client's own path."""
        if self.closed:
            return
        self.closed, self.open = True, False
        self.owner.lane_closed(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
        elif not self._connecting.done():
            self._connecting.cancel()
            self._connecting.add_done_callback(self._mark_gone)
        pending, self.pending = self.pending, []
        _again(pending)

    def _mark_gone(self, _: object = None) -> None:
        if not self.gone.done():
            self.gone.set_result(None)

    def abandon(self) -> None:
        """Drop the connection of a closed event loop (no callbacks can run there)."""
        self.closed, self.open = True, False
        transport, self._transport = self._transport, None
        if transport is not None:
            _drop_transport(transport)


class _NotPipelinable(Exception):
    pass


def _packer(conn: Any) -> Any:
    """``conn.pack_command``, or hiredis's packer where it writes the same bytes: five
    times faster for a script call with a few hundred arguments (a worker's report of its
    finished jobs). redis-py's asyncio connection packs in Python; its sync one already
    uses hiredis. Other encodings, a command name with a space, and arguments hiredis
    refuses (a bool: redis-py raises its own error) take redis-py's path."""
    slow = conn.pack_command
    encoder = conn.encoder
    if _hiredis_pack is None or (encoder.encoding, encoder.encoding_errors) != ("utf-8", "strict"):
        return slow

    def pack(*args: Any) -> Any:
        name = args[0]
        if type(name) is str and " " not in name:
            try:
                return (_hiredis_pack(args),)
            except TypeError:
                pass
        return slow(*args)

    return pack


def _drop_transport(transport: Any) -> None:
    # asyncio has no public way to close a transport whose loop is closed (close()
    # schedules the socket's close on that loop); these are the stdlib transports' fields
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    if inner is not None:  # TLS wraps a socket transport
        _drop_transport(inner)
    for flag in ("_closed", "_closing"):
        if hasattr(transport, flag):
            setattr(transport, flag, True)
    sock = getattr(transport, "_sock", None)
    if sock is not None:
        transport._sock = None
        sock.close()


def _again(entries: list[_Entry]) -> None:
    for entry in entries:
        if not entry.future.done():
            entry.future.set_result(AGAIN)


class AutoPipeline:
    """The lanes of one asyncio client on one event loop (one per node on a cluster).

    ``retry``: whether calls in flight on a lost connection run again (the client
    retries) or fail. ``timeout``: how long a lane waits for a reply (the socket timeout).
    """

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        retry = client.retry if hasattr(client, "retry") else client.get_retry()
        self.retry = retry is not None and retry.get_retries() != 0
        kwargs = (
            client.nodes_manager.connection_kwargs
            if isinstance(client, redis.asyncio.cluster.RedisCluster)
            else client.connection_pool.connection_kwargs
        )
        self.timeout = kwargs.get("socket_timeout") or _NO_TIMEOUT
        self.callbacks = client.response_callbacks
        self.cluster = isinstance(client, redis.asyncio.cluster.RedisCluster)
        self.enabled = True
        self.broken_until = 0.0
        #: writes made and commands sent through the lanes (commands / writes = batch size)
        self.writes = 0
        self.commands = 0
        self._lane: Lane | None = None  # standalone
        self._lanes: dict[str, Lane] = {}  # cluster: by node name
        self._all: set[Lane] = set()

    # --- routing ---------------------------------------------------------------------

    async def execute(self, *args: Any) -> Any:
        """Run one command, pipelined with the others of this loop iteration when it may be."""
        lane = self._route(args)
        if lane is not None:
            reply = await lane.submit(args)
            if reply is not AGAIN:
                return reply
        return await self.client.execute_command(*args)

    def _route(self, args: tuple[Any, ...]) -> Lane | None:
        if not self.enabled:
            return None
        name = args[0]
        if not isinstance(name, str) or name.upper() in NEVER:
            return None
        if self.cluster:
            return self._cluster_lane(name.upper(), args)
        lane = self._lane
        if lane is not None and not lane.closed and not lane.retiring:
            return lane
        return self._new_lane(None)

    def _cluster_lane(self, name: str, args: tuple[Any, ...]) -> Lane | None:
        if name in ("EVALSHA", "EVAL"):
            numkeys = int(args[2])
            if numkeys < 1:
                return None
            keys = args[3 : 3 + numkeys]
        elif name in _KEYED and len(args) > 1:
            keys = args[1:] if name in _MULTI_KEY else args[1:2]
        else:
            return None
        slot = _slot(keys[0])
        if any(_slot(key) != slot for key in keys[1:]):
            return None  # let the client raise its cross-slot error
        node = self.client.nodes_manager.get_node_from_slot(slot)
        lane = self._lanes.get(node.name)
        if lane is not None and not lane.closed and not lane.retiring:
            return lane
        return self._new_lane(node)

    def _new_lane(self, node: Any) -> Lane | None:
        if self.loop.time() < self.broken_until:
            return None
        lane = Lane(self, node)
        self._all.add(lane)
        if node is None:
            self._lane = lane
        else:
            self._lanes[node.name] = lane
        return lane

    def make_connection(self, node: Any) -> Any:
        """A new connection like the client's own (not counted in its pool)."""
        if node is None:
            pool = self.client.connection_pool
            return pool.connection_class(**pool.connection_kwargs)
        kwargs = {**node.connection_kwargs, "retry": _no_retry()}
        return node.connection_class(**kwargs)

    def lane_closed(self, lane: Lane) -> None:
        if self._lane is lane:
            self._lane = None
        if lane.node is not None and self._lanes.get(lane.node.name) is lane:
            del self._lanes[lane.node.name]
        if lane.closed:
            self._all.discard(lane)

    def disable(self) -> None:
        """This client cannot be pipelined (no hiredis parser): every call takes its path."""
        self.enabled = False

    def lanes(self) -> int:
        """How many lanes are open (for tests and stats)."""
        return sum(1 for lane in self._all if not lane.closed)

    async def aclose(self) -> None:
        """Close every lane (calls still queued run on the client's own path)."""
        lanes = list(self._all)
        self._all.clear()
        self.enabled = False
        for lane in lanes:
            lane.close()
        gone = [lane.gone for lane in lanes if not lane.gone.done()]
        if gone:  # let the transports close their sockets on this loop
            await asyncio.wait(gone, timeout=1.0)

    def abandon(self) -> None:
        """Drop every lane's socket after the event loop was closed."""
        for lane in list(self._all):
            lane.abandon()
        self._all.clear()


def _slot(key: Any) -> int:
    return key_slot(key.encode() if isinstance(key, str) else bytes(key))


def _no_retry() -> Any:
    # as redis-py's cluster nodes do: the cluster client retries, the connection does not
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Retry(NoBackoff(), 0)


def supports(client: Any) -> bool:
    """Whether ``client`` can be auto-pipelined (standalone or cluster, hiredis parser)."""
    if _HiredisParser is None:
        return False
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        return True
    if not isinstance(client, redis.asyncio.Redis) or client.single_connection_client:
        return False
    pool = client.connection_pool
    return "Sentinel" not in type(pool).__name__
