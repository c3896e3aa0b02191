"""Cron inside gw.Worker: the crontab=/cron= options, validation, run() vs run_once()."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import psycopg
import pytest

import gw
from gw.cron import CronItem, parse_crontab
from gw.cron.sources import cron_items, crontab_items
from gw.db.connection import connect
from gw.errors import ConfigurationError, CrontabError
from gw.runtime import FakeClock
from gw.testing import running, wait_for

if TYPE_CHECKING:
    from collections.abc import Sequence

T0 = datetime(2024, 1, 1, 12, 0, 30, tzinfo=UTC)


@gw.task("tick")
async def tick(payload: Any) -> None:
    """Placeholder handler; the tests below register their own recording one."""


def make_worker(db_url: str, tasks: Sequence[Any], **options: Any) -> gw.Worker:
    options.setdefault("concurrency", 2)
    options.setdefault("reset_locked_interval", None)
    options.setdefault("shutdown", gw.ShutdownConfig(listen_os_signals=False))
    return gw.Worker(tasks, database_url=db_url, **options)


async def rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    async with await connect(db_url) as conn:
        cur = await conn.execute(sql)
        return await cur.fetchall()


# --------------------------------------------------------------------------- running


async def test_worker_runs_crontab_jobs_on_the_fake_clock(db_url: str) -> None:
    seen: list[dict[str, Any]] = []

    @gw.task("tick")
    async def record(payload: Any) -> None:
        seen.append(payload)

    scheduled: list[gw.CronJobScheduled] = []
    clock = FakeClock(T0)
    worker = make_worker(
        db_url,
        [record],
        crontab="* * * * * tick {n: 1}",
        cron=[gw.Cron.every_n_minutes("tick", 2).id("typed")],
        clock=clock,
    )
    worker.on(gw.CronJobScheduled, scheduled.append)
    async with running(worker):
        # running() returns once the worker started, which includes cron registration.
        assert {r[0] for r in await rows(db_url, _KNOWN)} == {"tick", "typed"}
        await clock.wait_for_sleepers()
        await clock.advance(31)  # 12:01: only the every-minute item
        await wait_for(lambda: len(seen) == 1, message="the 12:01 job ran")
        await clock.advance(60)  # 12:02: both items
        await wait_for(lambda: len(seen) == 3, message="the 12:02 jobs ran")
    ticks = sorted((p["_cron"]["ts"], p.get("n", 0)) for p in seen)
    assert ticks == [
        ("2024-01-01T12:01:00.000Z", 1),
        ("2024-01-01T12:02:00.000Z", 0),
        ("2024-01-01T12:02:00.000Z", 1),
    ]
    assert all(p["_cron"]["backfilled"] is False for p in seen)
    assert sorted(e.identifier for e in scheduled) == ["tick", "tick", "typed"]
    assert {e.worker_id for e in scheduled} == {worker.worker_id}


async def test_cron_stops_when_shutdown_starts(db_url: str) -> None:
    started, release = anyio.Event(), anyio.Event()

    @gw.task("slow")
    async def slow(payload: Any) -> None:
        started.set()
        await release.wait()

    clock = FakeClock(T0)
    worker = make_worker(
        db_url,
        [slow, tick],
        crontab="* * * * * tick",
        clock=clock,
        shutdown=gw.ShutdownConfig(listen_os_signals=False, grace_period=60),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        await worker.utils.add_job("slow", {})
        await started.wait()
        assert clock.sleeper_count == 1  # the cron runner, waiting for 12:01
        worker.shutdown("test")
        # The job still runs (grace period), but cron is gone at once.
        await wait_for(lambda: clock.sleeper_count == 0, message="cron to stop")
        await clock.advance(120)
        assert await rows(db_url, _TICK_JOBS) == []
        release.set()
    assert await rows(db_url, _TICK_JOBS) == []


_TICK_JOBS = (
    "select j.id from graphile_worker._private_jobs as j"
    " join graphile_worker._private_tasks as t on t.id = j.task_id where t.identifier = 'tick'"
)


async def test_run_once_does_not_start_cron(db_url: str) -> None:
    clock = FakeClock(T0)
    worker = make_worker(db_url, [tick], crontab="* * * * * tick ?fill=1h", clock=clock)
    assert await worker.run_once() == 0
    assert await rows(db_url, _KNOWN) == []
    assert await rows(db_url, "select id from graphile_worker._private_jobs") == []
    assert clock.sleeper_count == 0


async def test_worker_without_cron_items_starts_no_runner(db_url: str) -> None:
    clock = FakeClock(T0)
    worker = make_worker(db_url, [tick], crontab="# nothing scheduled yet\n", clock=clock)
    assert worker.cron_items == []
    async with running(worker):
        assert clock.sleeper_count == 0
    assert await rows(db_url, _KNOWN) == []


_KNOWN = "select identifier from graphile_worker._private_known_crontabs"


# --------------------------------------------------------------------------- crontab= text or file


def test_crontab_text_file_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("crontab").write_text("# a crontab file\n0 8 * * * tick ?id=from_file\n")
    assert [i.identifier for i in crontab_items(Path("crontab"))] == ["from_file"]
    assert [i.identifier for i in crontab_items("crontab")] == ["from_file"]
    assert [i.identifier for i in crontab_items(str(tmp_path / "crontab"))] == ["from_file"]
    # Text: a line break, or a line starting with a time field, '#' or '@'.
    assert [i.identifier for i in crontab_items("* * * * * tick")] == ["tick"]
    assert [i.identifier for i in crontab_items("  */5 * * * * tick")] == ["tick"]
    assert [i.identifier for i in crontab_items("0 8 * * * a\n0 9 * * * b")] == ["a", "b"]
    assert crontab_items("# just a comment") == []
    assert crontab_items("") == []
    assert crontab_items("\n") == []
    assert crontab_items(None) == []
    with pytest.raises(CrontabError, match="macros like '@daily' are not supported"):
        crontab_items("@daily tick")


def test_crontab_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"crontab file 'no/such/crontab' does not exist"):
        crontab_items("no/such/crontab")
    with pytest.raises(ConfigurationError, match=r"cannot read crontab file .*: No such file"):
        crontab_items(tmp_path / "missing")
    with pytest.raises(ConfigurationError, match=r"cannot read crontab file .*: Is a directory"):
        crontab_items(tmp_path)
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigurationError, match=r"cannot read crontab file .*binary.*utf-8"):
        crontab_items(binary)
    bad = tmp_path / "bad.crontab"
    bad.write_text("# ok\n0 8 * * * tick\n61 * * * * tick ?id=late\n")
    with pytest.raises(CrontabError) as info:
        crontab_items(bad)
    assert str(info.value) == (
        f"invalid crontab: line 3, column 1: minute value 61 is out of range 0-59 (in {str(bad)!r})"
    )
    assert (info.value.line, info.value.column) == (3, 1)
    with pytest.raises(ConfigurationError, match="crontab must be crontab text, a file path"):
        crontab_items(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- validation


def test_cron_items_combine_both_sources() -> None:
    typed = gw.Cron.daily_at("report", 8, 0)
    item = parse_crontab("0 9 * * * report ?id=manual")[0]
    items = cron_items("0 * * * * tick", [typed, item], ["tick", "report"])
    assert [(i.identifier, i.task) for i in items] == [
        ("tick", "tick"),
        ("report", "report"),
        ("manual", "report"),
    ]
    assert all(isinstance(i, CronItem) for i in items)


@pytest.mark.parametrize(
    ("crontab", "cron", "message"),
    [
        (
            "* * * * * nope",
            (),
            "crontab line for 'nope' schedules task 'nope', which this worker does not have; "
            "its tasks are: tick",
        ),
        (None, [gw.Cron.every_minute("ghost")], "cron[0] schedules task 'ghost'"),
        (
            "* * * * * tick",
            [gw.Cron.hourly_at("tick", 5)],
            "cron identifier 'tick' is used twice (crontab line for 'tick' and cron[0])",
        ),
        (
            None,
            [gw.Cron.hourly_at("tick", 5).id("x"), gw.Cron.daily_at("tick", 1, 0).id("x")],
            "cron identifier 'x' is used twice (cron[0] and cron[1])",
        ),
        (None, ["* * * * * tick"], "cron[0] must be a gw.Cron builder or a CronItem, got str"),
        (None, "* * * * * tick", "cron must be a list of Cron builders or CronItems"),
        (None, gw.Cron.every_minute("tick"), "cron must be a list of Cron builders"),
        ("* * * * * tick ?fill=1y", (), "invalid crontab: line 1, column 22: fill '1y'"),
        ("x * * * * tick", (), "crontab file 'x * * * * tick' does not exist"),
    ],
)
def test_worker_rejects_bad_cron_configuration(
    db_url: str, crontab: str | None, cron: Any, message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        gw.Worker([tick], database_url=db_url, crontab=crontab, cron=cron)
    assert message in str(info.value)
    # Rejected at construction: nothing reached the database.
    with psycopg.connect(db_url) as conn:
        written = conn.execute(
            "select (select count(*) from graphile_worker._private_known_crontabs)"
            " + (select count(*) from graphile_worker._private_tasks)"
            " + (select count(*) from graphile_worker._private_jobs)"
        ).fetchone()
    assert written == (0,)
