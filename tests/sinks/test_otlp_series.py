"""The OTLP metrics mirror: /metrics families as OTLP sums and gauges, read as values."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    Gauge,
    Metric,
    MetricExportResult,
    Sum,
)
from prometheus_client import CollectorRegistry, Counter
from prometheus_client import Gauge as PromGauge

from bridge.app import Bridge
from bridge.sinks.otlp.series import MetricsMirror, registry_to_metrics
from bridge.sinks.prometheus import MetricType, PrometheusSink, SeriesStore
from tests.sinks.otlp_support import RESOURCE, SCOPE, WALL, StoreSource, point, store_with_counter
from tests.support import ManualClock, make_settings

MIRROR_START_NS = 1_000_000_000_000_000_000


def mirrored(registry: CollectorRegistry, *stores: SeriesStore) -> dict[str, Metric]:
    """One collection, by OTLP metric name."""
    data = registry_to_metrics(
        registry, RESOURCE, SCOPE, MIRROR_START_NS, [StoreSource(s) for s in stores]
    )
    [resource_metrics] = data.resource_metrics
    [scope_metrics] = resource_metrics.scope_metrics
    return {metric.name: metric for metric in scope_metrics.metrics}


def test_store_families_arrive_as_sums_and_gauges():
    """A store's counter is a cumulative monotonic sum without _total; a gauge stays a gauge."""
    clock = ManualClock()
    store, counter = store_with_counter(clock)
    counter.inc(("a",), 3)
    store.family("exesdb_test_level", MetricType.GAUGE, "A level.", ("node",)).set(("a",), 0.5)
    metrics = mirrored(CollectorRegistry(), store)
    events = metrics["exesdb_test_events"]
    assert isinstance(events.data, Sum)
    assert events.data.is_monotonic
    assert point(events, node="a").value == 3
    level = metrics["exesdb_test_level"]
    assert isinstance(level.data, Gauge)
    assert point(level, node="a").value == 0.5
    assert not [name for name in metrics if name.endswith(("_created", "_total"))]


def test_a_counter_back_from_expiry_starts_anew():
    """An expired counter series that returns from zero gets a later start time (a reset)."""
    clock = ManualClock(1000.0)
    store, counter = store_with_counter(clock)
    counter.inc(("a",), 5)
    before = point(mirrored(CollectorRegistry(), store)["exesdb_test_events"], node="a")
    assert before.start_time_unix_nano == int(WALL * 1e9)
    clock.now += 11  # past the TTL: the series expires
    assert "exesdb_test_events" not in mirrored(CollectorRegistry(), store)
    counter.inc(("a",))
    after = point(mirrored(CollectorRegistry(), store)["exesdb_test_events"], node="a")
    assert after.value == 1
    assert after.start_time_unix_nano == int((WALL + 11) * 1e9)


def test_a_counter_written_again_keeps_its_start_time():
    """A counter series that lives on keeps one start time from one collection to the next."""
    clock = ManualClock(1000.0)
    store, counter = store_with_counter(clock)
    counter.inc(("a",))
    first = point(mirrored(CollectorRegistry(), store)["exesdb_test_events"], node="a")
    clock.now += 5
    counter.inc(("a",))
    second = point(mirrored(CollectorRegistry(), store)["exesdb_test_events"], node="a")
    assert (second.value, second.start_time_unix_nano) == (2, first.start_time_unix_nano)


def test_registry_counters_start_when_created_and_gauges_at_the_mirrors_start():
    """A prometheus_client counter starts at its _created time; a gauge at the mirror's start."""
    registry = CollectorRegistry()
    before = time.time()
    Counter("exesdb_test_things", "Things.", ["kind"], registry=registry).labels("x").inc()
    PromGauge("exesdb_test_depth", "Depth.", registry=registry).set(4)
    metrics = mirrored(registry)
    started = point(metrics["exesdb_test_things"], kind="x").start_time_unix_nano
    assert before * 1e9 - 1e6 <= started <= time.time() * 1e9
    assert point(metrics["exesdb_test_depth"]).start_time_unix_nano == MIRROR_START_NS


async def test_an_export_counts_the_sinks_data_points_as_the_exporter_answers():
    """export_once sends the registry and the sink's series; SUCCESS counts them as exported."""
    registry = CollectorRegistry()
    sink = PrometheusSink(Bridge(make_settings(), registry=registry, components=[]).bus)
    sink.store.family("exesdb_test_level", MetricType.GAUGE, "A level.").set((), 1.0)
    reports: list[tuple[int, bool]] = []
    output = io.StringIO()
    mirror = MetricsMirror(
        registry,
        ConsoleMetricExporter(out=output),
        RESOURCE,
        SCOPE,
        lambda count, ok, seconds: reports.append((count, ok)),
        environ={"OTEL_METRIC_EXPORT_INTERVAL": "3600000"},
        expositions=lambda: [sink],
    )
    mirror.start()
    try:
        await asyncio.to_thread(mirror.export_once)
    finally:
        await asyncio.to_thread(mirror.close, 1.0)
    [(count, ok)] = reports
    assert ok is True
    assert count > 1
    assert "exesdb_test_level" in output.getvalue()


async def test_a_failed_export_is_counted_as_failed():
    """An exporter answering FAILURE makes the export count as failed."""
    registry = CollectorRegistry()
    reports: list[tuple[int, bool]] = []
    mirror = MetricsMirror(
        registry,
        _Refusing(),
        RESOURCE,
        SCOPE,
        lambda count, ok, seconds: reports.append((count, ok)),
        environ={"OTEL_METRIC_EXPORT_INTERVAL": "3600000"},
    )
    mirror.start()
    try:
        await asyncio.to_thread(mirror.export_once)
    finally:
        await asyncio.to_thread(mirror.close, 1.0)
    assert [ok for _, ok in reports] == [False]


class _Refusing(ConsoleMetricExporter):
    """The console exporter, answering as a collector that refuses everything would."""

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        return MetricExportResult.FAILURE
