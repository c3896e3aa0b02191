"""The local queue / dispatch state machine, without a database or an event loop."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings, strategies as st

from gw.types import Job
from gw.worker._dispatch import Dispatch, Entry

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(job_id: int, *, priority: int = 0, age: int = 0, queue: int | None = None) -> Job:
    run_at = T0 - timedelta(seconds=age)
    return Job(
        job_id,
        "t",
        None if queue is None else f"q{queue}",
        {},
        priority,
        run_at,
        1,
        25,
        None,
        T0,
        T0,
        None,
        T0,
        "w",
        0,
        None,
        True,
        1,
        queue,
    )


def entry(*args: Any, **kwargs: Any) -> Entry:
    return (job(*args, **kwargs), "{}", None)


def drain(dispatch: Dispatch) -> list[int]:
    """Take and finish jobs one at a time; the ids in start order."""
    order = []
    while (taken := dispatch.take()) is not None:
        order.append(taken[0].id)
        dispatch.finish(taken[0])
    return order


def test_jobs_start_in_priority_run_at_id_order_whatever_the_fetch_order() -> None:
    entries = [
        entry(1, priority=5),
        entry(2, priority=0, age=1),
        entry(3, priority=-5),
        entry(4, priority=0, age=10),
        entry(5, priority=0, age=10),
    ]
    random.Random(7).shuffle(entries)
    dispatch = Dispatch()
    dispatch.add(entries, now=0.0)
    assert (dispatch.buffered, dispatch.ready, dispatch.running) == (5, 5, 0)
    assert drain(dispatch) == [3, 4, 5, 2, 1]
    assert (dispatch.buffered, dispatch.running) == (0, 0)


def test_a_later_fetch_with_more_urgent_jobs_goes_first() -> None:
    dispatch = Dispatch()
    dispatch.add([entry(1, priority=3), entry(2, priority=3)], now=0.0)
    first = dispatch.take()
    assert first is not None
    assert first[0].id == 1
    dispatch.add([entry(10, priority=0), entry(11, priority=9)], now=1.0)
    dispatch.finish(first[0])
    assert drain(dispatch) == [10, 2, 11]


def test_named_queue_runs_one_job_at_a_time_in_order() -> None:
    dispatch = Dispatch()
    dispatch.add(
        [entry(3, priority=2, queue=7), entry(1, priority=1, queue=7), entry(2, queue=None)],
        now=0.0,
    )
    # Only the queue's most urgent job is ready; the other waits behind it.
    assert dispatch.ready == 2
    assert dispatch.buffered == 3
    a = dispatch.take()
    b = dispatch.take()
    assert a is not None
    assert b is not None
    assert [a[0].id, b[0].id] == [2, 1]
    assert dispatch.take() is None  # job 3 waits for its queue
    assert dispatch.finish(a[0]) is False  # no queue
    # Job 1 ends: the queue stays locked for job 3, which is now ready.
    assert dispatch.finish(b[0]) is True
    c = dispatch.take()
    assert c is not None
    assert c[0].id == 3
    assert dispatch.finish(c[0]) is False  # the last of its queue unlocks it
    assert (dispatch.buffered, dispatch.running) == (0, 0)


def test_unclaimed_jobs_keep_a_queue_locked_only_while_its_job_runs() -> None:
    dispatch = Dispatch()
    dispatch.add(
        [
            entry(1, queue=1),
            entry(2, queue=1),
            entry(3, queue=2),
            entry(4, queue=2),
            entry(5),
        ],
        now=0.0,
    )
    running = dispatch.take()
    assert running is not None
    assert running[0].id == 1
    unclaimed = dispatch.unclaimed()
    assert sorted(unclaimed.ids) == [2, 3, 4, 5]
    # Queue 1's job 1 is running: job 2 goes back without unlocking queue 1;
    # queue 2 never started here, so it is unlocked with its jobs.
    assert unclaimed.keep_queue_locked == [2]
    assert (dispatch.buffered, dispatch.ready, dispatch.running) == (0, 0, 1)
    assert dispatch.finish(running[0]) is False


def test_stopping_ends_queue_hand_overs() -> None:
    dispatch = Dispatch()
    dispatch.add([entry(1, queue=1), entry(2, queue=1)], now=0.0)
    first = dispatch.take()
    assert first is not None
    dispatch.stopping = True
    assert dispatch.finish(first[0]) is False
    assert dispatch.take() is None
    assert dispatch.unclaimed().ids == [2]


def test_buffer_age_for_the_local_queue_ttl() -> None:
    dispatch = Dispatch()
    assert dispatch.expires_at(30) is None
    dispatch.add([entry(1), entry(2)], now=100.0)
    dispatch.add([entry(3)], now=120.0)  # not empty in between: the age holds
    assert dispatch.expires_at(30) == 130.0
    drain(dispatch)
    assert dispatch.expires_at(30) is None
    dispatch.add([entry(4)], now=200.0)
    assert dispatch.expires_at(30) == 230.0
    dispatch.unclaimed()
    assert dispatch.expires_at(30) is None


def test_adding_nothing_changes_nothing() -> None:
    dispatch = Dispatch()
    dispatch.add([], now=5.0)
    assert (dispatch.buffered, dispatch.expires_at(1)) == (0, None)
    assert dispatch.take() is None


# --------------------------------------------------------------------------- properties

jobs_strategy = st.lists(
    st.tuples(
        st.integers(-3, 3),  # priority
        st.integers(0, 5),  # age
        st.one_of(st.none(), st.integers(1, 4)),  # queue
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(jobs_strategy, min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
    slots=st.integers(1, 8),
)
def test_any_interleaving_keeps_queue_serial_and_order(
    batches: list[list[tuple[int, int, int | None]]], seed: int, slots: int
) -> None:
    rng = random.Random(seed)
    dispatch = Dispatch()
    next_id = 1
    pending_batches = []
    for batch in batches:
        entries = []
        for priority, age, queue in batch:
            entries.append(entry(next_id, priority=priority, age=age, queue=queue))
            next_id += 1
        rng.shuffle(entries)
        pending_batches.append(entries)
    running: list[Job] = []
    started: list[Job] = []
    all_ids = set(range(1, next_id))
    while pending_batches or running or dispatch.buffered:
        action = rng.random()
        if pending_batches and (action < 0.2 or (not running and not dispatch.ready)):
            dispatch.add(pending_batches.pop(0), now=0.0)
        elif running and (action < 0.6 or len(running) >= slots or not dispatch.ready):
            done = running.pop(rng.randrange(len(running)))
            dispatch.finish(done)
        else:
            ready_keys = sorted(
                (item[0], item[1], item[2])
                for item in dispatch._ready[dispatch._head :]  # the candidates now
            )
            taken = dispatch.take()
            assert taken is not None
            started_job = taken[0]
            # The job taken is the most urgent of those ready.
            assert (started_job.priority, started_job.run_at, started_job.id) == ready_keys[0]
            # A named queue never has two jobs running.
            if started_job.job_queue_id is not None:
                assert all(r.job_queue_id != started_job.job_queue_id for r in running)
            running.append(started_job)
            started.append(started_job)
        assert dispatch.running == len(running)
    assert sorted(j.id for j in started) == sorted(all_ids)
    # Within a batch, each queue's jobs start in order.
    for queue in {j.job_queue_id for j in started if j.job_queue_id is not None}:
        keys = [(j.priority, j.run_at, j.id) for j in started if j.job_queue_id == queue]
        by_batch: dict[int, list[Any]] = {}
        for key in keys:
            by_batch.setdefault(_batch_of(key[2], batches), []).append(key)
        for batch_keys in by_batch.values():
            assert batch_keys == sorted(batch_keys)


def _batch_of(job_id: int, batches: list[list[Any]]) -> int:
    for index, batch in enumerate(batches):
        if job_id <= len(batch):
            return index
        job_id -= len(batch)
    raise AssertionError("unknown job id")


def test_a_long_running_local_queue_keeps_its_order_and_memory_bounded() -> None:
    # Refilled before it runs dry, the ready list is never empty: what started
    # is dropped from its front now and then.
    dispatch = Dispatch()
    started: list[int] = []
    next_id = 1
    for _ in range(20):
        dispatch.add([entry(i) for i in range(next_id, next_id + 500)], now=0.0)
        next_id += 500
        for _ in range(400):
            taken = dispatch.take()
            assert taken is not None
            started.append(taken[0].id)
            dispatch.finish(taken[0])
        started_but_kept = len(dispatch._ready) - dispatch.ready
        assert started_but_kept <= max(1024, dispatch.ready) + 1
    started.extend(drain(dispatch))
    assert started == list(range(1, next_id))


def test_discarding_a_buffered_job_keeps_order_and_hands_its_queue_on() -> None:
    d = Dispatch()
    d.add([entry(1), entry(2, queue=7), entry(3, queue=7), entry(4, queue=7), entry(5)], 0.0)
    assert d.buffered == 5
    # The queue's head goes: the next job of the queue takes its turn, and the
    # queue stays locked for it.
    found = d.discard(2)
    assert found is not None
    assert found[0][0].id == 2
    assert found[1] is True
    # A job waiting behind its queue's head goes: the head still holds the queue.
    found = d.discard(4)
    assert found is not None
    assert found[0][0].id == 4
    assert found[1] is True
    assert d.discard(99) is None
    assert d.buffered == 3
    assert drain(d) == [1, 3, 5]
    assert d.buffered == 0
    assert d.buffered_since is None


def test_discarding_the_last_job_of_a_queue_unlocks_it() -> None:
    d = Dispatch()
    d.add([entry(1, queue=7)], 5.0)
    found = d.discard(1)
    assert found is not None
    assert found[1] is False
    assert (d.buffered, d.ready, d.buffered_since) == (0, 0, None)
    assert d.unclaimed().ids == []
    # The queue is free here again: its next fetched job is ready at once.
    d.add([entry(2, queue=7)], 6.0)
    assert d.take() is not None


def test_a_running_job_cannot_be_discarded() -> None:
    d = Dispatch()
    d.add([entry(1), entry(2)], 0.0)
    taken = d.take()
    assert taken is not None
    assert taken[0].id == 1
    assert d.discard(1) is None
    assert d.running == 1
    assert d.buffered == 1
