"""The bundled plugins: LoggingPlugin, MetricsPlugin and its exporters."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import gw
from gw.plugins import Histogram, LoggingPlugin, MetricsPlugin

START = datetime(2026, 1, 1, tzinfo=UTC)


def make_job(job_id: int = 1, task: str = "mail", *, run_at: datetime = START) -> gw.Job:
    return gw.Job(
        job_id, task, None, {"to": "a@b.c"}, 0, run_at, 1, 25, None, START, START, None,
        START, "w", 0, None, False, 1, None,
    )  # fmt: skip


async def outcome_run(db_url: str, utils: gw.WorkerUtils, plugin: Any) -> gw.Worker:
    """Run one worker over: two successes, a retryable failure, a final failure."""

    @gw.task("ok")
    async def ok(payload: Any) -> None:
        pass

    failed: list[int] = []

    @gw.task("bad")
    async def bad(payload: Any) -> None:
        failed.append(1)
        raise RuntimeError("bad luck")

    await utils.add_raw_job("ok", {"secret": "s3cr3t"})
    await utils.add_raw_job("ok", {})
    await utils.add_raw_job("bad", {}, gw.JobSpec(max_attempts=5, flags=["retry"]))
    await utils.add_raw_job("bad", {}, gw.JobSpec(max_attempts=1, queue_name="lane"))
    worker = gw.Worker(
        [ok, bad],
        database_url=db_url,
        concurrency=2,
        reset_locked_interval=None,
        shutdown=gw.ShutdownConfig(listen_os_signals=False),
        plugins=[plugin],
        # The retry (due in e s) must not run, however slow the machine.
        forbidden_flags=lambda: ["retry"] if failed else [],
    )
    assert await worker.run_once() == 4
    return worker


# --------------------------------------------------------------------------- metrics


async def test_metrics_count_a_worker_run_by_task(db_url: str, utils: gw.WorkerUtils) -> None:
    metrics = MetricsPlugin()
    await outcome_run(db_url, utils, metrics)
    snap = metrics.snapshot()
    assert snap["counters"] == {
        "jobs_fetched": {"ok": 2, "bad": 2},
        "jobs_started": {"ok": 2, "bad": 2},
        "jobs_completed": {"ok": 2},
        "jobs_failed": {"bad": 1},
        "jobs_permanently_failed": {"bad": 1},
        "jobs_interrupted": {},
    }
    durations = snap["histograms"]["job_duration_seconds"]
    assert {task: h["count"] for task, h in durations.items()} == {"ok": 2, "bad": 2}
    waits = snap["histograms"]["job_queue_wait_seconds"]
    assert {task: h["count"] for task, h in waits.items()} == {"ok": 2, "bad": 2}
    assert all(h["sum"] >= 0 for h in [*durations.values(), *waits.values()])
    assert snap["recovery"] == {"sweeps": 0, "workers": 0, "jobs": 0}
    json.dumps(snap)  # plain data


async def test_metrics_histograms_and_queue_wait() -> None:
    clock = gw.FakeClock(START)
    metrics = MetricsPlugin(duration_buckets=[0.1, 1, 10], wait_buckets=[1, 60], clock=clock)
    hooks = gw.HookRegistry()
    hooks.add_plugin(metrics)
    await clock.advance(30)
    await hooks.emit(gw.JobStart("w", make_job(1)))  # waited 30 s
    await hooks.emit(gw.JobStart("w", make_job(2, run_at=START + timedelta(hours=1))))  # early
    for job_id, duration in ((1, 0.1), (2, 0.5), (3, 1.0), (4, 99.0)):
        await hooks.emit(gw.JobComplete("w", make_job(job_id), duration))
    await hooks.emit(gw.JobInterrupted("w", make_job(5, task="long")))
    await hooks.emit(gw.WorkerRecovered("w", ("dead1", "dead2"), (7, 8, 9)))
    await hooks.emit(gw.WorkerRecovered("w", ("dead3",), ()))

    snap = metrics.snapshot()
    # Upper bounds are inclusive: 0.1 falls in the 0.1 bucket, 1.0 in the 1 bucket.
    assert snap["histograms"]["job_duration_seconds"]["mail"] == {
        "buckets": [(0.1, 1), (1.0, 3), (10.0, 3)],
        "count": 4,
        "sum": 100.6,
    }
    # A job started before its run_at (e.g. rescheduled) waited 0, never less.
    assert snap["histograms"]["job_queue_wait_seconds"]["mail"] == {
        "buckets": [(1.0, 1), (60.0, 2)],
        "count": 2,
        "sum": 30.0,
    }
    assert snap["counters"]["jobs_interrupted"] == {"long": 1}
    assert snap["recovery"] == {"sweeps": 2, "workers": 3, "jobs": 3}


def test_histogram_and_bucket_validation() -> None:
    histogram = Histogram([1, 2])
    histogram.observe(5)
    assert histogram.snapshot() == {"buckets": [(1.0, 0), (2.0, 0)], "count": 1, "sum": 5.0}
    with pytest.raises(gw.ConfigurationError, match="must be strictly increasing"):
        MetricsPlugin(duration_buckets=[1, 1, 2])
    with pytest.raises(gw.ConfigurationError, match="non-empty list of finite numbers"):
        MetricsPlugin(wait_buckets=[])
    with pytest.raises(gw.ConfigurationError, match="non-empty list of finite numbers"):
        MetricsPlugin(duration_buckets=[1, float("inf")])


async def test_prometheus_collector() -> None:
    pytest.importorskip("prometheus_client", reason="needs the gw[prometheus] extra")
    from prometheus_client import CollectorRegistry, generate_latest

    metrics = MetricsPlugin(duration_buckets=[0.5, 5])
    hooks = gw.HookRegistry()
    hooks.add_plugin(metrics)
    registry = CollectorRegistry()
    registry.register(metrics.prometheus_collector())
    for duration in (0.2, 3.0):
        await hooks.emit(gw.JobComplete("w", make_job(task="mail"), duration))
    await hooks.emit(gw.JobFail("w", make_job(task="sms"), "nope", 0.7))
    await hooks.emit(gw.WorkerRecovered("w", ("dead",), (1, 2)))

    sample = registry.get_sample_value
    assert sample("gw_jobs_completed_total", {"task": "mail"}) == 2
    assert sample("gw_jobs_failed_total", {"task": "sms"}) == 1
    assert sample("gw_job_duration_seconds_bucket", {"task": "mail", "le": "0.5"}) == 1
    assert sample("gw_job_duration_seconds_bucket", {"task": "mail", "le": "5.0"}) == 2
    assert sample("gw_job_duration_seconds_bucket", {"task": "mail", "le": "+Inf"}) == 2
    assert sample("gw_job_duration_seconds_sum", {"task": "mail"}) == pytest.approx(3.2)
    assert sample("gw_recovered_jobs_total") == 2
    text = generate_latest(registry).decode()
    assert "# TYPE gw_job_queue_wait_seconds histogram" in text
    assert 'gw_jobs_failed_total{task="sms"} 1.0' in text


async def test_opentelemetry_instrument() -> None:
    pytest.importorskip("opentelemetry.sdk.metrics", reason="needs opentelemetry-sdk to read")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = MetricsPlugin(duration_buckets=[0.5, 5])
    hooks = gw.HookRegistry()
    hooks.add_plugin(metrics)
    await hooks.emit(gw.JobComplete("w", make_job(task="mail"), 9.0))  # before: counted only
    metrics.opentelemetry_instrument(provider.get_meter("gw-test"))
    for duration in (0.2, 3.0):
        await hooks.emit(gw.JobComplete("w", make_job(task="mail"), duration))

    data = reader.get_metrics_data()
    assert data is not None
    found = {
        m.name: m.data
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    (completed,) = found["gw.jobs.completed"].data_points
    assert (completed.value, dict(completed.attributes)) == (3, {"task": "mail"})
    assert "gw.jobs.failed" not in found  # no data points yet
    (duration,) = found["gw.job.duration"].data_points
    assert (duration.count, duration.sum) == (2, pytest.approx(3.2))
    assert list(duration.explicit_bounds) == [0.5, 5.0]
    assert list(duration.bucket_counts) == [1, 1, 0]
    provider.shutdown()


def test_exporters_explain_missing_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = MetricsPlugin()
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.setitem(sys.modules, "prometheus_client.core", None)
    with pytest.raises(gw.ConfigurationError, match=r"pip install 'gw\[prometheus\]'"):
        metrics.prometheus_collector()
    monkeypatch.setitem(sys.modules, "opentelemetry.metrics", None)
    with pytest.raises(gw.ConfigurationError, match=r"pip install 'gw\[otel\]'"):
        metrics.opentelemetry_instrument(object())
    assert metrics._sinks == []


# --------------------------------------------------------------------------- logging


async def test_logging_plugin_logs_every_event_structured(
    db_url: str, utils: gw.WorkerUtils, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gw.events"):
        worker = await outcome_run(db_url, utils, LoggingPlugin())
    records = [r for r in caplog.records if r.name == "gw.events"]
    events = [getattr(r, "event", None) for r in records]
    assert events[:2] == ["WorkerInit", "WorkerStart"]
    assert events[-1] == "WorkerShutdown"
    assert events.count("JobComplete") == 2
    for name in ("JobFetch", "BeforeJobRun", "JobStart", "AfterJobRun"):
        assert events.count(name) == 4, name
    (final,) = [r for r in records if getattr(r, "event", None) == "JobPermanentlyFail"]
    assert final.levelno == logging.ERROR
    fields = final.event_fields  # type: ignore[attr-defined]
    assert fields["worker_id"] == worker.worker_id
    assert (fields["task"], fields["queue"], fields["error"]) == ("bad", "lane", "bad luck")
    assert fields["attempt"] == fields["max_attempts"] == 1
    assert final.getMessage().startswith(f"JobPermanentlyFail worker_id={worker.worker_id} job_id=")
    assert "error='bad luck'" in final.getMessage()
    (retry,) = [r for r in records if getattr(r, "event", None) == "JobFail"]
    assert retry.levelno == logging.WARNING
    # Payloads stay out of the logs unless asked for.
    assert "s3cr3t" not in caplog.text
    json.dumps([r.event_fields for r in records])  # type: ignore[attr-defined]


async def test_logging_plugin_levels_events_and_payloads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = gw.HookRegistry()
    hooks.add_plugin(
        LoggingPlugin(
            level=logging.DEBUG,
            levels={gw.JobFail: logging.CRITICAL},
            events=[gw.BeforeJobRun, gw.JobFail, gw.WorkerShutdown],
            include_payload=True,
        )
    )
    assert not hooks.has(gw.JobStart)
    with caplog.at_level(logging.DEBUG, logger="gw.events"):
        assert await hooks.intercept(gw.BeforeJobRun("w", make_job(), {"to": "x"})) == gw.Continue()
        await hooks.emit(gw.JobFail("w", make_job(), "boom", 1.25))
        await hooks.emit(gw.WorkerShutdown("w", "signal SIGTERM"))
    levels = [(r.event, r.levelno) for r in caplog.records]  # type: ignore[attr-defined]
    assert levels == [
        ("BeforeJobRun", logging.DEBUG),
        ("JobFail", logging.CRITICAL),
        ("WorkerShutdown", logging.DEBUG),
    ]
    assert caplog.records[0].event_fields["payload"] == {"to": "x"}  # type: ignore[attr-defined]
    assert caplog.records[1].event_fields["duration"] == 1.25  # type: ignore[attr-defined]
    assert caplog.records[2].getMessage() == "WorkerShutdown worker_id=w reason='signal SIGTERM'"

    # Below the logger's level nothing is formatted or emitted.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gw.events"):
        await hooks.emit(gw.WorkerShutdown("w", "quiet"))
    assert caplog.records == []


def test_logging_plugin_rejects_bad_options() -> None:
    with pytest.raises(gw.ConfigurationError, match="level must be a logging level"):
        LoggingPlugin(level="INFO")  # type: ignore[arg-type]
    with pytest.raises(gw.ConfigurationError, match="is not a gw hook event class"):
        LoggingPlugin(events=[str])  # type: ignore[list-item]
