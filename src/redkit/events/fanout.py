"""Fan-out subscriptions: :class:`Subscription` (sync) and :class:`AsyncSubscription`.

A subscription reads on connections of its own (never the pool's): RESP3, so that the
same connection can ask for the topics' sequence counters while subscribed. One loop on
the runtime (a thread, for both flavours) connects, subscribes (``SSUBSCRIBE`` on the
node owning each topic of a cluster), reads what arrives into a bounded buffer, pings
every ``heartbeat`` seconds and, when the connection drops, reconnects with backoff and
subscribes again. Right after each subscribe it reads each topic's counter on that
connection: every message numbered up to that value has either arrived before the reply
or was published while nobody listened, so a jump in the numbers becomes a :class:`Gap`
item, in order, with the missed range. The buffer holds at most ``buffer`` items; when
it is full the overflow policy drops the oldest or the newest (a gap, again, tells the
reader) or ends the subscription with :class:`~redkit.errors.SubscriptionOverflowError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import select
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import hiredis
import redis
from redis.crc import key_slot

from redkit import connection as rkconn
from redkit import runtime
from redkit.cache.near import endpoints
from redkit.errors import ConfigError, SubscriptionOverflowError
from redkit.events import ops as eops
from redkit.events.messages import Codec, Gap, InvalidMessageError, Message

if TYPE_CHECKING:
    from types import TracebackType

    from redkit.client import AsyncRedkitCore, RedkitCore
    from redkit.runtime import LoopContext

log = logging.getLogger("redkit.events")

Overflow = Literal["drop_oldest", "drop_newest", "disconnect"]
Item = Message | Gap
# raw items in the buffer: ("m", topic, seq, payload) or ("p", topic, counter)
Raw = tuple[Any, ...]
_PUSH_MESSAGE = {b"message", b"smessage"}
#: bytes read from a subscription's socket at a time
RECV = 1 << 16
#: the most messages read before they are handed to the buffer
BATCH = 1024
#: items moved from the buffer to the reading thread at a time (one lock for many)
HANDOVER = 64
_CONFIRM = {b"subscribe", b"ssubscribe", b"psubscribe"}


class _Buffer:
    """A bounded, thread-safe buffer with an overflow policy and a wake-up hook."""

    def __init__(self, size: int, policy: Overflow) -> None:
        self.size, self.policy = size, policy
        self.items: deque[Raw] = deque()
        self.cond = threading.Condition(threading.Lock())
        self.dropped = 0
        self.count = 0  # messages in ``items`` (counters do not count against ``size``)
        self.drops: dict[str, list[int]] = {}  # per topic: the range dropped, not yet reported
        self.error: BaseException | None = None
        self.closed = False
        #: called (outside the lock) by the first ``put`` after a ``take`` found nothing:
        #: one wake-up per burst, not per batch, while the reader keeps up
        self.wake: Callable[[], None] | None = None
        self.sleeping = False

    def put(self, batch: list[Raw], messages_only: bool = False) -> None:
        """Add ``batch`` (``messages_only``: the caller knows it holds no counters)."""
        with self.cond:
            if self.closed:
                return
            items = self.items
            if messages_only and self.count + len(batch) <= self.size:  # room for all
                items.extend(batch)
                self.count += len(batch)
                batch = []
            for raw in batch:
                if raw[0] == "p":
                    items.append(raw)
                elif self.count < self.size:
                    items.append(raw)
                    self.count += 1
                elif self.policy == "drop_oldest":
                    self._drop_oldest()
                    items.append(raw)
                    self.count += 1
                elif self.policy == "drop_newest":
                    self._drop(raw)
                else:
                    self.error = SubscriptionOverflowError(
                        f"the subscription's buffer of {self.size} items was full "
                        "(overflow='disconnect'); it is closed"
                    )
                    self.closed = True
                    break
            self.cond.notify()
            wake, self.sleeping = self.sleeping, False
        if wake and self.wake is not None:
            self.wake()

    def _drop_oldest(self) -> None:
        items, probes = self.items, []
        while items and items[0][0] == "p":  # counters stay: they anchor gap detection
            probes.append(items.popleft())
        if items:
            self._drop(items.popleft())
            self.count -= 1
        items.extendleft(reversed(probes))

    def _drop(self, raw: Raw) -> None:
        if raw[0] != "m":
            return
        self.dropped += 1
        seq, span = raw[2], self.drops.get(raw[1])
        if span is None:
            self.drops[raw[1]] = [seq, seq]
        else:
            span[0], span[1] = min(span[0], seq), max(span[1], seq)

    def take_drops(
        self, topic: str | None, before: int | None = None
    ) -> list[tuple[str, int, int]]:
        """Dropped ranges not yet reported (of ``topic``, or every topic when the buffer is
        empty), ending before ``before``; removed here."""
        with self.cond:
            if topic is None:
                if self.items or not self.drops:
                    return []
                found, self.drops = self.drops, {}
                return [(t, span[0], span[1]) for t, span in found.items()]
            span = self.drops.get(topic)
            if span is None or (before is not None and span[1] >= before):
                return []
            del self.drops[topic]
            return [(topic, span[0], span[1])]

    def take(self, timeout: float | None, into: deque[Raw]) -> bool:
        """Move up to :data:`HANDOVER` of the oldest items ``into`` the reader's queue,
        waiting up to ``timeout``; False when none came. Raises the buffer's error once
        it is empty."""
        with self.cond:
            items = self.items
            if not items and timeout != 0:
                self.cond.wait_for(lambda: self.items or self.closed, timeout)
            if 0 < len(items) <= HANDOVER:  # all of it: no per-item work under the lock
                into.extend(items)
                items.clear()
                self.count = 0
                return True
            if items:
                for _ in range(HANDOVER):
                    raw = items.popleft()
                    if raw[0] == "m":
                        self.count -= 1
                    into.append(raw)
                return True
            if self.error is not None:
                error, self.error = self.error, None
                raise error
            self.sleeping = True
            return False

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        if self.wake is not None:
            self.wake()


class _Link:
    """One RESP3 connection to one node, the channels subscribed on it, and its reader.

    redis-py's connection opens the socket (TLS, AUTH, ``HELLO 3``, the client name) and
    packs commands; replies are parsed here by a hiredis reader of our own, fed from the
    socket in large reads: per message, an order of magnitude less work than
    ``read_response``, which is what lets a subscriber keep up with a fast publisher.
    """

    __slots__ = ("conn", "named", "next_ping", "patterns", "ping_at", "reader", "sock")

    def __init__(self, conn: Any, named: list[tuple[str, str]], patterns: list[str]) -> None:
        self.conn, self.named, self.patterns = conn, named, patterns
        self.sock = conn._sock
        self.reader = hiredis.Reader()
        self.ping_at: float | None = None
        self.next_ping = 0.0

    def send(self, *commands: tuple[Any, ...]) -> None:
        self.conn.send_packed_command(self.conn.pack_commands(commands))

    def _fill(self, timeout: float | None) -> bool:
        """Read what the socket has (waiting up to ``timeout``); False when nothing came."""
        pending = getattr(self.sock, "pending", None)  # TLS: decrypted bytes select misses
        if not (pending and pending()) and timeout is not None:
            readable, _, _ = select.select([self.sock], [], [], timeout)
            if not readable:
                return False
        data = self.sock.recv(RECV)
        if not data:
            raise redis.ConnectionError("Connection closed by server.")
        self.reader.feed(data)
        return True

    def one(self, timeout: float) -> Any:
        """The next reply, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self.reader.gets()
            if reply is not False:
                return _checked(reply)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._fill(remaining):
                raise redis.TimeoutError("the server did not answer the subscription in time")

    def ready(self, limit: int) -> list[Any]:
        """Replies already received (at most ``limit``), without waiting."""
        out: list[Any] = []
        gets = self.reader.gets
        while len(out) < limit:
            reply = gets()
            if reply is False:
                if not self._fill(0):
                    break
                continue
            out.append(_checked(reply))
        return out


def _checked(reply: Any) -> Any:
    if isinstance(reply, hiredis.ReplyError):
        raise redis.ResponseError(str(reply))
    return reply


class _Reader:
    """The subscription's loop: connect, subscribe, probe the counters, read, ping."""

    def __init__(
        self,
        rk: RedkitCore | AsyncRedkitCore,
        topics: Sequence[str],
        patterns: Sequence[str],
        buffer: _Buffer,
        heartbeat: float,
    ) -> None:
        self.rk, self.buffer, self.heartbeat = rk, buffer, heartbeat
        self.sharded = rk.cluster
        self.prefix = eops.channel_prefix(rk.keys)
        self.channels = {eops.TopicKeys(rk.keys, t).channel: t for t in topics}
        self.by_channel = {channel.encode(): topic for channel, topic in self.channels.items()}
        self.reply_timeout = max(rk.settings.socket_timeout or 0, heartbeat * 2)
        self.patterns = [eops.pattern_channel(rk.keys, p) for p in patterns]
        if self.patterns and self.sharded:
            raise ConfigError(
                "pattern subscriptions need a standalone server: a cluster's sharded "
                "pub/sub has no patterns; subscribe by topic name there"
            )
        self.seen: set[str] = set()  # topics a pattern brought: probed after a reconnect
        self.client_name = f"redkit-events-{secrets.token_hex(4)}"
        self.links: list[_Link] = []
        self.ready = threading.Event()
        self.reconnects = 0
        self._connected_once = False
        self._wake, self._waker = socket.socketpair()
        self._wake.setblocking(False)
        # Sentinel: the pool's question "where is the primary?", asked again every
        # SENTINEL_CHECK; a subscriber reads and never writes, so no READONLY would tell
        # it that its server was demoted
        pool = getattr(rk.client, "connection_pool", None)
        locate = getattr(pool, "get_master_address", None)
        self._locate = None if inspect.iscoroutinefunction(locate) else locate
        self._located = time.monotonic()

    # --- the loop -------------------------------------------------------------------------

    def step(self, ctx: LoopContext) -> None:
        if self.buffer.closed:
            self._disconnect()
            ctx.wait(self.heartbeat)
            return
        try:
            if not self.links:
                self._connect()
            self._poll(self.heartbeat / 4)
        except BaseException:
            self._disconnect()
            raise

    def interrupt(self) -> None:
        with contextlib.suppress(OSError):
            self._waker.send(b"!")

    def close(self) -> None:
        self._disconnect()
        self._wake.close()
        self._waker.close()

    def _disconnect(self) -> None:
        links, self.links = self.links, []
        for link in links:
            with contextlib.suppress(Exception):
                link.conn.disconnect()

    # --- connecting -----------------------------------------------------------------------

    def _connect(self) -> None:
        params = endpoints(self.rk.client, self.rk.settings)
        plan = self._plan(params)
        links: list[_Link] = []
        try:
            for node, named in plan:
                conn = self._open(node)
                links.append(_Link(conn, named, self.patterns if not self.sharded else []))
            batch: list[Raw] = []
            for link in links:
                self._subscribe(link, batch)
            self.buffer.put(batch)
        except BaseException:
            for link in links:
                with contextlib.suppress(Exception):
                    link.conn.disconnect()
            raise
        self.links = links
        if self._connected_once:
            self.reconnects += 1
            log.info("events: subscription %s reconnected", self.client_name)
        self._connected_once = True
        self.ready.set()

    def _plan(
        self, params: list[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], list[tuple[str, str]]]]:
        """Which node serves which channels (every channel on the one node when standalone)."""
        named = list(self.channels.items())
        if not self.sharded:
            return [(params[0], named)]
        owners = self._slot_owners(params)
        by_node: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for channel, topic in named:
            by_node.setdefault(owners(key_slot(channel.encode())), []).append((channel, topic))
        nodes = {(str(p["host"]), int(p["port"])): p for p in params}
        return [(nodes.get(node) or {**params[0], "host": node[0], "port": node[1]}, chans)
                for node, chans in by_node.items()]  # fmt: skip

    def _slot_owners(self, params: list[dict[str, Any]]) -> Callable[[int], tuple[str, int]]:
        conn = self._open(params[0], subscribe=False)
        try:
            conn.send_command("CLUSTER", "SLOTS")
            ranges = conn.read_response()
        finally:
            conn.disconnect()
        table = [
            (int(r[0]), int(r[1]), (eops.text(r[2][0]) or str(params[0]["host"]), int(r[2][1])))
            for r in ranges
        ]

        def owner(slot: int) -> tuple[str, int]:
            for low, high, node in table:
                if low <= slot <= high:
                    return node
            raise redis.ConnectionError(f"no cluster node serves slot {slot}")

        return owner

    def _open(self, params: dict[str, Any], subscribe: bool = True) -> Any:
        params = dict(params)
        cls = params.pop("connection_class")
        params["socket_timeout"] = self.reply_timeout
        conn = cls(protocol=3, client_name=self.client_name, **params)
        conn.connect()
        return conn

    def _subscribe(self, link: _Link, batch: list[Raw]) -> None:
        verb = "SSUBSCRIBE" if self.sharded else "SUBSCRIBE"
        # one channel per command: sharded channels of one node may differ in slot
        commands: list[tuple[Any, ...]] = [(verb, channel) for channel, _ in link.named]
        if link.patterns:
            commands.append(("PSUBSCRIBE", *link.patterns))
        link.send(*commands)
        expected = len(link.named) + len(link.patterns)
        while expected:
            reply = link.one(self.reply_timeout)
            if isinstance(reply, list) and reply and reply[0] in _CONFIRM:
                expected -= 1
            else:
                self._handle(reply, batch)
        self._probe(link, batch)

    def _probe(self, link: _Link, batch: list[Raw]) -> None:
        """Read each topic's counter on the subscribed connection (see the module doc)."""
        topics = [topic for _, topic in link.named] + sorted(self.seen)
        if not topics:
            return
        link.send(*[("GET", eops.TopicKeys(self.rk.keys, t).seq) for t in topics])
        for topic in topics:
            while True:
                reply = link.one(self.reply_timeout)
                if not isinstance(reply, list):
                    break
                self._handle(reply, batch)
            batch.append(("p", topic, int(reply or 0)))

    # --- reading --------------------------------------------------------------------------

    def _follow(self, now: float) -> None:
        """Sentinel: leave a server that is no longer the primary (see ``_locate``)."""
        if self._locate is None or now - self._located < rkconn.SENTINEL_CHECK:
            return
        self._located = now
        try:
            host, port = self._locate()
        except rkconn.CONNECT_ERRORS as exc:  # go on with the server we have
            log.debug("events: could not ask the sentinels for the primary (%s)", exc)
            return
        conn = self.links[0].conn
        if (conn.host, int(conn.port)) != (host, int(port)):
            raise redis.ConnectionError(f"the primary moved to {host}:{port}; subscribing there")

    def _poll(self, timeout: float) -> None:
        now = time.monotonic()
        self._follow(now)
        for link in self.links:
            if link.ping_at is not None and now - link.ping_at > self.heartbeat:
                raise redis.TimeoutError("the subscription's heartbeat went unanswered")
            if link.ping_at is None and now >= link.next_ping:
                link.send(("PING",))
                link.ping_at = now
        batch: list[Raw] = []
        for link in self.links:
            self._drain(link, batch)
        if batch:
            self.buffer.put(batch, messages_only=True)
            return
        readable, _, _ = select.select(
            [self._wake, *(link.sock for link in self.links)], [], [], timeout
        )
        if self._wake in readable:
            with contextlib.suppress(OSError):
                self._wake.recv(64)

    def _drain(self, link: _Link, batch: list[Raw]) -> None:
        by_channel, append = self.by_channel, batch.append
        for reply in link.ready(BATCH):
            # the common case inline: a message on a named channel, "<seq> <payload>"
            if type(reply) is list and len(reply) == 3 and reply[0] in _PUSH_MESSAGE:
                topic, data = by_channel.get(reply[1]), reply[2]
                seq, _, payload = data.partition(b" ")
                if topic is not None and seq.isdigit():
                    append(("m", topic, int(seq), payload))
                    continue
            if not self._handle(reply, batch):  # the answer to our PING
                link.ping_at, link.next_ping = None, time.monotonic() + self.heartbeat

    def _handle(self, reply: Any, batch: list[Raw]) -> bool:
        """Queue a message; False when ``reply`` was not a push (a PONG)."""
        if not isinstance(reply, list) or not reply:
            return False
        kind = reply[0]
        if kind in _PUSH_MESSAGE:
            topic = self.by_channel.get(reply[1])
            if topic is None:
                return True
            data = reply[2]
        elif kind == b"sunsubscribe":  # never asked for: the node gave the slot up
            raise redis.ConnectionError(
                "the cluster node no longer serves the topic (failover or resharding); "
                "subscribing again where it went"
            )
        elif kind == b"pmessage":
            topic = eops.topic_of(eops.text(reply[2]), self.prefix)
            self.seen.add(topic)
            data = reply[3]
        else:
            return True
        try:
            seq, payload = eops.split(data)
        except ValueError:
            log.warning("events: a message on %r is not in redkit's format; skipped", topic)
            return True
        batch.append(("m", topic, seq, payload))
        return True


class _SubscriptionBase:
    """What both flavours share: the buffer, the reader on the runtime, gap tracking."""

    def __init__(
        self,
        rk: RedkitCore | AsyncRedkitCore,
        topics: Sequence[str],
        patterns: Sequence[str],
        codec: Codec,
        buffer: int,
        overflow: Overflow,
        heartbeat: float,
    ) -> None:
        if not topics and not patterns:
            raise ConfigError("subscribe to at least one topic or pattern")
        if not (isinstance(buffer, int) and buffer >= 1):
            raise ConfigError(f"buffer must be an int >= 1, got {buffer!r}")
        if overflow not in ("drop_oldest", "drop_newest", "disconnect"):
            raise ConfigError(
                f"overflow must be 'drop_oldest', 'drop_newest' or 'disconnect', got {overflow!r}"
            )
        if not heartbeat > 0:
            raise ConfigError(f"heartbeat must be a positive number of seconds, got {heartbeat!r}")
        self.topics, self.patterns = list(topics), list(patterns)
        self._codec = codec
        self._buffer = _Buffer(buffer, overflow)
        self._reader = _Reader(rk, topics, patterns, self._buffer, heartbeat)
        self._last: dict[str, int] = {}
        self._pending: deque[Item] = deque()
        self._local: deque[Raw] = deque()  # taken from the buffer, not yet read
        self.invalid = 0
        self._rk = rk
        self._name = f"events-{self._reader.client_name[-8:]}"
        self._runtime: runtime.Runtime | None = None
        self._start()

    def _start(self) -> None:
        reader, rk = self._reader, self._rk
        hooks: dict[str, Any] = {"cleanup": reader.close, "interrupt": reader.interrupt}
        if rkconn.is_async(rk.client):  # a thread runtime of its own, without a heartbeat
            self._runtime = runtime.Runtime(rk, heartbeat=None, drain_timeout=reader.heartbeat)
            self._runtime.add(self._name, reader.step, **hooks)
            self._runtime.start()
        else:
            self._runtime = runtime.share(cast("RedkitCore", rk), self._name, reader.step, **hooks)

    def _stop(self) -> None:
        self._buffer.close()
        if rkconn.is_async(self._rk.client):
            if self._runtime is not None:
                self._runtime.stop(self._reader.heartbeat)
        else:
            runtime.unshare(cast("RedkitCore", self._rk), self._name, self._reader.heartbeat)

    def resume(self, topic: str, seq: int) -> None:
        """Take ``seq`` as the last message of ``topic`` this reader saw (a browser's
        ``Last-Event-ID``): what was published after it is reported as a :class:`Gap`.
        Call it before reading."""
        self._last[topic] = seq

    @property
    def reconnects(self) -> int:
        """How many times the subscription lost its connection and subscribed again."""
        return self._reader.reconnects

    @property
    def dropped(self) -> int:
        """How many messages the overflow policy dropped."""
        return self._buffer.dropped

    @property
    def closed(self) -> bool:
        """True once the subscription is closed (by ``close`` or the overflow policy)."""
        return self._buffer.closed and not (self._buffer.items or self._local or self._pending)

    def _item(self, raw: Raw) -> Item | None:
        """The next item for the reader (a Gap may come first; the rest wait in ``_pending``)."""
        topic = raw[1]
        last = self._last.get(topic)
        if raw[0] == "m" and last is not None and raw[2] == last + 1 and not self._buffer.drops:
            seq = self._last[topic] = raw[2]  # the common case: the next one, nothing dropped
            try:
                return Message(topic, self._codec.decode(raw[3]), str(seq), seq)
            except InvalidMessageError as exc:
                self.invalid += 1
                log.warning("events: message %s of %r skipped: %s", seq, topic, exc)
                return None
        if raw[0] == "p":
            counter = raw[2]
            if last is not None and counter < last:
                # the numbering went back: the server lost writes (a failover discarding
                # what the old primary took, a deleted key); follow the server's numbers
                log.warning(
                    "events: %r's numbering went back from %d to %d (writes lost in a "
                    "failover?); what was published meanwhile cannot be reported",
                    topic, last, counter,
                )  # fmt: skip
                last = None
            self._last[topic] = counter if last is None else max(last, counter)
            if last is None or counter <= last:  # first subscribe, or nothing missed
                return None
            return Gap(topic, last + 1, counter, "reconnect")
        _, _, seq, payload = raw
        gaps = []
        dropped = self._buffer.take_drops(topic, before=seq) if self._buffer.drops else None
        if dropped:
            first = dropped[0][1] if last is None else max(last + 1, dropped[0][1])
            gaps.append(Gap(topic, first, seq - 1, "overflow"))
        elif last is not None and seq > last + 1:
            gaps.append(Gap(topic, last + 1, seq - 1, "reconnect"))
        self._last[topic] = seq if last is None else max(seq, last)
        message = self._decode(topic, seq, payload)
        if message is not None:
            gaps.append(message)  # type: ignore[arg-type]
        if not gaps:
            return None
        self._pending.extend(gaps[1:])
        return gaps[0]

    def _decode(self, topic: str, seq: int, payload: bytes) -> Message | None:
        try:
            return Message(topic, self._codec.decode(payload), str(seq), seq)
        except InvalidMessageError as exc:
            self.invalid += 1
            log.warning("events: message %s of %r skipped: %s", seq, topic, exc)
            return None

    def _trailing_drops(self) -> Item | None:
        """Gaps for messages dropped after everything still buffered (``drop_newest``)."""
        if not self._buffer.drops:
            return None
        for topic, first, last in self._buffer.take_drops(None):
            known = self._last.get(topic)
            if known is not None and last <= known:
                continue
            self._last[topic] = last
            start = first if known is None else max(first, known + 1)
            self._pending.append(Gap(topic, start, last, "overflow"))
        return self._pending.popleft() if self._pending else None

    def _next(self, timeout: float | None) -> Item | None:
        """The next item within ``timeout`` seconds (None: forever), else None."""
        if self._pending:
            return self._pending.popleft()
        local = self._local
        while local:  # what the last handover brought: no clock, no lock
            item = self._item(local.popleft())
            if item is not None:
                return item
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            while local:
                item = self._item(local.popleft())
                if item is not None:
                    return item
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._buffer.take(remaining, local):
                continue
            gap = self._trailing_drops()
            if gap is not None:
                return gap
            if self._buffer.closed or (deadline is not None and time.monotonic() >= deadline):
                return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(topics={self.topics!r}, patterns={self.patterns!r})"


class Subscription(_SubscriptionBase):
    """A fan-out subscription (sync): iterate it, ``get()`` from it, or ``start(callback)``.

    Built by ``rk.events.subscribe(...)`` or ``topic.subscribe()``; see the module doc
    for delivery, gaps and overflow. Iteration yields :class:`Message` and :class:`Gap`
    items until :meth:`close`.
    """

    _callback = False

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait until the first subscribe went through; False when ``timeout`` passed."""
        return self._reader.ready.wait(timeout)

    def get(self, timeout: float | None = None) -> Message | Gap | None:
        """The next item, waiting up to ``timeout`` seconds (None: until one arrives or
        the subscription closes); None when nothing came."""
        return self._next(timeout)

    def start(self, callback: Callable[[Message | Gap], Any]) -> None:
        """Call ``callback(item)`` for every item, in a thread on the runtime, until closed."""

        def step(ctx: LoopContext) -> None:
            item = self._next(0.25)
            if item is not None:
                callback(item)

        name = f"{self._name}-callback"
        if rkconn.is_async(self._rk.client):
            cast(runtime.Runtime, self._runtime).add(name, step)
        else:
            runtime.share(cast("RedkitCore", self._rk), name, step)
        self._callback = True

    def close(self) -> None:
        """Stop reading and close the connections."""
        if self._callback:
            self._callback = False
            if rkconn.is_async(self._rk.client):
                cast(runtime.Runtime, self._runtime).remove(f"{self._name}-callback", 1.0)
            else:
                runtime.unshare(cast("RedkitCore", self._rk), f"{self._name}-callback", 1.0)
        self._stop()

    def __iter__(self) -> Iterator[Message | Gap]:
        self.wait_ready()
        while True:
            item = self._next(None)
            if item is None:
                return
            yield item

    def __enter__(self) -> Subscription:
        self.wait_ready()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()


class AsyncSubscription(_SubscriptionBase):
    """A fan-out subscription for asyncio: ``async for item in sub``, ``await sub.get()``.

    The same as :class:`Subscription`; its reader is a thread too, handing items to the
    event loop.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            notify = self._notify

            def wake() -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed
                    loop.call_soon_threadsafe(notify)

            self._buffer.wake = wake
        return loop

    def _notify(self) -> None:
        """On the loop: the reader put items in the buffer; wake the waiting ``get``."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait until the first subscribe went through; False when ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while not self._reader.ready.is_set():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def get(self, timeout: float | None = None) -> Message | Gap | None:
        """The next item, waiting up to ``timeout`` seconds; None when nothing came."""
        if self._pending or self._local:  # already handed over: no wait, no lock
            item = self._next(0)
            if item is not None:
                return item
        loop = self._bind()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # the buffer wakes us (on the loop, so not before the await below) after a
            # take that found nothing
            item = self._next(0)
            if item is not None or self._buffer.closed:
                return item
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            waiter = self._waiter
            if waiter is None or waiter.done():  # (shared by concurrent ``get`` calls)
                waiter = self._waiter = loop.create_future()
            timer = None if remaining is None else loop.call_later(remaining, self._notify)
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
                if timer is not None:
                    timer.cancel()

    def start(self, callback: Callable[[Message | Gap], Any]) -> None:
        """Call ``callback(item)`` (awaited when it returns an awaitable) for every item,
        in a task on the running loop, until closed."""

        async def run() -> None:
            async for item in self:
                result = callback(item)
                if inspect.isawaitable(result):
                    await result

        self._task = asyncio.ensure_future(run())

    async def aclose(self) -> None:
        """Stop reading and close the connections."""
        await asyncio.to_thread(self._stop)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def __aiter__(self) -> AsyncIterator[Message | Gap]:
        await self.wait_ready()
        while True:
            item = await self.get()
            if item is None:
                return
            yield item

    async def __aenter__(self) -> AsyncSubscription:
        await self.wait_ready()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.aclose()
