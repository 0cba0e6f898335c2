"""Events as users meet them: ``rk.events`` (:class:`Events`) and its topics (:class:`Topic`).

Each topic has one delivery mode, chosen when it is built:

* **fan-out** (the default): ``publish`` reaches every subscriber connected at that
  moment (pub/sub, ``SPUBLISH`` on a cluster), numbered per topic so that a subscriber
  that missed messages is told (:class:`~redkit.events.Gap`);
* **durable** (``durable=True``): ``publish`` appends to a stream that consumer groups
  read with acknowledgements, retries, dead letters and replay.

::

    rk.events.publish("order:created", {"id": 42})          # fan-out
    with rk.events.subscribe("order:created") as sub:
        for item in sub: ...

    orders = rk.events.topic("orders", durable=True, maxlen=100_000)
    orders.publish({"id": 42})
    consumer = orders.consumer("billing")
    for message in consumer.read(): ...; message.ack()
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from typing_extensions import Unpack

from redkit import ops
from redkit.client import check_options
from redkit.errors import ConfigError
from redkit.events import ops as eops
from redkit.events.durable import AsyncConsumer, Consumer
from redkit.events.fanout import AsyncSubscription, Overflow, Subscription
from redkit.events.messages import Codec, Message

if TYPE_CHECKING:
    from redkit.client import AsyncRedkitCore, CoreBase, RedkitCore

When = str | int | float | dt.datetime | None
T = TypeVar("T")
#: how many topics ``Events.publish`` keeps (each is registered for ``topics()`` once)
MAX_KEPT_TOPICS = 4096


class TopicOptions(TypedDict, total=False):
    """Options of :meth:`Events.topic` (see :class:`Topic`)."""

    durable: bool
    model: type | None
    maxlen: int | None
    retention: float | None


class _TopicBase:
    """What :class:`Topic` and :class:`AsyncTopic` share: keys, codec, checks."""

    rk: CoreBase

    def __init__(
        self,
        rk: CoreBase,
        name: str,
        *,
        durable: bool = False,
        model: type | None = None,
        maxlen: int | None = None,
        retention: float | None = None,
    ) -> None:
        if maxlen is not None and not (isinstance(maxlen, int) and maxlen >= 1):
            raise ConfigError(f"maxlen must be an int >= 1 or None, got {maxlen!r}")
        if retention is not None and not retention > 0:
            raise ConfigError(f"retention must be a positive number of seconds, got {retention!r}")
        if not durable and (maxlen is not None or retention is not None):
            raise ConfigError(
                "maxlen and retention bound a durable topic's stream: add durable=True"
            )
        self.rk, self.name, self.durable = rk, name, durable
        self.keys = eops.TopicKeys(rk.keys, name)
        self.codec = Codec(rk.serializer, model)
        self._maxlen, self._age_ms = maxlen or 0, int((retention or 0) * 1000)
        self._registered = False

    def _need(self, durable: bool, what: str) -> None:
        if self.durable != durable:
            mode = "durable" if durable else "fan-out"
            raise ConfigError(f"{what} needs a {mode} topic; {self.name!r} is not one")

    def _publish_flow(self, data: Sequence[Any]) -> Any:
        payloads = [self.codec.encode(item) for item in data]
        if not self._registered:
            self._registered = True
            yield from eops.register(self.keys)
        if self.durable:
            return (yield from eops.add(self.keys, payloads, self._maxlen, self._age_ms))
        if len(payloads) == 1:
            return [(yield from eops.publish(self.keys, payloads[0], self.rk.cluster))]
        effects = [eops.publish(self.keys, p, self.rk.cluster).effect for p in payloads]
        replies = yield ops.Batch(effects)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [int(reply[0]) for reply in replies]

    def _messages(self, found: list[eops.Entry]) -> list[Message]:
        return [
            Message(self.name, self.codec.decode(e.payload or b""), e.id, None, 1) for e in found
        ]

    def _dead(self, found: list[eops.Entry]) -> list[Message]:
        return [
            Message(self.name, {**(e.fields or {}), "payload": e.payload}, e.id, None, 1)
            for e in found
        ]

    def _consumer_args(
        self, group: str, name: str | None, count: int, claim_idle: float, dead_after: int,
        start: When,
    ) -> tuple[Any, ...]:  # fmt: skip
        self._need(True, "a consumer")
        return (
            self.rk, self.keys, self.codec, group, name, count, claim_idle, dead_after,
            eops.stream_id(start, "0"),
        )  # fmt: skip

    def _subscription_args(
        self, buffer: int, overflow: Overflow, heartbeat: float
    ) -> tuple[Any, ...]:
        self._need(False, "subscribe()")
        return (self.rk, [self.name], [], self.codec, buffer, overflow, heartbeat)

    def __repr__(self) -> str:
        mode = "durable" if self.durable else "fan-out"
        return f"{type(self).__name__}({self.name!r}, {mode})"


class Topic(_TopicBase):
    """One topic (sync).

    Args:
        rk: the facade.
        name: the topic's name.
        durable: False (fan-out, pub/sub) or True (a stream read by consumer groups).
        model: a dataclass, pydantic model or msgspec Struct; published values are
            encoded from it, received ones validated into it.
        maxlen: durable: keep about this many messages (approximate ``MAXLEN``).
        retention: durable: keep messages about this many seconds (approximate ``MINID``).
    """

    rk: RedkitCore

    def __init__(self, rk: RedkitCore, name: str, **options: Unpack[TopicOptions]) -> None:
        super().__init__(rk, name, **options)

    def publish(self, data: Any) -> int | str:
        """Publish one message: its sequence number (fan-out) or stream id (durable)."""
        result: list[Any] = self.rk.run(self._publish_flow([data]))
        return result[0]  # type: ignore[no-any-return]

    def publish_many(self, data: Sequence[Any]) -> list[int] | list[str]:
        """Publish several messages in one round trip (durable) or one script each."""
        return self.rk.run(self._publish_flow(list(data)))  # type: ignore[no-any-return]

    def subscribe(
        self, *, buffer: int = 10_000, overflow: Overflow = "drop_oldest", heartbeat: float = 5.0
    ) -> Subscription:
        """A fan-out subscription to this topic; see :meth:`Events.subscribe`."""
        return Subscription(*self._subscription_args(buffer, overflow, heartbeat))

    def consumer(
        self,
        group: str,
        name: str | None = None,
        *,
        count: int = 100,
        claim_idle: float = 30.0,
        dead_after: int = 5,
        start: When = "0",
    ) -> Consumer:
        """A consumer of ``group`` on this durable topic (the group is made on first read).

        Args:
            group: the consumer group; each group receives every message once.
            name: this consumer's name in the group (default: random). A consumer
                restarted with the same name first gets back what it left unacknowledged.
            count: the most messages one read returns.
            claim_idle: seconds after which a message another consumer did not
                acknowledge is taken over.
            dead_after: a message delivered more times than this goes to the dead letters.
            start: where a new group begins: ``"0"`` (every retained message), ``"$"``
                (only new ones), an id, a ``datetime`` or a Unix time.
        """
        return Consumer(*self._consumer_args(group, name, count, claim_idle, dead_after, start))

    def replay(self, since: When = None, until: When = None, count: int = 1000) -> list[Message]:
        """Retained messages from ``since`` to ``until`` (ids, datetimes or Unix times),
        oldest first, at most ``count``; not acknowledged anywhere."""
        self._need(True, "replay()")
        start, end = eops.stream_id(since, "-"), eops.stream_id(until, "+")
        return self._messages(self.rk.run(eops.replay(self.keys.stream, start, end, count)))

    def tail(self, after: str = "$", timeout: float = 1.0, count: int = 100) -> list[Message]:
        """Messages after the id ``after`` (``"$"``: from now), waiting up to ``timeout``
        seconds on a dedicated connection; outside any group."""
        self._need(True, "tail()")
        return self._messages(self.rk.run(eops.tail(self.keys.stream, after, count, timeout)))

    def last_id(self) -> str:
        """The newest message's id (``"0-0"`` when there is none)."""
        return self.rk.run(eops.last_id(self.keys.stream))

    def dead_letters(self, count: int = 100) -> list[Message]:
        """The dead-letter stream, oldest first: ``data`` holds ``id``, ``group``,
        ``reason`` and the raw ``payload``."""
        return self._dead(self.rk.run(eops.replay(self.keys.dead, "-", "+", count)))

    def info(self) -> eops.TopicInfo:
        """Sequence number, stream length, groups (pending, lag) and dead letters."""
        return self.rk.run(eops.info(self.keys))


class AsyncTopic(_TopicBase):
    """One topic (asyncio); see :class:`Topic`."""

    rk: AsyncRedkitCore

    def __init__(self, rk: AsyncRedkitCore, name: str, **options: Unpack[TopicOptions]) -> None:
        super().__init__(rk, name, **options)

    async def publish(self, data: Any) -> int | str:
        """Publish one message; see :meth:`Topic.publish`."""
        result: list[Any] = await self.rk.run(self._publish_flow([data]))
        return result[0]  # type: ignore[no-any-return]

    async def publish_many(self, data: Sequence[Any]) -> list[int] | list[str]:
        """Publish several messages; see :meth:`Topic.publish_many`."""
        return await self.rk.run(self._publish_flow(list(data)))

    def subscribe(
        self, *, buffer: int = 10_000, overflow: Overflow = "drop_oldest", heartbeat: float = 5.0
    ) -> AsyncSubscription:
        """A fan-out subscription to this topic; ``async with`` / ``async for`` it."""
        return AsyncSubscription(*self._subscription_args(buffer, overflow, heartbeat))

    def consumer(
        self,
        group: str,
        name: str | None = None,
        *,
        count: int = 100,
        claim_idle: float = 30.0,
        dead_after: int = 5,
        start: When = "0",
    ) -> AsyncConsumer:
        """A consumer of ``group``; see :meth:`Topic.consumer`."""
        return AsyncConsumer(
            *self._consumer_args(group, name, count, claim_idle, dead_after, start)
        )

    async def replay(
        self, since: When = None, until: When = None, count: int = 1000
    ) -> list[Message]:
        """Retained messages; see :meth:`Topic.replay`."""
        self._need(True, "replay()")
        start, end = eops.stream_id(since, "-"), eops.stream_id(until, "+")
        return self._messages(await self.rk.run(eops.replay(self.keys.stream, start, end, count)))

    async def tail(self, after: str = "$", timeout: float = 1.0, count: int = 100) -> list[Message]:
        """Messages after ``after``; see :meth:`Topic.tail`."""
        self._need(True, "tail()")
        found = await self.rk.run(eops.tail(self.keys.stream, after, count, timeout))
        return self._messages(found)

    async def last_id(self) -> str:
        """The newest message's id (``"0-0"`` when there is none)."""
        return await self.rk.run(eops.last_id(self.keys.stream))

    async def dead_letters(self, count: int = 100) -> list[Message]:
        """The dead-letter stream; see :meth:`Topic.dead_letters`."""
        return self._dead(await self.rk.run(eops.replay(self.keys.dead, "-", "+", count)))

    async def info(self) -> eops.TopicInfo:
        """Sequence number, stream length, groups (pending, lag) and dead letters."""
        return await self.rk.run(eops.info(self.keys))


class _EventsBase:
    rk: CoreBase

    def __init__(self, rk: CoreBase) -> None:
        self.rk = rk
        self._topics: dict[str, Any] = {}  # publish()'s topics, registered once each

    def _subscription_args(
        self, topics: Sequence[str], patterns: Sequence[str], model: type | None, buffer: int,
        overflow: Overflow, heartbeat: float,
    ) -> tuple[Any, ...]:  # fmt: skip
        codec = Codec(self.rk.serializer, model)
        return (self.rk, list(topics), list(patterns), codec, buffer, overflow, heartbeat)

    def _topic(self, name: str, kind: type[T]) -> T:
        """``publish()``'s fan-out topic ``name``, kept so it is registered once (a few
        thousand names at most: a process publishing to more starts over)."""
        found = self._topics.get(name)
        if found is None:
            if len(self._topics) >= MAX_KEPT_TOPICS:
                self._topics.clear()
            found = self._topics.setdefault(name, kind(self.rk, name))  # type: ignore[call-arg]
        return found  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.rk.keys.prefix!r})"


class Events(_EventsBase):
    """``rk.events``: topics, fan-out shortcuts and what admin tools read (sync)."""

    rk: RedkitCore

    def topic(self, name: str, **options: Unpack[TopicOptions]) -> Topic:
        """A topic; see :class:`Topic` for the options (``durable=True`` for streams)."""
        check_options("topic", options, TopicOptions)
        return Topic(self.rk, name, **options)

    def publish(self, topic: str, data: Any) -> int:
        """Publish to a fan-out topic; returns the message's sequence number."""
        return int(self._topic(topic, Topic).publish(data))

    def subscribe(
        self,
        *topics: str,
        patterns: Sequence[str] = (),
        model: type | None = None,
        buffer: int = 10_000,
        overflow: Overflow = "drop_oldest",
        heartbeat: float = 5.0,
    ) -> Subscription:
        """Subscribe to fan-out topics by name and/or pattern (``"order:*"``).

        Args:
            topics: topic names.
            patterns: topic patterns, ``*`` and ``?`` as wildcards (standalone servers
                only: a cluster's sharded pub/sub has no patterns).
            model: validate payloads into this class; invalid ones are skipped, logged
                and counted in ``invalid``.
            buffer: the most items kept locally for a slow reader.
            overflow: when the buffer is full: ``"drop_oldest"``, ``"drop_newest"``
                (both reported as a :class:`~redkit.events.Gap`) or ``"disconnect"``
                (the subscription ends with ``SubscriptionOverflowError``).
            heartbeat: seconds between pings that detect a dead connection.
        """
        return Subscription(
            *self._subscription_args(topics, patterns, model, buffer, overflow, heartbeat)
        )

    def info(self, topic: str) -> eops.TopicInfo:
        """A topic's sequence number, stream length, groups (pending, lag), dead letters."""
        return self.rk.run(eops.info(eops.TopicKeys(self.rk.keys, topic)))

    def topics(self) -> list[str]:
        """Every topic published to under this prefix, sorted."""
        return self.rk.run(eops.topics(self.rk.keys))


class AsyncEvents(_EventsBase):
    """``ark.events`` for asyncio; see :class:`Events`."""

    rk: AsyncRedkitCore

    def topic(self, name: str, **options: Unpack[TopicOptions]) -> AsyncTopic:
        """A topic; see :class:`Topic` for the options."""
        check_options("topic", options, TopicOptions)
        return AsyncTopic(self.rk, name, **options)

    async def publish(self, topic: str, data: Any) -> int:
        """Publish to a fan-out topic; returns the message's sequence number."""
        return int(await self._topic(topic, AsyncTopic).publish(data))

    def subscribe(
        self,
        *topics: str,
        patterns: Sequence[str] = (),
        model: type | None = None,
        buffer: int = 10_000,
        overflow: Overflow = "drop_oldest",
        heartbeat: float = 5.0,
    ) -> AsyncSubscription:
        """Subscribe to fan-out topics; see :meth:`Events.subscribe`."""
        return AsyncSubscription(
            *self._subscription_args(topics, patterns, model, buffer, overflow, heartbeat)
        )

    async def info(self, topic: str) -> eops.TopicInfo:
        """A topic's sequence number, stream length, groups (pending, lag), dead letters."""
        return await self.rk.run(eops.info(eops.TopicKeys(self.rk.keys, topic)))

    async def topics(self) -> list[str]:
        """Every topic published to under this prefix, sorted."""
        return await self.rk.run(eops.topics(self.rk.keys))
