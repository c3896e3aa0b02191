"""An application's tests, written once; they run under the anyio plugin,
pytest-trio and pytest-asyncio (each in auto mode)."""

from __future__ import annotations

import pytest

import gw
from gw.testing import ANY, GwTestDatabase

from .shop import Order, place_order, send_receipt, tasks


async def test_an_order_enqueues_its_receipt(gw_db: GwTestDatabase) -> None:
    async with gw_db.utils() as utils:
        await utils.add_job(place_order, Order(order_id=7, email="ada@example.com"))

    outcomes = await gw_db.run_jobs(tasks)

    assert [(o.task_identifier, o.outcome) for o in outcomes] == [
        ("place_order", "completed"),
        ("send_receipt", "completed"),
    ]
    assert outcomes[1].payload == {"order_id": 7, "to": "ada@example.com"}
    await gw_db.assert_jobs(count=0)  # all done


async def test_failures_are_reported_per_job(gw_db: GwTestDatabase) -> None:
    async with gw_db.utils() as utils:
        await utils.add_job(place_order, Order(order_id=0, email="x@example.com"))
        await utils.add_job(send_receipt, {"order_id": 1, "to": "nobody"})

    outcomes = await gw_db.run_jobs(tasks)

    by_task = {o.task_identifier: o for o in outcomes}
    assert by_task["place_order"].outcome == "permanently_failed"
    assert by_task["place_order"].error == "order 0 does not exist"
    assert by_task["send_receipt"].outcome == "failed"  # retried later
    assert by_task["send_receipt"].error == "cannot mail 'nobody'"
    # The failed receipt waits for its retry, in the task's default queue.
    (job,) = await gw_db.assert_jobs("send_receipt", {"order_id": 1, "to": "nobody"})
    assert (job.queue_name, job.attempts) == ("mail", 1)


async def test_assert_jobs_explains_a_mismatch(gw_db: GwTestDatabase) -> None:
    async with gw_db.utils() as utils:
        await utils.add_job(send_receipt, {"order_id": 2, "to": "a@b.c"})
    await gw_db.assert_jobs("send_receipt", ANY, count=1)
    with pytest.raises(AssertionError) as info:
        await gw_db.assert_jobs("send_receipt", {"order_id": 3, "to": "a@b.c"})
    assert str(info.value).startswith(
        "expected at least one jobs of 'send_receipt' with payload "
        "{'order_id': 3, 'to': 'a@b.c'}, found 0; the database holds: #"
    )


async def test_the_utils_fixture_adds_jobs(gw_utils: gw.WorkerUtils, gw_db: GwTestDatabase) -> None:
    job = await gw_utils.add_job(send_receipt, {"order_id": 5, "to": "b@c.d"})
    (found,) = await gw_db.assert_jobs("send_receipt")
    assert (found.id, found.queue_name) == (job.id, "mail")


def test_each_test_gets_its_own_database(gw_database_url: str) -> None:
    assert gw_database_url != ""
    assert gw.testing.GwTestDatabase(gw_database_url).url == gw_database_url
