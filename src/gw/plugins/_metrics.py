"""MetricsPlugin: in-memory job counters and histograms, with optional exporters.

The plugin itself needs no third-party library. ``prometheus_collector()``
and ``opentelemetry_instrument(meter)`` import prometheus_client /
opentelemetry only when called (extras ``gw[prometheus]`` / ``gw[otel]``).
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..core import hooks as h
from ..errors import ConfigurationError
from ..runtime import SystemClock

if TYPE_CHECKING:
    from ..runtime import Clock

__all__ = ("DEFAULT_DURATION_BUCKETS", "DEFAULT_WAIT_BUCKETS", "Histogram", "MetricsPlugin")

DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
DEFAULT_WAIT_BUCKETS: tuple[float, ...] = (
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip

COUNTERS: dict[str, str] = {
    "jobs_fetched": "Jobs locked by a worker",
    "jobs_started": "Jobs whose handler started",
    "jobs_completed": "Jobs that succeeded (or a hook skipped)",
    "jobs_failed": "Job attempts that failed and will be retried",
    "jobs_permanently_failed": "Jobs that failed their last attempt",
    "jobs_interrupted": "Running jobs released by a shutdown",
}
HISTOGRAMS: dict[str, str] = {
    "job_duration_seconds": "Time from handler start to its result",
    "job_queue_wait_seconds": "Time from run_at until the handler started",
}

Sink = Callable[[str, str, float], None]


class Histogram:
    """Fixed-bucket histogram (upper bounds inclusive, as in Prometheus)."""

    __slots__ = ("_counts", "bounds", "count", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = _check_buckets(bounds)
        self._counts = [0] * len(self.bounds)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self._counts):
            self._counts[index] += 1
        self.count += 1
        self.sum += value

    def snapshot(self) -> dict[str, Any]:
        """``buckets``: [(upper bound, cumulative count)], ``count`` (the +Inf bucket), ``sum``."""
        cumulative = 0
        buckets = []
        for bound, n in zip(self.bounds, self._counts, strict=True):
            cumulative += n
            buckets.append((bound, cumulative))
        return {"buckets": buckets, "count": self.count, "sum": self.sum}


class MetricsPlugin:
    """Counts job events by task and times them.

    Counters (by task): jobs fetched, started, completed, failed (will
    retry), permanently failed and interrupted; histograms (by task): handler
    duration and queue wait (start minus ``run_at``, read on ``clock``).
    Recovery sweeps add to ``recovery`` totals. Read everything with
    :meth:`snapshot`; one plugin may serve several workers.
    """

    def __init__(
        self,
        *,
        duration_buckets: Sequence[float] = DEFAULT_DURATION_BUCKETS,
        wait_buckets: Sequence[float] = DEFAULT_WAIT_BUCKETS,
        clock: Clock | None = None,
    ) -> None:
        self.duration_buckets = _check_buckets(duration_buckets)
        self.wait_buckets = _check_buckets(wait_buckets)
        self.clock = clock or SystemClock()
        # Exporters read from other threads (e.g. prometheus_client's HTTP server).
        self._lock = threading.Lock()
        self._counters: dict[str, defaultdict[str, int]] = {
            name: defaultdict(int) for name in COUNTERS
        }
        self._histograms: dict[str, dict[str, Histogram]] = {name: {} for name in HISTOGRAMS}
        self._recovery = {"sweeps": 0, "workers": 0, "jobs": 0}
        self._sinks: list[Sink] = []

    # ------------------------------------------------------------------ hooks

    def register(self, hooks: h.HookRegistry) -> None:
        hooks.on(h.JobFetch, lambda e: self._count("jobs_fetched", e.job.task_identifier))
        hooks.on(h.JobStart, self._on_start)
        hooks.on(h.JobComplete, lambda e: self._finished("jobs_completed", e.job, e.duration))
        hooks.on(h.JobFail, lambda e: self._finished("jobs_failed", e.job, e.duration))
        hooks.on(
            h.JobPermanentlyFail,
            lambda e: self._finished("jobs_permanently_failed", e.job, e.duration),
        )
        hooks.on(h.JobInterrupted, lambda e: self._count("jobs_interrupted", e.job.task_identifier))
        hooks.on(h.WorkerRecovered, self._on_recovered)

    def _count(self, name: str, task: str) -> None:
        with self._lock:
            self._counters[name][task] += 1

    def _observe(self, name: str, task: str, value: float) -> None:
        with self._lock:
            histogram = self._histograms[name].get(task)
            if histogram is None:
                bounds = (
                    self.duration_buckets if name == "job_duration_seconds" else self.wait_buckets
                )
                histogram = self._histograms[name][task] = Histogram(bounds)
            histogram.observe(value)
            sinks = tuple(self._sinks)
        for sink in sinks:
            sink(name, task, value)

    def _on_start(self, event: h.JobStart) -> None:
        task = event.job.task_identifier
        self._count("jobs_started", task)
        waited = (self.clock.now() - event.job.run_at).total_seconds()
        self._observe("job_queue_wait_seconds", task, max(0.0, waited))

    def _finished(self, name: str, job: Any, duration: float) -> None:
        self._count(name, job.task_identifier)
        self._observe("job_duration_seconds", job.task_identifier, duration)

    def _on_recovered(self, event: h.WorkerRecovered) -> None:
        with self._lock:
            self._recovery["sweeps"] += 1
            self._recovery["workers"] += len(event.recovered_worker_ids)
            self._recovery["jobs"] += len(event.job_ids)

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> dict[str, Any]:
        """Plain data: ``counters[name][task]``, ``histograms[name][task]`` (see
        :meth:`Histogram.snapshot`) and ``recovery`` totals (sweeps that recovered
        something, workers, jobs)."""
        with self._lock:
            return {
                "counters": {name: dict(by_task) for name, by_task in self._counters.items()},
                "histograms": {
                    name: {task: hist.snapshot() for task, hist in by_task.items()}
                    for name, by_task in self._histograms.items()
                },
                "recovery": dict(self._recovery),
            }

    # ------------------------------------------------------------------ exporters

    def prometheus_collector(self, namespace: str = "gw") -> Any:
        """A ``prometheus_client`` Collector over this plugin (needs ``gw[prometheus]``).

        ``REGISTRY.register(metrics.prometheus_collector())`` exposes
        ``gw_jobs_completed_total{task=...}``, ``gw_job_duration_seconds``
        histograms and so on, read from :meth:`snapshot` at scrape time.
        """
        try:
            from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        except ImportError:
            raise ConfigurationError(
                "prometheus_collector() needs prometheus_client: pip install 'gw[prometheus]'"
            ) from None
        plugin = self

        # prometheus_client registries only need collect(); no base class,
        # so type-checking does not depend on the optional library.
        class GwCollector:
            def collect(self) -> Iterator[Any]:
                snap = plugin.snapshot()
                for name, by_task in snap["counters"].items():
                    counter = CounterMetricFamily(
                        f"{namespace}_{name}", COUNTERS[name], labels=["task"]
                    )
                    for task, value in sorted(by_task.items()):
                        counter.add_metric([task], value)
                    yield counter
                for name, by_task in snap["histograms"].items():
                    histogram = HistogramMetricFamily(
                        f"{namespace}_{name}", HISTOGRAMS[name], labels=["task"]
                    )
                    for task, data in sorted(by_task.items()):
                        buckets = [(_go_float(le), n) for le, n in data["buckets"]]
                        buckets.append(("+Inf", data["count"]))
                        histogram.add_metric([task], buckets, data["sum"])
                    yield histogram
                for key, text in (
                    ("workers", "Dead workers whose jobs a sweep recovered"),
                    ("jobs", "Jobs recovered from dead workers"),
                ):
                    recovered = CounterMetricFamily(f"{namespace}_recovered_{key}", text)
                    recovered.add_metric([], snap["recovery"][key])
                    yield recovered

        return GwCollector()

    def opentelemetry_instrument(self, meter: Any, prefix: str = "gw") -> None:
        """Report through an OpenTelemetry ``Meter`` (needs ``gw[otel]``).

        Counters become observable counters read at collection time
        (``gw.jobs.completed`` with attribute ``task``). Histograms are
        OpenTelemetry histograms fed from now on (``gw.job.duration``,
        ``gw.job.queue_wait``, unit ``s``), using this plugin's buckets.
        """
        try:
            from opentelemetry.metrics import CallbackOptions, Observation
        except ImportError:
            raise ConfigurationError(
                "opentelemetry_instrument() needs opentelemetry-api: pip install 'gw[otel]'"
            ) from None

        def reader(name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def observe(options: CallbackOptions) -> Iterable[Observation]:
                with self._lock:
                    values = dict(self._counters[name])
                return [Observation(v, {"task": task}) for task, v in sorted(values.items())]

            return observe

        for name, text in COUNTERS.items():
            meter.create_observable_counter(
                f"{prefix}.{name.replace('_', '.', 1)}",
                callbacks=[reader(name)],
                unit="{job}",
                description=text,
            )
        instruments = {
            "job_duration_seconds": meter.create_histogram(
                f"{prefix}.job.duration",
                unit="s",
                description=HISTOGRAMS["job_duration_seconds"],
                explicit_bucket_boundaries_advisory=list(self.duration_buckets),
            ),
            "job_queue_wait_seconds": meter.create_histogram(
                f"{prefix}.job.queue_wait",
                unit="s",
                description=HISTOGRAMS["job_queue_wait_seconds"],
                explicit_bucket_boundaries_advisory=list(self.wait_buckets),
            ),
        }

        def record(name: str, task: str, value: float) -> None:
            instruments[name].record(value, {"task": task})

        with self._lock:
            self._sinks.append(record)


def _check_buckets(bounds: Sequence[float]) -> tuple[float, ...]:
    values = tuple(bounds)
    if not values or not all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in values
    ):
        raise ConfigurationError(
            f"histogram buckets must be a non-empty list of finite numbers, got {bounds!r}"
        )
    if any(a >= b for a, b in itertools.pairwise(values)):
        raise ConfigurationError(f"histogram buckets must be strictly increasing, got {bounds!r}")
    return tuple(float(b) for b in values)


def _go_float(value: float) -> str:
    """A bucket bound the way Prometheus prints it (1.0 -> "1.0", 1e-3 -> "0.001")."""
    return repr(float(value))
