"""The /metrics series mirrored as OTLP metrics to real receivers (EXESDB_OTLP_METRICS): sums,
gauges and histograms as the Collector's prometheus receiver makes them, cumulative or as
deltas that add up, in parts beyond a collector's request limit, once more at shutdown."""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from prometheus_client import CollectorRegistry, Gauge, Histogram

from bridge import __version__
from bridge.app import Bridge
from bridge.config import load_settings
from bridge.messages import LogEntry
from bridge.sinks.prometheus import PrometheusSink
from tests.integration.otlp_support import SINKS, export_to, mirror_to, receiver, sample
from tests.integration.servers.otlp import GrpcOtlpReceiver, ReceivedHistogramPoint
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["receiver"]  # the fixture, imported for the tests below


async def test_series_beyond_a_collector_s_request_limit_are_mirrored_in_parts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """3 000 series of 1 500-character labels (5 MiB of OTLP metrics) reach a gRPC receiver that
    takes 4 MiB a request, a collector's default, every export: sent in parts, none refused."""
    receiver = GrpcOtlpReceiver()
    receiver.start()
    receiver.protocol = "grpc"  # type: ignore[attr-defined]
    registry = CollectorRegistry()
    checks = Gauge("exesdb_test_check", "A check.", ["check"], registry=registry)
    for index in range(3000):
        checks.labels(f"{index:04} " + "c" * 1500).set(index)
    try:
        mirror_to(receiver, monkeypatch)
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
        monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
        bridge = Bridge(load_settings(), registry=registry, components=SINKS)
        await bridge.start(serve_http=False)
        try:

            def received() -> int:
                return sum(
                    len(metric.points)
                    for metric in receiver.metrics
                    if metric.name == "exesdb_test_check"
                )

            await async_wait_until(lambda: received() >= 3000, 30, "every series")
            assert sample(bridge, "exesdb_otlp_export_failures_total", signal="metrics") == 0
        finally:
            await bridge.aclose()
    finally:
        receiver.stop()


async def test_prometheus_series_are_mirrored_as_otlp_metrics(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With EXESDB_OTLP_METRICS the /metrics series arrive as OTLP sums and gauges."""
    mirror_to(receiver, monkeypatch)
    monkeypatch.setenv("EXESDB_NODE", "node1@host")
    bridge = Bridge(load_settings(), registry=CollectorRegistry(), components=SINKS)
    await bridge.start(serve_http=False)
    try:
        for _ in range(3):
            bridge.bus.publish("logs", LogEntry(level="info", message="x", module="m", node="n"))

        def published() -> float:
            for metric in reversed(receiver.metrics):
                if metric.name == "exesdb_bus_published":
                    for labels, value in metric.points:
                        if labels == {"pubsub": "ex_esdb_logging", "tag": "log_entry"}:
                            return value
            return 0.0

        def log_entries() -> float:
            for metric in reversed(receiver.metrics):
                if metric.name == "exesdb_log_entries":
                    return dict((labels["level"], value) for labels, value in metric.points)["info"]
            return 0.0

        await async_wait_until(lambda: published() == 3, 15, "the mirrored counter")
        await async_wait_until(lambda: log_entries() == 3, 15, "the Prometheus sink's series")
        by_name = {metric.name: metric for metric in receiver.metrics}
        counter = by_name["exesdb_bus_published"]
        assert (counter.kind, counter.is_monotonic) == ("sum", True)
        assert counter.resource["service.instance.id"] == "node1@host"
        assert by_name["exesdb_integration_enabled"].kind == "gauge"
        assert by_name["exesdb_integration_enabled"].points == [({}, 1.0)]
        assert by_name["exesdb_build_info"].points[0][0]["version"] == __version__
        # The Prometheus sink's own series (rendered by its store, not the registry) too.
        entries = by_name["exesdb_log_entries"]
        assert (entries.kind, entries.is_monotonic) == ("sum", True)
        assert entries.points[0][0] == {"node": "n", "level": "info"}
        assert not [name for name in by_name if name.endswith("_created")]
        await async_wait_until(
            lambda: sample(bridge, "exesdb_otlp_exported_total", signal="metrics") > 0,
            10,
            "counted metric exports",
        )
    finally:
        await bridge.aclose()


async def test_at_shutdown_the_mirror_exports_what_it_counted_since_its_last_export(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bridge that stops exports its series once more, as the SDK's metric reader does at
    shutdown: what was counted since the last export reaches the collector, not lost."""
    export_to(receiver, monkeypatch)
    monkeypatch.setenv("EXESDB_OTLP_METRICS", "true")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")  # no export but at shutdown
    bridge = Bridge(load_settings(), registry=CollectorRegistry(), components=SINKS)
    await bridge.start(serve_http=False)
    [sink] = [c for c in bridge.components if isinstance(c, PrometheusSink)]
    try:
        for _ in range(3):
            bridge.bus.publish("logs", LogEntry(level="info", message="x", module="m", node="n"))
        await async_wait_until(
            lambda: sink.store.values("exesdb_log_entries") == {("n", "info"): 3.0},
            15,
            "the Prometheus sink's count",
        )
    finally:
        await bridge.aclose()
    sent = [
        value
        for metric in receiver.metrics
        if metric.name == "exesdb_log_entries"
        for labels, value in metric.points
        if labels == {"node": "n", "level": "info"}
    ]
    assert sent == [3.0]


async def test_with_delta_temporality_the_collector_receives_increases(
    receiver: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta the counters arrive as
    AGGREGATION_TEMPORALITY_DELTA sums: each export's value the increase since the one before,
    starting where it ended, so that the values add up to the total; the start-up line says so."""
    caplog.set_level(logging.INFO, logger="bridge.sinks.otlp.sink")
    mirror_to(receiver, monkeypatch)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    bridge = Bridge(load_settings(), registry=CollectorRegistry(), components=SINKS)
    await bridge.start(serve_http=False)

    def entries() -> list[tuple[float, tuple[int, int], int]]:
        """Each export's (value, (start, time), temporality) of the info entries of node n."""
        return [
            (value, times, metric.temporality)
            for metric in receiver.metrics
            if metric.name == "exesdb_log_entries"
            for (labels, value), times in zip(metric.points, metric.times, strict=True)
            if labels == {"node": "n", "level": "info"}
        ]

    def publish(count: int) -> None:
        for _ in range(count):
            bridge.bus.publish("logs", LogEntry(level="info", message="x", module="m", node="n"))

    try:
        assert any(
            message.startswith("OTLP export: ")
            and message.endswith("; metric sums and histograms as deltas")
            for message in caplog.messages
        ), caplog.messages
        publish(3)
        # Two exports at least: cumulative totals would add up to 6 or more.
        await async_wait_until(
            lambda: len(entries()) >= 2 and sum(value for value, _, _ in entries()) == 3,
            15,
            "the first increases",
        )
        publish(2)
        await async_wait_until(
            lambda: sum(value for value, _, _ in entries()) == 5, 15, "the next increase"
        )
    finally:
        await bridge.aclose()
    received = entries()
    assert {temporality for _, _, temporality in received} == {
        AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    }
    assert sum(value for value, _, _ in received) == 5
    assert min(value for value, _, _ in received) >= 0
    spans = [times for _, times, _ in received]
    assert all(start < end for start, end in spans)
    assert all(later[0] == earlier[1] for earlier, later in itertools.pairwise(spans))


def _histogram_exports(receiver: Any, name: str) -> list[tuple[int, ReceivedHistogramPoint]]:
    """Each export's (temporality, point) of the histogram metric ``name`` (one point)."""
    return [
        (metric.temporality, found)
        for metric in receiver.metrics
        if metric.name == name
        for found in metric.histogram_points
    ]


async def test_a_prometheus_histogram_arrives_as_one_otlp_histogram(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A histogram observed in the bridge's registry arrives as the Collector's prometheus
    receiver makes it: one cumulative explicit-bucket Histogram point per series, its bounds the
    finite le values, its buckets counted apart, its count and sum, no min or max, started when
    the series was created; no _bucket, _count or _sum metric."""
    mirror_to(receiver, monkeypatch)
    registry = CollectorRegistry()
    seconds = Histogram(
        "exesdb_test_seconds", "Seconds.", ["op"], buckets=(0.25, 1.0), registry=registry
    )
    for value in (0.125, 0.5, 0.75, 3.0):  # sums exact in binary
        seconds.labels("read").observe(value)
    created = registry.get_sample_value("exesdb_test_seconds_created", {"op": "read"})
    assert created is not None
    bridge = Bridge(load_settings(), registry=registry, components=SINKS)
    await bridge.start(serve_http=False)
    try:
        await async_wait_until(
            lambda: _histogram_exports(receiver, "exesdb_test_seconds"), 15, "the histogram"
        )
    finally:
        await bridge.aclose()
    temporality, first = _histogram_exports(receiver, "exesdb_test_seconds")[0]
    assert temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert first == ReceivedHistogramPoint(
        {"op": "read"}, 4, 4.375, [1, 2, 1], [0.25, 1.0], None, None
    )
    starts = {
        start
        for metric in receiver.metrics
        if metric.name == "exesdb_test_seconds"
        for start, _ in metric.times
    }
    assert starts == {int(created * 1e9)}
    names = {metric.name for metric in receiver.metrics}
    assert not names & {f"exesdb_test_seconds{part}" for part in ("_bucket", "_count", "_sum")}


async def test_with_delta_temporality_a_histogram_arrives_as_increases(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under delta a histogram arrives as AGGREGATION_TEMPORALITY_DELTA Histogram points: each
    export's buckets, count and sum what the interval observed, starting where the export
    before ended, so that they add up to the totals."""
    mirror_to(receiver, monkeypatch)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    registry = CollectorRegistry()
    seconds = Histogram("exesdb_test_seconds", "Seconds.", buckets=(0.25, 1.0), registry=registry)
    seconds.observe(0.125)  # sums exact in binary
    bridge = Bridge(load_settings(), registry=registry, components=SINKS)
    await bridge.start(serve_http=False)

    def added() -> tuple[int, list[int], float]:
        """The count, bucket counts and sum of every export added up."""
        points = [found for _, found in _histogram_exports(receiver, "exesdb_test_seconds")]
        buckets = [sum(column) for column in zip(*(p.bucket_counts for p in points), strict=True)]
        return sum(p.count for p in points), buckets, sum(p.sum or 0.0 for p in points)

    try:
        # Two exports at least: cumulative counts would add up to 2 or more.
        await async_wait_until(
            lambda: (
                len(_histogram_exports(receiver, "exesdb_test_seconds")) >= 2 and added()[0] == 1
            ),
            15,
            "the first observation",
        )
        seconds.observe(0.5)
        seconds.observe(3.0)
        await async_wait_until(lambda: added()[0] == 3, 15, "the next observations")
    finally:
        await bridge.aclose()
    exports = _histogram_exports(receiver, "exesdb_test_seconds")
    assert {temporality for temporality, _ in exports} == {
        AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    }
    count, buckets, total = added()
    assert (count, buckets, total) == (3, [1, 1, 1], 3.625)
    assert all(found.explicit_bounds == [0.25, 1.0] for _, found in exports)
    assert all(sum(found.bucket_counts) == found.count for _, found in exports)
    spans = [
        times
        for metric in receiver.metrics
        if metric.name == "exesdb_test_seconds"
        for times in metric.times
    ]
    assert all(start < end for start, end in spans)
    assert all(later[0] == earlier[1] for earlier, later in itertools.pairwise(spans))


async def test_with_delta_temporality_a_histogram_that_observed_inf_still_adds_up(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under delta a histogram whose sum became +Inf (it observed +Inf) still arrives as
    increases: its count and buckets added up over the exports are its totals, not its totals
    again with each export, and its points after the +Inf leave the sum out (none finite)."""
    mirror_to(receiver, monkeypatch)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    registry = CollectorRegistry()
    seconds = Histogram("exesdb_test_seconds", "Seconds.", buckets=(0.25, 1.0), registry=registry)
    seconds.observe(0.125)
    seconds.observe(math.inf)
    bridge = Bridge(load_settings(), registry=registry, components=SINKS)
    await bridge.start(serve_http=False)

    def exports() -> list[ReceivedHistogramPoint]:
        return [found for _, found in _histogram_exports(receiver, "exesdb_test_seconds")]

    def counted() -> tuple[int, list[int]]:
        """The count and bucket counts of every export added up."""
        points = exports()
        buckets = [sum(column) for column in zip(*(p.bucket_counts for p in points), strict=True)]
        return sum(p.count for p in points), buckets

    try:
        # Two exports at least: cumulative counts would add up to 4 or more.
        await async_wait_until(lambda: len(exports()) >= 2, 15, "two exports")
        assert counted() == (2, [1, 0, 1])
        seconds.observe(0.5)
        await async_wait_until(lambda: counted()[0] == 3, 15, "the next observation")
        # Past the observation's export: a count sent again would show in the next one.
        seen = len(exports())
        await async_wait_until(lambda: len(exports()) > seen, 15, "one more export")
    finally:
        await bridge.aclose()
    assert counted() == (3, [1, 1, 1])
    assert {
        temporality for temporality, _ in _histogram_exports(receiver, "exesdb_test_seconds")
    } == {AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA}
    assert [found.sum for found in exports()] == [None] * len(exports())


async def test_with_only_the_metrics_endpoint_only_metrics_are_exported(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXESDB_OTLP_METRICS with OTEL_EXPORTER_OTLP_METRICS_ENDPOINT alone exports the series
    there, and no spans or logs."""
    # A per-signal endpoint is used as it is: OTLP/HTTP needs the signal's path in it.
    path = "/v1/metrics" if receiver.protocol == "http/protobuf" else ""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", receiver.endpoint + path)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", receiver.protocol)
    monkeypatch.setenv("EXESDB_OTLP_METRICS", "true")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    bridge = Bridge(load_settings(), registry=CollectorRegistry(), components=SINKS)
    await bridge.start(serve_http=False)
    try:
        bridge.bus.publish("logs", LogEntry(level="info", message="x", module="m", node="n"))
        await async_wait_until(
            lambda: any(m.name == "exesdb_bus_published" for m in receiver.metrics),
            15,
            "the mirrored series",
        )
        assert sample(bridge, "exesdb_otlp_exported_total", signal="traces") == 0
    finally:
        await bridge.aclose()
    assert receiver.spans == []
    assert receiver.logs == []
