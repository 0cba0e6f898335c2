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
``acquire`` + ``release`` beside a raw ``SET NX PX`` + ``EVALSHA`` compare-and-delete; all on
the redis-py client redkit itself uses. ``% raw`` is raw's instructions over redkit's (100% =
no client-side cost on top of redis-py; higher is better, like a throughput ratio).

Without valgrind on the machine the script says so and exits. Keys carry a unique prefix and
are deleted at the end (nothing is flushed).
"""

from __future__ import annotations

import _path  # noqa: F401  # isort: skip  (first: benchmarks/queue.py shadows stdlib queue)
import argparse
import contextlib
import ctypes
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from redkit import Redkit

HUGE = "1000000000/hour"
ALGORITHMS: list[Any] = ["fixed_window", "gcra", "token_bucket", "sliding_window", "sliding_log"]
RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"

Op = Callable[[], Any]


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


def child(url: str, ops: int, out: str) -> None:
    """Runs under callgrind: every workload warms up, then runs between two markers."""
    marker = ctypes.CDLL(None).getppid
    prefix = f"instr-{uuid.uuid4().hex[:8]}"
    names: list[str] = []
    with Redkit(url, prefix=prefix) as rk:
        try:
            for name, op in workloads(rk, prefix):
                for _ in range(ops):
                    op()
                marker()  # dump: everything so far (set-up, warm-up)
                for _ in range(ops):
                    op()
                marker()  # dump: exactly the measured operations
                names.append(name)
        finally:
            for key in rk.client.scan_iter(match=f"*{prefix}*", count=1000):
                rk.client.delete(key)
    with open(out, "w") as f:
        json.dump(names, f)


def _total(path: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def measure(url: str, ops: int) -> dict[str, float]:
    """Instructions per operation of every workload, from one run under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        names_file = os.path.join(tmp, "names.json")
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--dump-before=ffi_call",
            f"--callgrind-out-file={tmp}/cg.out",
            sys.executable,
            __file__,
            "--child",
            names_file,
            "--url",
            url,
            "--ops",
            str(ops),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"the run under callgrind failed:\n{done.stderr[-3000:]}")
        with open(names_file) as f:
            names = json.load(f)
        dumps = sorted(glob.glob(f"{tmp}/cg.out.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
        # dumps come in pairs per workload: (set-up + warm-up, measured)
        totals = [_total(p) for p in dumps]
        return {name: totals[2 * i + 1] / ops for i, name in enumerate(names)}


def table(per_op: dict[str, float]) -> str:
    rows = [f"{'workload':<30}{'instr/op':>10}  {'raw':<22}{'% raw':>7}"]
    pairs = [(f"rate-limit hit {a}", f"raw EVALSHA {a}") for a in ALGORITHMS]
    pairs += [("cache get hit", "raw GET"), ("lock acquire+release", "raw SET NX + EVALSHA")]
    for mine, raw in pairs:
        if mine in per_op:
            share = 100 * per_op[raw] / per_op[mine]
            rows.append(f"{mine:<30}{per_op[mine]:>10,.0f}  {raw:<22}{share:>6.1f}%")
    for raw in sorted({r for _, r in pairs} & per_op.keys()):
        rows.append(f"{raw:<30}{per_op[raw]:>10,.0f}")
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
    parser.add_argument("--child", metavar="NAMES_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.url, args.ops, args.child)
        return
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: this benchmark counts instructions under callgrind")
        return
    with _server(args.url) as url:
        print(table(measure(url, args.ops)))


if __name__ == "__main__":
    main()
