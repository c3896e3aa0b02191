"""Ready-made hook plugins: structured logging and in-memory metrics.

::

    metrics = gw.plugins.MetricsPlugin()
    worker = gw.Worker(tasks, plugins=[gw.plugins.LoggingPlugin(), metrics])
    prometheus_client.REGISTRY.register(metrics.prometheus_collector())
"""

from __future__ import annotations

from ._logging import LoggingPlugin as LoggingPlugin
from ._metrics import (
    DEFAULT_DURATION_BUCKETS as DEFAULT_DURATION_BUCKETS,
    DEFAULT_WAIT_BUCKETS as DEFAULT_WAIT_BUCKETS,
    Histogram as Histogram,
    MetricsPlugin as MetricsPlugin,
)

__all__ = (
    "DEFAULT_DURATION_BUCKETS",
    "DEFAULT_WAIT_BUCKETS",
    "Histogram",
    "LoggingPlugin",
    "MetricsPlugin",
)
