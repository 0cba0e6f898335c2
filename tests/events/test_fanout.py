"""Fan-out events: sequence numbers, gaps across a forced reconnect, overflow policies."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError, SubscriptionOverflowError
from redkit.events import Gap, Message

from .conftest import kill_subscribers, poll


def test_publish_reaches_every_subscriber_in_order(rk: Redkit) -> None:
    with rk.events.subscribe("order:created") as a, rk.events.subscribe("order:created") as b:
        seqs = [rk.events.publish("order:created", {"n": n}) for n in range(20)]
        for sub in (a, b):
            got = [sub.get(5) for _ in range(20)]
            assert all(isinstance(m, Message) for m in got)
            assert [m.data["n"] for m in got] == list(range(20))  # type: ignore[union-attr]
            assert [m.seq for m in got] == seqs  # type: ignore[union-attr]
    assert seqs == list(range(seqs[0], seqs[0] + 20))
    assert rk.events.info("order:created").sequence == seqs[-1]
    assert "order:created" in rk.events.topics()


def test_a_subscriber_hears_only_its_topics(rk: Redkit) -> None:
    with rk.events.subscribe("a", "b") as sub:
        rk.events.publish("c", 0)
        rk.events.publish("a", 1)
        rk.events.publish("b", 2)
        got = [sub.get(5) for _ in range(2)]
        assert sorted((m.topic, m.data) for m in got if isinstance(m, Message)) == [
            ("a", 1), ("b", 2)
        ]  # fmt: skip
        assert sub.get(0.1) is None


def test_gap_is_reported_across_a_forced_reconnect(rk: Redkit) -> None:
    """CLIENT KILL the subscriber's connection; what was published meanwhile is a Gap."""
    with rk.events.subscribe("ticks", heartbeat=1.0) as sub:
        rk.events.publish("ticks", 0)
        first = sub.get(5)
        assert isinstance(first, Message)
        assert kill_subscribers(rk, sub._reader.client_name) >= 1
        missed = [rk.events.publish("ticks", n) for n in range(1, 4)]
        item = sub.get(10)  # the reconnect reads the counter: the gap comes without traffic
        if isinstance(item, Message):  # published before the kill landed (not expected)
            pytest.fail(f"expected a gap first, got {item}")
        assert isinstance(item, Gap)
        assert (item.first, item.last, item.reason) == (missed[0], missed[-1], "reconnect")
        assert item.missed == 3
        after = rk.events.publish("ticks", 4)
        nxt = sub.get(5)
        assert isinstance(nxt, Message)
        assert nxt.seq == after
        assert sub.reconnects >= 1


def test_numbering_going_back_is_followed(rk: Redkit) -> None:
    """A failover can discard numbers the subscriber already heard (the old primary took
    them): after the reconnect it follows the server's numbers again, so what it misses
    from then on is a Gap, not silently taken for old messages."""
    topic = rk.events.topic("rewound")
    with rk.events.subscribe("rewound", heartbeat=1.0) as sub:
        for n in range(5):
            topic.publish(n)
        assert [sub.get(5).seq for _ in range(5)] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
        rk.client.set(topic.keys.seq, 2)  # numbers 3-5 lost with a failed-over primary
        assert kill_subscribers(rk, sub._reader.client_name) >= 1
        poll(lambda: sub.reconnects >= 1)
        topic.publish("kept")  # number 3, published while the subscriber listens
        item = sub.get(5)
        assert isinstance(item, Message)
        assert (item.seq, item.data) == (3, "kept")
        assert kill_subscribers(rk, sub._reader.client_name) >= 1
        missed = topic.publish("missed")  # number 4, published while it is away
        gap = sub.get(10)
        assert isinstance(gap, Gap)
        assert (gap.first, gap.last) == (missed, missed)


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_a_slow_subscriber_drops_by_its_policy_and_is_told(rk: Redkit, policy: str) -> None:
    topic = rk.events.topic("burst")
    with rk.events.subscribe("burst", buffer=5, overflow=policy) as sub:  # type: ignore[arg-type]
        seqs = topic.publish_many(list(range(50)))
        poll(lambda: sub.dropped >= 45)
        items = []
        while (item := sub.get(0.2)) is not None:
            items.append(item)
    messages = [i for i in items if isinstance(i, Message)]
    gaps = [i for i in items if isinstance(i, Gap)]
    assert len(messages) == 5
    assert [g.reason for g in gaps] == ["overflow"]
    assert gaps[0].missed == 45
    if policy == "drop_oldest":  # the newest five are kept
        assert [m.seq for m in messages] == seqs[-5:]
    else:  # the first five are kept; the gap shows when the next message comes
        assert [m.seq for m in messages] == seqs[:5]


def test_a_slow_subscriber_with_disconnect_policy_ends_with_an_error(rk: Redkit) -> None:
    topic = rk.events.topic("burst")
    sub = rk.events.subscribe("burst", buffer=5, overflow="disconnect")
    try:
        assert sub.wait_ready()
        topic.publish_many(list(range(20)))
        got = [sub.get(5) for _ in range(5)]
        with pytest.raises(SubscriptionOverflowError):
            sub.get(5)
        assert all(isinstance(item, Message) for item in got)
        assert len(got) == 5  # what was buffered is delivered first
        assert sub.closed
    finally:
        sub.close()


def test_callback_thread(rk: Redkit) -> None:
    seen: list[object] = []
    done = threading.Event()

    def on_item(item: Message | Gap) -> None:
        seen.append(item)
        if len(seen) == 3:
            done.set()

    sub = rk.events.subscribe("cb")
    try:
        assert sub.wait_ready()
        sub.start(on_item)
        for n in range(3):
            rk.events.publish("cb", n)
        assert done.wait(10)
    finally:
        sub.close()
    assert [m.data for m in seen] == [0, 1, 2]  # type: ignore[attr-defined]


@dataclass
class Order:
    id: int
    total: float


def test_typed_messages_skip_invalid_payloads(rk: Redkit) -> None:
    orders = rk.events.topic("typed", model=Order)
    with orders.subscribe() as sub:
        orders.publish(Order(1, 9.5))
        rk.events.publish("typed", {"id": "not a number", "total": 1})
        orders.publish({"id": 3, "total": 2})
        first, second = sub.get(5), sub.get(5)
        assert isinstance(first, Message)
        assert isinstance(second, Message)
        assert first.data == Order(1, 9.5)
        assert second.data == Order(3, 2)
        assert sub.invalid == 1


def test_pattern_subscription(standalone_url: str, prefix: str) -> None:
    with (
        Redkit(standalone_url, prefix=prefix) as rk,
        rk.events.subscribe(patterns=["order:*"]) as sub,
    ):
        rk.events.publish("order:created", 1)
        rk.events.publish("user:created", 2)
        rk.events.publish("order:paid", 3)
        got = [sub.get(5), sub.get(5)]
        assert [(m.topic, m.data) for m in got] == [  # type: ignore[union-attr]
            ("order:created", 1), ("order:paid", 3)
        ]  # fmt: skip


def test_patterns_are_refused_on_a_cluster(cluster_server: object, prefix: str) -> None:
    rk = Redkit(cluster_server.url, prefix=prefix)  # type: ignore[attr-defined]
    with rk, pytest.raises(ConfigError, match="pattern"):
        rk.events.subscribe(patterns=["order:*"])


def test_bad_options(rk: Redkit) -> None:
    with pytest.raises(ConfigError, match="overflow"):
        rk.events.subscribe("x", overflow="never")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="durable"):
        rk.events.topic("x", maxlen=10)
    with pytest.raises(ConfigError, match="durable"):
        rk.events.topic("x").consumer("g")
    with pytest.raises(ConfigError, match="did you mean 'durable'"):
        rk.events.topic("x", durabel=True)  # type: ignore[call-arg]


async def test_async_subscription(ark: AsyncRedkit) -> None:
    async with ark.events.subscribe("async") as sub:
        for n in range(5):
            await ark.events.publish("async", n)
        got = []
        async for item in sub:
            got.append(item)
            if len(got) == 5:
                break
        assert [m.data for m in got] == list(range(5))  # type: ignore[union-attr]
        assert await sub.get(0.05) is None


async def test_async_callback(ark: AsyncRedkit) -> None:
    seen: list[object] = []
    done = asyncio.Event()

    async def on_item(item: Message | Gap) -> None:
        seen.append(item)
        if len(seen) == 2:
            done.set()

    sub = ark.events.subscribe("acb")
    try:
        assert await sub.wait_ready()
        sub.start(on_item)
        await ark.events.publish("acb", "x")
        await ark.events.publish("acb", "y")
        await asyncio.wait_for(done.wait(), 10)
    finally:
        await sub.aclose()
    assert [m.data for m in seen] == ["x", "y"]  # type: ignore[attr-defined]
