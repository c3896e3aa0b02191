"""CronRunner against a real database, with time driven by a FakeClock.

The runner sleeps on the fake clock between minutes and does real database
I/O when it wakes. A test moves time with ``clock.advance`` and then waits for
the runner to go back to sleep (``clock.wait_for_sleepers``): it only sleeps
again once the minute it woke for is fully scheduled, so the database can be
checked right after. No test sleeps on the wall clock.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from gw.core.hooks import CronJobScheduled, CronTick, HookRegistry
from gw.core.utils import open_pool
from gw.cron import Cron, CrontabFill, parse_crontab
from gw.cron.runner import CronRunner, cron_timestamp, retry_delay
from gw.db.queries import queries_for
from gw.errors import ConfigurationError
from gw.runtime import FakeClock, open_task_group

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from gw.cron import CronItem
    from gw.db.pool import Pool

QUERIES = queries_for("graphile_worker")
T0 = datetime(2024, 1, 1, 12, 0, 30, tzinfo=UTC)


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2024, 1, 1, hour, minute, second, tzinfo=UTC)


class Recorder:
    """Collects the cron hook events of one registry."""

    def __init__(self) -> None:
        self.hooks = HookRegistry()
        self.ticks: list[CronTick] = []
        self.scheduled: list[CronJobScheduled] = []
        self.hooks.on(CronTick, self.ticks.append)
        self.hooks.on(CronJobScheduled, self.scheduled.append)


@asynccontextmanager
async def cron_runners(
    db_url: str,
    items: Sequence[CronItem],
    clock: FakeClock,
    *,
    count: int = 1,
    hooks: Sequence[HookRegistry] = (),
    **options: Any,
) -> AsyncIterator[list[CronRunner]]:
    """Start ``count`` runners (each with its own pool, like separate workers)."""
    async with open_task_group() as tg:
        runners: list[CronRunner] = []
        pools: list[Pool] = []
        try:
            for index in range(count):
                pool = open_pool(db_url, max_size=2)
                pools.append(pool)
                runner = CronRunner(
                    items,
                    pool=pool,
                    queries=QUERIES,
                    clock=clock,
                    hooks=hooks[index] if index < len(hooks) else HookRegistry(),
                    worker_id=f"cron_test_worker_{index}",
                    **options,
                )
                runners.append(runner)
                tg.start_soon(runner.run)
            # Each runner sleeps once it has registered, backfilled and is
            # waiting for its first minute.
            await clock.wait_for_sleepers(count)
            yield runners
        finally:
            tg.cancel_scope.cancel()
            for pool in pools:
                await pool.close()


async def advance(clock: FakeClock, seconds: float, sleepers: int = 1) -> None:
    """Move time on, then wait until every runner is asleep again (done with its work)."""
    await clock.advance(seconds)
    await clock.wait_for_sleepers(sleepers)


async def jobs(db_url: str) -> list[dict[str, Any]]:
    async with open_pool(db_url, max_size=1) as pool:
        return await pool.fetch(
            "select t.identifier as task_identifier, j.payload, j.run_at, q.queue_name,"
            " j.max_attempts, j.priority, j.key"
            " from graphile_worker._private_jobs as j"
            " join graphile_worker._private_tasks as t on t.id = j.task_id"
            " left join graphile_worker._private_job_queues as q on q.id = j.job_queue_id"
            " order by j.run_at, j.id"
        )


async def known(db_url: str) -> dict[str, tuple[datetime, datetime | None]]:
    async with open_pool(db_url, max_size=1) as pool:
        rows = await pool.fetch(
            "select identifier, known_since, last_execution"
            " from graphile_worker._private_known_crontabs"
        )
    return {r["identifier"]: (r["known_since"], r["last_execution"]) for r in rows}


async def set_known(db_url: str, identifier: str, since: datetime, last: datetime | None) -> None:
    async with open_pool(db_url, max_size=1) as pool, pool.connection() as conn:
        await conn.execute(
            "insert into graphile_worker._private_known_crontabs"
            " (identifier, known_since, last_execution) values (%s, %s, %s)",
            (identifier, since, last),
        )


def cron_meta(job: dict[str, Any]) -> tuple[str, bool]:
    meta = job["payload"]["_cron"]
    return meta["ts"], meta["backfilled"]


# --------------------------------------------------------------------------- pure parts


def test_cron_timestamp_is_nodes_iso_format() -> None:
    assert cron_timestamp(at(8, 5)) == "2024-01-01T08:05:00.000Z"
    paris = at(8, 5).astimezone(ZoneInfo("Europe/Paris"))
    assert cron_timestamp(paris) == "2024-01-01T08:05:00.000Z"


def test_retry_delay_grows_to_a_jittered_minute() -> None:
    assert 0.1 <= retry_delay(1) <= 0.3
    assert 0.15 <= retry_delay(2) <= 0.45
    assert all(30.0 <= retry_delay(n) <= 90.0 for n in (20, 100, 10_000))


def test_runner_rejects_duplicate_identifiers() -> None:
    items = [Cron.every_minute("a").build(), Cron.hourly_at("a", 5).build()]
    with pytest.raises(ConfigurationError, match="cron identifier 'a' is used more than once"):
        CronRunner(
            items,
            pool=None,  # type: ignore[arg-type]
            queries=QUERIES,
            clock=FakeClock(T0),
            hooks=HookRegistry(),
            worker_id="cron_test_worker",
        )


# --------------------------------------------------------------------------- ticking


async def test_schedules_each_minute_with_cron_payload(db_url: str) -> None:
    items = parse_crontab("* * * * * tick {label: 'every minute', _cron: 'mine'}")
    clock = FakeClock(T0)
    async with cron_runners(db_url, items, clock) as (runner,):
        assert runner.next_timestamp == at(12, 1)
        assert await jobs(db_url) == []
        assert await known(db_url) == {"tick": (T0, None)}

        await advance(clock, 31)
        (job,) = await jobs(db_url)
        assert job["task_identifier"] == "tick"
        assert job["run_at"] == at(12, 1)
        # _cron replaces a user key of the same name, as in Node.
        assert job["payload"] == {
            "label": "every minute",
            "_cron": {"ts": "2024-01-01T12:01:00.000Z", "backfilled": False},
        }
        assert (job["queue_name"], job["max_attempts"], job["priority"], job["key"]) == (
            None,
            25,
            0,
            None,
        )
        assert (await known(db_url))["tick"] == (T0, at(12, 1))

        await advance(clock, 60)
        assert [j["run_at"] for j in await jobs(db_url)] == [at(12, 1), at(12, 2)]
        assert (await known(db_url))["tick"] == (T0, at(12, 2))
        assert runner.next_timestamp == at(12, 3)


async def test_only_matching_minutes_are_scheduled(db_url: str) -> None:
    items = parse_crontab("*/2 * * * * even\n5 12 * * * five\n0 13 * * * later")
    clock = FakeClock(T0)
    async with cron_runners(db_url, items, clock):
        for _ in range(6):
            await advance(clock, 60)
    scheduled = [(j["task_identifier"], j["run_at"]) for j in await jobs(db_url)]
    assert scheduled == [
        ("even", at(12, 2)),
        ("even", at(12, 4)),
        ("five", at(12, 5)),
        ("even", at(12, 6)),
    ]
    assert (await known(db_url))["later"] == (T0, None)


async def test_job_options_reach_add_job(db_url: str) -> None:
    items = [
        *parse_crontab(
            "* * * * * send ?id=node_style&queue=mail&max=3&priority=-2"
            "&jobKey=k1&jobKeyMode=preserve_run_at {to: 'a'}"
        ),
        Cron.every_minute("send")
        .id("typed")
        .queue("mail2")
        .max_attempts(7)
        .priority(4)
        .job_key("k2")
        .payload({"to": "b"})
        .build(),
    ]
    clock = FakeClock(T0)
    async with cron_runners(db_url, items, clock):
        await advance(clock, 31)
    rows = {j["key"]: j for j in await jobs(db_url)}
    assert set(rows) == {"k1", "k2"}
    assert (rows["k1"]["queue_name"], rows["k1"]["max_attempts"], rows["k1"]["priority"]) == (
        "mail",
        3,
        -2,
    )
    assert (rows["k2"]["queue_name"], rows["k2"]["max_attempts"], rows["k2"]["priority"]) == (
        "mail2",
        7,
        4,
    )
    assert rows["k1"]["payload"]["to"] == "a"
    assert rows["k2"]["payload"]["to"] == "b"
    assert {j["run_at"] for j in rows.values()} == {at(12, 1)}


async def test_start_exactly_on_a_minute_schedules_that_minute(db_url: str) -> None:
    items = parse_crontab("* * * * * tick")
    clock = FakeClock(at(12, 0))
    async with cron_runners(db_url, items, clock) as (runner,):
        assert runner.next_timestamp == at(12, 1)
        (job,) = await jobs(db_url)
    assert cron_meta(job) == ("2024-01-01T12:00:00.000Z", False)


# --------------------------------------------------------------------------- backfill


async def test_new_item_is_never_backfilled(db_url: str) -> None:
    items = parse_crontab("* * * * * tick ?fill=10m")
    clock = FakeClock(T0)
    async with cron_runners(db_url, items, clock):
        assert await jobs(db_url) == []
        assert await known(db_url) == {"tick": (T0, None)}


async def test_known_item_is_backfilled_within_its_fill(db_url: str) -> None:
    # Workers were down since 11:55; tick runs every minute with a 10 minute fill.
    await set_known(db_url, "tick", at(10, 0), at(11, 55))
    # Last seen long ago, but its fill only reaches back 2 minutes.
    await set_known(db_url, "short", at(10, 0), at(11, 0))
    # Known but never executed: backfill starts at known_since.
    await set_known(db_url, "fresh", at(11, 58, 30), None)
    # Known, no fill: nothing to backfill.
    await set_known(db_url, "nofill", at(10, 0), at(11, 0))
    items = parse_crontab(
        "* * * * * tick ?fill=10m\n"
        "* * * * * tick ?id=short&fill=2m\n"
        "* * * * * tick ?id=fresh&fill=1h\n"
        "* * * * * tick ?id=nofill\n"
        "*/5 * * * * tick ?id=sparse&fill=1h"
    )
    recorder = Recorder()
    clock = FakeClock(T0)
    async with cron_runners(db_url, items, clock, hooks=[recorder.hooks]):
        rows = await jobs(db_url)
        state = await known(db_url)

    for job in rows:
        ts, backfilled = cron_meta(job)
        assert backfilled is True
        assert job["run_at"] == datetime.fromisoformat(ts)
    backfill_times = {
        "tick": [at(11, m) for m in range(56, 60)] + [at(12, 0)],
        "short": [at(11, 59), at(12, 0)],
        "fresh": [at(11, 59), at(12, 0)],
    }
    for identifier in backfill_times:
        assert state[identifier][1] == at(12, 0), identifier
    assert len(rows) == 5 + 2 + 2
    assert state["nofill"] == (at(10, 0), at(11, 0))
    # 'sparse' was unknown: recorded, not backfilled.
    assert state["sparse"] == (T0, None)
    # One tick event per backfilled minute, oldest first.
    assert [(t.timestamp, t.backfill) for t in recorder.ticks] == [
        (at(11, m), True) for m in range(56, 60)
    ] + [(at(12, 0), True)]
    assert sorted((e.identifier, e.timestamp) for e in recorder.scheduled) == sorted(
        (i, t) for i, times in backfill_times.items() for t in times
    )
    assert all(e.backfilled and e.task == "tick" for e in recorder.scheduled)


async def test_backfill_of_sparse_schedules_and_long_fills(db_url: str) -> None:
    await set_known(db_url, "quarterly", at(9, 0), at(10, 0))
    await set_known(db_url, "yearly_fill", at(9, 0), at(11, 57))
    items = parse_crontab(
        # Two hours missed, but only the last hour is filled: 11:15 .. 12:00.
        "*/15 * * * * tick ?id=quarterly&fill=1h\n"
        # A year-long fill after a three-minute outage: just those minutes.
        "* * * * * tick ?id=yearly_fill&fill=52w"
    )
    clock = FakeClock(T0)
    async with cron_runners(db_url, items, clock):
        rows = await jobs(db_url)
    assert sorted((j["payload"]["_cron"]["ts"][11:16], j["run_at"]) for j in rows) == sorted(
        [(f"{t:%H:%M}", t) for t in (at(11, 15), at(11, 30), at(11, 45), at(12, 0))]
        + [(f"{t:%H:%M}", t) for t in (at(11, 58), at(11, 59), at(12, 0))]
    )


async def test_backfill_then_live_ticks_continue(db_url: str) -> None:
    await set_known(db_url, "tick", at(10, 0), at(11, 58))
    items = parse_crontab("* * * * * tick ?fill=1h")
    clock = FakeClock(T0)
    async with cron_runners(db_url, items, clock):
        await advance(clock, 31)
    assert [cron_meta(j) for j in await jobs(db_url)] == [
        ("2024-01-01T11:59:00.000Z", True),
        ("2024-01-01T12:00:00.000Z", True),
        ("2024-01-01T12:01:00.000Z", False),
    ]


# --------------------------------------------------------------------------- several workers


async def test_two_runners_create_each_tick_once(db_url: str) -> None:
    await set_known(db_url, "backfilled", at(10, 0), at(11, 57))
    items = parse_crontab("* * * * * tick\n* * * * * tick ?id=backfilled&fill=5m")
    first, second = Recorder(), Recorder()
    clock = FakeClock(T0)
    async with cron_runners(
        db_url, items, clock, count=2, hooks=[first.hooks, second.hooks]
    ) as runners:
        for _ in range(3):
            await advance(clock, 60, sleepers=2)
        assert [r.next_timestamp for r in runners] == [at(12, 4)] * 2
    rows = await jobs(db_url)
    ticks = [(j["payload"]["_cron"]["ts"], j["payload"]["_cron"]["backfilled"]) for j in rows]
    live = [f"2024-01-01T12:0{m}:00.000Z" for m in (1, 2, 3)]
    filled = [
        "2024-01-01T11:58:00.000Z",
        "2024-01-01T11:59:00.000Z",
        "2024-01-01T12:00:00.000Z",
    ]
    # Both runners backfilled and ticked, yet every (item, minute) exists once.
    assert len(rows) == 3 + 6
    assert sorted(ticks) == sorted([(ts, True) for ts in filled] + [(ts, False) for ts in live] * 2)
    scheduled = first.scheduled + second.scheduled
    assert len(scheduled) == len(rows)
    assert len({(e.identifier, e.timestamp) for e in scheduled}) == len(rows)
    # Both saw every live minute, whoever won it.
    assert [t.timestamp for t in first.ticks if not t.backfill] == [at(12, m) for m in (1, 2, 3)]
    assert [t.timestamp for t in second.ticks if not t.backfill] == [at(12, m) for m in (1, 2, 3)]


# --------------------------------------------------------------------------- clock changes


async def test_clock_jump_forward_catches_up_minute_by_minute(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    items = parse_crontab("* * * * * tick")
    recorder = Recorder()
    clock = FakeClock(T0)
    async with cron_runners(db_url, items, clock, hooks=[recorder.hooks]) as (runner,):
        await advance(clock, 31)  # 12:01 scheduled on time
        clock.jump(timedelta(minutes=5))  # wall 12:06:01, runner waits for 12:02
        with caplog.at_level(logging.WARNING, logger="gw.cron"):
            await advance(clock, 60)  # wakes at wall 12:07:00.001
        assert runner.next_timestamp == at(12, 8)
    minutes = [cron_meta(j) for j in await jobs(db_url)]
    assert minutes == [(f"2024-01-01T12:0{m}:00.000Z", False) for m in range(1, 8)]
    assert [t.timestamp for t in recorder.ticks] == [at(12, m) for m in range(1, 8)]
    assert "behind (clock jumped forward or the worker stalled)" in caplog.text


async def test_clock_jump_backward_does_not_repeat_minutes(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    items = parse_crontab("* * * * * tick")
    clock = FakeClock(T0)
    async with cron_runners(db_url, items, clock) as (runner,):
        await advance(clock, 31)  # 12:01 scheduled
        clock.jump(timedelta(minutes=-10))  # wall 11:51:01
        with caplog.at_level(logging.WARNING, logger="gw.cron"):
            await advance(clock, 60)  # timer fires at wall 11:52: too early
        assert runner.next_timestamp == at(12, 2)
        assert len(await jobs(db_url)) == 1
        # Back at 12:02 on the wall clock, 12:02 is scheduled (and nothing before it).
        await advance(clock, 10 * 60)
    minutes = [cron_meta(j)[0] for j in await jobs(db_url)]
    assert minutes == ["2024-01-01T12:01:00.000Z", "2024-01-01T12:02:00.000Z"]
    assert "(clock set back?); waiting again" in caplog.text


async def test_restart_after_clock_moved_back_does_not_repeat(db_url: str) -> None:
    items = parse_crontab("* * * * * tick ?fill=1h")
    clock = FakeClock(T0)
    async with cron_runners(db_url, items, clock):
        await advance(clock, 3 * 60)  # 12:01 .. 12:03
    # A new worker starts with a clock 5 minutes behind: its backfill and its
    # first ticks cover minutes already done, and must not repeat them.
    clock.jump(timedelta(minutes=-5))
    async with cron_runners(db_url, items, clock):
        await advance(clock, 6 * 60)
    minutes = [cron_meta(j) for j in await jobs(db_url)]
    assert [ts for ts, _ in minutes] == [f"2024-01-01T12:0{m}:00.000Z" for m in range(1, 5)]
    assert minutes[-1] == ("2024-01-01T12:04:00.000Z", False)


# --------------------------------------------------------------------------- time zones


@pytest.fixture
def kolkata_tz(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_schedules_are_read_in_the_given_zone(db_url: str) -> None:
    # 13:00 in Paris (UTC+1 in January) is 12:00 UTC.
    items = parse_crontab("0 13 * * * paris\n0 12 * * * utc")
    clock = FakeClock(at(11, 59, 30))
    async with cron_runners(db_url, items, clock, timezone=ZoneInfo("Europe/Paris")):
        await advance(clock, 60)
    (job,) = await jobs(db_url)
    assert job["task_identifier"] == "paris"
    assert job["run_at"] == at(12, 0)
    assert cron_meta(job) == ("2024-01-01T12:00:00.000Z", False)


async def test_local_schedules_follow_dst_changes(db_url: str) -> None:
    paris = ZoneInfo("Europe/Paris")
    items = parse_crontab("30 2 * * * tick\n30 3 * * * tick ?id=later")
    # Spring forward (2024-03-31): 02:00 CET jumps to 03:00 CEST, so 02:30 never happens.
    spring = FakeClock(datetime(2024, 3, 31, 0, 59, 30, tzinfo=UTC))
    async with cron_runners(db_url, items, spring, timezone=paris):
        await advance(spring, 62 * 60)
    # Fall back (2024-10-27): 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice.
    autumn = FakeClock(datetime(2024, 10, 27, 0, 29, 30, tzinfo=UTC))
    async with cron_runners(db_url, items, autumn, timezone=paris):
        await advance(autumn, 62 * 60)
    assert [j["run_at"] for j in await jobs(db_url)] == [
        datetime(2024, 3, 31, 1, 30, tzinfo=UTC),  # 'later' at 03:30 CEST
        datetime(2024, 10, 27, 0, 30, tzinfo=UTC),  # 'tick' at 02:30 CEST
        datetime(2024, 10, 27, 1, 30, tzinfo=UTC),  # 'tick' at 02:30 CET
    ]


@pytest.mark.usefixtures("kolkata_tz")
async def test_utc_is_the_default(db_url: str) -> None:
    items = parse_crontab("0 13 * * * paris\n30 17 * * * local\n0 12 * * * utc")
    clock = FakeClock(at(11, 59, 30))
    async with cron_runners(db_url, items, clock):
        await advance(clock, 60)
    assert [j["task_identifier"] for j in await jobs(db_url)] == ["utc"]


@pytest.mark.usefixtures("kolkata_tz")
async def test_local_time_defaults_to_the_process_zone(db_url: str) -> None:
    # 17:30 in Kolkata (UTC+5:30) is 12:00 UTC.
    items = parse_crontab("30 17 * * * local\n0 12 * * * utc")
    clock = FakeClock(at(11, 59, 30))
    async with cron_runners(db_url, items, clock, use_local_time=True):
        await advance(clock, 60)
    assert [j["task_identifier"] for j in await jobs(db_url)] == ["local"]


# --------------------------------------------------------------------------- errors


async def test_database_error_restarts_cron_with_backoff(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_pool(db_url, max_size=1) as pool, pool.connection() as conn:
        await conn.execute(
            "alter table graphile_worker._private_known_crontabs rename to known_crontabs_away"
        )
    items = [Cron.every_minute("tick").fill(CrontabFill.minutes(5)).build()]
    clock = FakeClock(T0)
    with caplog.at_level(logging.ERROR, logger="gw.cron"):
        async with cron_runners(db_url, items, clock) as (runner,):
            # Registration failed; the runner sleeps for its back-off.
            assert runner.next_timestamp is None
            first_delay = clock.next_deadline()
            assert first_delay is not None
            assert 0.1 <= first_delay <= 0.3
            await advance(clock, first_delay)  # second attempt fails too, longer back-off
            second_delay = clock.next_deadline()
            assert second_delay is not None
            assert 0.15 <= second_delay - first_delay <= 0.45
            assert await jobs(db_url) == []

            async with open_pool(db_url, max_size=1) as pool, pool.connection() as conn:
                await conn.execute(
                    "alter table graphile_worker.known_crontabs_away"
                    " rename to _private_known_crontabs"
                )
            await advance(clock, second_delay - first_delay + 0.001)  # restart succeeds
            assert runner.next_timestamp == at(12, 1)
            known_since = (await known(db_url))["tick"][0]
            assert T0 < known_since < T0 + timedelta(seconds=1)
            await advance(clock, 60)
    assert "cron hit an error; restarting in" in caplog.text
    assert "(attempt 2)" in caplog.text
    assert "known_crontabs" in caplog.text
    # The item became known at the restart and was not backfilled.
    assert [cron_meta(j) for j in await jobs(db_url)] == [("2024-01-01T12:01:00.000Z", False)]
