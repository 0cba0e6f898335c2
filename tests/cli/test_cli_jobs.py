"""``redkit jobs``, ``redkit purge`` and ``redkit queues --watch`` on a real server."""

from __future__ import annotations

import re
import threading
import time

from click.testing import CliRunner

from redkit import Redkit
from redkit.cli import build
from redkit.queue import ops as qops


def _fail(rk: Redkit, queue: str, count: int) -> None:
    """Claim ``count`` jobs as a worker and report each as failed for good."""
    q = rk.queue(queue)
    taken = rk.run(qops.take(q.keys, "w1", q.policy, count, []))
    error = rk.serializer.dumps({"type": "ValueError", "message": "bad address",
                                 "traceback": "Traceback (most recent call last):\n  boom",
                                 "attempts": 1})  # fmt: skip
    acks = [qops.Ack(j.member, j.token, "f", error) for j in taken.jobs]
    rk.run(qops.take(q.keys, "w1", q.policy, 0, acks))


def test_jobs_lists_failed_jobs_as_a_table(standalone_url: str, prefix: str) -> None:
    with Redkit(standalone_url, prefix=prefix) as rk:
        q = rk.queue("mail")
        q.enqueue("send", "a@b.c", subject="hi", job_id="first")
        q.enqueue("send", "x@y.z", job_id="second id/with:odd chars")
        _fail(rk, "mail", 2)
        q.enqueue("send", "later@b.c", delay=120, job_id="later")
    runner = CliRunner()
    args = ["--url", standalone_url, "--prefix", prefix]
    result = runner.invoke(build(), ["jobs", "mail", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "task", "tries", "enqueued", "failed", "arguments", "error"]
    assert len(lines) == 4
    body = "\n".join(lines[1:])
    assert "second id/with:odd chars" in body  # ids shown as given, not escaped
    assert "'a@b.c', subject='hi'" in body
    assert "ValueError: bad address" in body
    assert lines[-1] == "(1-2 of 2 failed jobs)"

    delayed = runner.invoke(build(), ["jobs", "mail", "-s", "delayed", *args])
    assert "due" in delayed.stdout.splitlines()[0].split()
    assert re.search(r"in (2m|1m 5\ds)", delayed.stdout), delayed.stdout

    traced = runner.invoke(build(), ["jobs", "mail", "--traceback", "-n", "1", *args])
    assert "--- " in traced.stdout and "boom" in traced.stdout  # noqa: PT018
    assert traced.stdout.count("--- ") == 1

    none = runner.invoke(build(), ["jobs", "mail", "--state", "dead", *args])
    assert none.stdout.strip() == "no dead jobs in queue 'mail'"
    wrong = runner.invoke(build(), ["jobs", "mail", "--state", "lost", *args])
    assert wrong.exit_code == 2
    assert "'lost' is not one of" in wrong.output


def test_purge_asks_first_and_yes_skips_the_question(standalone_url: str, prefix: str) -> None:
    with Redkit(standalone_url, prefix=prefix) as rk:
        q = rk.queue("bulk")
        jobs = q.enqueue_many("work", [(i,) for i in range(2500)])
        q.enqueue("work", 1, delay=60)
        runner = CliRunner()
        args = ["purge", "bulk", "--url", standalone_url, "--prefix", prefix]
        refused = runner.invoke(build(), args, input="n\n")
        assert refused.exit_code == 1
        assert "Delete 2,501 jobs from queue 'bulk' (2,500 waiting, 1 delayed)?" in refused.output
        assert q.counts()["waiting"] == 2500

        only = runner.invoke(build(), [*args, "--state", "delayed"], input="y\n")
        assert only.exit_code == 0, only.output
        assert only.stdout.splitlines()[-1] == "deleted 1 job from queue 'bulk'"
        assert q.counts()["delayed"] == 0

        done = runner.invoke(build(), [*args, "--yes"], catch_exceptions=False)
        assert done.stdout.strip() == "deleted 2,500 jobs from queue 'bulk'"
        counts = q.counts()
        assert counts["waiting"] == 0
        assert jobs[0].status() is None  # the job itself is gone, so its id is free again
        again = runner.invoke(build(), [*args, "--yes"], catch_exceptions=False)
        assert again.stdout.strip() == "nothing to purge in queue 'bulk'"


def test_purge_wakes_a_producer_waiting_for_the_result(standalone_url: str, prefix: str) -> None:
    with Redkit(standalone_url, prefix=prefix) as rk:
        q = rk.queue("wakes")
        job = q.enqueue("work", 1)
        outcome: list[BaseException] = []

        def wait() -> None:
            try:
                job.result(timeout=30)
            except Exception as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        deadline = time.monotonic() + 10
        while not rk.client.hget(q.keys.job(qops.member(job.id)), "w"):
            assert time.monotonic() < deadline, "the producer never started waiting"
            time.sleep(0.01)
        started = time.monotonic()
        assert q.purge("waiting") == 1
        waiter.join(10)
        assert time.monotonic() - started < 10
        assert type(outcome[0]).__name__ == "JobNotFinishedError"


def test_queues_watch_follows_a_drain_until_empty(standalone_url: str, prefix: str) -> None:
    with Redkit(standalone_url, prefix=prefix) as rk:
        q = rk.queue("drain")
        q.enqueue_many("work", [(i,) for i in range(300)])
        stop = threading.Event()

        def drain() -> None:  # a worker that finishes 20 jobs per round trip
            acks: list[qops.Ack] = []
            while not stop.is_set():
                taken = rk.run(qops.take(q.keys, "w", q.policy, 20, acks))
                acks = [qops.Ack(j.member, j.token, "d", b"null") for j in taken.jobs]
                if not taken.jobs and not acks:
                    return
                time.sleep(0.01)

        worker = threading.Thread(target=drain)
        worker.start()
        runner = CliRunner()
        args = ["queues", "drain", "--watch", "--interval", "0.1", "--until-empty",
                "--url", standalone_url, "--prefix", prefix]  # fmt: skip
        try:
            result = runner.invoke(build(), args, catch_exceptions=False)
        finally:
            stop.set()
            worker.join(10)
    assert result.exit_code == 0
    tables = [t for t in result.stdout.split("\n\n") if t.strip()]
    assert len(tables) >= 2  # redrawn while it drained
    head = tables[0].splitlines()[0].split()
    assert head[:10] == ["queue", "waiting", "delayed", "active", "done", "failed", "dead",
                         "blocked", "workers", "progress"]  # fmt: skip
    last = tables[-1].splitlines()[1]
    assert "[####################] 100%" in last
    assert last.split()[1:4] == ["0", "0", "0"]


def test_queues_shows_active_jobs_and_workers(standalone_url: str, prefix: str) -> None:
    with Redkit(standalone_url, prefix=prefix) as rk:
        q = rk.queue("busy")
        q.enqueue_many("work", [(i,) for i in range(5)])
        rk.run(qops.take(q.keys, "w1", q.policy, 2, []))
        counts = q.counts()
        assert counts["waiting"] == 3
        assert counts["active"] == 2
        assert counts["workers"] == 1
        assert counts["enqueued"] == 5
        active = q.jobs("active")
        assert sorted(j.state for j in active) == ["active", "active"]
        assert all(j.attempts == 1 for j in active)
        waiting = q.jobs("waiting", limit=2, offset=1)
        assert [j.args for j in waiting] == [[3], [4]]  # 0 and 1 were claimed


def test_jobs_and_purge_see_grouped_jobs_and_blocked_parents(
    standalone_url: str, prefix: str
) -> None:
    with Redkit(standalone_url, prefix=prefix) as rk:
        q = rk.queue("tenants")
        q.enqueue("send", "t1", group="acme", job_id="grouped")
        q.enqueue("send", "plain", job_id="plain")
        parent, _ = q.enqueue_flow(("report", ()), [("part", (1,))], job_id="parent")
        runner = CliRunner()
        args = ["--url", standalone_url, "--prefix", prefix]
        waiting = runner.invoke(build(), ["jobs", "tenants", "-s", "waiting", *args])
        assert waiting.exit_code == 0, waiting.output
        assert "grouped" in waiting.stdout
        assert "plain" in waiting.stdout
        assert waiting.stdout.splitlines()[-1] == "(1-3 of 3 waiting jobs)"
        blocked = runner.invoke(build(), ["jobs", "tenants", "-s", "blocked", *args])
        assert blocked.exit_code == 0, blocked.output
        assert "parent" in blocked.stdout
        assert blocked.stdout.splitlines()[-1] == "(1-1 of 1 blocked job)"
        purge = ["purge", "tenants", *args]
        refused = runner.invoke(build(), purge, input="n\n")
        assert "Delete 4 jobs from queue 'tenants' (3 waiting, 1 blocked)?" in refused.output
        done = runner.invoke(build(), [*purge, "--yes"], catch_exceptions=False)
        assert done.stdout.strip() == "deleted 4 jobs from queue 'tenants'"
        assert parent.status() is None
        counts = q.counts()
        assert (counts["waiting"], counts["blocked"]) == (0, 0)
