"""Cache basics on every target: values, TTLs, many-key calls, tags, namespaces, decorator."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
from tests.conftest import ON_SENTINEL_TOO

from redkit import AsyncRedkit, Redkit
from redkit.cache import AsyncCache, Cache
from redkit.errors import ConfigError, DataError, TamperedDataError

if TYPE_CHECKING:
    from tests.cache.conftest import Either  # a fixture's value, for annotations


@ON_SENTINEL_TOO
async def test_set_get_delete_and_default(make_cache: Callable[..., Either]) -> None:
    cache = make_cache("basic")
    await cache.set("a", {"x": [1, 2]})
    assert await cache.get("a") == {"x": [1, 2]}
    assert await cache.get("missing", "fallback") == "fallback"
    assert await cache.delete("a", "missing") == 1
    assert await cache.get("a") is None


def test_user_keys_cannot_escape_their_namespace(rk: Redkit) -> None:
    one, two = rk.cache("one"), rk.cache("two")
    one.set("k", 1)
    one.set("} {x:*", 2)
    assert two.get("k") is None
    assert one.get("} {x:*") == 2


def test_key_types_are_checked_on_every_read(rk: Redkit) -> None:
    cache = rk.cache("keytypes")
    cache.set("1", "one")
    for _ in range(2):  # the second read of each key comes from the per-key memo
        assert cache.get(1) == "one"
        assert cache.get("1") == "one"
        assert cache.get(b"1") == "one"
        for bad in (True, 1.0, [1]):
            with pytest.raises(ConfigError):
                cache.get(bad)  # type: ignore[arg-type]
            with pytest.raises(ConfigError):
                cache.get_or_set(bad, lambda: 1)  # type: ignore[arg-type]


def test_ttl_is_jittered_below_the_given_ttl(rk: Redkit) -> None:
    cache = rk.cache("ttl", ttl=100, jitter=0.5)
    ttls = set()
    for i in range(20):
        cache.set(i, i)
        ttls.add(rk.client.pttl(rk.keys.group("cache", "ttl", i).key()))
    assert all(50_000 <= t <= 100_000 for t in ttls)
    assert len(ttls) > 1, "jitter should spread the ttls"


def test_entries_expire(rk: Redkit) -> None:
    cache = rk.cache("exp", jitter=0)
    cache.set("short", 1, ttl=0.2)
    assert cache.get("short") == 1
    deadline = time.monotonic() + 5
    while cache.get("short") is not None:
        assert time.monotonic() < deadline, "the entry never expired"
        time.sleep(0.02)


async def test_many_key_calls(make_cache: Callable[..., Either]) -> None:
    cache = make_cache("many")
    await cache.set_many({f"k{i}": i for i in range(50)})
    found = await cache.get_many([f"k{i}" for i in range(60)])
    assert found == {f"k{i}": i for i in range(50)}
    assert await cache.add("k1", "other") is False
    assert await cache.add("new", "v") is True
    assert await cache.get("k1") == 1


def test_add_replaces_only_an_invalid_entry(rk: Redkit, make_rk: Callable[..., Redkit]) -> None:
    cache = rk.cache("add")
    other = make_rk().cache("add")  # instance B: no state shared but Redis
    cache.set("k", 1)
    assert cache.add("k", 2) is False, "a valid entry stays"
    other.clear()  # the entry is invalid but still in Redis until its ttl
    assert cache.add("k", 3) is True
    assert other.get("k") == 3
    cache.set("t", 1, tags=["colour"])
    assert cache.add("t", 2) is False, "a valid tagged entry stays"
    other.invalidate_tags("colour")
    assert cache.add("t", 4, tags=["colour"]) is True
    assert cache.get("t") == 4
    assert cache.add("t", 5) is False


def test_concurrent_adds_over_an_invalid_entry_store_once(rk: Redkit) -> None:
    cache = rk.cache("add-race")
    for round_ in range(5):
        cache.set("k", "old")
        cache.clear()
        barrier = threading.Barrier(8)
        values = [f"{round_}-{i}" for i in range(8)]

        def add(value: str, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            return cache.add("k", value)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(add, values))
        assert results.count(True) == 1
        assert cache.get("k") == values[results.index(True)]


@ON_SENTINEL_TOO
async def test_tag_invalidation_is_precise(make_cache: Callable[..., Either]) -> None:
    cache = make_cache("tags")
    other_ns = make_cache("tags-other")
    for i in range(30):
        await cache.set(f"red{i}", i, tags=["red"] if i % 2 else ["red", "big"])
        await cache.set(f"blue{i}", i, tags=["blue"])
    await cache.set("plain", "p")
    await other_ns.set("red-elsewhere", 1, tags=["red"])
    await cache.invalidate_tags("red")
    assert [await cache.get(f"red{i}") for i in range(30)] == [None] * 30
    assert await other_ns.get("red-elsewhere") is None, "tags span namespaces"
    assert [await cache.get(f"blue{i}") for i in range(30)] == list(range(30))
    assert await cache.get("plain") == "p"
    await cache.set("red0", "again", tags=["red"])
    assert await cache.get("red0") == "again", "new entries carry the new version"


async def test_clear_invalidates_only_its_namespace(make_cache: Callable[..., Either]) -> None:
    a, b = make_cache("a"), make_cache("b")
    await a.set("k", 1)
    await b.set("k", 2)
    await a.clear()
    assert await a.get("k") is None
    assert await b.get("k") == 2


async def test_incr_keeps_ttl_and_rejects_non_ints(
    rk: Redkit, make_cache: Callable[..., Either]
) -> None:
    cache = make_cache("incr")
    assert await cache.incr("n") is None
    await cache.set("n", 5, ttl=100)
    assert await cache.incr("n", 3) == 8
    assert await cache.incr("n", -10) == -2
    assert await cache.get("n") == -2
    assert rk.client.pttl(rk.keys.group("cache", "incr", "n").key()) > 50_000
    await cache.set("s", "text")
    with pytest.raises(DataError, match="not an integer"):
        await cache.incr("s")


@pytest.mark.parametrize(
    ("stored", "delta"), [(2**53 + 1, 1), (2**80, 1), (-(2**60), 1), (2**53 - 2, 5), (0, 2**60)]
)
def test_incr_refuses_what_it_cannot_add_exactly(rk: Redkit, stored: int, delta: int) -> None:
    cache = rk.cache("incr")
    cache.set("big", stored)
    with pytest.raises(ConfigError, match="2\\*\\*53"):
        cache.incr("big", delta)
    assert cache.get("big") == stored  # left as it was, never rounded
    cache.set("edge", 2**53 - 2)
    assert cache.incr("edge") == 2**53 - 1


async def test_none_is_cached_only_when_asked(make_cache: Callable[..., Either]) -> None:
    calls = []

    def loader() -> None:
        calls.append(1)

    plain = make_cache("neg")
    assert await plain.get_or_set("k", loader) is None
    assert await plain.get_or_set("k", loader) is None
    assert len(calls) == 2
    negative = make_cache("neg2", cache_none=True, none_ttl=30)
    assert await negative.get_or_set("k", loader) is None
    assert await negative.get_or_set("k", loader) is None
    assert len(calls) == 3


def test_decorator_keys_are_stable_and_argument_derived(rk: Redkit) -> None:
    cache = rk.cache("deco")
    calls: list[tuple[int, int]] = []

    @cache.cached(ttl=60, tags=lambda x, y=2: [f"x:{x}"], name="mul")
    def mul(x: int, y: int = 2) -> int:
        calls.append((x, y))
        return x * y

    assert mul(3) == mul(x=3) == mul(3, 2) == 6
    assert mul(4) == 8
    assert len(calls) == 2
    # the key is a digest of the bound arguments, the same in every process
    assert mul.cache_key(3) == mul.cache_key(3, y=2)  # type: ignore[attr-defined]
    assert mul.cache_key(3).startswith("mul/")  # type: ignore[attr-defined]
    cache.invalidate_tags("x:3")
    assert mul(3) == 6
    assert mul(4) == 8
    assert calls == [(3, 2), (4, 2), (3, 2)]


def test_decorator_refuses_unkeyable_arguments_and_wrong_kind(rk: Redkit) -> None:
    cache = rk.cache("deco2")

    @cache.cached(name="f")
    def f(obj: object) -> int:
        return 1

    with pytest.raises(ConfigError, match="ignore="):
        f(object())
    with pytest.raises(ConfigError, match="AsyncCache"):

        @cache.cached()
        async def g() -> int:
            return 1


def test_tampered_pickle_is_rejected(target_url: str, prefix: str, make_rk: object) -> None:
    secret = "s" * 32
    with Redkit(target_url, prefix=prefix, serializer="pickle", secret=secret) as rk:
        cache = rk.cache("pickled")
        cache.set("obj", {1, 2, 3})
        assert cache.get("obj") == {1, 2, 3}
        key = rk.keys.group("cache", "pickled", "obj").key()
        raw = bytearray(rk.client.get(key))
        raw[-1] ^= 0xFF
        rk.client.set(key, bytes(raw))
        with pytest.raises(TamperedDataError):
            cache.get("obj")
        rk.client.delete(key)
    with Redkit(target_url, prefix=prefix, serializer="pickle", secret="x" * 32) as other:
        with Redkit(target_url, prefix=prefix, serializer="pickle", secret=secret) as rk:
            rk.cache("pickled").set("obj2", [1])
        with pytest.raises(TamperedDataError):
            other.cache("pickled").get("obj2")


def test_bad_options_are_config_errors(rk: Redkit) -> None:
    for options in ({"ttl": 0}, {"jitter": 1.5}, {"near": -1}, {"near_mode": "x"}):
        with pytest.raises(ConfigError):
            rk.cache("bad", **options)


async def test_async_basics_and_decorator(ark: AsyncRedkit) -> None:
    cache = ark.cache("abasic")
    await cache.set("a", [1], tags=["t"])
    assert await cache.get("a") == [1]
    assert await cache.get_many(["a", "b"]) == {"a": [1]}
    await cache.invalidate_tags("t")
    assert await cache.get("a") is None
    assert await cache.add("a", [2]) is True, "an invalidated entry does not block add"
    assert await cache.add("a", [3]) is False
    assert await cache.get("a") == [2]
    calls = []

    @cache.cached(ttl=30, name="double")
    async def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    assert await double(2) == 4
    assert await double(x=2) == 4
    assert calls == [2]
    with pytest.raises(ConfigError, match=r"rk\.cache"):

        @cache.cached()
        def sync() -> int:
            return 1


def test_sync_and_async_facades_match() -> None:
    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    def parameters(method: Any) -> list[tuple[str, Any, Any]]:
        # names, kinds and defaults; annotations differ (a loader may return an awaitable)
        return [(p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()]

    assert public(Cache) - {"close"} == public(AsyncCache) - {"aclose"}
    for name in public(Cache) - {"close"}:
        sync, asynchronous = getattr(Cache, name), getattr(AsyncCache, name)
        if callable(sync):
            assert parameters(sync) == parameters(asynchronous), name
            if name != "cached":  # the decorator itself is sync on both
                assert inspect.iscoroutinefunction(asynchronous), name
