"""The queue benchmark's systems: a producer and a worker each, on the same no-op job.

``python peers.py NAME`` runs NAME's worker (one process, concurrency 50) until SIGTERM;
``QBENCH_URL`` and ``QBENCH_NS`` (the run's queue name, unique) come from the
environment. The job takes one number: ``0 <= i < 1e9`` does nothing; the marks
(``-1``: the drain's first job, ``-2``: its last, a timestamp: enqueue-to-start latency)
are written with a plain redis-py client (see :func:`mark`).

In benchmarks/queue_worker/ so that a worker does not import benchmarks/queue.py in place
of the standard library's queue module.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
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


PEERS: list[type[Peer]] = [
    RedkitPeer,
    BullMQPeer,
    DramatiqPeer,
    SAQPeer,
    StreaqPeer,
    DocketPeer,
    CeleryPeer,
    RQPeer,
]


if __name__ == "__main__":
    chosen = {peer.name: peer for peer in PEERS}[sys.argv[1]]
    chosen.work(os.environ["QBENCH_URL"], os.environ["QBENCH_NS"])  # type: ignore[attr-defined]
