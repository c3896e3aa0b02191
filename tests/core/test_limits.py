"""Fleet-wide limits: RateLimit, the grant arithmetic and the fetch schedule (pure)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, strategies as st

import gw
from gw.core.limits import KeyLimit, grant, token_wait
from gw.worker._limits import FleetLimits
from tests.worker.test_dispatch import job


def test_rate_limit_takes_seconds_or_a_timedelta() -> None:
    per_minute = gw.RateLimit(100, per=timedelta(minutes=1))
    assert per_minute.per == 60.0
    assert per_minute.per_second == pytest.approx(100 / 60)
    assert str(per_minute) == "100/60s"
    assert str(gw.RateLimit(20, burst=5)) == "20/1s (burst 5)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"count": 0}, "RateLimit count must be > 0, got 0"),
        ({"count": "10"}, "RateLimit count must be a number, got '10'"),
        ({"count": True}, "RateLimit count must be a number, got True"),
        ({"count": float("nan")}, "RateLimit count must be > 0, got nan"),
        ({"count": 1, "per": 0}, "RateLimit per must be a positive number of seconds"),
        ({"count": 1, "per": timedelta(0)}, "RateLimit per must be a positive number"),
        ({"count": 1, "burst": 0}, "RateLimit burst must be at least 1 (one job at a time), got 0"),
        ({"count": 1, "burst": float("inf")}, "RateLimit burst must be at least 1"),
    ],
)
def test_bad_rate_limits_say_what_is_wrong(args: dict[str, Any], message: str) -> None:
    with pytest.raises(gw.ConfigurationError) as info:
        gw.RateLimit(**args)
    assert str(info.value).startswith(message)


def test_task_options_are_checked() -> None:
    with pytest.raises(gw.ConfigurationError, match=r"rate_limit must be a gw\.RateLimit"):

        @gw.task("t", rate_limit=10)  # type: ignore[arg-type]
        async def t(payload: Any) -> None: ...

    with pytest.raises(gw.ConfigurationError, match="max_concurrency must be an integer >= 1"):

        @gw.task("u", max_concurrency=0)
        async def u(payload: Any) -> None: ...


def test_queue_limits_take_rate_limits_only() -> None:
    @gw.task("t")
    async def t(payload: Any) -> None: ...

    with pytest.raises(gw.ConfigurationError, match="a named queue already runs one job at a time"):
        gw.Worker([t], queue_limits={"emails": 3})  # type: ignore[dict-item]
    with pytest.raises(gw.ConfigurationError, match="is not a queue name"):
        gw.Worker([t], queue_limits={"": gw.RateLimit(1)})
    worker = gw.Worker([t], queue_limits={"emails": gw.RateLimit(2)})
    assert [str(limit) for limit in worker.limits] == ["queue:emails (rate 2/1s)"]


RATE = KeyLimit("task", "t", gw.RateLimit(10, burst=3))
CAP = KeyLimit("task", "c", max_concurrency=2)
BOTH = KeyLimit("task", "b", gw.RateLimit(1, burst=5), max_concurrency=3)


def test_grant_takes_the_smallest_of_slots_tokens_and_free_concurrency() -> None:
    assert grant(RATE, refilled=10.0, running=0, want=8) == 3  # capped at the burst
    assert grant(RATE, refilled=2.5, running=0, want=8) == 2
    assert grant(RATE, refilled=0.9999999999, running=0, want=8) == 1  # float dust
    assert grant(RATE, refilled=0.5, running=0, want=8) == 0
    assert grant(RATE, refilled=3.0, running=0, want=1) == 1
    assert grant(CAP, refilled=0.0, running=1, want=8) == 1
    assert grant(CAP, refilled=0.0, running=5, want=8) == 0  # never negative
    assert grant(BOTH, refilled=4.0, running=1, want=8) == 2


def test_token_wait() -> None:
    assert token_wait(RATE, 0.25) == pytest.approx(0.075)
    assert token_wait(RATE, 1.0) == 0.0
    assert token_wait(CAP, 0.0) == 0.0


@given(
    refills=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=60),
    wants=st.lists(st.integers(min_value=0, max_value=10), min_size=60, max_size=60),
)
def test_a_bucket_never_grants_more_than_burst_plus_refill(
    refills: list[float], wants: list[int]
) -> None:
    """Drive the bucket as the store does (refill, grant, keep the rest)."""
    limit = KeyLimit("task", "t", gw.RateLimit(4, burst=3))
    tokens = 3.0
    granted = refilled_total = 0.0
    for refill, want in zip(refills, wants, strict=False):
        tokens += refill
        refilled_total += refill
        n = grant(limit, tokens, 0, want)
        granted += n
        tokens = min(3.0, tokens) - n
        assert tokens >= -1e-9
        assert granted <= 3 + refilled_total + 1e-9


def schedule(*limits: KeyLimit) -> FleetLimits:
    fleet = FleetLimits(limits, poll_interval=1.0)
    fleet.set_task_ids({"t": 1, "c": 2})
    return fleet


def test_a_key_out_of_tokens_waits_for_the_next_one() -> None:
    fleet = schedule(RATE)
    (state,) = fleet.due(0.0, 0)
    fleet.fetched(state, asked=8, granted=3, got=3, tokens=0.0, now=0.0, generation=0)
    assert fleet.due(0.05, 0) == []
    assert fleet.waiting
    assert fleet.next_at() == pytest.approx(0.1)  # one token at 10/s
    assert fleet.due(0.1, 0) == [state]


def test_a_key_without_jobs_waits_for_news_or_the_poll() -> None:
    fleet = schedule(RATE)
    (state,) = fleet.due(0.0, 0)
    fleet.fetched(state, asked=8, granted=3, got=1, tokens=2.0, now=0.0, generation=4)
    assert fleet.due(0.5, 4) == []
    assert not fleet.waiting
    assert fleet.idle_until() == 1.0
    assert fleet.due(0.5, 5) == [state]  # NOTIFY: jobs were added
    fleet.fetched(state, asked=8, granted=3, got=0, tokens=3.0, now=0.5, generation=5)
    assert fleet.due(1.5, 5) == [state]  # the poll interval passed


def test_slots_not_limits_stopped_the_fetch_so_the_key_stays_due() -> None:
    fleet = schedule(RATE)
    (state,) = fleet.due(0.0, 0)
    fleet.fetched(state, asked=2, granted=2, got=2, tokens=1.0, now=0.0, generation=0)
    assert fleet.due(0.0, 0) == [state]
    assert fleet.next_at() is None


def test_a_full_concurrency_key_looks_again_when_its_own_job_is_written() -> None:
    fleet = schedule(CAP)
    (state,) = fleet.due(0.0, 0)
    fleet.fetched(state, asked=8, granted=2, got=2, tokens=0.0, now=0.0, generation=0)
    assert fleet.due(0.1, 0) == []
    assert fleet.next_at() == 0.5  # other workers' jobs end without a word
    fleet.job_finished(job(1))  # a job of another task: nothing changes
    fleet.written()
    assert fleet.due(0.1, 0) == []
    fleet.job_finished(msgspec.structs.replace(job(2), task_identifier="c"))
    assert fleet.due(0.1, 0) == []  # its slot counts until the completion is written
    fleet.written()
    assert fleet.due(0.1, 0) == [state]


def test_limited_names() -> None:
    fleet = schedule(RATE, KeyLimit("queue", "mail", gw.RateLimit(1)))
    assert fleet.limited_tasks == {"t"}
    assert fleet.limited_queues == ["mail"]
    assert [s.task_id for s in fleet.keys] == [1, None]


def test_a_key_another_worker_is_fetching_is_tried_again_soon() -> None:
    fleet = schedule(CAP)
    (state,) = fleet.due(0.0, 0)
    fleet.fetched(state, asked=8, granted=None, got=0, tokens=0.0, now=1.0, generation=0)
    assert fleet.due(1.0, 0) == []
    assert fleet.next_at() == pytest.approx(1.01)
    assert fleet.due(1.01, 0) == [state]
