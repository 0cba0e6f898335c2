"""The Django cache backend, through Django's own cache API (settings configured here)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

django = pytest.importorskip("django", reason="the django extra is not installed")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(SECRET_KEY="redkit-tests-only", INSTALLED_APPS=[], USE_TZ=True)
    django.setup()

from django.core.cache import caches  # noqa: E402
from django.core.cache.backends.base import BaseCache  # noqa: E402
from django.test import override_settings  # noqa: E402

from redkit import Redkit  # noqa: E402

BACKEND = "redkit.integrations.django.RedkitCache"


def _config(url: str, prefix: str, namespace: str = "django") -> dict[str, object]:
    return {
        "BACKEND": BACKEND,
        "LOCATION": url,
        "TIMEOUT": 60,
        "OPTIONS": {"prefix": prefix, "namespace": namespace},
    }


@pytest.fixture
def cache(target_url: str, prefix: str, rk: Redkit) -> Iterator[BaseCache]:
    conf = {"default": _config(target_url, prefix), "other": _config(target_url, prefix, "other")}
    with override_settings(CACHES=conf):
        yield caches["default"]


def test_importing_the_package_does_not_need_django_until_used() -> None:
    import redkit.integrations.django as pkg

    assert pkg.RedkitCache.__name__ == "RedkitCache"
    with pytest.raises(AttributeError):
        _ = pkg.Nope  # type: ignore[attr-defined]


def test_get_set_add_delete(cache: BaseCache) -> None:
    cache.set("k", {"a": 1})
    assert cache.get("k") == {"a": 1}
    assert cache.get("missing", "d") == "d"
    assert cache.add("k", "other") is False
    assert cache.add("new", "v") is True
    assert cache.get("new") == "v"
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.has_key("new")
    assert not cache.has_key("k")
    cache.set("none", None)
    assert cache.has_key("none")
    assert cache.get("none", "d") is None


def test_python_objects_round_trip(cache: BaseCache) -> None:
    value = {"set": {1, 2}, "tuple": (1, "a"), "bytes": b"\x00\xff"}
    cache.set("obj", value)
    assert cache.get("obj") == value


def test_many(cache: BaseCache) -> None:
    assert cache.set_many({"a": 1, "b": 2, "c": 3}) == []
    assert cache.get_many(["a", "b", "x"]) == {"a": 1, "b": 2}
    cache.delete_many(["a", "b"])
    assert cache.get_many(["a", "b", "c"]) == {"c": 3}


def test_incr_decr(cache: BaseCache) -> None:
    cache.set("n", 10)
    assert cache.incr("n") == 11
    assert cache.incr("n", 5) == 16
    assert cache.decr("n", 20) == -4
    assert cache.get("n") == -4
    with pytest.raises(ValueError, match="not found"):
        cache.incr("nothing")


def test_timeouts_and_touch(cache: BaseCache) -> None:
    cache.set("zero", 1, timeout=0)
    assert cache.get("zero") is None
    cache.set("forever", 1, timeout=None)
    cache.set("short", 1, timeout=0.3)
    assert cache.touch("forever", 100)
    assert cache.touch("short", None)  # now never expires
    cache.set("expiring", 1, timeout=0.3)
    assert not cache.touch("missing", 10)
    deadline = time.monotonic() + 5
    while cache.get("expiring") is not None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert cache.get("short") == 1
    assert cache.get("forever") == 1


def test_versions_and_get_or_set(cache: BaseCache) -> None:
    cache.set("v", "one", version=1)
    cache.set("v", "two", version=2)
    assert cache.get("v", version=1) == "one"
    assert cache.get("v", version=2) == "two"
    assert cache.get_or_set("computed", lambda: 42) == 42
    assert cache.get_or_set("computed", lambda: 0) == 42


def test_clear_is_this_cache_only_and_flushes_nothing(cache: BaseCache, rk: Redkit) -> None:
    other = caches["other"]
    cache.set("k", 1)
    other.set("k", 2)
    rk.client.set(rk.keys.group("test", "raw").key(), "untouched")
    cache.clear()
    assert cache.get("k") is None
    assert other.get("k") == 2
    assert rk.client.get(rk.keys.group("test", "raw").key()) == b"untouched"
    cache.set("k", 3)
    assert cache.get("k") == 3
    assert cache.add("k2", 1)


def test_add_after_clear_succeeds(cache: BaseCache) -> None:
    cache.set("k", 1)
    cache.clear()
    assert cache.add("k", 2) is True
    assert cache.get("k") == 2


async def test_async_api(cache: BaseCache) -> None:
    await cache.aset("ak", [1])
    assert await cache.aget("ak") == [1]
