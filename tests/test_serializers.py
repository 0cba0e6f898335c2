"""Serializers: JSON by default, msgpack optional, pickle only by name and signed."""

from __future__ import annotations

import collections
import copy
import dataclasses
import datetime as dt
import enum
import math
import pickle
import uuid
import zoneinfo
from collections import namedtuple
from decimal import Decimal
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redkit import Redkit, serializers
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


def same(a: Any, b: Any) -> bool:
    """Equal, of the same type all the way down (nan equals nan; tzinfo and fold count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):  # in order: every serializer keeps the order of items
        return len(a) == len(b) and all(map(same, a.items(), b.items()))
    if isinstance(a, (set, frozenset)):
        return len(a) == len(b) and all(any(same(x, y) for y in b) for x in a)
    if isinstance(a, (dt.datetime, dt.time)):
        return (
            a == b and a.tzinfo == b.tzinfo and a.fold == b.fold and a.utcoffset() == b.utcoffset()
        )
    return bool(a == b)


SERIALIZERS = [JsonSerializer(), MsgpackSerializer()]
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)  # no lone surrogates
zones = st.sampled_from([None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=-5, minutes=-30))])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0]),
    texts,
    st.sampled_from(["~", "~t", "~dt", ""]),
    st.binary(max_size=8),
    st.datetimes(timezones=zones),
    st.datetimes(timezones=st.sampled_from([zoneinfo.ZoneInfo("Europe/Paris")])),
    st.dates(),
    st.times(timezones=zones),
    st.timedeltas(),
    st.uuids(),
    st.decimals(allow_nan=False),
)
hashables = st.recursive(
    scalars, lambda inner: st.tuples(inner) | st.frozensets(inner, max_size=3), max_leaves=4
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.sets(hashables, max_size=3),
        st.frozensets(hashables, max_size=3),
        st.dictionaries(texts, inner, max_size=3),
        st.dictionaries(st.sampled_from(["~", "~t", "~x"]), inner, max_size=1),
        st.dictionaries(hashables, inner, max_size=3),
    ),
    max_leaves=10,
)
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)


def test_json_is_the_default() -> None:
    assert isinstance(get_serializer(None), JsonSerializer)
    assert isinstance(get_serializer("json"), JsonSerializer)


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=["json", "msgpack"])
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
def test_values_come_back_equal_and_of_the_same_type(serializer: Serializer, value: Any) -> None:
    assert same(serializer.loads(serializer.dumps(value)), value)


@given(plain)
def test_plain_json_is_written_as_orjson_writes_it(value: Any) -> None:
    json = JsonSerializer()
    assert json.dumps(value) == orjson.dumps(value)
    assert same(json.loads(json.dumps(value)), value)


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 5, 1, 12, 30),
        dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
        dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=zoneinfo.ZoneInfo("America/New_York")),
        dt.date(2024, 5, 1),
        dt.time(12, 30, 1, 5),
        dt.time(12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.timedelta(days=-1, microseconds=3),
        uuid.UUID(int=42),
        Decimal("1.10"),
        Decimal("-0"),
        b"\x00\xff",
        (1, (2, [3])),
        {1, "a", (2,)},
        frozenset({1}),
        math.nan,
        -math.inf,
        [math.inf, None],
        {1: "int keys stay ints", (1, 2): "tuple keys too"},
        {"~t": [1]},
        {"a": {"~": 1}, "b": (1,)},
        2**100,
    ],
    ids=repr,
)
@pytest.mark.parametrize("serializer", SERIALIZERS, ids=["json", "msgpack"])
def test_common_types_round_trip(serializer: Serializer, value: Any) -> None:
    assert same(serializer.loads(serializer.dumps(value)), value)


def test_data_written_before_tagging_still_reads() -> None:
    old = {"placed": "2024-05-01T12:30:00+00:00", "id": "00000000-0000-0000-0000-00000000002a"}
    written = orjson.dumps({**old, 1: [1, 2]}, option=orjson.OPT_NON_STR_KEYS)
    assert JsonSerializer().loads(written) == {**old, "1": [1, 2]}
    assert JsonSerializer().loads(b'{"~t":[1,2]}') == {"~t": [1, 2]}  # plain JSON is never revived
    packer = MsgpackSerializer()
    old_packed = msgpack.packb({"a": [1, 2.5, b"x"]}, use_bin_type=True)
    assert packer.loads(old_packed) == {"a": [1, 2.5, b"x"]}
    int_keys = msgpack.packb({1: "one"}, use_bin_type=True)  # stored fine, unreadable before
    assert packer.loads(int_keys) == {1: "one"}


@given(plain)
def test_plain_msgpack_is_written_as_before(value: Any) -> None:
    packer = MsgpackSerializer()
    assert packer.dumps(value) == msgpack.packb(value, use_bin_type=True)
    assert same(packer.loads(packer.dumps(value)), value)


class Size(enum.IntEnum):
    ONE = 1


class Name(str):
    pass


Point = namedtuple("Point", "x y")


@pytest.mark.parametrize(
    ("value", "fix"),
    [
        (Colour.RED, r"member\.value"),
        (Size.ONE, r"member\.value"),
        (Order(uuid.UUID(int=7), dt.datetime(2024, 1, 2), ["a"]), r"dataclasses\.asdict"),
        (Point(1, 2), r"_asdict\(\)"),
        (collections.OrderedDict(a=1), r"store dict\(value\)"),
        ({"deep": [Name("x")]}, r"store str\(value\)"),
        (Opaque(), "pickle"),
        ([1, {2: Opaque()}], "Opaque"),
        (dt.time(1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")), "fixed datetime.timezone"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("serializer", SERIALIZERS, ids=["json", "msgpack"])
def test_what_would_change_type_is_refused_with_the_fix(
    serializer: Serializer, value: Any, fix: str
) -> None:
    with pytest.raises(SerializationError, match=fix) as caught:
        serializer.dumps(value)
    assert "same type" in str(caught.value) or "timezone" in str(caught.value)
    assert isinstance(caught.value, TypeError)
    assert caught.value.__cause__ is None  # no serializer internals in the traceback


def test_json_refuses_lone_surrogates_and_cycles() -> None:
    loop: list[Any] = []
    loop.append(loop)
    for bad in ("\ud800", ["\udfff"], loop):
        with pytest.raises(SerializationError):
            JsonSerializer().dumps(bad)


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b"",
        b"~",
        b"~{not json",
        b'~{"~zz":1}',
        b'~{"~b":"!!"}',
        b'~{"~t":1}',
        b'~{"~dt":"x"}',
    ],
)
def test_json_rejects_invalid_stored_data(data: bytes) -> None:
    with pytest.raises(SerializationError, match="not valid"):
        JsonSerializer().loads(data)


def test_msgpack_errors_and_foreign_extensions() -> None:
    packer = get_serializer("msgpack")
    assert isinstance(packer, MsgpackSerializer)
    with pytest.raises(SerializationError, match="Opaque"):
        packer.dumps(Opaque())
    with pytest.raises(SerializationError):
        packer.loads(b"\xc1")  # a byte msgpack never uses
    foreign = msgpack.packb(msgpack.ExtType(99, b"x"))
    assert packer.loads(foreign) == msgpack.ExtType(99, b"x")


@pytest.mark.parametrize(
    "serializer", [JsonSerializer(), MsgpackSerializer()], ids=["json", "msgpack"]
)
def test_the_first_decimal_of_two_threads_is_not_refused(
    serializer: Serializer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thread B misses Decimal in the writers' tables, thread A adds it, then B's own
    _late_types() finds it there and returns False: B must still write the value.

    The interleaving is played out in order on one thread: the tables lose Decimal (as in
    a process that has not written one yet) and _late_types adds it as A would, then
    answers False as B's call does.
    """
    monkeypatch.delitem(serializers._TAGGERS, Decimal, raising=False)
    monkeypatch.delitem(serializers._EXT_BY_TYPE, Decimal, raising=False)
    late_types = serializers._late_types

    def another_thread_got_there_first() -> bool:
        late_types()
        return False

    monkeypatch.setattr(serializers, "_late_types", another_thread_got_there_first)
    value = {"price": Decimal("9.90"), "n": (Decimal("-0"),)}
    back = serializer.loads(serializer.dumps(value))
    assert back == value
    assert [str(back["price"]), str(back["n"][0])] == ["9.90", "-0"]
    assert [type(back["price"]), type(back["n"])] == [Decimal, tuple]


def test_the_cache_gives_back_what_it_was_given(rk: Redkit) -> None:
    cache = rk.cache("types")
    value = {
        "when": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
        "day": dt.date(2024, 5, 1),
        "id": uuid.UUID(int=1),
        "price": Decimal("9.99"),
        "pair": (1, 2),
        "ratio": math.nan,
        "limit": -math.inf,
        "raw": b"\x00",
    }
    cache.set("v", value)
    assert same(cache.get("v"), value)
    with pytest.raises(SerializationError, match=r"member\.value"):
        cache.set("e", Colour.RED)


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


def test_a_pickle_serializer_can_be_copied_and_pickled() -> None:
    """It holds its key, not the pickle module: deepcopy and pickle work, as before."""
    original = PickleSerializer(SECRET)
    for twin in (copy.deepcopy(original), pickle.loads(pickle.dumps(original))):
        assert isinstance(twin, PickleSerializer)
        assert twin.loads(original.dumps({1, 2})) == {1, 2}
        assert original.loads(twin.dumps((1, "a"))) == (1, "a")


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


def plain_reference(value: Any) -> bool:
    """What orjson writes and reads back unchanged (int range aside): the JSON types."""
    kind = type(value)
    if kind is list:
        return all(map(plain_reference, value))
    if kind is dict:
        return all(type(k) is str for k in value) and all(map(plain_reference, value.values()))
    if kind is float:
        return math.isfinite(value)
    if kind is int:
        return -(2**63) <= value < 2**64
    return kind in (str, bool, type(None))


class Text(str):
    """A subclass: orjson writes it as a str, so it must not count as plain."""


mixed_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), texts,
    st.sampled_from([(1,), Text("t"), uuid.UUID(int=1), Colour.RED, b"x", 2**70]),
)  # fmt: skip
wide = st.recursive(  # containers past the size where the check switches to a set of types
    mixed_leaves,
    lambda inner: (
        st.lists(inner, max_size=20)
        | st.dictionaries(texts, inner, max_size=20)
        | st.dictionaries(st.integers(0, 3), inner, min_size=1, max_size=2)
    ),
    max_leaves=40,
)


@settings(max_examples=300)
@given(wide)
def test_plain_values_of_any_size_are_told_apart_from_the_rest(value: Any) -> None:
    json = JsonSerializer()
    if value is Colour.RED:
        return  # refused, as any enum: tested above
    try:
        written = json.dumps(value)
    except SerializationError:
        assert not plain_reference(value)
        return
    if plain_reference(value):
        assert written == orjson.dumps(value)
    else:
        assert written[:1] == b"~"  # tagged
    assert same(json.loads(written), value)
