"""Jobs added with gw.Tracing run on npm graphile-worker 0.18.0 like any other."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gw.core.utils import WorkerUtils, open_pool
from tests.core.conftest import open_db
from tests.core.test_tracing import Spans

if TYPE_CHECKING:
    from tests.interop.conftest import NodeWorker

pytestmark = pytest.mark.interop


async def test_node_runs_traced_jobs_and_never_sees_their_context(
    db_url: str, node_worker: NodeWorker
) -> None:
    spans = Spans()
    async with open_pool(db_url, max_size=2) as pool, open_db(db_url) as db:
        utils = WorkerUtils(pool, tracing=spans.tracing)
        await utils.add_raw_job("node_task", {"n": 1})
        await utils.add_jobs([("node_task", {"n": 2}), ("node_task", {"n": 3})])
        assert len(await db.rows("select job_id from {s}._private_gw_trace_context")) == 3

        result = await node_worker(db_url, "graphile_worker", "run", ["node_task"])

        assert result.warnings == []
        assert sorted(p["n"] for _, p in result.seen) == [1, 2, 3]  # payloads as added
        assert await db.count_jobs() == 0
    spans.provider.shutdown()
