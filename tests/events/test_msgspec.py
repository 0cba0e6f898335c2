"""Typed messages with msgspec Structs: validated on receive, invalid ones dead-lettered
(durable) or skipped and counted (fan-out), sync and asyncio, standalone and cluster."""

from __future__ import annotations

import msgspec
import pytest

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError
from redkit.events import Message
from redkit.events.messages import Codec
from redkit.serializers import JsonSerializer


class Order(msgspec.Struct):
    id: int
    total: float
    note: str = ""


def test_durable_msgspec_struct_valid_and_dead_lettered(rk: Redkit) -> None:
    orders = rk.events.topic("ms-orders", durable=True, model=Order)
    raw = rk.events.topic("ms-orders", durable=True)
    consumer = orders.consumer("g")
    consumer.create()
    orders.publish(Order(1, 10.0, "first"))
    raw.publish({"id": "x", "total": 1.0})  # id is not an int
    raw.publish({"total": 2.0})  # id is missing
    orders.publish({"id": 4, "total": 1.5})  # a plain dict that converts
    got = consumer.read(timeout=1)
    assert [m.data for m in got] == [Order(1, 10.0, "first"), Order(4, 1.5)]
    assert all(type(m.data) is Order for m in got)
    letters = orders.dead_letters()
    assert len(letters) == 2
    reasons = [letter.data["reason"] for letter in letters]
    assert all("not a valid Order" in reason for reason in reasons)
    assert "Expected `int`, got `str`" in reasons[0]
    assert "missing required field `id`" in reasons[1]
    assert [letter.data["group"] for letter in letters] == ["g", "g"]
    for message in got:
        message.ack()
    consumer.flush()
    assert orders.info().groups[0].pending == 0  # dead letters were acknowledged too


async def test_async_durable_msgspec_struct(ark: AsyncRedkit) -> None:
    orders = ark.events.topic("ms-aorders", durable=True, model=Order)
    consumer = orders.consumer("g")
    await consumer.create()
    await orders.publish(Order(7, 3.25))
    await ark.events.topic("ms-aorders", durable=True).publish([1, 2])  # not an object
    got = await consumer.read(timeout=1)
    assert [m.data for m in got] == [Order(7, 3.25)]
    letters = await orders.dead_letters()
    assert len(letters) == 1
    assert "not a valid Order" in letters[0].data["reason"]


def test_fanout_msgspec_struct_skips_invalid(rk: Redkit) -> None:
    orders = rk.events.topic("ms-typed", model=Order)
    with orders.subscribe() as sub:
        orders.publish(Order(1, 9.5))
        rk.events.publish("ms-typed", {"id": 2.5, "total": 1})
        orders.publish({"id": 3, "total": 2})
        first, second = sub.get(5), sub.get(5)
        assert isinstance(first, Message)
        assert isinstance(second, Message)
        assert (first.data, second.data) == (Order(1, 9.5), Order(3, 2.0))
        assert sub.invalid == 1


async def test_async_fanout_msgspec_struct_skips_invalid(ark: AsyncRedkit) -> None:
    orders = ark.events.topic("ms-atyped", model=Order)
    async with orders.subscribe() as sub:
        await ark.events.publish("ms-atyped", {"id": 1})  # total is missing
        await orders.publish(Order(2, 0.5))
        item = await sub.get(5)
        assert isinstance(item, Message)
        assert item.data == Order(2, 0.5)
        assert sub.invalid == 1


def test_codec_reports_non_models_clearly() -> None:
    codec = Codec(JsonSerializer(), Order)
    assert codec.decode(codec.encode(Order(1, 2.0))) == Order(1, 2.0)
    with pytest.raises(ConfigError):
        Codec(JsonSerializer(), Order(1, 2.0))  # type: ignore[arg-type]
