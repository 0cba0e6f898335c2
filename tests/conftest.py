"""Test servers and fixtures.

Once per session: an embedded standalone Valkey and an embedded 3-master Valkey cluster,
and, when ``REDKIT_TEST_REDIS_URL`` is set, that external server as a third target. A
focused subset of tests also runs on an embedded Sentinel topology (a primary, a replica
and three sentinels): those marked ``@ON_SENTINEL_TOO``.
Capability tests take ``rk`` (sync) or ``ark`` (async), parametrized over the targets, or
``kit``: both, as a ``sync``/``async`` parameter (one test body, see flavours.py);
each test gets its own key prefix, and on the external server its keys are deleted after
the test (never a FLUSH: other users' data lives there).
"""

from __future__ import annotations

import gc
import inspect
import os
import secrets
import warnings
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from tests.flavours import Either

from redkit import AsyncRedkit, Redkit
from redkit.embedded import EmbeddedCluster, EmbeddedSentinel, EmbeddedServer

EXTERNAL_URL = os.environ.get("REDKIT_TEST_REDIS_URL") or None
TARGETS = ["standalone", "cluster"] + (["external"] if EXTERNAL_URL else [])
#: Runs a test on every target and on the Sentinel topology (a few tests per capability).
ON_SENTINEL_TOO = pytest.mark.parametrize("target_url", [*TARGETS, "sentinel"], indirect=True)


@pytest.fixture(scope="session")
def standalone_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        yield server


@pytest.fixture(scope="session")
def cluster_server() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(masters=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def sentinel_server() -> Iterator[EmbeddedSentinel]:
    with EmbeddedSentinel(replicas=1) as topology:
        yield topology


@pytest.fixture(params=TARGETS)
def target_url(request: pytest.FixtureRequest) -> str:
    """The URL of one test target: standalone, cluster, sentinel or the external server."""
    if request.param == "external":
        assert EXTERNAL_URL is not None
        return EXTERNAL_URL
    server = request.getfixturevalue(f"{request.param}_server")
    return str(server.url)


@pytest.fixture
def standalone_url(standalone_server: EmbeddedServer) -> str:
    """Only the embedded standalone server (for tests that stop or reconfigure it)."""
    return standalone_server.url


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return "t" + secrets.token_hex(5)


def _delete_prefix(url: str, prefix: str) -> None:
    with Redkit(url, prefix=prefix) as rk:
        for key in rk.client.scan_iter(match=rk.keys.pattern(), count=1000):
            rk.client.delete(key)


@pytest.fixture
def make_rk(target_url: str, prefix: str) -> Iterator[Callable[..., Redkit]]:
    """Build extra sync facades on this test's target and prefix (e.g. "instance B")."""
    made: list[Redkit] = []

    def factory(**options: object) -> Redkit:
        options.setdefault("prefix", prefix)
        rk = Redkit(target_url, **options)  # type: ignore[arg-type]
        made.append(rk)
        return rk

    yield factory
    for rk in made:
        rk.close()
    if target_url == EXTERNAL_URL:
        _delete_prefix(target_url, prefix)


@pytest.fixture
def rk(make_rk: Callable[..., Redkit]) -> Redkit:
    """A sync facade on this test's target with a prefix of its own."""
    return make_rk()


@pytest.fixture
async def ark(target_url: str, prefix: str) -> AsyncIterator[AsyncRedkit]:
    """An async facade on this test's target with a prefix of its own."""
    client = AsyncRedkit(target_url, prefix=prefix)
    yield client
    await client.aclose()
    if target_url == EXTERNAL_URL:
        _delete_prefix(target_url, prefix)


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    """``sync`` or ``async``: which facade a ``kit`` test runs on (a readable test id)."""
    return str(request.param)


@pytest.fixture
def kit(flavour: str, target_url: str, request: pytest.FixtureRequest) -> Either:
    """``rk`` or ``ark`` (by ``flavour``) wrapped so one test body awaits either."""
    # target_url is named so that its parameters apply; getfixturevalue cannot add them
    return Either(request.getfixturevalue("rk" if flavour == "sync" else "ark"))


@pytest.fixture
async def make_kit(flavour: str) -> AsyncIterator[Callable[..., Either]]:
    """Build a facade of this test's flavour on a server of its own: ``make_kit(url)``."""
    made: list[Redkit | AsyncRedkit] = []

    def factory(url: str, **options: object) -> Either:
        kind = Redkit if flavour == "sync" else AsyncRedkit
        facade = kind(url, **options)  # type: ignore[arg-type]
        made.append(facade)
        return Either(facade)

    yield factory
    for facade in made:
        if isinstance(facade, AsyncRedkit):
            await facade.aclose()
        else:
            facade.close()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """After an asyncio test on the cluster, collect what it left: redis-py's asyncio
    cluster client (8.1) leaves some connections it dropped to the garbage collector, which
    would warn (ResourceWarning, an error here) in whichever test happens to run when it
    collects. (Only there: a collection costs tens of milliseconds.)"""
    test = getattr(item, "obj", None)
    if "cluster" in item.nodeid and (
        inspect.iscoroutinefunction(test) or "ark" in getattr(item, "fixturenames", ())
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
