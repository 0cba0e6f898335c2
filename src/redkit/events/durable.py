"""Durable consumers: :class:`Consumer` (sync) and :class:`AsyncConsumer`.

A consumer reads a durable topic's stream as one member of a consumer group: every
message is delivered to one consumer of each group and stays pending until that
consumer acknowledges it. ``ack()`` only queues the id; the queued acks go out in one
``XACK`` pipelined with the next read (or with :meth:`Consumer.flush`), so a busy
consumer spends one round trip per batch. Messages a consumer left unacknowledged for
``claim_idle`` seconds (it died, or its handler keeps failing) are taken over by the next
consumer that reads; one delivered more than ``dead_after`` times goes to the topic's
dead-letter stream instead. A payload that does not decode or validate against the
topic's model goes there at once, with the reason. Reads wait on a dedicated connection.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from redkit import ops, runtime
from redkit.errors import ConfigError
from redkit.events import ops as eops
from redkit.events.messages import Codec, InvalidMessageError, Message

if TYPE_CHECKING:
    from types import TracebackType

    from redkit.client import AsyncRedkitCore, CoreBase, RedkitCore
    from redkit.runtime import AsyncLoopContext, AsyncRuntime, LoopContext

log = logging.getLogger("redkit.events")
Handler = Callable[[Message], Any]


class _ConsumerBase:
    def __init__(
        self,
        rk: CoreBase,
        keys: eops.TopicKeys,
        codec: Codec,
        group: str,
        name: str | None,
        count: int,
        claim_idle: float,
        dead_after: int,
        start: str,
    ) -> None:
        if not isinstance(group, str) or not group:
            raise ConfigError(f"a group name must be a non-empty str, got {group!r}")
        if not (isinstance(count, int) and count >= 1):
            raise ConfigError(f"count must be an int >= 1, got {count!r}")
        if not claim_idle > 0:
            raise ConfigError(
                f"claim_idle must be a positive number of seconds, got {claim_idle!r}"
            )
        if not (isinstance(dead_after, int) and dead_after >= 1):
            raise ConfigError(f"dead_after must be an int >= 1, got {dead_after!r}")
        self.rk, self.topic, self._codec = rk, keys.name, codec
        self.name = name or secrets.token_hex(6)
        self.group = eops.Group(
            keys, group, self.name, count, int(claim_idle * 1000), dead_after, start
        )
        self.cursor = eops.Cursor()

    @property
    def acked(self) -> int:
        """How many messages this consumer's acks removed from the group's pending list."""
        return self.cursor.acked

    def ack(self, *messages: Message | str) -> None:
        """Queue acknowledgements (messages or ids); sent with the next read or flush."""
        for message in messages:
            self.cursor.acks.append(message if isinstance(message, str) else message.id)

    def _ack_one(self, message: Message) -> None:
        self.cursor.acks.append(message.id)

    def _read(self, timeout: float) -> ops.Flow[list[Message]]:
        found = yield from eops.read(self.group, self.cursor, timeout)
        messages, invalid = [], []
        topic, decode, ack = self.topic, self._codec.decode, self._ack_one
        for entry in found:
            try:
                data = decode(entry.payload or b"")
            except InvalidMessageError as exc:
                invalid.append((entry.id, entry.payload or b"", str(exc)))
                continue
            messages.append(Message(topic, data, entry.id, None, entry.deliveries, ack))
        if invalid:
            yield from eops.dead_letter(self.group, invalid)
        return messages

    def _process(self, handler: Handler, timeout: float) -> ops.Flow[int]:
        """Read a batch and hand each message to ``handler``; acknowledge those it took.

        A message whose handler raised is not acknowledged: it is delivered again after
        ``claim_idle`` (and dead-lettered after ``dead_after`` deliveries).
        """
        messages = yield from self._read(timeout)
        handled = 0
        for message in messages:
            try:
                yield ops.UserCall(handler, message)
            except Exception:
                log.exception(
                    "events: handler failed on %s of %r (delivery %d); it is delivered again",
                    message.id, self.topic, message.deliveries,
                )  # fmt: skip
                continue
            self.cursor.acks.append(message.id)
            handled += 1
        return handled

    @property
    def _loop_name(self) -> str:
        return f"events:{self.topic}:{self.group.name}:{self.name}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.topic!r}, group={self.group.name!r}, name={self.name!r})"
        )


class Consumer(_ConsumerBase):
    """One consumer of a group on a durable topic (sync); built by ``topic.consumer()``."""

    rk: RedkitCore
    _started = False

    def read(self, timeout: float = 1.0) -> list[Message]:
        """The next batch (at most ``count`` messages), waiting up to ``timeout`` seconds
        for new ones; sends the queued acks in the same round trip."""
        return self.rk.run(self._read(timeout))

    def flush(self) -> int:
        """Send the queued acks now; how many were pending."""
        return self.rk.run(eops.flush_acks(self.group, self.cursor))

    def create(self) -> bool:
        """Create the group now (reads create it too); False when it existed."""
        return self.rk.run(eops.create_group(self.group))

    def start(self, handler: Callable[[Message], Any]) -> None:
        """Call ``handler(message)`` for every message, in a thread on the runtime, until
        :meth:`close`; a message is acknowledged once its handler returned.

        The runtime reconnects with backoff when the server is unreachable; a handler that
        raises is logged and its message delivered again (see ``claim_idle``,
        ``dead_after``).
        """

        def step(ctx: LoopContext) -> None:
            self.rk.run(self._process(handler, 1.0))

        runtime.share(self.rk, self._loop_name, step, cleanup=self._flush_quietly)
        self._started = True

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # unsent acks mean those messages are delivered again
            log.info("events: could not send the last acks of %r (%s)", self, exc)

    def close(self) -> None:
        """Stop :meth:`start`'s loop (the running batch finishes) and send the queued acks."""
        if self._started:
            self._started = False
            runtime.unshare(self.rk, self._loop_name)
        self.flush()

    def __iter__(self) -> Iterator[Message]:
        """Messages as they come, forever; acknowledge each (``message.ack()``)."""
        while True:
            yield from self.read(timeout=5.0)

    def __enter__(self) -> Consumer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()


class AsyncConsumer(_ConsumerBase):
    """One consumer of a group on a durable topic (asyncio); see :class:`Consumer`."""

    rk: AsyncRedkitCore
    _runtime: AsyncRuntime | None = None

    async def read(self, timeout: float = 1.0) -> list[Message]:
        """The next batch; see :meth:`Consumer.read`."""
        return await self.rk.run(self._read(timeout))

    async def flush(self) -> int:
        """Send the queued acks now; how many were pending."""
        return await self.rk.run(eops.flush_acks(self.group, self.cursor))

    async def create(self) -> bool:
        """Create the group now (reads create it too); False when it existed."""
        return await self.rk.run(eops.create_group(self.group))

    async def start(self, handler: Callable[[Message], Any]) -> None:
        """Call ``handler(message)`` (awaited when it returns an awaitable) for every
        message, in a task on the runtime, until :meth:`aclose`; see :meth:`Consumer.start`.
        """

        async def step(ctx: AsyncLoopContext) -> None:
            await self.rk.run(self._process(handler, 1.0))

        self._runtime = runtime.AsyncRuntime(self.rk, heartbeat=None)
        self._runtime.add(self._loop_name, step)
        await self._runtime.start()

    async def aclose(self) -> None:
        """Stop :meth:`start`'s loop (the running batch finishes) and send the queued acks."""
        if self._runtime is not None:
            running, self._runtime = self._runtime, None
            await running.stop()
        await self.flush()

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            for message in await self.read(timeout=5.0):
                yield message

    async def __aenter__(self) -> AsyncConsumer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.aclose()
