"""Keys: hostile user parts stay inside their namespace and their cluster hash tag."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from redkit import Redkit
from redkit.errors import ConfigError
from redkit.keys import MAX_PART_BYTES, Keyspace, escape

HOSTILE: list[str | bytes | int] = [
    "{",
    "}",
    "}{",
    "{x}",
    "a}:{b",
    ":",
    "a:b",
    "*",
    "?[a-z]",
    "line\nbreak",
    "tab\there",
    " space ",
    "%3A",
    "#" + "0" * 64,
    "\x00",
    "\ud800",  # a lone surrogate
    "ünïcødé ✓",
    "x" * 10_000,
    "{" * 10_000,
    b"\xff\xfe{}:",
    b"",
    "",
    -1,
    2**70,
]

parts = st.one_of(st.text(max_size=300), st.binary(max_size=300), st.integers())


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes (the rule from the cluster spec)."""
    start = key.find("{")
    if start != -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def normalized(part: str | bytes | int) -> bytes:
    """What a part means as a key part: str, its UTF-8 bytes and int, its digits."""
    if isinstance(part, bytes):
        return part
    return str(part).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("part", HOSTILE, ids=repr)
def test_hostile_part_stays_in_namespace_and_tag(part: str | bytes | int) -> None:
    group = Keyspace("app").group("lock", part)
    key = group.user_key(part, "fixed")
    assert group.tag.startswith("app:lock:")
    assert key.startswith("{" + group.tag + "}:")
    assert hash_tag(key) == group.tag
    assert key_slot(key.encode()) == key_slot(group.key().encode())
    escaped = escape(part)
    assert not set(escaped) & set("{}:*?[] \t\r\n\x00")
    assert len(escaped.encode()) <= MAX_PART_BYTES


@given(names=st.lists(parts, max_size=3), suffix=st.lists(parts, min_size=1, max_size=3))
def test_any_input_hashes_to_exactly_the_group_tag(
    names: list[str | bytes | int], suffix: list[str | bytes | int]
) -> None:
    group = Keyspace("app").group("cap", *names)
    for key in (group.key(), group.key("owner"), group.user_key(*suffix)):
        assert hash_tag(key) == group.tag
        assert key.startswith("{app:cap")
        assert key_slot(key.encode()) == key_slot(group.key().encode())


@given(a=st.lists(parts, min_size=1, max_size=3), b=st.lists(parts, min_size=1, max_size=3))
def test_distinct_inputs_give_distinct_keys(
    a: list[str | bytes | int], b: list[str | bytes | int]
) -> None:
    space = Keyspace("app")
    same = [normalized(p) for p in a] == [normalized(p) for p in b]
    assert (space.group("cap", *a).key("x") == space.group("cap", *b).key("x")) == same
    group = space.group("cap", "g")
    assert (group.user_key(*a) == group.user_key(*b)) == same


@given(st.text(max_size=300), st.text(max_size=300))
def test_distinct_names_differ_even_as_single_parts(a: str, b: str) -> None:
    assert (escape(a) == escape(b)) == (a == b)


def test_safe_parts_are_readable() -> None:
    assert escape("order-42_v1.2@eu") == "order-42_v1.2@eu"
    assert Keyspace("app").group("lock", "order:42").key("owner") == "{app:lock:order%3A42}:owner"


def test_long_parts_become_digests() -> None:
    long = "y" * (MAX_PART_BYTES + 1)
    assert escape(long).startswith("#")
    assert escape(long) != escape(long + "y")
    assert escape("#abc") == "%23abc"  # a short part can never look like a digest


def test_bad_prefix_and_part_types() -> None:
    with pytest.raises(ConfigError):
        Keyspace("a:b")
    with pytest.raises(ConfigError):
        escape(1.5)  # type: ignore[arg-type]


def test_scan_pattern_covers_only_the_prefix() -> None:
    space = Keyspace("app")
    assert space.pattern() == "{app:*"
    assert space.pattern("lock") == "{app:lock:*"


def test_hostile_keys_on_the_server(rk: Redkit) -> None:
    """One script-style multi-key command per hostile part works on every target."""
    for index, part in enumerate(HOSTILE):
        group = rk.keys.group("test", part)
        first, second = group.user_key(part), group.key("second")
        # MSET of two keys fails on a cluster unless they share a slot
        rk.client.mset({first: index, second: index})
        assert rk.client.mget([first, second]) == [str(index).encode()] * 2
    found = {key.decode() for key in rk.client.scan_iter(match=rk.keys.pattern("test"))}
    assert len(found) == 2 * len({normalized(part) for part in HOSTILE})
    assert all(key.startswith("{" + rk.keys.prefix + ":test:") for key in found)
