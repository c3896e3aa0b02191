"""gw core: Graphile semantics (WorkerUtils, tasks, hooks) over gw.db."""

from __future__ import annotations
