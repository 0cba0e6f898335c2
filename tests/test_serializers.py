"""Serializers: JSON by default, msgpack optional, pickle only by name and signed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from typing import Any

import pytest

from redkit import Redkit
from redkit.errors import ConfigError, SerializationError, TamperedDataError
from redkit.serializers import (
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    Serializer,
    get_serializer,
)

SECRET = "s" * 32


@dataclasses.dataclass
class Order:
    id: uuid.UUID
    placed: dt.datetime
    lines: list[str]


class Colour(enum.Enum):
    RED = "red"


class Opaque:
    """Something no serializer knows."""


FIRED: list[int] = []


def _fire() -> None:
    FIRED.append(1)


class Tripwire:
    """Unpickling it records that it happened: a tampered value must never get this far."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_fire, ())


def test_json_is_the_default() -> None:
    assert isinstance(get_serializer(None), JsonSerializer)
    assert isinstance(get_serializer("json"), JsonSerializer)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc), "2024-05-01T12:30:00+00:00"),
        (dt.datetime(2024, 5, 1, 12, 30), "2024-05-01T12:30:00"),
        (dt.date(2024, 5, 1), "2024-05-01"),
        (uuid.UUID(int=42), "00000000-0000-0000-0000-00000000002a"),
        (Colour.RED, "red"),
        ({"nested": [1, 2.5, None, True, "ü"]}, {"nested": [1, 2.5, None, True, "ü"]}),
        ((1, 2), [1, 2]),
        ({1: "int keys become strings"}, {"1": "int keys become strings"}),
    ],
)
def test_json_round_trips(value: Any, expected: Any) -> None:
    json = JsonSerializer()
    assert json.loads(json.dumps(value)) == expected


def test_json_dataclass_round_trip() -> None:
    order = Order(uuid.UUID(int=7), dt.datetime(2024, 1, 2, 3, 4, 5, 6000), ["a", "b"])
    json = JsonSerializer()
    restored = json.loads(json.dumps(order))
    assert restored == {
        "id": str(order.id),
        "placed": order.placed.isoformat(),
        "lines": ["a", "b"],
    }
    rebuilt = Order(
        uuid.UUID(restored["id"]), dt.datetime.fromisoformat(restored["placed"]), ["a", "b"]
    )
    assert rebuilt == order


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(Opaque(), "Opaque"), ({"deep": [Opaque()]}, "Opaque"), ({1, 2}, "set"), (b"raw", "bytes")],
)
def test_json_error_names_the_type(value: Any, type_name: str) -> None:
    with pytest.raises(SerializationError, match=type_name) as caught:
        JsonSerializer().dumps(value)
    assert isinstance(caught.value, TypeError)
    assert caught.value.__cause__ is None  # no orjson internals in the traceback


def test_json_rejects_invalid_stored_data() -> None:
    with pytest.raises(SerializationError, match="not valid JSON"):
        JsonSerializer().loads(b"{not json")


def test_msgpack_round_trip_and_errors() -> None:
    packer = get_serializer("msgpack")
    assert isinstance(packer, MsgpackSerializer)
    value = {"bytes": b"\x00\xff", "list": [1, "two", 3.0], "none": None}
    assert packer.loads(packer.dumps(value)) == value
    with pytest.raises(SerializationError, match="Opaque"):
        packer.dumps(Opaque())
    with pytest.raises(SerializationError):
        packer.loads(b"\xc1")  # a byte msgpack never uses


def test_pickle_needs_a_name_and_a_secret() -> None:
    with pytest.raises(ConfigError, match="secret"):
        get_serializer("pickle")
    with pytest.raises(ConfigError, match="16 bytes"):
        get_serializer("pickle", secret="short")
    with pytest.raises(ConfigError, match="secret"):
        Redkit(serializer="pickle")


def test_pickle_round_trips_anything_picklable() -> None:
    pickler = get_serializer("pickle", secret=SECRET)
    order = Order(uuid.uuid4(), dt.datetime.now(dt.timezone.utc), ["x"])
    assert pickler.loads(pickler.dumps(order)) == order
    assert pickler.loads(pickler.dumps({1, 2})) == {1, 2}
    assert SECRET not in repr(pickler)


def _tampered(data: bytes) -> list[bytes]:
    flipped_body = data[:-1] + bytes([data[-1] ^ 1])
    flipped_sig = bytes([data[0] ^ 1]) + data[1:]
    return [flipped_body, flipped_sig, data[:20], b"", data[32:]]


def test_pickle_rejects_tampered_data_unread() -> None:
    pickler = PickleSerializer(SECRET)
    data = pickler.dumps(Tripwire())
    assert FIRED == []
    for bad in _tampered(data):
        with pytest.raises(TamperedDataError):
            pickler.loads(bad)
    with pytest.raises(TamperedDataError):
        PickleSerializer("another secret, 16+ bytes").loads(data)
    assert FIRED == [], "a tampered value was unpickled"
    pickler.loads(data)  # the genuine one is accepted
    assert FIRED == [1]


def test_pickle_error_names_the_type() -> None:
    with pytest.raises(SerializationError, match="generator"):
        PickleSerializer(SECRET).dumps(x for x in ())


def test_custom_serializer_objects() -> None:
    class Upper:
        name = "upper"

        def dumps(self, value: Any) -> bytes:
            return str(value).upper().encode()

        def loads(self, data: bytes) -> Any:
            return data.decode()

    custom = Upper()
    assert isinstance(custom, Serializer)
    assert get_serializer(custom) is custom
    with pytest.raises(ConfigError):
        get_serializer(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="yaml"):
        get_serializer("yaml")
