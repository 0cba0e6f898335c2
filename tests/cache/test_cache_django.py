"""The Django cache backend against Django's documented cache API, method by method.

Modelled on how Django tests its own backends (tests/cache/tests.py: one shared set of
tests per backend, a "prefix", a "v2" and custom key-function caches on the same server,
cache middleware and ``cache_page`` on top), here against real servers. Expiry is
checked on the server (PTTL of the entry) instead of by sleeping where that is possible.
"""

from __future__ import annotations

import dataclasses
import pickle
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

django = pytest.importorskip("django", reason="the django extra is not installed")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(SECRET_KEY="redkit-tests-only", INSTALLED_APPS=[], USE_TZ=True)
    django.setup()

import redis  # noqa: E402
from django.core.cache import CacheKeyWarning, caches  # noqa: E402
from django.core.cache.backends.base import BaseCache  # noqa: E402
from django.http import (  # noqa: E402
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    StreamingHttpResponse,
)
from django.middleware.cache import (  # noqa: E402
    CacheMiddleware,
    FetchFromCacheMiddleware,
    UpdateCacheMiddleware,
)
from django.test import RequestFactory, override_settings  # noqa: E402
from django.views.decorators.cache import cache_control, cache_page  # noqa: E402

from redkit import Redkit  # noqa: E402
from redkit.errors import ConfigError, RedkitError  # noqa: E402
from redkit.integrations.django import cache as backend  # noqa: E402

BACKEND = "redkit.integrations.django.RedkitCache"
THIRTY_DAYS = 60 * 60 * 24 * 30
factory = RequestFactory()


def custom_key_func(key: str, key_prefix: str, version: int) -> str:
    return "CUSTOM-" + "-".join([key_prefix, str(version), key])


def f() -> int:
    return 42


class C:
    def m(self) -> int:
        return 24


@dataclasses.dataclass
class Poll:
    question: str
    votes: list[int]


class Unpicklable:
    def __getstate__(self) -> Any:
        raise pickle.PickleError()


def _conf(url: str, prefix: str, **extra: Any) -> dict[str, Any]:
    options = {"prefix": prefix, **extra.pop("OPTIONS", {})}
    return {"BACKEND": BACKEND, "LOCATION": url, "TIMEOUT": 60, "OPTIONS": options, **extra}


def _caches(url: str, prefix: str) -> dict[str, Any]:
    return {
        "default": _conf(url, prefix),
        "prefix": _conf(url, prefix, KEY_PREFIX="cacheprefix"),
        "v2": _conf(url, prefix, VERSION=2),
        "custom_key": _conf(url, prefix, KEY_FUNCTION=custom_key_func),
        "custom_key2": _conf(url, prefix, KEY_FUNCTION=f"{__name__}.custom_key_func"),
        "other": _conf(url, prefix, TIMEOUT=1, OPTIONS={"namespace": "other"}),
    }


def _close_new(before: set[str]) -> None:
    for key in set(backend._SHARED) - before:
        shared = backend._SHARED.pop(key)
        shared.close()
        shared._rk.close()


@pytest.fixture
def cache(target_url: str, prefix: str, rk: Redkit) -> Iterator[BaseCache]:
    before = set(backend._SHARED)
    with override_settings(CACHES=_caches(target_url, prefix), ALLOWED_HOSTS=["testserver"]):
        yield caches["default"]
    _close_new(before)


@pytest.fixture
def configured(target_url: str, prefix: str) -> Iterator[Callable[..., BaseCache]]:
    """Build a cache from one CACHES entry (for OPTIONS tests)."""
    before = set(backend._SHARED)
    stack: list[Any] = []

    def make(**conf: Any) -> BaseCache:
        entry = {"BACKEND": BACKEND, "LOCATION": target_url, **conf}
        entry.setdefault("OPTIONS", {}).setdefault("prefix", prefix)
        override = override_settings(CACHES={"default": entry})
        override.enable()
        stack.append(override)
        return caches["default"]

    yield make
    for override in reversed(stack):
        override.disable()
    _close_new(before)


def _pttl(rk: Redkit, cache: BaseCache, key: str, namespace: str = "django", **kw: Any) -> int:
    made = cache.make_key(key, **kw)
    return int(rk.client.pttl(rk.keys.group("cache", namespace, made).key()))


def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


# --- get / set / add / delete -------------------------------------------------------------


def test_importing_the_package_does_not_need_django_until_used() -> None:
    import redkit.integrations.django as pkg

    assert pkg.RedkitCache is backend.RedkitCache
    with pytest.raises(AttributeError):
        _ = pkg.Nope


def test_simple_get_set_and_default(cache: BaseCache) -> None:
    cache.set("key", "value")
    assert cache.get("key") == "value"
    assert cache.get("does_not_exist") is None
    assert cache.get("does_not_exist", "bang!") == "bang!"
    assert cache.get("does_not_exist", default="bang!") == "bang!"
    cache.set("key_default_none", None)
    assert cache.get("key_default_none", default="default") is None


def test_add(cache: BaseCache) -> None:
    assert cache.add("addkey1", "value") is True
    assert cache.add("addkey1", "newvalue") is False
    assert cache.get("addkey1") == "value"
    assert cache.add("forever", "ham", None) is True
    assert cache.add("forever", "new", None) is False
    assert cache.get("forever") == "ham"


@pytest.mark.parametrize("timeout", [0, -1, -3600])
def test_add_with_timeout_zero_or_negative(cache: BaseCache, timeout: int) -> None:
    cache.set("existing", "kept")
    assert cache.add("existing", "other", timeout) is False
    assert cache.get("existing") == "kept"  # left alone, not deleted
    assert cache.add("new", "ham", timeout) is True  # would have been added ...
    assert cache.get("new") is None  # ... but nothing is visible
    assert cache.has_key("new") is False


def test_prefix_isolates_caches_on_one_server(cache: BaseCache) -> None:
    cache.set("somekey", "value")
    assert caches["prefix"].has_key("somekey") is False
    caches["prefix"].set("somekey", "value2")
    assert cache.get("somekey") == "value"
    assert caches["prefix"].get("somekey") == "value2"


def test_get_many(cache: BaseCache) -> None:
    cache.set_many({"a": "a", "b": "b", "c": "c", "d": "d"})
    assert cache.get_many(["a", "c", "d"]) == {"a": "a", "c": "c", "d": "d"}
    assert cache.get_many(["a", "b", "e"]) == {"a": "a", "b": "b"}
    assert cache.get_many(iter(["a", "b", "e"])) == {"a": "a", "b": "b"}
    assert cache.get_many([]) == {}
    cache.set_many({"x": None, "y": 1})
    assert cache.get_many(["x", "y"]) == {"x": None, "y": 1}


def test_delete_returns_whether_it_existed(cache: BaseCache) -> None:
    cache.set_many({"key1": "spam", "key2": "eggs"})
    assert cache.delete("key1") is True
    assert cache.get("key1") is None
    assert cache.get("key2") == "eggs"
    assert cache.delete("key1") is False
    assert cache.delete("nonexistent_key") is False


def test_has_key_and_in(cache: BaseCache) -> None:
    cache.set("hello1", "goodbye1")
    assert cache.has_key("hello1") is True
    assert cache.has_key("goodbye1") is False
    cache.set("no_expiry", "here", None)
    assert cache.has_key("no_expiry") is True
    cache.set("null", None)
    assert cache.has_key("null") is True
    assert "hello1" in cache
    assert "goodbye1" not in cache
    assert "null" in cache


def test_close_keeps_the_cache_usable(cache: BaseCache) -> None:
    cache.set("k", 1)
    cache.close()
    assert cache.get("k") == 1


# --- incr / decr -----------------------------------------------------------------------------


def test_incr(cache: BaseCache, rk: Redkit) -> None:
    cache.set("answer", 41)
    assert cache.incr("answer") == 42
    assert cache.get("answer") == 42
    assert cache.incr("answer", 10) == 52
    assert cache.incr("answer", -10) == 42
    with pytest.raises(ValueError, match="not found"):
        cache.incr("does_not_exist")
    with pytest.raises(ValueError):
        cache.incr("does_not_exist", -1)


def test_decr(cache: BaseCache) -> None:
    cache.set("answer", 43)
    assert cache.decr("answer") == 42
    assert cache.decr("answer", 10) == 32
    assert cache.decr("answer", -10) == 42
    assert cache.get("answer") == 42
    with pytest.raises(ValueError):
        cache.decr("does_not_exist")


@pytest.mark.parametrize("value", [None, "1", 1.5, True, [1], 2**80])
def test_incr_decr_of_a_non_integer_raise_redis_response_error(
    cache: BaseCache, value: Any
) -> None:
    cache.set("stored", value)
    for op in (cache.incr, cache.decr):
        with pytest.raises(redis.exceptions.ResponseError) as info:
            op("stored")
        assert not isinstance(info.value, ValueError)  # not "key missing" to Django code
        assert isinstance(info.value, RedkitError)
    assert cache.get("stored") == value


def test_incr_keeps_the_expiry(cache: BaseCache, rk: Redkit) -> None:
    cache.set("n", 1, timeout=600)
    cache.incr("n")
    assert 590_000 < _pttl(rk, cache, "n") <= 600_000


# --- values ------------------------------------------------------------------------------


def test_data_types(cache: BaseCache) -> None:
    tests = {
        "string": "this is a string",
        "int": 42,
        "bool": True,
        "list": [1, 2, 3, 4],
        "tuple": (1, 2, 3, 4),
        "dict": {"A": 1, "B": 2},
        "set": {1, 2},
        "function": f,
        "class": C,
        "object": Poll("Well?", [1, 2]),
        "big_int": 2**80,
    }
    for key, value in tests.items():
        cache.set(key, value)
        assert cache.get(key) == value, key


def test_unicode_keys_and_values(cache: BaseCache) -> None:
    stuff = {
        "ascii": "ascii_value",
        "unicode_ascii": "Iñtërnâtiônàlizætiøn1",
        "Iñtërnâtiônàlizætiøn": "Iñtërnâtiônàlizætiøn2",
        "ascii2": {"x": 1},
    }
    for key, value in stuff.items():
        cache.set(key, value)
        assert cache.get(key) == value
    for key, value in stuff.items():
        assert cache.delete(key) is True
        assert cache.add(key, value) is True
        assert cache.get(key) == value
    cache.delete_many(list(stuff))
    cache.set_many(stuff)
    assert cache.get_many(list(stuff)) == stuff


def test_binary_string(cache: BaseCache) -> None:
    compressed = zlib.compress(b"value_to_be_compressed")
    cache.set("binary1", compressed)
    assert cache.add("binary1-add", compressed) is True
    cache.set_many({"binary1-set_many": compressed})
    for key in ("binary1", "binary1-add", "binary1-set_many"):
        assert zlib.decompress(cache.get(key)) == b"value_to_be_compressed"


@pytest.mark.parametrize("method", ["set", "add", "set_many"])
@pytest.mark.parametrize("timeout", [60, 0])
def test_unpicklable_values_raise_the_pickling_error(
    cache: BaseCache, method: str, timeout: int
) -> None:
    def call(value: Any) -> Any:
        if method == "set_many":
            return cache.set_many({"unpicklable": value}, timeout)
        return getattr(cache, method)("unpicklable", value, timeout)

    with pytest.raises(pickle.PickleError):
        call(Unpicklable())
    with pytest.raises(TypeError, match="pickle"):  # what pickle itself raises for a lock
        call(threading.Lock())
    assert cache.get("unpicklable") is None


def test_values_are_signed_and_foreign_bytes_are_never_unpickled(
    cache: BaseCache, rk: Redkit
) -> None:
    cache.set("k", {"a": 1})
    entry = rk.keys.group("cache", "django", cache.make_key("k")).key()
    raw = rk.client.get(entry)
    rk.client.set(entry, raw[:-1] + bytes([raw[-1] ^ 1]))  # one flipped bit in the pickle
    with pytest.raises(RedkitError):
        cache.get("k")


def test_secret_key_rotation_with_fallbacks_keeps_entries_readable(
    target_url: str, prefix: str
) -> None:
    before = set(backend._SHARED)
    conf = {"default": _conf(target_url, prefix)}
    try:
        with override_settings(CACHES=conf, SECRET_KEY="old-secret-key-for-tests"):
            caches["default"].set("k", {"a": 1})
        with override_settings(
            CACHES=conf,
            SECRET_KEY="new-secret-key-for-tests",
            SECRET_KEY_FALLBACKS=["old-secret-key-for-tests"],
        ):
            assert caches["default"].get("k") == {"a": 1}
        with (
            override_settings(CACHES=conf, SECRET_KEY="another-key-entirely"),
            pytest.raises(RedkitError),  # signed with an unknown key: never unpickled
        ):
            caches["default"].get("k")
    finally:
        _close_new(before)


# --- timeouts ----------------------------------------------------------------------------


def test_default_timeout_reaches_the_server(cache: BaseCache, rk: Redkit) -> None:
    cache.set("k", 1)
    assert 59_000 < _pttl(rk, cache, "k") <= 60_000
    cache.set("k2", 1, timeout=3600)
    assert 3_590_000 < _pttl(rk, cache, "k2") <= 3_600_000


def test_expiration(cache: BaseCache) -> None:
    for key in ("expire1", "expire2", "expire3"):
        cache.set(key, "very quickly", 0.3)
    _until(lambda: cache.get_many(["expire1", "expire2", "expire3"]) == {})
    assert cache.get("expire1") is None
    assert cache.add("expire2", "newvalue") is True
    assert cache.get("expire2") == "newvalue"
    assert cache.has_key("expire3") is False


def test_touch(cache: BaseCache, rk: Redkit) -> None:
    cache.set("expire1", "very quickly", timeout=1)
    assert cache.touch("expire1", timeout=400) is True
    assert 390_000 < _pttl(rk, cache, "expire1") <= 400_000
    assert cache.touch("expire1") is True  # the cache's default timeout
    assert 59_000 < _pttl(rk, cache, "expire1") <= 60_000
    assert cache.touch("expire1", None) is True  # never expires
    assert _pttl(rk, cache, "expire1") == -1
    assert cache.get("expire1") == "very quickly"
    assert cache.touch("nonexistent") is False


@pytest.mark.parametrize("timeout", [0, -5])
def test_touch_with_timeout_zero_or_negative_deletes(cache: BaseCache, timeout: int) -> None:
    cache.set("key5", "belgian fries", timeout=5)
    assert cache.touch("key5", timeout=timeout) is True
    assert cache.get("key5") is None
    assert cache.touch("key5", timeout=timeout) is False


def test_long_timeout(cache: BaseCache, rk: Redkit) -> None:
    cache.set("key1", "eggs", THIRTY_DAYS + 1)
    assert cache.get("key1") == "eggs"
    assert cache.add("key2", "ham", THIRTY_DAYS + 1) is True
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, THIRTY_DAYS + 1)
    assert cache.get_many(["key2", "key3", "key4"]) == {
        "key2": "ham",
        "key3": "sausage",
        "key4": "lobster bisque",
    }
    assert _pttl(rk, cache, "key4") > THIRTY_DAYS * 1000


def test_forever_timeout(cache: BaseCache, rk: Redkit) -> None:
    cache.set("key1", "eggs", None)
    assert cache.get("key1") == "eggs"
    assert cache.add("key2", "ham", None) is True
    assert cache.add("key1", "new eggs", None) is False
    assert cache.get("key1") == "eggs"
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, None)
    assert cache.get_many(["key3", "key4"]) == {"key3": "sausage", "key4": "lobster bisque"}
    cache.set("key5", "belgian fries", timeout=1)
    assert cache.touch("key5", timeout=None) is True
    for key in ("key1", "key2", "key3", "key5"):
        assert _pttl(rk, cache, key) == -1


@pytest.mark.parametrize("timeout", [0, -1])
def test_zero_and_negative_timeouts_store_nothing(cache: BaseCache, timeout: int) -> None:
    cache.set("key1", "old")
    cache.set("key1", "eggs", timeout)
    assert cache.get("key1") is None  # set with timeout 0 also removes the old value
    assert cache.add("key2", "ham", timeout) is True
    assert cache.get("key2") is None
    cache.set("key3", "old")
    assert cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, timeout) == []
    assert cache.get_many(["key3", "key4"]) == {}


def test_float_timeouts_keep_their_fraction(cache: BaseCache, rk: Redkit) -> None:
    cache.set("key1", "spam", 100.2)
    assert cache.get("key1") == "spam"
    assert 99_000 < _pttl(rk, cache, "key1") <= 100_200
    cache.set("key2", "spam", 0.5)  # Django's own Redis backend truncates this to 0
    assert 0 < _pttl(rk, cache, "key2") <= 500


def test_get_backend_timeout(cache: BaseCache) -> None:
    assert cache.get_backend_timeout(10) == 10
    assert cache.get_backend_timeout(-5) == 0
    assert cache.get_backend_timeout(None) is None
    assert cache.get_backend_timeout() == 60


def test_a_default_timeout_of_none_never_expires(
    configured: Callable[..., BaseCache], rk: Redkit
) -> None:
    cache = configured(TIMEOUT=None)
    assert cache.default_timeout is None
    cache.set("infinite_foo", "bar")
    assert cache.get("infinite_foo") == "bar"
    assert _pttl(rk, cache, "infinite_foo") == -1


# --- many -----------------------------------------------------------------------------------


def test_set_many(cache: BaseCache, rk: Redkit) -> None:
    assert cache.set_many({"key1": "spam", "key2": "eggs"}) == []
    assert cache.get("key1") == "spam"
    assert cache.get("key2") == "eggs"
    assert cache.set_many({}) == []
    assert cache.set_many({"key1": "x"}, timeout=120) == []
    assert 110_000 < _pttl(rk, cache, "key1") <= 120_000


def test_set_many_expiration(cache: BaseCache) -> None:
    cache.set_many({"key1": "spam", "key2": "eggs"}, 0.3)
    _until(lambda: cache.get_many(["key1", "key2"]) == {})


def test_delete_many(cache: BaseCache) -> None:
    cache.set_many({"key1": "spam", "key2": "eggs", "key3": "ham"})
    assert cache.delete_many(["key1", "key2"]) is None
    assert cache.get_many(["key1", "key2", "key3"]) == {"key3": "ham"}
    assert cache.delete_many([]) is None


def test_clear_is_this_cache_only_and_flushes_nothing(cache: BaseCache, rk: Redkit) -> None:
    other = caches["other"]
    cache.set_many({"key1": "spam", "key2": "eggs"})
    other.set("k", 2)
    raw = rk.keys.group("test", "raw").key()
    rk.client.set(raw, "untouched")
    cache.clear()
    assert cache.get_many(["key1", "key2"]) == {}
    assert other.get("k") == 2
    assert rk.client.get(raw) == b"untouched"
    cache.set("key1", 3)
    assert cache.get("key1") == 3
    assert cache.add("key2", 1) is True  # an entry from before clear() does not block add


# --- keys -----------------------------------------------------------------------------------


def _invalid_key_ops(key: str) -> list[tuple[str, list[Any]]]:
    return [
        ("add", [key, 1]),
        ("get", [key]),
        ("set", [key, 1]),
        ("incr", [key]),
        ("decr", [key]),
        ("touch", [key]),
        ("delete", [key]),
        ("get_many", [[key, "b"]]),
        ("set_many", [{key: 1, "b": 2}]),
        ("delete_many", [[key, "b"]]),
    ]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "key with spaces and 清",
            "Cache key contains characters that will cause errors if used with memcached: %r",
        ),
        (
            "a" * 250 + "清",
            "Cache key will cause errors if used with memcached: %r (longer than 250)",
        ),
    ],
)
def test_memcached_unsafe_keys_warn_and_still_work(
    cache: BaseCache, key: str, message: str
) -> None:
    cache.key_func = lambda key, *args: key  # the default key function never warns
    for operation, args in _invalid_key_ops(key):
        with pytest.warns(CacheKeyWarning) as record:
            getattr(cache, operation)(*args)
        assert str(record[0].message) == message % key, operation
    with pytest.warns(CacheKeyWarning):
        cache.set(key, "works")
    with pytest.warns(CacheKeyWarning):
        assert cache.get(key) == "works"


def test_custom_key_func(cache: BaseCache) -> None:
    cache.set("answer1", 42)
    assert cache.get("answer1") == 42
    assert caches["custom_key"].get("answer1") is None
    assert caches["custom_key2"].get("answer1") is None
    caches["custom_key"].set("answer2", 42)
    assert cache.get("answer2") is None
    assert caches["custom_key"].get("answer2") == 42
    assert caches["custom_key2"].get("answer2") == 42


# --- versions -------------------------------------------------------------------------------


def test_versioning_get_set(cache: BaseCache) -> None:
    v2 = caches["v2"]
    cache.set("answer1", 42)
    assert cache.get("answer1", version=1) == 42
    assert cache.get("answer1", version=2) is None
    assert v2.get("answer1") is None
    assert v2.get("answer1", version=1) == 42
    cache.set("answer2", 42, version=2)
    assert cache.get("answer2") is None
    assert v2.get("answer2") == 42
    v2.set("answer4", 42, version=1)
    assert cache.get("answer4") == 42
    assert v2.get("answer4") is None


def test_versioning_add_has_key_delete(cache: BaseCache) -> None:
    v2 = caches["v2"]
    assert cache.add("answer1", 42, version=2) is True
    assert cache.add("answer1", 37, version=2) is False
    assert cache.add("answer1", 37, version=1) is True
    assert cache.get("answer1", version=1) == 37
    assert v2.get("answer1") == 42
    assert v2.add("answer1", 1) is False
    assert cache.has_key("answer1", version=2) is True
    assert v2.has_key("answer1", version=3) is False
    assert v2.delete("answer1") is True
    assert cache.get("answer1", version=1) == 37
    assert cache.delete("answer1", version=2) is False


def test_versioning_incr_decr(cache: BaseCache) -> None:
    v2 = caches["v2"]
    cache.set("answer1", 37, version=1)
    cache.set("answer1", 42, version=2)
    assert cache.incr("answer1") == 38
    assert cache.get("answer1", version=2) == 42
    assert cache.decr("answer1", version=2) == 41
    assert v2.incr("answer1") == 42
    assert v2.decr("answer1", version=1) == 37
    assert cache.get("answer1") == 37


def test_versioning_get_set_many(cache: BaseCache) -> None:
    v2 = caches["v2"]
    cache.set_many({"ford1": 37, "arthur1": 42})
    assert cache.get_many(["ford1", "arthur1"], version=1) == {"ford1": 37, "arthur1": 42}
    assert cache.get_many(["ford1", "arthur1"], version=2) == {}
    assert v2.get_many(["ford1", "arthur1"]) == {}
    v2.set_many({"ford3": 37, "arthur3": 42})
    assert cache.get_many(["ford3", "arthur3"], version=2) == {"ford3": 37, "arthur3": 42}
    v2.delete_many(["ford3"])
    assert cache.get_many(["ford3", "arthur3"], version=2) == {"arthur3": 42}


def test_incr_and_decr_version(cache: BaseCache) -> None:
    v2 = caches["v2"]
    cache.set("answer", 42, version=2)
    assert cache.incr_version("answer", version=2) == 3
    assert cache.get("answer", version=2) is None
    assert cache.get("answer", version=3) == 42
    v2.set("answer2", 42)
    assert v2.incr_version("answer2") == 3
    assert v2.get("answer2", version=3) == 42
    with pytest.raises(ValueError):
        cache.incr_version("does_not_exist")
    cache.set("null", None)
    assert cache.incr_version("null") == 2
    assert cache.decr_version("answer", version=3) == 2
    assert cache.get("answer", version=2) == 42
    with pytest.raises(ValueError):
        cache.decr_version("does_not_exist", version=2)


# --- get_or_set -----------------------------------------------------------------------------


def test_get_or_set(cache: BaseCache) -> None:
    assert cache.get("projector") is None
    assert cache.get_or_set("projector", 42) == 42
    assert cache.get("projector") == 42
    assert cache.get_or_set("projector", 0) == 42
    assert cache.get_or_set("null", None) is None
    assert cache.get("null", "default") is None  # the None was stored
    assert cache.get_or_set("callable", lambda: "value") == "value"
    assert cache.get_or_set("callable", "other") == "value"
    assert cache.get_or_set("brian", 1979, version=2) == 1979
    assert cache.get("brian", version=1) is None
    with pytest.raises(TypeError, match="default"):
        cache.get_or_set("brian")


# --- OPTIONS --------------------------------------------------------------------------------


def test_django_redis_backend_options_are_accepted(configured: Callable[..., BaseCache]) -> None:
    cache = configured(
        OPTIONS={
            "socket_timeout": 3.5,
            "socket_connect_timeout": 1.5,
            "retry_on_timeout": True,
            "max_connections": 20,
            "pool_class": "redis.BlockingConnectionPool",
            "parser_class": "redis.connection._RESP2Parser",
            "health_check_interval": 10,
            "lib_name": "MyCustomApp",
            "lib_version": "1.2.3",
        }
    )
    cache.set("k", 1)
    assert cache.get("k") == 1
    rk = cache._cache._rk
    assert rk.settings.socket_timeout == 3.5
    assert rk.settings.connect_timeout == 1.5
    assert rk.settings.max_connections == 20


def test_db_option_selects_the_database(
    configured: Callable[..., BaseCache], target_url: str, prefix: str
) -> None:
    if "cluster" in target_url or target_url.rstrip("/").count("/") > 2:
        pytest.skip("a cluster has one database; this URL names its own")
    cache = configured(OPTIONS={"db": 5})
    cache.set("k", 1)
    with Redkit(f"{target_url.rstrip('/')}/5", prefix=prefix) as db5:
        entry = db5.keys.group("cache", "django", cache.make_key("k")).key()
        assert db5.client.exists(entry) == 1
        db5.client.delete(entry)


def test_location_with_several_servers_uses_the_first(
    configured: Callable[..., BaseCache], target_url: str
) -> None:
    if "cluster" in target_url:
        pytest.skip("a cluster URL lists its own nodes")
    cache = configured(LOCATION=[target_url, "redis://replica.invalid:6379"])
    cache.set("k", 1)
    assert cache.get("k") == 1
    assert backend._first(f"{target_url};redis://replica.invalid:6379") == target_url
    assert backend._first(f"{target_url},redis://replica.invalid:6379") == target_url


def test_unknown_options_are_refused_by_name(configured: Callable[..., BaseCache]) -> None:
    with pytest.raises(ConfigError, match="bogus"):
        configured(OPTIONS={"bogus": 1})


@pytest.mark.parametrize(
    "serializer",
    ["json", "django.core.cache.backends.redis.RedisSerializer", f"{__name__}.Reversed"],
)
def test_serializer_option(configured: Callable[..., BaseCache], serializer: str) -> None:
    cache = configured(OPTIONS={"serializer": serializer})
    cache.set("k", {"a": [1, 2]})
    assert cache.get("k") == {"a": [1, 2]}
    cache.set("n", 1)
    assert cache.incr("n") == 2


class Reversed:
    """A custom serializer class, given by dotted path as Django's option allows."""

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value)[::-1]

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data[::-1])


def test_instances_of_one_configuration_share_one_pool(cache: BaseCache) -> None:
    seen: list[BaseCache] = []
    thread = threading.Thread(target=lambda: seen.append(caches["default"]))
    thread.start()
    thread.join()
    assert seen[0] is not cache  # Django makes one backend object per thread ...
    assert seen[0]._cache is cache._cache  # ... redkit shares one pool between them


# --- async methods --------------------------------------------------------------------------


async def test_async_methods(cache: BaseCache) -> None:
    await cache.aset("k", [1])
    assert await cache.aget("k") == [1]
    assert await cache.aget("missing", "d") == "d"
    assert await cache.aadd("k", 2) is False
    assert await cache.aadd("new", 2, 0) is True
    assert await cache.ahas_key("new") is False
    assert await cache.aget_or_set("gos", lambda: 5) == 5
    assert await cache.aset_many({"a": 1, "b": 2}) == []
    assert await cache.aget_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    assert await cache.aincr("a", 10) == 11
    assert await cache.adecr("a") == 10
    with pytest.raises(ValueError):
        await cache.aincr("c")
    with pytest.raises(redis.exceptions.ResponseError):
        await cache.aincr("k")
    assert await cache.atouch("a", None) is True
    assert await cache.adelete("a") is True
    await cache.adelete_many(["b"])
    assert await cache.ahas_key("b") is False
    assert await cache.aincr_version("k") == 2
    assert await cache.adecr_version("k", version=2) == 1
    await cache.aclear()
    assert await cache.aget("k") is None
    await cache.aclose()


# --- cache middleware and cache_page on top of the backend ---------------------------------


def hello_world_view(request: HttpRequest, value: str) -> HttpResponse:
    return HttpResponse(f"Hello World {value}")


def empty_response(request: HttpRequest) -> HttpResponse:
    return HttpResponse()


def test_cache_middleware_stores_responses_with_cookies(cache: BaseCache) -> None:
    with override_settings(CACHE_MIDDLEWARE_ALIAS="default", CACHE_MIDDLEWARE_SECONDS=30):
        fetch = FetchFromCacheMiddleware(empty_response)
        request = factory.get("/cache/test")
        request._cache_update_cache = True
        assert fetch.process_request(request) is None

        def get_response(req: HttpRequest) -> HttpResponse:
            response = HttpResponse("Testing cookie serialization.")
            response.set_cookie("foo", "bar")
            return response

        response = UpdateCacheMiddleware(get_response)(request)
        cached = fetch.process_request(request)
        assert cached is not None
        assert cached.content == b"Testing cookie serialization."
        assert cached.cookies == response.cookies


def test_cache_middleware_prefixes_and_timeouts(cache: BaseCache) -> None:
    with override_settings(
        CACHE_MIDDLEWARE_ALIAS="other",
        CACHE_MIDDLEWARE_KEY_PREFIX="middlewareprefix",
        CACHE_MIDDLEWARE_SECONDS=30,
    ):
        middleware = CacheMiddleware(hello_world_view)
        assert middleware.cache is caches["other"]
        prefixed = CacheMiddleware(hello_world_view, key_prefix="prefix1")
        request = factory.get("/view/")
        assert middleware.process_request(request) is None
        middleware.process_response(request, hello_world_view(request, "1"))
        hit = middleware.process_request(request)
        assert hit is not None
        assert hit.content == b"Hello World 1"
        assert prefixed.process_request(request) is None


def test_cache_page(cache: BaseCache) -> None:
    default_view = cache_page(3)(hello_world_view)
    prefixed_view = cache_page(3, key_prefix="prefix1")(hello_world_view)
    other_view = cache_page(0.5, cache="other")(hello_world_view)
    request = factory.get("/view/")
    assert default_view(request, "1").content == b"Hello World 1"
    assert default_view(request, "2").content == b"Hello World 1"
    assert prefixed_view(request, "3").content == b"Hello World 3"
    assert prefixed_view(request, "4").content == b"Hello World 3"
    assert other_view(request, "5").content == b"Hello World 5"
    assert other_view(request, "6").content == b"Hello World 5"
    _until(lambda: other_view(request, "7").content == b"Hello World 7")
    assert default_view(request, "8").content == b"Hello World 1"


def test_cache_page_head_and_get_share_an_entry(cache: BaseCache) -> None:
    view = cache_page(30)(hello_world_view)
    assert view(factory.get("/view/"), "1").content == b"Hello World 1"
    assert view(factory.head("/view/"), "2").content == b"Hello World 1"


@pytest.mark.parametrize("directive", ["private", "no_cache", "no_store"])
def test_private_responses_are_not_cached(cache: BaseCache, directive: str) -> None:
    view = cache_page(3)(cache_control(**{directive: True})(hello_world_view))
    request = factory.get("/view/")
    assert view(request, "1").content == b"Hello World 1"
    assert view(request, "2").content == b"Hello World 2"


def test_streaming_and_304_responses_are_not_cached(cache: BaseCache) -> None:
    calls: list[int] = []

    def not_modified(request: HttpRequest) -> HttpResponse:
        calls.append(1)
        return HttpResponseNotModified()

    view = cache_page(3)(not_modified)
    view(factory.get("/304/")).close()
    response = view(factory.get("/304/"))
    assert len(calls) == 2
    assert "Cache-Control" in response

    def stream(request: HttpRequest) -> StreamingHttpResponse:
        return StreamingHttpResponse(["streamed"])

    request = factory.get("/stream/")
    UpdateCacheMiddleware(stream)(request)
    assert FetchFromCacheMiddleware(empty_response).process_request(request) is None
