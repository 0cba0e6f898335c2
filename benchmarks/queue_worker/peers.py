"""The queue benchmark's systems: a producer and a worker each, on the same no-op job.

``python peers.py NAME`` (or ``NAME worker``) runs NAME's worker (one process, concurrency
50) until SIGTERM; ``python peers.py NAME one N | bulk N | fill N | latency K | version``
runs its producer and prints one line of JSON, as ``bullmq_node.js`` does: that is how
benchmarks/queue.py drives a peer that redkit's environment cannot import, from a
virtual environment of the peer's own (arq, for one, pins redis-py below 6).
``QBENCH_URL`` and ``QBENCH_NS`` (the run's queue name, unique) come from the environment.

The job takes one number: ``0 <= i < 1e9`` does nothing; the marks (``-1``: the drain's
first job, ``-2``: its last, a timestamp: enqueue-to-start latency) are written with a
plain redis-py client (see :func:`mark`).

In benchmarks/queue_worker/ so that a worker does not import benchmarks/queue.py in place
of the standard library's queue module.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

CONCURRENCY = 50
_client: redis.Redis | None = None


def mark(i: float) -> None:
    """Record a mark job (see the module docstring); a no-op for ordinary jobs."""
    if 0 <= i < 1e9:
        return
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["QBENCH_URL"])
    ns = os.environ["QBENCH_NS"]
    if i == -1:
        _client.set(f"{ns}:first", repr(time.time()))
    elif i == -2:
        _client.rpush(f"{ns}:end", repr(time.time()))
    else:
        _client.rpush(f"{ns}:lat", repr(time.time() - i))


def _until_sigterm() -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


async def _async_until_sigterm() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


class Peer:
    """A system under test: ``one(i)`` enqueues a job, ``bulk(items)`` many (or None)."""

    name = ""
    module = ""  # the package that must be importable
    requirement = ""  # pip's arguments for the peer's own environment (not importable here)
    distribution = ""  # whose version the table shows (default: the requirement's)
    is_async = False
    has_bulk = False

    def __init__(self, url: str, ns: str) -> None:
        self.url, self.ns = url, ns

    def one(self, i: float) -> Any:
        raise NotImplementedError

    def bulk(self, items: list[float]) -> Any:
        raise NotImplementedError

    def close(self) -> Any:
        return None


# --- redkit -------------------------------------------------------------------------------


def _redkit_queue(url: str, ns: str) -> Any:
    from redkit import Redkit

    rk = Redkit(url, prefix="qbench")
    q = rk.queue(ns)

    @q.task(name="noop")
    async def noop(i: float) -> None:
        mark(i)

    return rk, q, noop


class RedkitPeer(Peer):
    name, module, has_bulk = "redkit", "redkit", True

    def __init__(self, url: str, ns: str) -> None:
        super().__init__(url, ns)
        self.rk, _, self.task = _redkit_queue(url, ns)

    def one(self, i: float) -> None:
        self.task.enqueue(i)

    def bulk(self, items: list[float]) -> None:
        self.task.enqueue_many([(i,) for i in items])

    def close(self) -> None:
        self.rk.close()

    @staticmethod
    def work(url: str, ns: str) -> None:
        from redkit.queue import Worker

        _, q, _ = _redkit_queue(url, ns)
        Worker(q, concurrency=CONCURRENCY).run_sync(signals=True)


# --- RQ -----------------------------------------------------------------------------------


def rq_noop(i: float) -> None:
    mark(i)


class RQPeer(Peer):
    name, module, has_bulk = "RQ (SimpleWorker)", "rq", True
    requirement = "rq"

    def __init__(self, url: str, ns: str) -> None:
        super().__init__(url, ns)
        from rq import Queue

        self.queue = Queue(ns, connection=redis.Redis.from_url(url))

    def one(self, i: float) -> None:
        self.queue.enqueue(rq_noop, i)

    def bulk(self, items: list[float]) -> None:
        from rq import Queue

        self.queue.enqueue_many([Queue.prepare_data(rq_noop, (i,)) for i in items])

    @staticmethod
    def work(url: str, ns: str) -> None:
        from rq import Queue, SimpleWorker

        connection = redis.Redis.from_url(url)
        # one process, one job at a time: RQ has no concurrency within a worker, and its
        # default Worker forks a process per job (slower still)
        SimpleWorker([Queue(ns, connection=connection)], connection=connection).work()


# --- Celery -------------------------------------------------------------------------------


def _celery(url: str, ns: str) -> Any:
    from celery import Celery

    app = Celery("qbench", broker=url)
    app.conf.update(
        task_ignore_result=True, broker_connection_retry_on_startup=True,
        task_default_queue=ns, worker_hijack_root_logger=False,
    )  # fmt: skip

    @app.task(name="noop", ignore_result=True)
    def noop(i: float) -> None:
        mark(i)

    return app, noop


class CeleryPeer(Peer):
    name, module = "Celery (threads)", "celery"
    requirement = "celery[redis]"

    def __init__(self, url: str, ns: str) -> None:
        super().__init__(url, ns)
        self.app, self.task = _celery(url, ns)

    def one(self, i: float) -> None:
        self.task.apply_async((i,), queue=self.ns)

    def close(self) -> None:
        self.app.close()

    @staticmethod
    def work(url: str, ns: str) -> None:
        app, _ = _celery(url, ns)
        app.worker_main(["worker", "-P", "threads", "-c", str(CONCURRENCY), "-Q", ns,
                         "--without-gossip", "--without-mingle", "--without-heartbeat",
                         "-l", "WARNING"])  # fmt: skip


# --- Dramatiq -----------------------------------------------------------------------------


def _dramatiq(url: str, ns: str) -> Any:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url, namespace=f"dramatiq-{ns}")
    dramatiq.set_broker(broker)

    def noop(i: float) -> None:
        mark(i)

    actor = dramatiq.actor(noop, broker=broker, queue_name=ns, max_retries=0)
    return broker, actor


class DramatiqPeer(Peer):
    name, module = "Dramatiq", "dramatiq"
    requirement = "dramatiq[redis]"

    def __init__(self, url: str, ns: str) -> None:
        super().__init__(url, ns)
        self.broker, self.actor = _dramatiq(url, ns)

    def one(self, i: float) -> None:
        self.actor.send(i)

    def close(self) -> None:
        self.broker.close()

    @staticmethod
    def work(url: str, ns: str) -> None:
        import dramatiq

        broker, _ = _dramatiq(url, ns)
        worker = dramatiq.Worker(broker, worker_threads=CONCURRENCY)
        worker.start()
        _until_sigterm()
        worker.stop()


# --- SAQ ----------------------------------------------------------------------------------


async def saq_noop(ctx: Any, *, i: float) -> None:
    mark(i)


class SAQPeer(Peer):
    name, module, is_async = "SAQ", "saq", True
    requirement = "saq[redis] typing-extensions"  # saq imports it without requiring it

    def __init__(self, url: str, ns: str) -> None:
        super().__init__(url, ns)
        from saq import Queue

        self.queue = Queue.from_url(url, name=ns)

    async def one(self, i: float) -> None:
        await self.queue.enqueue("saq_noop", i=i)

    async def close(self) -> None:
        await self.queue.disconnect()

    @staticmethod
    def work(url: str, ns: str) -> None:
        from saq import Queue, Worker

        async def run() -> None:
            worker = Worker(Queue.from_url(url, name=ns), [saq_noop], concurrency=CONCURRENCY)
            task = asyncio.ensure_future(worker.start())
            await _async_until_sigterm()
            await worker.stop()
            task.cancel()

        asyncio.run(run())


# --- BullMQ for Python --------------------------------------------------------------------


async def bullmq_process(job: Any, token: str) -> None:
    mark(job.data["i"])


class BullMQPeer(Peer):
    name, module, is_async, has_bulk = "BullMQ for Python", "bullmq", True, True
    requirement = "bullmq"

    def __init__(self, url: str, ns: str) -> None:
        super().__init__(url, ns)
        from bullmq import Queue

        self.queue = Queue(ns, {"connection": url})

    async def one(self, i: float) -> None:
        await self.queue.add("noop", {"i": i})

    async def bulk(self, items: list[float]) -> None:
        await self.queue.addBulk([{"name": "noop", "data": {"i": i}} for i in items])

    async def close(self) -> None:
        await self.queue.close()

    @staticmethod
    def work(url: str, ns: str) -> None:
        from bullmq import Worker

        async def run() -> None:
            worker = Worker(ns, bullmq_process, {"connection": url, "concurrency": CONCURRENCY})
            await _async_until_sigterm()
            await worker.close()

        asyncio.run(run())


# --- streaq -------------------------------------------------------------------------------


def _streaq(url: str, ns: str) -> Any:
    from streaq import Worker

    worker = Worker(redis_url=url, queue_name=ns, concurrency=CONCURRENCY)

    @worker.task(name="noop")
    async def noop(i: float) -> None:
        mark(i)

    return worker, noop


class StreaqPeer(Peer):
    name, module, is_async, has_bulk = "streaq", "streaq", True, True
    requirement = "streaq"

    def __init__(self, url: str, ns: str) -> None:
        super().__init__(url, ns)
        self.worker, self.task = _streaq(url, ns)
        self._entered = False

    async def _enter(self) -> None:
        if not self._entered:
            await self.worker.__aenter__()
            self._entered = True

    async def one(self, i: float) -> None:
        await self._enter()
        await self.task.enqueue(i)

    async def bulk(self, items: list[float]) -> None:
        await self._enter()
        await self.worker.enqueue_many([self.task.enqueue(i) for i in items])

    async def close(self) -> None:
        if self._entered:
            await self.worker.__aexit__(None, None, None)

    @staticmethod
    def work(url: str, ns: str) -> None:
        worker, _ = _streaq(url, ns)
        worker.run_sync()


# --- pydocket -----------------------------------------------------------------------------


async def docket_noop(i: float) -> None:
    mark(i)


class DocketPeer(Peer):
    name, module, is_async, has_bulk = "pydocket", "docket", True, True
    requirement = "pydocket"

    def __init__(self, url: str, ns: str) -> None:
        super().__init__(url, ns)
        from docket import Docket

        self.docket = Docket(name=ns, url=url)
        self._entered = False

    async def _enter(self) -> None:
        if not self._entered:
            await self.docket.__aenter__()
            self.docket.register(docket_noop)
            self._entered = True

    async def one(self, i: float) -> None:
        await self._enter()
        await self.docket.add(docket_noop)(i)

    async def bulk(self, items: list[float]) -> None:
        await self._enter()
        await self.docket.add_many([self.docket.call(docket_noop)(i) for i in items])

    async def close(self) -> None:
        if self._entered:
            await self.docket.__aexit__(None, None, None)

    @staticmethod
    def work(url: str, ns: str) -> None:
        from docket import Docket, Worker

        async def run() -> None:
            async with Docket(name=ns, url=url) as docket:
                docket.register(docket_noop)
                async with Worker(docket, concurrency=CONCURRENCY) as worker:
                    task = asyncio.ensure_future(worker.run_forever())
                    await _async_until_sigterm()
                    task.cancel()

        asyncio.run(run())


# --- arq (its own virtual environment: it pins redis-py below 6) ---------------------------


async def arq_noop(ctx: Any, i: float) -> None:
    mark(i)


def _arq_settings(url: str) -> Any:
    from arq.connections import RedisSettings

    return RedisSettings.from_dsn(url)


class ArqPeer(Peer):
    name, module, is_async = "arq", "arq", True
    requirement = "arq"

    def __init__(self, url: str, ns: str) -> None:
        super().__init__(url, ns)
        self.pool: Any = None

    async def one(self, i: float) -> None:
        if self.pool is None:
            from arq import create_pool

            self.pool = await create_pool(_arq_settings(self.url), default_queue_name=self.ns)
        await self.pool.enqueue_job("arq_noop", i)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()

    @staticmethod
    def work(url: str, ns: str) -> None:
        from arq import Worker

        # results are not stored (as Celery is told); arq's default poll interval, 0.5 s
        Worker([arq_noop], queue_name=ns, redis_settings=_arq_settings(url),
               max_jobs=CONCURRENCY, keep_result=0).run()  # fmt: skip


# --- taskiq (taskiq-redis, streams) ---------------------------------------------------------


def _taskiq(url: str, ns: str) -> Any:
    from taskiq_redis import RedisStreamBroker

    broker = RedisStreamBroker(url, queue_name=ns)

    @broker.task(task_name="noop")
    async def noop(i: float) -> None:
        mark(i)

    return broker, noop


class TaskiqPeer(Peer):
    name, module, is_async = "taskiq (streams)", "taskiq_redis", True
    requirement, distribution = "taskiq-redis", "taskiq"

    def __init__(self, url: str, ns: str) -> None:
        super().__init__(url, ns)
        self.broker, self.task = _taskiq(url, ns)
        self._started = False

    async def one(self, i: float) -> None:
        if not self._started:  # creates the stream's consumer group before the first job
            await self.broker.startup()
            self._started = True
        await self.task.kiq(i)

    async def close(self) -> None:
        if self._started:
            await self.broker.shutdown()

    @staticmethod
    def work(url: str, ns: str) -> None:
        from taskiq.api import run_receiver_task

        async def run() -> None:
            broker, _ = _taskiq(url, ns)
            task = asyncio.ensure_future(
                run_receiver_task(broker, max_async_tasks=CONCURRENCY, run_startup=True)
            )
            await _async_until_sigterm()
            task.cancel()
            await broker.shutdown()

        asyncio.run(run())


PEERS: list[type[Peer]] = [
    RedkitPeer,
    BullMQPeer,
    DramatiqPeer,
    SAQPeer,
    StreaqPeer,
    DocketPeer,
    CeleryPeer,
    RQPeer,
    ArqPeer,
    TaskiqPeer,
]


# --- the producer's side, the same for every Python peer -----------------------------------


def _drive(peer_cls: type[Peer], url: str, ns: str, body: Callable[[Peer], Any]) -> Any:
    """Build the peer's producer, run ``body`` with it (in an event loop if it is async)."""
    if not peer_cls.is_async:
        peer = peer_cls(url, ns)
        try:
            return body(peer)
        finally:
            peer.close()

    async def run() -> Any:
        peer = peer_cls(url, ns)
        try:
            return await body(peer)
        finally:
            await peer.close()

    return asyncio.run(run())


def _batches(n: int) -> list[list[float]]:
    return [list(range(s, min(n, s + 1000))) for s in range(0, n, 1000)]


def _rate(peer_cls: type[Peer], url: str, ns: str, n: int, call: str, args: list[Any]) -> float:
    """Jobs per second: ``n`` jobs enqueued by the peer's ``call`` on each of ``args``."""

    def sync(peer: Peer) -> float:
        send, began = getattr(peer, call), time.perf_counter()
        for arg in args:
            send(arg)
        return n / (time.perf_counter() - began)

    async def aio(peer: Peer) -> float:
        send, began = getattr(peer, call), time.perf_counter()
        for arg in args:
            await send(arg)
        return n / (time.perf_counter() - began)

    return float(_drive(peer_cls, url, ns, aio if peer_cls.is_async else sync))


def one_by_one(peer_cls: type[Peer], url: str, ns: str, n: int) -> float:
    """Jobs per second, ``n`` enqueued one call each."""
    return _rate(peer_cls, url, ns, n, "one", list(range(n)))


def bulk(peer_cls: type[Peer], url: str, ns: str, n: int) -> float:
    """Jobs per second, ``n`` enqueued by the bulk call in batches of 1,000."""
    return _rate(peer_cls, url, ns, n, "bulk", _batches(n))


def fill(peer_cls: type[Peer], url: str, ns: str, n: int) -> None:
    """The drain's jobs: the first mark, ``n`` no-ops, the last mark."""
    batches = _batches(n)

    def sync(peer: Peer) -> None:
        peer.one(-1)
        for batch in batches:
            if peer.has_bulk:
                peer.bulk(batch)
            else:
                for i in batch:
                    peer.one(i)
        peer.one(-2)

    async def aio(peer: Peer) -> None:
        await peer.one(-1)
        for batch in batches:
            if peer.has_bulk:
                await peer.bulk(batch)
            else:
                for i in batch:
                    await peer.one(i)
        await peer.one(-2)

    _drive(peer_cls, url, ns, aio if peer_cls.is_async else sync)


def latencies(peer_cls: type[Peer], url: str, ns: str, k: int) -> list[float]:
    """``k`` enqueue-to-start delays in seconds, one job at a time to an idle worker."""
    r, key = redis.Redis.from_url(url, socket_timeout=None), f"{ns}:lat"

    def sync(peer: Peer) -> list[float]:
        out = []
        for _ in range(k):
            peer.one(time.time())
            reply = r.blpop([key], 10)
            if reply:
                out.append(float(reply[1]))
        return out

    async def aio(peer: Peer) -> list[float]:
        out = []
        for _ in range(k):
            await peer.one(time.time())
            reply = await asyncio.to_thread(r.blpop, [key], 10)
            if reply:
                out.append(float(reply[1]))
        return out

    try:
        return list(_drive(peer_cls, url, ns, aio if peer_cls.is_async else sync))
    finally:
        r.close()


def produce(peer_cls: type[Peer], url: str, ns: str, mode: str, n: int) -> dict[str, Any]:
    """One producer step, its result as ``bullmq_node.js`` prints it."""
    if mode == "one":
        return {"rate": one_by_one(peer_cls, url, ns, n)}
    if mode == "bulk":
        return {"rate": bulk(peer_cls, url, ns, n)}
    if mode == "fill":
        fill(peer_cls, url, ns, n)
        return {}
    if mode == "latency":
        return {"latencies": latencies(peer_cls, url, ns, n)}
    raise SystemExit(f"unknown step {mode!r}")


def version(peer_cls: type[Peer]) -> str:
    """The installed version of the peer's distribution ("" when it has none)."""
    try:
        first = (peer_cls.requirement.split() or [""])[0].split("[")[0]
        name = peer_cls.distribution or first or peer_cls.module
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


def main(argv: list[str]) -> None:
    chosen = {peer.name: peer for peer in PEERS}[argv[0]]
    mode = argv[1] if len(argv) > 1 else "worker"
    url, ns = os.environ.get("QBENCH_URL", ""), os.environ.get("QBENCH_NS", "")
    if mode == "worker":
        chosen.work(url, ns)  # type: ignore[attr-defined]
    elif mode == "version":
        print(json.dumps({"version": version(chosen), "redis": redis.__version__}))
    else:
        print(json.dumps(produce(chosen, url, ns, mode, int(argv[2]))), flush=True)


if __name__ == "__main__":
    import peers  # this file under its module's name: RQ refuses functions from __main__

    peers.main(sys.argv[1:])
