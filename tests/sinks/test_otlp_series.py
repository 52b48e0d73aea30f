"""The OTLP metrics mirror: /metrics families as OTLP sums, gauges and histograms, as values."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from prometheus_client import CollectorRegistry, Counter, Summary
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram
from prometheus_client.metrics_core import Metric as PromFamily

from bridge.app import Bridge
from bridge.sinks.otlp.series import MetricsMirror, registry_to_metrics
from bridge.sinks.prometheus import MetricType, PrometheusSink, SeriesStore
from tests.sinks.otlp_support import (
    RESOURCE,
    SCOPE,
    WALL,
    StoreSource,
    histogram_point,
    point,
    store_with_counter,
)
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


def test_a_histogram_is_one_otlp_histogram_point_per_series():
    """A prometheus_client histogram is one cumulative OTLP histogram named as the family, a
    point per series, as the Collector's prometheus receiver makes it: the finite le values as
    bounds, each bucket counted apart (the last what _count has above them), its count and sum,
    no min or max, started at the series' _created; no _bucket, _count or _sum metric."""
    registry = CollectorRegistry()
    seconds = PromHistogram(
        "exesdb_test_seconds", "Seconds.", ["op"], buckets=(0.25, 1.0, 2.5), registry=registry
    )
    for value in (0.125, 0.25, 0.5, 7.0, 9.0):  # sums exact in binary
        seconds.labels("read").observe(value)
    seconds.labels("idle")
    created = registry.get_sample_value("exesdb_test_seconds_created", {"op": "read"})
    assert created is not None
    metrics = mirrored(registry)
    assert not [name for name in metrics if name.startswith("exesdb_test_seconds_")]
    histogram = metrics["exesdb_test_seconds"]
    assert (histogram.description, histogram.unit) == ("Seconds.", "")
    assert isinstance(histogram.data, Histogram)
    assert histogram.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    read, idle = (histogram_point(histogram, op=op) for op in ("read", "idle"))
    assert (read.count, read.sum) == (5, 16.875)
    assert list(read.explicit_bounds) == [0.25, 1.0, 2.5]
    assert list(read.bucket_counts) == [2, 1, 0, 2]
    # No min or max in the message the exporter sends: Prometheus keeps neither.
    scope_metrics = ScopeMetrics(SCOPE, [histogram], "")
    message = encode_metrics(MetricsData([ResourceMetrics(RESOURCE, [scope_metrics], "")]))
    encoded = message.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points
    assert [(p.HasField("min"), p.HasField("max")) for p in encoded] == [(False, False)] * 2
    assert read.start_time_unix_nano == int(created * 1e9)
    assert (idle.count, idle.sum, list(idle.bucket_counts)) == (0, 0, [0, 0, 0, 0])


def test_a_histogram_family_s_buckets_are_read_as_the_collector_reads_them():
    """As the Collector's prometheus receiver reads them: buckets in any order are sorted by
    bound, the last one +Inf's; a bucket whose le is no number is left out; buckets that do not
    add up count none, never below zero (which would fail the encoding of the whole export);
    _count is the count; a series without _count or without a +Inf bucket is left out."""
    registry = CollectorRegistry()
    registry.register(_Families(_histogram_family()))
    [odd] = mirrored(registry)["exesdb_test_odd_seconds"].data.data_points
    assert isinstance(odd, HistogramDataPoint)
    assert odd.attributes == {"op": "odd"}
    assert list(odd.explicit_bounds) == [0.5, 1.0]
    assert list(odd.bucket_counts) == [2, 0, 8]  # 1.0's total below 0.5's: none
    assert (odd.count, odd.sum) == (5, 2.5)
    assert odd.start_time_unix_nano == MIRROR_START_NS  # no _created: the mirror's start


def test_summaries_go_as_their_prometheus_parts():
    """A summary stays as its parts (the SDK has no OTLP summary to send): _count and _sum as
    cumulative monotonic sums."""
    registry = CollectorRegistry()
    Summary("exesdb_test_wait_seconds", "Wait.", registry=registry).observe(2.0)
    metrics = mirrored(registry)
    assert "exesdb_test_wait_seconds" not in metrics
    for part, value in (("_count", 1.0), ("_sum", 2.0)):
        metric = metrics["exesdb_test_wait_seconds" + part]
        assert isinstance(metric.data, Sum)
        assert metric.data.is_monotonic
        assert point(metric).value == value


def _histogram_family() -> PromFamily:
    """exesdb_test_odd_seconds: one series whose buckets come unsorted, do not add up and have
    two le values that are no bound, one without _count, one without a +Inf bucket."""
    family = PromFamily("exesdb_test_odd_seconds", "Odd.", "histogram")
    for le, total in (("1.0", 1.0), ("+Inf", 9.0), ("0.5", 2.0), ("many", 1.0), ("NaN", 1.0)):
        family.add_sample("exesdb_test_odd_seconds_bucket", {"op": "odd", "le": le}, total)
    family.add_sample("exesdb_test_odd_seconds_count", {"op": "odd"}, 5.0)
    family.add_sample("exesdb_test_odd_seconds_sum", {"op": "odd"}, 2.5)
    family.add_sample("exesdb_test_odd_seconds_bucket", {"op": "uncounted", "le": "+Inf"}, 1.0)
    family.add_sample("exesdb_test_odd_seconds_sum", {"op": "uncounted"}, 1.0)
    family.add_sample("exesdb_test_odd_seconds_bucket", {"op": "incomplete", "le": "1.0"}, 1.0)
    family.add_sample("exesdb_test_odd_seconds_count", {"op": "incomplete"}, 1.0)
    return family


class _Families:
    """A registry collector of the given families."""

    def __init__(self, *families: PromFamily) -> None:
        self.families = families

    def collect(self) -> Iterator[PromFamily]:
        yield from self.families


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


async def test_a_collection_the_loop_did_not_get_to_in_time_is_called_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An export whose collection the event loop did not start in time (the loop blocked) fails,
    and that collection is called off: the loop, back, does not make it for nobody; the next
    export's it makes."""
    collections: list[int] = []

    def expositions() -> tuple[SeriesStore, ...]:
        collections.append(len(collections))
        return ()

    reports: list[bool] = []
    mirror = MetricsMirror(
        CollectorRegistry(),
        ConsoleMetricExporter(out=io.StringIO()),
        RESOURCE,
        SCOPE,
        lambda count, ok, seconds: reports.append(ok),
        environ={"OTEL_METRIC_EXPORT_INTERVAL": "3600000"},
        expositions=expositions,
        collect_timeout=0.2,
    )
    mirror.start()
    try:
        given_up = threading.Thread(target=mirror.export_once)
        given_up.start()
        given_up.join(10)  # on the loop's thread: the loop blocked until the export gave up
        assert not given_up.is_alive()
        assert (reports, collections) == ([False], [])
        # Queued behind the first collection: by its end the loop has been to that one too.
        await asyncio.to_thread(mirror.export_once)
    finally:
        await asyncio.to_thread(mirror.close, 1.0)
    assert (reports, collections) == ([False, True], [0])
    assert "OTLP metrics collection raised" in caplog.text


class _Refusing(ConsoleMetricExporter):
    """The console exporter, answering as a collector that refuses everything would."""

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        return MetricExportResult.FAILURE
