"""Decorator keys: injective over the arguments they accept, stable across processes."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import math
import subprocess
import sys
import uuid
import zoneinfo
from collections import namedtuple
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redkit import Redkit
from redkit.cache import Cache
from redkit.cache.keying import CallKey, encode_value
from redkit.errors import ConfigError


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


class Size(enum.IntEnum):
    ONE = 1


Point = namedtuple("Point", "x y")


def probe(value: Any, other: Any = None) -> Any:
    return value


KEY = CallKey(probe)


def key_of(value: Any) -> str:
    return KEY((value,), {})


# --- a reference notion of "the same argument": same types all the way down, same values


def ref(value: Any) -> Any:
    """A hashable description that two values share iff they are the same argument."""
    kind = type(value)
    if kind is float:
        return ("float", "nan" if math.isnan(value) else value.hex())
    if kind in (list, tuple):
        return (kind.__name__, tuple(map(ref, value)))
    if kind in (set, frozenset):
        return (kind.__name__, frozenset(map(ref, value)))
    if kind is dict:
        return ("dict", frozenset((ref(k), ref(v)) for k, v in value.items()))
    return (kind.__name__, value)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, math.inf, -math.inf, math.nan]),
    st.floats(),
    st.text(max_size=3),
    st.text(alphabet="ab:;.s1", max_size=4),  # the encoding's own delimiters
    st.binary(max_size=3),
    st.sampled_from(["", "1", "N", "None", "nan", "i1;", "s1:a"]),
)
hashable = st.recursive(
    scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=6
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.sets(hashable, max_size=3),
        st.frozensets(hashable, max_size=3),
        st.dictionaries(hashable, inner, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=400)
@given(st.lists(values, min_size=2, max_size=8))
def test_keys_are_injective_and_deterministic(batch: list[Any]) -> None:
    seen: dict[str, Any] = {}
    for value in batch:
        key = key_of(value)
        if key in seen:
            assert seen[key] == ref(value), f"{value!r} shares a key with another value"
        seen[key] = ref(value)
    for value in batch:  # the same argument again: the same key
        assert seen[key_of(value)] == ref(value)


@settings(max_examples=200)
@given(values, values)
def test_encoding_is_injective(a: Any, b: Any) -> None:
    assert (encode_value(a) == encode_value(b)) == (ref(a) == ref(b))


@given(st.dictionaries(st.text(max_size=4), st.integers(), max_size=6), st.randoms())
def test_order_of_dicts_and_sets_does_not_matter(mapping: dict[str, int], rnd: Any) -> None:
    items = list(mapping.items())
    rnd.shuffle(items)
    assert key_of(dict(items)) == key_of(mapping)
    assert key_of(set(mapping)) == key_of({k for k, _ in items})


@pytest.mark.parametrize(
    "group",
    [
        [None, math.nan, -math.inf, math.inf, "None", 0, 0.0, -0.0, False, ""],
        [(1, 2), [1, 2], {1, 2}, frozenset({1, 2}), Point(1, 2), {1: 2}],
        [{1: "a"}, {"1": "a"}, {1.0: "a"}, {True: "a"}, {b"1": "a"}],
        [1, 1.0, True, "1", b"1", bytearray(b"1"), Decimal(1), Colour.RED, Size.ONE],
        ["a", b"a", ("a",), ["a"]],
        [Decimal("1.0"), Decimal("1.00"), Decimal("NaN"), Decimal("-0")],
        [
            dt.datetime(2024, 1, 1),
            dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
            dt.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("UTC")),
            dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            dt.datetime(2024, 1, 1, fold=1),
            dt.date(2024, 1, 1),
            dt.time(0, 0),
            dt.timedelta(0),
            "2024-01-01",
        ],
        [uuid.UUID(int=1), uuid.UUID(int=1).hex, str(uuid.UUID(int=1))],
        [(), [], {}, set(), frozenset(), ((),), [[]], ([],)],
    ],
    ids=[
        "nothings",
        "containers",
        "dict-keys",
        "ones",
        "str-bytes",
        "decimals",
        "times",
        "uuids",
        "empty",
    ],
)
def test_known_collisions_are_gone(group: list[Any]) -> None:
    keys = [key_of(v) for v in group]
    assert len(set(keys)) == len(group), list(zip(group, keys, strict=True))


def test_key_shape_and_binding() -> None:
    def f(a: int, b: int = 2, *, c: int = 3) -> int:
        return a

    keyer = CallKey(f, name="f")
    key = keyer((1,), {})
    assert key.startswith("f/")
    assert len(key) == len("f/") + 22
    same = [((1,), {}), ((), {"a": 1}), ((1, 2), {}), ((1,), {"b": 2, "c": 3}), ((1, 2), {"c": 3})]
    assert {keyer(a, kw) for a, kw in same} == {key}
    assert keyer((1,), {"c": 4}) != key
    for args, kwargs in [((), {}), ((1, 2, 3), {}), ((1,), {"a": 1}), ((1,), {"d": 1})]:
        with pytest.raises(ConfigError, match="bad arguments"):
            keyer(args, kwargs)


def test_variadic_and_positional_only_signatures() -> None:
    def g(a: int, /, *rest: int, **extra: int) -> int:
        return a

    keyer = CallKey(g, name="g")
    assert keyer((1, 2), {"x": 1, "y": 2}) == keyer((1, 2), {"y": 2, "x": 1})
    assert keyer((1, 2), {}) != keyer((1,), {"rest": 2})  # a keyword, not a *rest item
    assert keyer((1,), {}) != keyer((1, 1), {})
    with pytest.raises(ConfigError, match="bad arguments"):
        keyer((), {"a": 1})


class Repo:
    def load(self, item: int) -> int:
        return item


def test_ignore_leaves_parameters_out_and_is_checked() -> None:
    keyer = CallKey(Repo.load, ignore=("self",))
    assert keyer((Repo(), 1), {}) == keyer((Repo(),), {"item": 1})
    assert keyer((Repo(), 1), {}) != keyer((Repo(), 2), {})
    with pytest.raises(ConfigError, match="no parameter"):
        CallKey(Repo.load, ignore=("slef",))
    with pytest.raises(ConfigError, match="sequence"):
        CallKey(Repo.load, ignore="self")


def test_values_without_a_canonical_form_are_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)

    class Custom(dict):  # type: ignore[type-arg]
        pass

    for bad, what in [
        (object(), "object"),
        ([1, {"deep": object()}], "object"),
        (Custom(), "Custom"),
        (dt.datetime(2024, 1, 1, tzinfo=_Offset()), "_Offset"),
        (loop, "contains itself"),
    ]:
        with pytest.raises(ConfigError, match=what) as caught:
            key_of(bad)
        assert "key=" in str(caught.value)
    with pytest.raises(ConfigError, match=r"argument 'other' .* ignore=\('other',\)"):
        KEY((1, object()), {})


class _Offset(dt.tzinfo):
    def utcoffset(self, when: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(hours=2)

    def dst(self, when: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(0)

    def tzname(self, when: dt.datetime | None) -> str:
        return "+02"


def test_functions_without_a_stable_name_need_one() -> None:
    def make(n: int) -> Any:
        def scaled(x: int) -> int:
            return n * x

        return scaled

    class Thing:
        def method(self, x: int) -> int:
            return x

    for func in [make(2), lambda x: x, Thing().method, functools.partial(probe, 1)]:
        with pytest.raises(ConfigError, match="name="):
            CallKey(func)
    assert CallKey(make(2), name="scaled-2")((5,), {}).startswith("scaled-2/")
    assert CallKey(make(2), key=lambda x: f"2:{x}")((5,), {}).endswith("/2:5")
    with pytest.raises(ConfigError, match="non-empty"):
        CallKey(probe, name="")
    with pytest.raises(ConfigError, match="must return a str"):
        CallKey(probe, key=lambda value, other=None: 5)((1,), {})  # type: ignore[arg-type,return-value]


def test_closures_from_one_factory_never_share_entries(rk: Redkit) -> None:
    cache = rk.cache("keying")

    def make(n: int) -> Any:
        @cache.cached(name=f"scale-by-{n}")
        def scaled(x: int) -> int:
            return n * x

        return scaled

    assert make(3)(5) == 15
    assert make(2)(5) == 10
    with pytest.raises(ConfigError, match="name="):
        make_unnamed(cache)


def make_unnamed(cache: Cache) -> Any:
    @cache.cached()
    def inner(x: int) -> int:
        return x

    return inner


def test_decorated_calls_keep_distinct_arguments_apart(rk: Redkit) -> None:
    cache = rk.cache("keying2")
    calls: list[Any] = []

    @cache.cached(name="echo")
    def echo(value: Any) -> str:
        calls.append(value)
        return repr(value)

    arguments = [None, math.nan, -math.inf, (1, 2), [1, 2], {1, 2}, {1: "a"}, {"1": "a"}]
    assert [echo(v) for v in arguments] == [repr(v) for v in arguments]
    assert [echo(v) for v in arguments] == [repr(v) for v in arguments]  # all hits now
    assert len(calls) == len(arguments)


def test_keys_agree_across_processes() -> None:
    code = (
        "from redkit.cache.keying import CallKey\n"
        "def f(a, b): pass\n"
        "print(CallKey(f, name='f')(({'x', 'y', 'z', 'w'}, {'b': 1, 'a': 2}), {}))\n"
    )
    keys = set()
    for seed in ("1", "2", "3"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": ":".join(sys.path)},
        )
        keys.add(out.stdout.strip())
    assert len(keys) == 1
