"""Client-side cost: CPU instructions per operation under callgrind, redkit beside raw redis-py.

    python benchmarks/instructions.py                       # an embedded Valkey for the run
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/instructions.py --ops 2000

Wall clock on a shared machine moves by more than the differences that matter here, so this
counts the instructions the *client process* executes (valgrind's callgrind: deterministic,
the server is another process and is not counted). Every workload runs ``--ops`` warm-up
operations, then ``--ops`` measured ones between two markers (a ``ctypes`` call of libc's
``getppid``: callgrind dumps before each ``ffi_call``), so each workload's count is exact
and free of start-up.

Rows: a sync rate-limit hit per algorithm beside the raw ``EVALSHA`` of the very script,
keys and arguments it sends; a cache ``get`` hit beside a raw ``GET`` of a key; a lock
``acquire`` + ``release`` beside a raw ``SET NX PX`` + ``EVALSHA`` compare-and-delete; a
queue ``task.enqueue(1)`` beside a raw ``XADD`` of the same entry to the queue's inbox (the
very command it sends, a new job id per call) and beside a raw ``RPUSH`` of the payload, sync
and from one asyncio task; all on the redis-py client redkit itself uses. ``% raw`` is raw's
instructions over redkit's (100% = no client-side cost on top of redis-py; higher is better,
like a throughput ratio). ``--only WORD`` keeps the rows whose name contains WORD.

Without valgrind on the machine the script says so and exits. Keys carry a unique prefix and
are deleted at the end (nothing is flushed).
"""

from __future__ import annotations

import _path  # noqa: F401  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)
import argparse
import asyncio
import contextlib
import ctypes
import itertools
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any

from _common import callgrind_totals

from redkit import AsyncRedkit, Redkit

HUGE = "1000000000/hour"
ALGORITHMS: list[Any] = ["fixed_window", "gcra", "token_bucket", "sliding_window", "sliding_log"]
RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"

Op = Callable[[], Any]
AsyncOp = Callable[[], Awaitable[Any]]
PAYLOAD = b"[[1],{}]"  # what ``task.enqueue(1)`` stores
#: (redkit row, raw row) in the table's order
PAIRS = [(f"rate-limit hit {a}", f"raw EVALSHA {a}") for a in ALGORITHMS]
PAIRS += [("cache get hit", "raw GET"), ("lock acquire+release", "raw SET NX + EVALSHA")]
for _suffix in ("", " (asyncio)"):
    PAIRS += [(f"queue enqueue{_suffix}", f"raw XADD{_suffix}"),
              (f"queue enqueue{_suffix}", f"raw RPUSH{_suffix}")]  # fmt: skip


def wanted(name: str, only: str | None) -> bool:
    """Whether ``--only`` keeps a row: its name matches, or it is the raw row of one that does."""
    if not only or only in name:
        return True
    return any(raw == name and only in mine for mine, raw in PAIRS)


def _raw_evalsha(client: Any, limiter: Any) -> Op:
    """EVALSHA of what ``limiter.hit("k")`` sends, straight on its client."""
    effect = limiter._plan.check("k", 1, 1)
    if isinstance(effect, list | tuple):  # older releases planned a list of effects
        effect = effect[0]
    sha, keys, args = effect.script.sha, list(effect.keys), list(effect.args)
    return lambda: client.evalsha(sha, len(keys), *keys, *args)


def workloads(rk: Redkit, prefix: str) -> Iterator[tuple[str, Op]]:
    """(name, operation) pairs: redkit rows and their raw rows, in the table's order."""
    client = rk.client
    for algorithm in ALGORITHMS:
        limiter = rk.rate_limiter(HUGE, algorithm=algorithm, name=f"{prefix}-rl")
        yield f"rate-limit hit {algorithm}", partial(limiter.hit, "k")
        yield f"raw EVALSHA {algorithm}", _raw_evalsha(client, limiter)
    cache = rk.cache(f"{prefix}-cache")
    cache.set("k", "value")
    yield "cache get hit", lambda: cache.get("k")
    client.set(f"{prefix}:get", b'"value"')
    yield "raw GET", lambda: client.get(f"{prefix}:get")
    lock = rk.lock(f"{prefix}-lock")

    def lock_op() -> None:
        lock.acquire()
        lock.release()

    yield "lock acquire+release", lock_op
    release = client.script_load(RELEASE)
    key = f"{prefix}:lock"

    def raw_lock() -> None:
        client.set(key, b"token", nx=True, px=30000)
        client.evalsha(release, 1, key, b"token")

    yield "raw SET NX + EVALSHA", raw_lock
    queue = rk.queue(f"{prefix}-q")

    @queue.task
    def noop(i: int) -> None: ...

    yield "queue enqueue", partial(noop.enqueue, 1)
    args, member = _enqueue_call(queue)
    ids = map(str, itertools.count())

    def raw_enqueue() -> Any:
        args[member] = next(ids)  # a new job each time, as enqueue makes
        return client.execute_command(*args)

    yield "raw XADD", raw_enqueue
    yield "raw RPUSH", partial(client.rpush, f"{prefix}:rpush", PAYLOAD)


def _enqueue_call(queue: Any) -> tuple[list[Any], int]:
    """The XADD that ``noop.enqueue(1)`` sends: its arguments, and the job id's index."""
    new = queue._new_job("noop", (1,), {}, {})[1]  # (id, job, partition)
    args = list(queue._add({}, [new]).effect.args)
    return args, args.index(new.member)


async def async_workloads(ark: AsyncRedkit, prefix: str) -> list[tuple[str, AsyncOp]]:
    """The asyncio rows: one task awaiting one call at a time."""
    queue = ark.queue(f"{prefix}-aq")

    @queue.task
    def noop(i: int) -> None: ...

    client = ark.client
    await ark.ping()  # the loop's client and its pipeline are ready
    args, member = _enqueue_call(queue)
    ids = map(str, itertools.count())

    def raw_enqueue() -> Awaitable[Any]:
        args[member] = next(ids)
        return client.execute_command(*args)  # type: ignore[no-any-return]

    return [
        ("queue enqueue (asyncio)", partial(noop.enqueue, 1)),
        ("raw XADD (asyncio)", raw_enqueue),
        ("raw RPUSH (asyncio)", partial(client.rpush, f"{prefix}:arpush", PAYLOAD)),
    ]


def child(url: str, ops: int, out: str, only: str | None) -> None:
    """Runs under callgrind: every workload warms up, then runs between two markers."""
    marker = ctypes.CDLL(None).getppid
    prefix = f"instr-{uuid.uuid4().hex[:8]}"
    names: list[str] = []
    with Redkit(url, prefix=prefix) as rk:
        try:
            for name, op in workloads(rk, prefix):
                if not wanted(name, only):
                    continue
                for _ in range(ops):
                    op()
                marker()  # dump: everything so far (set-up, warm-up)
                for _ in range(ops):
                    op()
                marker()  # dump: exactly the measured operations
                names.append(name)
            asyncio.run(_async_child(url, prefix, ops, only, marker, names))
        finally:
            for key in rk.client.scan_iter(match=f"*{prefix}*", count=1000):
                rk.client.delete(key)
    with open(out, "w") as f:
        json.dump(names, f)


async def _async_child(
    url: str, prefix: str, ops: int, only: str | None, marker: Op, names: list[str]
) -> None:
    ark = AsyncRedkit(url, prefix=prefix)
    try:
        for name, op in await async_workloads(ark, prefix):
            if not wanted(name, only):
                continue
            for _ in range(ops):
                await op()
            marker()
            for _ in range(ops):
                await op()
            marker()
            names.append(name)
    finally:
        await ark.aclose()


def measure(url: str, ops: int, only: str | None = None) -> dict[str, float]:
    """Instructions per operation of every workload, from one run under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        names_file = os.path.join(tmp, "names.json")
        args = ["--child", names_file, "--url", url, "--ops", str(ops)]
        totals = callgrind_totals(__file__, [*args, *(["--only", only] if only else [])], tmp)
        with open(names_file) as f:
            names = json.load(f)
        # dumps come in pairs per workload: (set-up + warm-up, measured)
        return {name: totals[2 * i + 1] / ops for i, name in enumerate(names)}


def table(per_op: dict[str, float]) -> str:
    rows = [f"{'workload':<32}{'instr/op':>10}  {'raw':<32}{'% raw':>7}"]
    pairs = PAIRS
    for mine, raw in pairs:
        if mine in per_op and raw in per_op:
            share = 100 * per_op[raw] / per_op[mine]
            rows.append(f"{mine:<32}{per_op[mine]:>10,.0f}  {raw:<32}{share:>6.1f}%")
    for raw in sorted({r for _, r in pairs} & per_op.keys()):
        rows.append(f"{raw:<32}{per_op[raw]:>10,.0f}")
    return "\n".join(rows)


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from redkit.embedded import EmbeddedServer

    with EmbeddedServer() as server:
        yield server.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1000, help="warm-up and measured ops each")
    parser.add_argument("--url", default=os.environ.get("REDIS_URL"), help="default: embedded")
    parser.add_argument("--only", help="only the rows whose name contains this")
    parser.add_argument("--child", metavar="NAMES_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.url, args.ops, args.child, args.only)
        return
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: this benchmark counts instructions under callgrind")
        return
    with _server(args.url) as url:
        print(table(measure(url, args.ops, args.only)))


if __name__ == "__main__":
    main()
