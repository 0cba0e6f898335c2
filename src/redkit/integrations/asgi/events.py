"""A topic relayed to browsers: Server-Sent Events and WebSocket endpoints for ASGI apps.

::

    orders = ark.events.topic("order:created")              # or durable=True
    app = Starlette(routes=[
        Route("/events/orders", EventStream(orders)),       # EventSource("/events/orders")
        WebSocketRoute("/ws/orders", EventStream(orders)),  # new WebSocket(".../ws/orders")
    ])

``EventStream`` is one pure ASGI app for both: an HTTP request gets an SSE stream
(``text/event-stream``), a WebSocket connection gets one JSON text frame per event. Every
event carries its id: a fan-out message's sequence number, a durable message's stream
id. A browser's ``EventSource`` sends the last id it saw as ``Last-Event-ID`` when it
reconnects (a WebSocket client passes ``?last_event_id=``):

* **durable** topics resume exactly: what was published after that id (and is still
  retained) is sent first, then new messages;
* **fan-out** topics cannot send what they never kept, but say so: a ``gap`` event
  (``{"first": .., "last": .., "reason": "reconnect"}``) names the missed numbers.

Idle streams get a heartbeat every ``heartbeat`` seconds (an SSE comment, or a
``{"type": "ping"}`` frame), so proxies keep them open and dead clients are noticed.
A fan-out endpoint holds one subscription per process (per event loop) for all of its
clients, each with a queue of ``buffer`` events; a durable one gives each client a tail
that waits on a dedicated connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AsyncExitStack
from typing import Any, Literal
from urllib.parse import parse_qs

import orjson

from redkit.errors import ConfigError, RedkitError
from redkit.events import AsyncSubscription, AsyncTopic, Gap, Message

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]

__all__ = ["EventStream"]

log = logging.getLogger("redkit.events")

#: an event: (id, type, JSON data); type "message", "gap" or "ping"
Event = tuple[str | None, str, bytes]


class EventStream:
    """Relay ``topic`` to browsers over SSE (HTTP) or WebSocket; see the module doc.

    Args:
        topic: an :class:`~redkit.events.AsyncTopic` (fan-out or durable).
        heartbeat: seconds between heartbeats on an idle stream.
        retry: milliseconds a browser's ``EventSource`` waits before reconnecting (sent
            once, as the SSE ``retry:`` field).
        buffer: fan-out: the most events kept for one slow client; past it the oldest
            are dropped and reported as a ``gap`` event.
    """

    def __init__(
        self, topic: AsyncTopic, *, heartbeat: float = 15.0, retry: int = 2000,
        buffer: int = 1000,
    ) -> None:  # fmt: skip
        if not isinstance(topic, AsyncTopic):
            raise ConfigError("EventStream relays an AsyncTopic: ark.events.topic(name)")
        if not heartbeat > 0:
            raise ConfigError(f"heartbeat must be a positive number of seconds, got {heartbeat!r}")
        self.topic, self.heartbeat, self.retry, self.buffer = topic, heartbeat, retry, buffer
        self._hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._sse(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    # --- the events ---------------------------------------------------------------------

    async def open(self, last_id: str | None, stack: AsyncExitStack) -> AsyncIterator[Event]:
        """The events after ``last_id`` (None: from now on), with heartbeats, forever.

        Joins the shared subscription (fan-out) or finds the newest id (durable) before it
        returns, so that "from now on" means from this call; ``stack`` leaves it again.
        """
        if self.topic.durable:
            return self._durable(last_id or await self.topic.last_id())
        hub = self._hubs.get(asyncio.get_running_loop())
        if hub is None:
            hub = self._hubs[asyncio.get_running_loop()] = _Hub(self)
        listener = await hub.join()
        stack.push_async_callback(hub.leave, listener)
        last = None
        if last_id is not None and last_id.isdigit():
            last = int(last_id)
            counter = (await self.topic.info()).sequence
            if counter > last:  # published while this browser was away
                listener.items.appendleft(Gap(self.topic.name, last + 1, counter, "reconnect"))
                last = counter
        return self._fanout(listener, last)

    async def _fanout(self, listener: _Listener, last: int | None) -> AsyncIterator[Event]:
        while True:
            item = await listener.get(self.heartbeat)
            if item is None:
                yield None, "ping", b"{}"
                continue
            if isinstance(item, Gap):
                gap = item
                last = item.last if last is None else max(last, item.last)
            else:
                seq = item.seq or 0
                if last is not None and seq <= last:
                    continue  # reported missed already (the gap on resuming)
                gap = None
                if last is not None and seq > last + 1:
                    reason: Literal["reconnect", "overflow"] = "reconnect"
                    if listener.dropped:
                        reason, listener.dropped = "overflow", False
                    gap = Gap(item.topic, last + 1, seq - 1, reason)
                last = seq
            if gap is not None:
                data = {"first": gap.first, "last": gap.last, "reason": gap.reason}
                yield None, "gap", orjson.dumps(data)
            if isinstance(item, Message):
                yield item.id, "message", _json(item)

    async def _durable(self, after: str) -> AsyncIterator[Event]:
        while True:
            messages = await self.topic.tail(after=after, timeout=self.heartbeat)
            if not messages:
                yield None, "ping", b"{}"
            for message in messages:
                after = message.id
                yield message.id, "message", _json(message)

    # --- SSE -----------------------------------------------------------------------------

    async def _sse(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        last_id = headers.get("last-event-id") or _query(scope, "last_event_id")
        async with AsyncExitStack() as stack:
            events = await self.open(last_id, stack)
            await self._stream(events, receive, send)

    async def _stream(self, events: AsyncIterator[Event], receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"retry: %d\n\n" % self.retry,
                    "more_body": True})  # fmt: skip

        async def pump() -> None:
            async for event_id, kind, data in events:
                await send({"type": "http.response.body", "body": _sse_frame(event_id, kind, data),
                            "more_body": True})  # fmt: skip

        await _until_disconnect(pump(), receive, "http.disconnect")
        with contextlib.suppress(Exception):  # the client may be gone already
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    # --- WebSocket -----------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        async with AsyncExitStack() as stack:
            events = await self.open(_query(scope, "last_event_id"), stack)
            await send({"type": "websocket.accept"})
            await self._frames(events, receive, send)

    async def _frames(self, events: AsyncIterator[Event], receive: Receive, send: Send) -> None:
        async def pump() -> None:
            async for event_id, kind, data in events:
                frame = b'{"type":"%s","id":%s,"data":%s}' % (
                    kind.encode(), orjson.dumps(event_id), data,
                )  # fmt: skip
                await send({"type": "websocket.send", "text": frame.decode()})

        await _until_disconnect(pump(), receive, "websocket.disconnect")
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": 1000})


class _Listener:
    """One client's queue of a shared fan-out subscription (the oldest dropped when full)."""

    def __init__(self, size: int) -> None:
        self.items: deque[Message | Gap] = deque()
        self.size, self.dropped = size, False
        self.ready = asyncio.Event()

    def put(self, item: Message | Gap) -> None:
        if len(self.items) >= self.size:
            self.items.popleft()
            self.dropped = True
        self.items.append(item)
        self.ready.set()

    async def get(self, timeout: float) -> Message | Gap | None:
        if not self.items:
            self.ready.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.ready.wait(), timeout)
        return self.items.popleft() if self.items else None


class _Hub:
    """One fan-out subscription per endpoint and event loop, shared by its clients:
    opened by the first client, closed after the last one left."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream
        self.listeners: set[_Listener] = set()
        self.sub: AsyncSubscription | None = None
        self.task: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()

    async def join(self) -> _Listener:
        async with self.lock:
            if self.sub is None:
                stream = self.stream
                sub = stream.topic.subscribe(buffer=stream.buffer, heartbeat=stream.heartbeat)
                await sub.wait_ready()  # if the server is down it keeps trying meanwhile
                self.sub, self.task = sub, asyncio.ensure_future(self._pump(sub))
            listener = _Listener(self.stream.buffer)
            self.listeners.add(listener)
            return listener

    async def leave(self, listener: _Listener) -> None:
        async with self.lock:
            self.listeners.discard(listener)
            if self.listeners or self.sub is None or self.task is None:
                return
            sub, task, self.sub, self.task = self.sub, self.task, None, None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sub.aclose()

    async def _pump(self, sub: AsyncSubscription) -> None:
        while True:
            try:
                item = await sub.get(timeout=self.stream.heartbeat)
            except RedkitError:  # not expected with drop_oldest; keep serving heartbeats
                log.exception("events: the shared subscription of %r failed", sub)
                return
            if item is not None:
                for listener in list(self.listeners):
                    listener.put(item)


async def _until_disconnect(pump: Awaitable[None], receive: Receive, disconnect: str) -> None:
    """Run ``pump`` until the client disconnects (or ``pump`` ends or fails)."""

    async def listen() -> None:
        while (await receive())["type"] != disconnect:
            pass

    tasks = [asyncio.ensure_future(pump), asyncio.ensure_future(listen())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    for task in done:
        if task.exception() is not None and not isinstance(task.exception(), OSError):
            raise task.exception()  # type: ignore[misc]


def _sse_frame(event_id: str | None, kind: str, data: bytes) -> bytes:
    if kind == "ping":
        return b": ping\n\n"
    head = b"" if event_id is None else b"id: %s\n" % event_id.encode()
    return head + b"event: %s\ndata: %s\n\n" % (kind.encode(), data)


def _json(message: Message) -> bytes:
    return orjson.dumps(message.data, default=_plain)


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # pydantic
    if dump is not None:
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    try:
        import msgspec  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise TypeError(f"cannot send a {type(value).__name__} as JSON") from None
    return msgspec.to_builtins(value)


def _query(scope: Scope, name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None
