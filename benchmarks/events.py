"""Events: delivery rate and publish-to-receive latency, fan-out and durable.

    python benchmarks/events.py                 # an embedded Valkey, started for the run
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/events.py --runs 5

Workloads, each the median of ``--runs`` interleaved rounds:

* fan-out delivery: a publisher process sends ``--messages`` messages as fast as it can
  (pipelined); the rate is how fast one subscriber receives them, first to last. redkit
  (sync ``Subscription.get`` and asyncio) beside redis-py's raw ``PubSub.get_message``
  loop and broadcaster;
* durable consume with ack: ``--durable`` messages already in a stream; one consumer
  reads batches of 100 and acknowledges each message. redkit (sync and asyncio) beside a
  raw ``XREADGROUP`` + ``XACK`` loop and FastStream's Redis stream subscriber;
* latency: one message at a time, publish to receive, median and p99 (``--latency``
  messages), for the same systems;
* commands per message, from the server's ``INFO commandstats``.
"""

from __future__ import annotations

import _path  # noqa: F401  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)
import argparse
import asyncio
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis
from _common import server_url

from redkit import AsyncRedkit, Redkit

PREFIX = "bench-events"
#: this process's CPU seconds per message of the last fan-out run (the receiving side:
#: every thread of the subscriber, not the publisher process); steadier than the rate
#: on a loaded machine
CPU: list[float] = []
COUNTED = ("evalsha", "eval", "publish", "xreadgroup", "xack", "xadd", "xautoclaim")


def commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in COUNTED)


# --- fan-out: a publisher process -------------------------------------------------------


def _publisher(url: str, kind: str, channel: str, n: int, start: Any) -> None:
    """Pipelined PUBLISH: the same cost for every subscriber measured. For redkit, to its
    topic's channel in its format (``<seq> <payload>``): what its publish script sends."""
    start.wait()
    client = redis.Redis.from_url(url)
    if kind == "redkit":
        with Redkit(url, prefix=PREFIX) as rk:
            channel = rk.events.topic(channel).keys.channel
    for i in range(0, n, 500):
        pipe = client.pipeline(transaction=False)
        for j in range(i, min(n, i + 500)):
            if kind == "redkit":
                pipe.publish(channel, b'%d {"i":%d}' % (j + 1, j))
            else:
                pipe.publish(channel, b'{"i":%d}' % j)
        pipe.execute()
    client.close()


def _blast(url: str, kind: str, channel: str, n: int) -> tuple[Any, Any]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    proc = ctx.Process(target=_publisher, args=(url, kind, channel, n, start))
    proc.start()
    return proc, start


def fanout_raw(url: str, n: int, decode: bool = False) -> float:
    """redis-py's ``PubSub.get_message`` loop; ``decode``: it also parses each payload's
    JSON with orjson, as redkit's subscriber does (without it, the raw loop decodes nothing)."""
    loads = orjson.loads
    client = redis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("raw")
    while pubsub.get_message(timeout=0.1) is not None:
        pass
    proc, start = _blast(url, "raw", "raw", n)
    start.set()
    got, first, cpu0 = 0, 0.0, 0.0
    while got < n:
        message = pubsub.get_message(timeout=5)
        if message is None:
            continue
        if decode:
            loads(message["data"])
        if got == 0:
            first, cpu0 = time.perf_counter(), time.process_time()
        got += 1
    elapsed = time.perf_counter() - first
    CPU.append((time.process_time() - cpu0) / (n - 1))
    proc.join()
    pubsub.close()
    client.close()
    return (n - 1) / elapsed


def fanout_redkit(url: str, n: int) -> float:
    with Redkit(url, prefix=PREFIX) as rk, rk.events.subscribe("rk", buffer=n + 10) as sub:
        proc, start = _blast(url, "redkit", "rk", n)
        start.set()
        got, first, cpu0 = 0, 0.0, 0.0
        while got < n:
            if sub.get(5) is None:
                continue
            if got == 0:
                first, cpu0 = time.perf_counter(), time.process_time()
            got += 1
        elapsed = time.perf_counter() - first
        CPU.append((time.process_time() - cpu0) / (n - 1))
        proc.join()
    return (n - 1) / elapsed


def fanout_redkit_async(url: str, n: int) -> float:
    async def main() -> float:
        ark = AsyncRedkit(url, prefix=PREFIX)
        async with ark, ark.events.subscribe("ark", buffer=n + 10) as sub:
            proc, start = _blast(url, "redkit", "ark", n)
            start.set()
            got, first, cpu0 = 0, 0.0, 0.0
            while got < n:
                if await sub.get(5) is None:
                    continue
                if got == 0:
                    first, cpu0 = time.perf_counter(), time.process_time()
                got += 1
            elapsed = time.perf_counter() - first
            CPU.append((time.process_time() - cpu0) / (n - 1))
            await asyncio.to_thread(proc.join)
        return (n - 1) / elapsed

    return asyncio.run(main())


def fanout_broadcaster(url: str, n: int) -> float:
    from broadcaster import Broadcast

    async def main() -> float:
        broadcast = Broadcast(url)
        await broadcast.connect()
        async with broadcast.subscribe("bc") as subscriber:
            await asyncio.sleep(0.1)  # its SUBSCRIBE is sent in the background
            proc, start = _blast(url, "raw", "bc", n)
            start.set()
            got, first, cpu0 = 0, 0.0, 0.0
            async for _ in subscriber:
                if got == 0:
                    first, cpu0 = time.perf_counter(), time.process_time()
                got += 1
                if got == n:
                    break
            elapsed = time.perf_counter() - first
            CPU.append((time.process_time() - cpu0) / (n - 1))
            await asyncio.to_thread(proc.join)
        await broadcast.disconnect()
        return (n - 1) / elapsed

    return asyncio.run(main())


# --- fan-out latency ---------------------------------------------------------------------


def latency_raw(url: str, n: int) -> list[float]:
    client = redis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("rawlat")
    while pubsub.get_message(timeout=0.1) is not None:
        pass
    out = []
    for i in range(n):
        began = time.perf_counter()
        client.publish("rawlat", b'{"i":%d}' % i)
        while pubsub.get_message(timeout=5) is None:
            pass
        out.append(time.perf_counter() - began)
    pubsub.close()
    client.close()
    return out


def latency_redkit(url: str, n: int) -> list[float]:
    out = []
    with Redkit(url, prefix=PREFIX) as rk, rk.events.subscribe("rklat") as sub:
        topic = rk.events.topic("rklat")
        for i in range(n):
            began = time.perf_counter()
            topic.publish({"i": i})
            while sub.get(5) is None:
                pass
            out.append(time.perf_counter() - began)
    return out


def latency_broadcaster(url: str, n: int) -> list[float]:
    from broadcaster import Broadcast

    async def main() -> list[float]:
        broadcast = Broadcast(url)
        await broadcast.connect()
        out = []
        async with broadcast.subscribe("bclat") as subscriber:
            await asyncio.sleep(0.1)
            for i in range(n):
                began = time.perf_counter()
                await broadcast.publish("bclat", f'{{"i":{i}}}')
                await subscriber.get()
                out.append(time.perf_counter() - began)
        await broadcast.disconnect()
        return out

    return asyncio.run(main())


# --- durable consume + ack ---------------------------------------------------------------


def _fill(rk: Redkit, name: str, n: int) -> Any:
    topic = rk.events.topic(name, durable=True)
    rk.client.delete(topic.keys.stream)
    topic.consumer("g").create()
    topic.tail(timeout=0.01)  # opens the dedicated connection for blocking reads
    for i in range(0, n, 1000):
        topic.publish_many([{"i": j} for j in range(i, min(n, i + 1000))])
    return topic


def durable_redkit(url: str, n: int) -> tuple[float, int]:
    with Redkit(url, prefix=PREFIX) as rk:
        topic = _fill(rk, "durable", n)
        consumer = topic.consumer("g", "c1", count=100)
        before = commands(rk.client)
        began, got = time.perf_counter(), 0
        while got < n:
            for message in consumer.read(timeout=1):
                message.ack()
                got += 1
        consumer.flush()
        elapsed = time.perf_counter() - began
        used = commands(rk.client) - before
    return n / elapsed, used


def durable_redkit_async(url: str, n: int) -> tuple[float, int]:
    with Redkit(url, prefix=PREFIX) as rk:
        _fill(rk, "adurable", n)
        before = commands(rk.client)

        async def main() -> float:
            async with AsyncRedkit(url, prefix=PREFIX) as ark:
                topic = ark.events.topic("adurable", durable=True)
                await topic.tail(timeout=0.01)  # opens the dedicated connection
                consumer = topic.consumer("g", count=100)
                began, got = time.perf_counter(), 0
                while got < n:
                    for message in await consumer.read(timeout=1):
                        message.ack()
                        got += 1
                await consumer.flush()
                return time.perf_counter() - began

        elapsed = asyncio.run(main())
        used = commands(rk.client) - before
    return n / elapsed, used


def durable_raw(url: str, n: int) -> tuple[float, int]:
    with Redkit(url, prefix=PREFIX) as rk:
        stream = _fill(rk, "rawdurable", n).keys.stream
    client = redis.Redis.from_url(url)
    before = commands(client)
    began, got = time.perf_counter(), 0
    while got < n:
        reply = client.xreadgroup("g", "c1", {stream: ">"}, count=100, block=1000)
        ids = [entry_id for _, entries in reply for entry_id, _ in entries]
        got += len(ids)
        if ids:
            client.xack(stream, "g", *ids)
    elapsed = time.perf_counter() - began
    used = commands(client) - before
    client.close()
    return n / elapsed, used


def durable_faststream(url: str, n: int) -> tuple[float, int]:
    from faststream.redis import RedisBroker, StreamSub

    client = redis.Redis.from_url(url)
    client.delete("fs-durable")

    async def main() -> float:
        broker = RedisBroker(url, logger=None)
        done, count = asyncio.Event(), 0

        @broker.subscriber(
            stream=StreamSub("fs-durable", group="g", consumer="c1", last_id="0", max_records=100)
        )
        async def handle(message: Any) -> None:
            nonlocal count
            count += 1
            if count == n:
                done.set()

        await broker.connect()
        for i in range(n):
            await broker.publish({"i": i}, stream="fs-durable")
        began = time.perf_counter()
        await broker.start()
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - began
        await broker.stop()
        return elapsed

    before = commands(client)
    elapsed = asyncio.run(main())
    used = commands(client) - before - n  # without the prefill's XADDs
    client.close()
    return n / elapsed, used


# --- durable latency ---------------------------------------------------------------------


def _ping_pong(publish: Callable[[int], Any], receive: Callable[[], bool], n: int) -> list[float]:
    """Publish one message at a time; ``receive`` (in a thread) returns True per message."""
    arrived = threading.Event()
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            if receive():
                arrived.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    out = []
    for i in range(n):
        arrived.clear()
        began = time.perf_counter()
        publish(i)
        if not arrived.wait(5):
            raise RuntimeError("a message did not arrive")
        out.append(time.perf_counter() - began)
    stop.set()
    thread.join(5)
    return out


def durable_latency_redkit(url: str, n: int) -> list[float]:
    with Redkit(url, prefix=PREFIX) as rk:
        topic = _fill(rk, "durlat", 0)
        consumer = topic.consumer("g", count=10)

        def receive() -> bool:
            messages = consumer.read(timeout=0.2)
            for message in messages:
                message.ack()
            return bool(messages)

        return _ping_pong(lambda i: topic.publish({"i": i}), receive, n)


def durable_latency_raw(url: str, n: int) -> list[float]:
    with Redkit(url, prefix=PREFIX) as rk:
        stream = _fill(rk, "rawlat", 0).keys.stream
    client = redis.Redis.from_url(url)

    def receive() -> bool:
        reply = client.xreadgroup("g", "c1", {stream: ">"}, count=10, block=200)
        ids = [entry_id for _, entries in reply for entry_id, _ in entries]
        if ids:
            client.xack(stream, "g", *ids)
        return bool(ids)

    producer = redis.Redis.from_url(url)
    out = _ping_pong(lambda i: producer.xadd(stream, {"d": b'{"i":%d}' % i}), receive, n)
    client.close()
    producer.close()
    return out


# --- the table ---------------------------------------------------------------------------


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        print(f"({module} is not installed: skipped; pip install -e '.[bench]')")
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=20_000, help="fan-out burst size")
    parser.add_argument("--durable", type=int, default=5_000, help="messages consumed")
    parser.add_argument("--latency", type=int, default=1_000, help="messages timed one by one")
    parser.add_argument(
        "--parts", nargs="+", choices=("fanout", "durable", "latency"),
        default=["fanout", "durable", "latency"], help="which tables to measure",
    )  # fmt: skip
    args = parser.parse_args()
    with server_url() as (url, where):
        client = redis.Redis.from_url(url)
        server = client.info("server")
        version = server.get("valkey_version") or server.get("redis_version")
        print(f"server: {where} {version}; runs: {args.runs} (median, interleaved)\n")
        if "fanout" in args.parts or "durable" in args.parts:
            rate_rows(url, args)
        if "latency" in args.parts:
            latency_rows(url, args)
        client.close()


def rate_rows(url: str, args: argparse.Namespace) -> None:
    fanout: dict[str, Callable[[str, int], float]] = {
        "raw redis-py PubSub": fanout_raw,
        "raw PubSub + orjson.loads": lambda url, n: fanout_raw(url, n, decode=True),
        "redkit fan-out (sync)": fanout_redkit,
        "redkit fan-out (asyncio)": fanout_redkit_async,
    }
    if _installed("broadcaster"):
        fanout["broadcaster"] = fanout_broadcaster
    if "fanout" not in args.parts:
        fanout = {}
    durable: dict[str, Callable[[str, int], tuple[float, int]]] = {
        "raw XREADGROUP + XACK": durable_raw,
        "redkit durable (sync)": durable_redkit,
        "redkit durable (asyncio)": durable_redkit_async,
    }
    if _installed("faststream"):
        durable["FastStream StreamSub"] = durable_faststream
    if "durable" not in args.parts:
        durable = {}
    rates: dict[str, list[float]] = {name: [] for name in [*fanout, *durable]}
    used: dict[str, int] = {}
    cpu: dict[str, list[float]] = {}
    for _ in range(args.runs):
        for name, run in fanout.items():
            rates[name].append(run(url, args.messages))
            cpu.setdefault(name, []).append(CPU[-1])
        for name, run_durable in durable.items():
            rate, used[name] = run_durable(url, args.durable)
            rates[name].append(rate)
    print_rates(fanout, durable, rates, used, args.durable)
    if cpu:
        print_cpu(cpu)


def print_rates(
    fanout: dict[str, Any], durable: dict[str, Any], rates: dict[str, list[float]],
    used: dict[str, int], n_durable: int,
) -> None:  # fmt: skip
    print(f"{'delivery':<28} {'msgs/s':>10} {'vs raw':>8} {'cmds/msg':>9} {'vs raw+JSON':>12}")
    decoded = statistics.median(rates["raw PubSub + orjson.loads"]) if fanout else 0.0
    for group, base in ((fanout, "raw redis-py PubSub"), (durable, "raw XREADGROUP + XACK")):
        if not group:
            continue
        floor = statistics.median(rates[base])
        for name in group:
            med = statistics.median(rates[name])
            per = f"{used[name] / n_durable:>9.3f}" if name in used else f"{'':>9}"
            both = f"{med / decoded:>11.0%}" if group is fanout else ""
            print(f"{name:<28} {med:>10,.0f} {med / floor:>7.0%} {per} {both}")
    if "FastStream StreamSub" in rates and durable:
        ratio = statistics.median(rates["redkit durable (sync)"]) / statistics.median(
            rates["FastStream StreamSub"]
        )
        print(f"redkit durable (sync) / FastStream: {ratio:.1f}x")
    print()


def print_cpu(cpu: dict[str, list[float]]) -> None:
    print(f"{'fan-out, subscriber CPU':<28} {'us/msg':>10} {'vs raw':>8} {'vs raw+JSON':>12}")
    raw = statistics.median(cpu["raw redis-py PubSub"])
    decoded = statistics.median(cpu["raw PubSub + orjson.loads"])
    for name, values in cpu.items():
        med = statistics.median(values)
        print(f"{name:<28} {med * 1e6:>10.2f} {med / raw:>7.0%} {med / decoded:>11.0%}")
    print()


def latency_rows(url: str, args: argparse.Namespace) -> None:
    systems: dict[str, Callable[[str, int], list[float]]] = {
        "raw redis-py PubSub": latency_raw,
        "redkit fan-out": latency_redkit,
        "raw XREADGROUP + XACK": durable_latency_raw,
        "redkit durable": durable_latency_redkit,
    }
    if _installed("broadcaster"):
        systems["broadcaster"] = latency_broadcaster
    samples: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(args.runs):
        for name, run in systems.items():
            samples[name] += run(url, args.latency)
    print(f"{'publish -> receive':<28} {'median ms':>10} {'p99 ms':>8}")
    for name, values in samples.items():
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"{name:<28} {statistics.median(values) * 1000:>10.3f} {p99 * 1000:>8.3f}")


if __name__ == "__main__":
    main()
