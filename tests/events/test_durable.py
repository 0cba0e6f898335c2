"""Durable events: groups, acks, claims, dead letters, replay, trimming, recovery."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.events import Message

from .conftest import poll


def test_each_group_gets_every_message_once(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True)
    billing, shipping = orders.consumer("billing", "b1"), orders.consumer("shipping", "s1")
    billing.create()
    shipping.create()
    ids = orders.publish_many([{"n": n} for n in range(10)])
    for consumer in (billing, shipping):
        got = consumer.read(timeout=1)
        assert [m.id for m in got] == ids
        assert [m.data["n"] for m in got] == list(range(10))
        consumer.ack(*got)
        assert consumer.read(timeout=0) == []  # sends the acks with the read
        assert consumer.acked == 10
    info = orders.info()
    assert info.length == 10
    assert {(g.name, g.pending, g.lag) for g in info.groups} == {
        ("billing", 0, 0),
        ("shipping", 0, 0),
    }
    assert rk.events.info("orders") == info


def test_consumers_of_one_group_share_the_work(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True)
    a, b = orders.consumer("g", "a", count=3), orders.consumer("g", "b", count=3)
    a.create()
    ids = orders.publish_many(list(range(6)))
    first, second = a.read(timeout=1), b.read(timeout=1)
    assert sorted(m.id for m in first + second) == ids
    assert len(first) == len(second) == 3


def test_batches_wait_for_new_messages(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True)
    consumer = orders.consumer("g", start="$")
    consumer.create()
    assert consumer.read(timeout=0.05) == []
    orders.publish("late")
    assert [m.data for m in consumer.read(timeout=2)] == ["late"]


def test_unacknowledged_messages_are_claimed_by_another_consumer(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True)
    crashed = orders.consumer("g", "crashed", claim_idle=0.2)
    crashed.create()
    ids = orders.publish_many(["a", "b"])
    assert [m.id for m in crashed.read(timeout=1)] == ids  # and never acknowledged
    other = orders.consumer("g", "other", claim_idle=0.2)
    taken = poll(lambda: other.read(timeout=0.05))
    assert [(m.id, m.deliveries) for m in taken] == [(ids[0], 2), (ids[1], 2)]
    other.ack(*taken)
    other.flush()
    assert orders.info().groups[0].pending == 0


def test_a_consumer_restarted_under_its_name_gets_its_pending_messages_back(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True)
    first = orders.consumer("g", "w1")
    first.create()
    orders.publish_many([1, 2, 3])
    assert len(first.read(timeout=1)) == 3
    again = orders.consumer("g", "w1")
    assert [m.data for m in again.read(timeout=0)] == [1, 2, 3]


def test_messages_delivered_too_often_go_to_the_dead_letters(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True)
    consumer = orders.consumer("g", "w", claim_idle=0.05, dead_after=2)
    consumer.create()
    poison = orders.publish("poison")
    assert [m.id for m in consumer.read(timeout=1)] == [poison]  # delivery 1, never acked

    def dead() -> list[Message]:
        consumer.read(timeout=0.05)  # claims it back (delivery 2), then dead-letters it
        return orders.dead_letters()

    letters = poll(dead)
    assert letters[0].data["id"] == poison
    assert letters[0].data["group"] == "g"
    assert "delivered 3 times" in letters[0].data["reason"]
    assert orders.info().groups[0].pending == 0


@dataclass
class Order:
    id: int
    total: float


def test_invalid_typed_messages_are_dead_lettered_with_the_reason(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True, model=Order)
    raw = rk.events.topic("orders", durable=True)
    consumer = orders.consumer("g")
    consumer.create()
    orders.publish(Order(1, 10.0))
    raw.publish({"id": "x"})
    orders.publish({"id": 3, "total": 1.5})
    got = consumer.read(timeout=1)
    assert [m.data for m in got] == [Order(1, 10.0), Order(3, 1.5)]
    letters = orders.dead_letters()
    assert len(letters) == 1
    assert "not a valid Order" in letters[0].data["reason"]
    assert orders.info().groups[0].pending == 2  # the valid ones wait for their ack


def test_replay_from_an_id_or_a_time(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True)
    ids = orders.publish_many(list(range(5)))
    assert [m.data for m in orders.replay(since=ids[2])] == [2, 3, 4]
    assert [m.data for m in orders.replay(until=ids[1])] == [0, 1]
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    assert [m.data for m in orders.replay(since=past, count=2)] == [0, 1]
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    assert orders.replay(since=future) == []
    assert orders.last_id() == ids[-1]


def test_tail_waits_for_what_comes_after_an_id(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True)
    first = orders.publish("a")
    assert orders.tail(after=first, timeout=0.05) == []
    second = orders.publish("b")
    assert [(m.id, m.data) for m in orders.tail(after=first, timeout=1)] == [(second, "b")]


def test_streams_are_trimmed_approximately(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True, maxlen=100)
    for _ in range(10):
        orders.publish_many(list(range(100)))
    assert 100 <= orders.info().length < 300  # approximate: whole nodes are dropped


def test_a_deleted_group_or_stream_is_recreated(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True)
    consumer = orders.consumer("g")
    consumer.create()
    orders.publish(1)
    assert len(consumer.read(timeout=1)) == 1
    rk.client.execute_command("XGROUP", "DESTROY", orders.keys.stream, "g")
    orders.publish(2)
    assert [m.data for m in consumer.read(timeout=1)] == [1, 2]  # from the start again
    rk.client.delete(orders.keys.stream)
    assert consumer.read(timeout=0.05) == []
    orders.publish(3)
    assert [m.data for m in consumer.read(timeout=1)] == [3]


async def test_async_consumer(ark: AsyncRedkit) -> None:
    orders = ark.events.topic("orders", durable=True)
    consumer = orders.consumer("g", count=10)
    await consumer.create()
    ids = await orders.publish_many(list(range(25)))
    seen = []
    async with consumer:
        async for message in consumer:
            seen.append(message.id)
            message.ack()
            if len(seen) == 25:
                break
    assert seen == ids
    info = await ark.events.info("orders")
    assert info.groups[0].pending == 0
    assert [m.data for m in await orders.replay(count=2)] == [0, 1]


def test_publish_to_many_fan_out(rk: Redkit) -> None:
    topic = rk.events.topic("many")
    seqs = topic.publish_many(["a", "b", "c"])
    assert seqs == [1, 2, 3]
    with pytest.raises(Exception, match="durable"):
        topic.replay()


def test_a_started_consumer_handles_acks_and_retries_on_the_runtime(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True)
    consumer = orders.consumer("g", claim_idle=0.2)
    consumer.create()
    handled: list[int] = []
    failed: list[int] = []

    def handle(message: Message) -> None:
        if message.data == 2 and not failed:
            failed.append(2)
            raise RuntimeError("the first attempt fails")
        handled.append(message.data)

    consumer.start(handle)
    try:
        orders.publish_many([1, 2, 3])
        poll(lambda: sorted(handled) == [1, 2, 3])  # 2 again, once claim_idle passed
    finally:
        consumer.close()
    assert failed == [2]
    assert orders.info().groups[0].pending == 0


async def test_an_async_started_consumer(ark: AsyncRedkit) -> None:
    orders = ark.events.topic("orders", durable=True)
    consumer = orders.consumer("g")
    await consumer.create()
    seen: list[int] = []
    done = asyncio.Event()

    async def handle(message: Message) -> None:
        seen.append(message.data)
        if len(seen) == 3:
            done.set()

    await consumer.start(handle)
    try:
        await orders.publish_many([1, 2, 3])
        await asyncio.wait_for(done.wait(), 10)
    finally:
        await consumer.aclose()
    assert seen == [1, 2, 3]
    assert (await orders.info()).groups[0].pending == 0


def test_retention_trims_by_age_on_the_servers_clock(rk: Redkit) -> None:
    orders = rk.events.topic("orders", durable=True, retention=0.2)
    orders.publish_many(list(range(300)))  # whole macro nodes, so approximate trimming acts

    def trimmed() -> bool:
        orders.publish("later")  # each publish trims what is older than the retention
        return orders.info().length < 300

    poll(trimmed, timeout=10, interval=0.05)
    assert orders.replay(count=1000)[-1].data == "later"
