"""Schedules: cron and intervals, exactly one enqueue per tick however many workers run."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from redkit import AsyncRedkit, Redkit
from redkit.errors import ConfigError
from redkit.queue import Worker, current_job
from redkit.queue.schedules import Schedule

from .conftest import Running, poll

INTERVAL_MS = 50


def test_three_workers_enqueue_each_tick_once_across_restarts(rk: Redkit) -> None:
    q = rk.queue("sched", lease=2.0)
    ran: list[str] = []

    @q.task
    def beat() -> None:
        ran.append(current_job().id)

    q.schedule("beat", beat, every=INTERVAL_MS / 1000, catch_up=30)
    start = lambda: Running(Worker(q, concurrency=4))  # noqa: E731
    workers = [start() for _ in range(3)]
    try:
        poll(lambda: len(ran) >= 35, timeout=30)
        workers.pop(0).stop()  # one worker restarts
        workers.append(start())
        poll(lambda: len(ran) >= 70, timeout=30)
        for worker in workers:  # all of them stop: ticks pass while none runs
            worker.stop()
        stopped_at = len(ran)
        workers = [start() for _ in range(3)]  # missed ticks are caught up
        poll(lambda: len(ran) >= max(110, stopped_at + 20), timeout=30)
        assert q.remove_schedule("beat")
        poll(lambda: q.counts()["waiting"] == 0, timeout=30)
    finally:
        for worker in workers:
            worker.stop()
    ticks = sorted(int(job_id.rsplit(":", 1)[1]) for job_id in ran)
    assert len(ticks) == len(set(ticks)), "no tick enqueued twice"
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert set(gaps) == {INTERVAL_MS}, "no tick missed"
    assert len(ticks) >= 100
    assert q.counts()["done"] == len(ticks)


def test_cron_in_a_time_zone() -> None:
    paris = Schedule("s", "t", "30 2 * * *", None, "Europe/Paris", b"", 0, 60.0)
    before_dst = datetime(2026, 3, 28, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
    runs = []
    at = int(before_dst.timestamp() * 1000)
    for _ in range(3):
        at = paris.next_after(at)
        runs.append(datetime.fromtimestamp(at / 1000, ZoneInfo("Europe/Paris")))
    # 02:30 does not exist on the night the clocks go forward: that night's run is just
    # after the jump (03:00 or 03:30, depending on the croniter version), not skipped
    assert (runs[0].day, runs[0].hour) == (29, 3)
    assert runs[0].utcoffset() == runs[1].utcoffset()  # summer time already
    assert [(r.day, r.hour, r.minute) for r in runs[1:]] == [(30, 2, 30), (31, 2, 30)]
    utc = Schedule("u", "t", "0 9 * * MON-FRI", None, "UTC", b"", 0, 60.0)
    friday = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)
    monday = datetime.fromtimestamp(
        utc.next_after(int(friday.timestamp() * 1000)) / 1000, timezone.utc
    )
    assert (monday.weekday(), monday.hour) == (0, 9)


def test_catch_up_window() -> None:
    s = Schedule("s", "t", None, 1.0, "UTC", b"", 0, 5.0)
    assert s.plan(0, 10_500) == (False, 11_000)  # new: the first tick after now
    assert s.plan(7_000, 10_500) == (True, 8_000)  # missed, within 5 s: enqueued late
    assert s.plan(2_000, 10_500) == (False, 6_000)  # too old: skipped up to the window


def test_schedules_are_checked_listed_and_removed(rk: Redkit) -> None:
    q = rk.queue("sched-admin")

    @q.task
    def report(kind: str) -> str:
        return kind

    with pytest.raises(ConfigError, match="exactly one"):
        q.schedule("x", report, kwargs={"kind": "a"})
    with pytest.raises(ConfigError, match="cron"):
        q.schedule("x", report, cron="61 * * * *", kwargs={"kind": "a"})
    with pytest.raises(ConfigError, match="time zone"):
        q.schedule("x", report, cron="0 * * * *", tz="Mars/Olympus", kwargs={"kind": "a"})
    with pytest.raises(ConfigError, match="report"):
        q.schedule("x", report, every=60)  # the task's arguments are checked
    with pytest.raises(ConfigError, match="evrey"):
        q.schedule("x", report, evrey=60)  # type: ignore[call-arg]
    q.add_schedule("daily", report, cron="0 6 * * *", tz="Asia/Tokyo", kwargs={"kind": "d"})
    q.add_schedule("often", "report", every=30, args=("o",))
    listed = {info.name: info for info in q.list_schedules()}
    assert sorted(listed) == ["daily", "often"]
    daily = listed["daily"].next_run
    assert (daily.hour, daily.minute, daily.utcoffset()) == (
        6,
        0,
        ZoneInfo("Asia/Tokyo").utcoffset(daily),
    )
    assert q.remove_schedule("daily")
    assert not q.remove_schedule("daily")
    assert [info.name for info in q.list_schedules()] == ["often"]


async def test_async_queue_schedules(ark: AsyncRedkit) -> None:
    q = ark.queue("asched")

    @q.task
    async def ping() -> str:
        return "pong"

    q.schedule("in-code", ping, every=60)  # stored by workers when they start
    await q.add_schedule("at-run-time", ping, every=0.05)
    assert [i.name for i in await q.list_schedules()] == ["at-run-time"]
    assert await q.remove_schedule("at-run-time")
