"""End to end against real OTLP receivers: the bridge's messages as spans and log records."""

from __future__ import annotations

import itertools
import logging
import math
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from prometheus_client import CollectorRegistry, Gauge, Histogram

from bridge import __version__
from bridge.app import Bridge
from bridge.component import ComponentFactory
from bridge.config import load_settings
from bridge.messages import (
    AuthEvent,
    DebugTrace,
    ErrorAnalysis,
    HealthCheck,
    LogEntry,
    MetricAlert,
    NodeHealth,
    NotificationStatus,
    PerformanceAnalysis,
    SecurityAlert,
    SystemAlert,
)
from bridge.sinks.alerts import alert_sink
from bridge.sinks.otlp import otlp_component
from bridge.sinks.prometheus import PrometheusSink, prometheus_sink
from tests.integration.servers.otlp import (
    GrpcOtlpReceiver,
    HttpOtlpReceiver,
    ReceivedHistogramPoint,
)
from tests.integration.servers.webhook import Answer, webhook_receiver
from tests.support import async_wait_until, free_port

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below

# The sinks without the collectors, so that only the test's messages are exported.
SINKS: list[ComponentFactory] = [prometheus_sink, otlp_component]

# OTLP's Span.SpanKind values.
SPAN_KIND_CLIENT = 3
SPAN_KIND_CONSUMER = 5
STATUS_OK = 1
STATUS_ERROR = 2


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(request: pytest.FixtureRequest) -> Iterator[GrpcOtlpReceiver | HttpOtlpReceiver]:
    """A running receiver of the protocol under test."""
    server = GrpcOtlpReceiver() if request.param == "grpc" else HttpOtlpReceiver()
    server.start()
    server.protocol = request.param  # type: ignore[union-attr]
    yield server
    server.stop()


@pytest.fixture
async def bridge(receiver: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bridge]:
    """A bridge exporting to ``receiver`` with short batch delays."""
    _export_to(receiver, monkeypatch)
    monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
    monkeypatch.setenv("EXESDB_NODE", "node1@host")
    bridge = Bridge(load_settings(), registry=CollectorRegistry(), components=SINKS)
    await bridge.start(serve_http=False)
    yield bridge
    await bridge.aclose()


def _sample(bridge: Bridge, name: str, **labels: str) -> float:
    value = bridge.registry.get_sample_value(name, labels)
    return value or 0.0


def _export_to(receiver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The OTLP settings of a bridge exporting to ``receiver``, spans batched for 50 ms."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", receiver.protocol)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")


def _mirror_to(receiver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``_export_to``, and the /metrics series mirrored as OTLP metrics every 100 ms."""
    _export_to(receiver, monkeypatch)
    monkeypatch.setenv("EXESDB_OTLP_METRICS", "true")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")


@asynccontextmanager
async def _webhook_bridge(
    receiver: Any,
    monkeypatch: pytest.MonkeyPatch,
    state_dir: Path,
    url: str,
    backoff_ms: int,
    **options: Any,
) -> AsyncIterator[Bridge]:
    """A started bridge (``options`` for Bridge) exporting to ``receiver``, whose alert sink
    sends each alert to the webhook ``url`` at once and retries after ``backoff_ms``; closed
    after."""
    _export_to(receiver, monkeypatch)
    monkeypatch.setenv("EXESDB_WEBHOOK_URLS", url)
    monkeypatch.setenv("EXESDB_WEBHOOK_GROUP_WAIT_MS", "0")
    monkeypatch.setenv("EXESDB_WEBHOOK_BACKOFF_MS", str(backoff_ms))
    monkeypatch.setenv("EXESDB_STATE_DIR", str(state_dir))
    bridge = Bridge(load_settings(), registry=CollectorRegistry(), **options)
    await bridge.start(serve_http=False)
    try:
        yield bridge
    finally:
        await bridge.aclose()


def _node_down(alert_id: str) -> SystemAlert:
    """A critical SystemAlert, for the topic node_failure (its alertname)."""
    return SystemAlert(
        alert_id=alert_id,
        severity="critical",
        category="system",
        title="node down",
        description="d",
        source="s",
        node="n",
    )


async def test_messages_arrive_as_spans_and_logs_with_resource_and_attributes(
    bridge: Bridge, receiver: Any
) -> None:
    """Mapped messages reach the collector with names, statuses, severities and attributes."""
    publish = bridge.bus.publish
    publish(
        "diagnostics",
        DebugTrace(
            trace_id="trace_abc",
            component="store",
            operation="append",
            duration_ms=250.0,
            node="node1@host",
        ),
    )
    publish(
        "store1:health",
        HealthCheck(
            check_name="disk_check",
            node="node1@host",
            result="fail",
            duration_ms=12.5,
            error="disk full",
        ),
    )
    publish(
        "store1:health",
        HealthCheck(check_name="ping", node="node1@host", result="pass", duration_ms=1.0),
    )
    publish(
        "diagnostics",
        PerformanceAnalysis(
            component="store",
            analysis_type="bottleneck",
            findings={"slowest": "fsync", "p99_ms": 42},
            recommendations=["batch writes", "faster disk"],
            node="node1@host",
        ),
    )
    publish(
        "node_failure",
        NotificationStatus(
            alert_id="a1",
            delivery_method="webhook",
            recipient="https://hooks.example.com/secret/token?key=x",
            status="failed",
            error_reason="HTTP 503",
            attempts=3,
        ),
    )
    publish(
        "logs",
        LogEntry(
            level="warn",
            message="slow append",
            module="store",
            node="node1@host",
            metadata={"stream": "orders"},
        ),
    )
    publish(
        "node_failure",
        SystemAlert(
            severity="critical",
            category="system",
            title="node down",
            description="node2 stopped answering",
            source="monitor",
            node="node1@host",
        ),
    )
    publish(
        "cpu",
        MetricAlert(
            metric_name="cpu_percent",
            current_value=97.0,
            threshold_value=95.0,
            threshold_type="max",
            severity="critical",
            node="node1@host",
        ),
    )
    publish(
        "security",
        SecurityAlert(
            alert_type="brute_force",
            severity="high",
            description="many failed logins",
            node="node1@host",
        ),
    )
    publish(
        "security",
        AuthEvent(
            user_id="alice", event_type="login_failure", auth_method="password", node="node1@host"
        ),
    )
    publish(
        "errors",
        ErrorAnalysis(error_type="timeout", error_message="append timed out", node="node1@host"),
    )
    publish("store1:health", NodeHealth(node="node1@host", status="healthy"))  # not exported

    await async_wait_until(
        lambda: len(receiver.spans) >= 5 and len(receiver.logs) >= 6, 15, "spans and logs"
    )

    spans = {span.name: span for span in receiver.spans}
    assert set(spans) == {
        "append",
        "disk_check",
        "ping",
        "performance_analysis bottleneck",
        "webhook delivery",
    }
    resource = spans["append"].resource
    assert resource["service.name"] == "exesdb-bridge"
    assert resource["service.version"] == __version__
    assert resource["service.instance.id"] == "node1@host"
    assert resource["host.name"] == socket.gethostname()
    assert resource["deployment.environment.name"] == "test"
    assert spans["append"].scope == "exesdb-bridge"

    trace = spans["append"]
    assert trace.end_ns - trace.start_ns == 250_000_000
    assert trace.kind == SPAN_KIND_CONSUMER
    assert trace.attributes["exesdb.trace_id"] == "trace_abc"
    assert trace.attributes["exesdb.instance"] == "ex_esdb_diagnostics"
    assert trace.attributes["exesdb.topic"] == "diagnostics"
    assert trace.attributes["exesdb.tag"] == "debug_trace"
    assert trace.attributes["exesdb.node"] == "node1@host"
    assert trace.attributes["exesdb.component"] == "store"
    # OpenTelemetry's messaging conventions, on every span and record.
    for span in spans.values():
        assert span.attributes["messaging.system"] == "exesdb"
        assert span.attributes["messaging.destination.name"] == span.attributes["exesdb.instance"]
        assert span.attributes["messaging.message.id"] == span.attributes["exesdb.message_id"]
        assert span.attributes["messaging.operation.type"] == "process"
        assert span.attributes["messaging.operation.name"] == "process"
        # The conventions' span kind for a "process" operation.
        assert span.kind == SPAN_KIND_CONSUMER
    assert trace.attributes["messaging.destination.name"] == "ex_esdb_diagnostics"

    failed = spans["disk_check"]
    assert (failed.status_code, failed.status_message) == (STATUS_ERROR, "disk full")
    assert failed.end_ns - failed.start_ns == 12_500_000
    assert spans["ping"].status_code == STATUS_OK

    analysis = spans["performance_analysis bottleneck"]
    assert analysis.attributes["exesdb.findings.slowest"] == "fsync"
    assert analysis.attributes["exesdb.findings.p99_ms"] == 42
    assert analysis.attributes["exesdb.recommendations"] == ("batch writes", "faster disk")
    assert [event for event, _ in analysis.events] == ["recommendation", "recommendation"]

    webhook = spans["webhook delivery"]
    assert (webhook.status_code, webhook.status_message) == (STATUS_ERROR, "HTTP 503")
    assert webhook.attributes["exesdb.recipient"] == "https://hooks.example.com/…"
    assert webhook.attributes["server.address"] == "hooks.example.com"
    assert webhook.attributes["server.port"] == 443
    assert webhook.attributes["exesdb.attempts"] == 3
    assert webhook.attributes["http.request.resend_count"] == 2
    assert "secret" not in repr(webhook.attributes)

    logs = {log.attributes["exesdb.tag"]: log for log in receiver.logs}
    assert set(logs) == {
        "log_entry",
        "system_alert",
        "metric_alert",
        "security_alert",
        "auth_event",
        "error_analysis",
    }
    assert logs["log_entry"].resource["service.instance.id"] == "node1@host"
    assert (logs["log_entry"].body, logs["log_entry"].severity_number) == ("slow append", 13)
    assert logs["log_entry"].severity_text == "WARN"
    assert logs["log_entry"].attributes["exesdb.metadata.stream"] == "orders"
    assert logs["log_entry"].event_name == "exesdb.log_entry"
    assert logs["log_entry"].time_ns > 0
    assert logs["log_entry"].observed_ns > 0
    assert (logs["system_alert"].body, logs["system_alert"].severity_number) == ("node down", 21)
    assert logs["system_alert"].attributes["exesdb.description"] == "node2 stopped answering"
    assert logs["metric_alert"].body == "cpu_percent is 97, above its threshold 95"
    assert logs["security_alert"].severity_number == 17
    assert logs["auth_event"].severity_number == 13
    assert logs["error_analysis"].body == "timeout: append timed out"
    assert logs["error_analysis"].severity_number == 17
    for log in logs.values():
        assert log.attributes["messaging.system"] == "exesdb"
        assert log.attributes["messaging.destination.name"] == log.attributes["exesdb.instance"]
        assert log.attributes["messaging.message.id"] == log.attributes["exesdb.message_id"]

    await async_wait_until(
        lambda: (
            _sample(bridge, "exesdb_otlp_exported_total", signal="traces") == 5
            and _sample(bridge, "exesdb_otlp_exported_total", signal="logs") == 6
        ),
        10,
        "export counters",
    )
    assert _sample(bridge, "exesdb_otlp_export_failures_total", signal="traces") == 0
    assert _sample(bridge, "exesdb_otlp_dropped_total", signal="logs") == 0
    # The recorder is process-wide (other bridges in this process record into it): successes only.
    export = [op for op in bridge.integration.recorder.drain() if op.operation == "otlp.export"]
    assert export
    assert export[0].succeeded >= 2
    assert bridge.readiness()["otlp"] == {"ready": True, "required": False, "reason": None}


async def test_refused_exports_are_counted_and_reported(bridge: Bridge, receiver: Any) -> None:
    """A collector refusing data shows in the failure counter and in readiness, not required,
    which gives the cause the collector gave."""
    receiver.fail = True
    bridge.bus.publish("logs", LogEntry(level="error", message="lost", module="m", node="n"))
    await async_wait_until(
        lambda: _sample(bridge, "exesdb_otlp_export_failures_total", signal="logs") == 1,
        15,
        "a counted failure",
    )
    check = bridge.readiness()["otlp"]
    assert check["required"] is False
    assert check["ready"] is False
    assert "logs: 1 failed export(s)" in check["reason"]
    # Each protocol's words for the refusal: gRPC's status, or the HTTP one.
    assert re.search(r"\(latest: .*(INVALID_ARGUMENT|HTTP 400)", check["reason"]), check
    receiver.fail = False
    bridge.bus.publish("logs", LogEntry(level="info", message="back", module="m", node="n"))
    await async_wait_until(lambda: bridge.readiness()["otlp"]["ready"], 15, "readiness back")


async def test_a_time_outside_what_otlp_carries_loses_no_record(
    bridge: Bridge, receiver: Any
) -> None:
    """Messages dated in year 1 or 9999, or a span of 1e300 ms, are exported at the nearest time
    OTLP carries (1970, 2554), and the records batched with them are not lost."""
    year_1, year_9999 = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
    publish = bridge.bus.publish
    for body, when in (("early", year_1), ("late", year_9999), ("fine", None)):
        log = LogEntry(level="warn", message=body, module="m", node="n1")
        publish("logs", log.model_copy(update={"timestamp": when}) if when else log)
    publish(
        "diagnostics",
        DebugTrace(trace_id="t", component="c", operation="long", duration_ms=1e300, node="n1"),
    )
    publish(
        "diagnostics",
        DebugTrace(
            trace_id="t",
            component="c",
            operation="early",
            duration_ms=1.0,
            node="n1",
            timestamp=year_1,
        ),
    )
    publish(
        "diagnostics",
        DebugTrace(trace_id="t", component="c", operation="fine", duration_ms=1.0, node="n1"),
    )
    await async_wait_until(
        lambda: len(receiver.logs) == 3 and len(receiver.spans) == 3, 15, "every record"
    )
    times = {log.body: log.time_ns for log in receiver.logs}
    assert (times["early"], times["late"]) == (0, 2**64 - 1)
    spans = {span.name: (span.start_ns, span.end_ns) for span in receiver.spans}
    assert spans["long"][0] == 0
    assert spans["early"] == (0, 0)
    assert _sample(bridge, "exesdb_otlp_export_failures_total", signal="logs") == 0
    assert _sample(bridge, "exesdb_otlp_export_failures_total", signal="traces") == 0


async def test_a_burst_of_large_log_records_fits_a_collector_s_request_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """512 log records of a 4 KiB message and 16 KiB of metadata (10 MiB in one batch of the
    SDK's 512) reach a gRPC receiver that takes 4 MiB a request, a collector's default: the
    batches are cut by size too, none refused whole."""
    receiver = GrpcOtlpReceiver()
    receiver.start()
    receiver.protocol = "grpc"  # type: ignore[attr-defined]
    try:
        _export_to(receiver, monkeypatch)
        monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "50")
        bridge = Bridge(load_settings(), registry=CollectorRegistry(), components=SINKS)
        await bridge.start(serve_http=False)
        try:
            metadata = {f"field{index}": "m" * 1000 for index in range(16)}
            for index in range(512):
                message = f"{index} " + "x" * 4000
                bridge.bus.publish(
                    "logs",
                    LogEntry(
                        level="error", message=message, module="m", node="n", metadata=metadata
                    ),
                )
            await async_wait_until(
                lambda: (
                    _sample(bridge, "exesdb_otlp_exported_total", signal="logs")
                    + _sample(bridge, "exesdb_otlp_export_failures_total", signal="logs")
                    == 512
                ),
                30,
                "every record exported or failed",
            )
            assert _sample(bridge, "exesdb_otlp_export_failures_total", signal="logs") == 0
        finally:
            await bridge.aclose()
        assert len(receiver.logs) == 512
    finally:
        receiver.stop()


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
        _mirror_to(receiver, monkeypatch)
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
            assert _sample(bridge, "exesdb_otlp_export_failures_total", signal="metrics") == 0
        finally:
            await bridge.aclose()
    finally:
        receiver.stop()


async def test_prometheus_series_are_mirrored_as_otlp_metrics(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With EXESDB_OTLP_METRICS the /metrics series arrive as OTLP sums and gauges."""
    _mirror_to(receiver, monkeypatch)
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
            lambda: _sample(bridge, "exesdb_otlp_exported_total", signal="metrics") > 0,
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
    _export_to(receiver, monkeypatch)
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
    _mirror_to(receiver, monkeypatch)
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
    _mirror_to(receiver, monkeypatch)
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
    _mirror_to(receiver, monkeypatch)
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
    _mirror_to(receiver, monkeypatch)
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
        assert _sample(bridge, "exesdb_otlp_exported_total", signal="traces") == 0
    finally:
        await bridge.aclose()
    assert receiver.spans == []
    assert receiver.logs == []


async def test_an_exporter_of_none_keeps_its_signal_from_the_collector(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_LOGS_EXPORTER=none and OTEL_METRICS_EXPORTER=none send the collector spans alone,
    EXESDB_OTLP_METRICS and a flush at shutdown notwithstanding."""
    _mirror_to(receiver, monkeypatch)
    monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    bridge = Bridge(load_settings(), registry=CollectorRegistry(), components=SINKS)
    await bridge.start(serve_http=False)
    try:
        bridge.bus.publish("logs", LogEntry(level="error", message="x", module="m", node="n"))
        bridge.bus.publish(
            "store1:health",
            HealthCheck(check_name="ping", node="n", result="pass", duration_ms=1.0),
        )
        await async_wait_until(lambda: receiver.spans, 15, "the span")
    finally:
        await bridge.aclose()  # flushes whatever each signal still holds
    assert [span.name for span in receiver.spans] == ["ping"]
    assert receiver.logs == []
    assert receiver.metrics == []


async def _one_span_exported(receiver: Any) -> None:
    """A bridge of the environment's settings exports one HealthCheck's span to ``receiver``."""
    bridge = Bridge(load_settings(), registry=CollectorRegistry(), components=SINKS)
    await bridge.start(serve_http=False)
    try:
        bridge.bus.publish(
            "store1:health",
            HealthCheck(check_name="ping", node="n", result="pass", duration_ms=1.0),
        )
        await async_wait_until(lambda: receiver.spans, 15, "the span")
    finally:
        await bridge.aclose()
    assert [span.name for span in receiver.spans] == ["ping"]


@pytest.mark.parametrize("compression", ["none", "gzip"])
async def test_the_specification_s_compression_and_a_timeout_in_seconds_export(
    receiver: Any, monkeypatch: pytest.MonkeyPatch, compression: str
) -> None:
    """OTEL_EXPORTER_OTLP_COMPRESSION none (the specification's default, which the SDK's gRPC
    exporter refuses with a traceback) or gzip, and a timeout in seconds, export as usual."""
    _export_to(receiver, monkeypatch)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5")
    await _one_span_exported(receiver)
    if receiver.protocol == "http/protobuf":
        assert receiver.content_encodings == [None if compression == "none" else "gzip"]


async def test_an_endpoint_with_a_stray_blank_around_it_exports(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT with a blank around it (an env file's stray space), which the
    settings trim, is trimmed for the SDK's exporter too: spans reach the collector."""
    _export_to(receiver, monkeypatch)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f" {receiver.endpoint} ")
    await _one_span_exported(receiver)


async def test_alert_sink_webhook_attempts_become_consumer_spans(
    receiver: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Each webhook attempt the alert sink reports on the bus arrives as a 'webhook delivery'
    CONSUMER span, with the HTTP attributes it can know (POST, the receiver's origin,
    error.type)."""
    port = free_port()
    async with _webhook_bridge(
        receiver, monkeypatch, tmp_path, f"http://127.0.0.1:{port}/hooks/secret-token", 100
    ) as bridge:
        bridge.bus.publish("node_failure", _node_down("alert-1"))

        def attempts() -> list[Any]:
            return [
                span
                for span in receiver.spans
                if span.name == "webhook delivery"
                and span.attributes["exesdb.alert_id"] == "alert-1"
            ]

        spans = await async_wait_until(lambda: attempts(), 20, "a webhook delivery span")
        span = spans[0]
        assert span.kind == SPAN_KIND_CONSUMER
        assert span.status_code == STATUS_ERROR
        assert span.attributes["exesdb.status"] == "failed"
        assert span.attributes["exesdb.delivery_method"] == "webhook"
        assert span.attributes["exesdb.recipient"].startswith("http://127.0.0.1:")
        assert span.attributes["http.request.method"] == "POST"
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == port
        assert span.attributes["url.full"] == f"http://127.0.0.1:{port}/…"
        assert span.attributes["error.type"] == "_OTHER"
        assert "secret-token" not in repr(span.attributes)


async def test_webhook_requests_are_http_client_spans_with_the_http_conventions(
    receiver: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, webhook_receiver
) -> None:
    """Each webhook request is a POST CLIENT span with its real duration, the HTTP client
    conventions (method, server address and port, redacted url.full, status code, error.type)
    and the delivery's id; a 503 is an error, the retried 200 is not."""
    hook = webhook_receiver()
    hook.script(503)
    url = hook.url.replace("http://", "http://bridge:secret-password@") + "?token=secret-token"
    # Only the two sinks: no collector raises alerts of its own.
    async with _webhook_bridge(
        receiver, monkeypatch, tmp_path, url, 50, components=[otlp_component, alert_sink]
    ) as bridge:
        bridge.bus.publish("node_failure", _node_down("alert-2"))

        def requests() -> list[Any]:
            return [span for span in receiver.spans if span.name == "POST"]

        failed, delivered = await async_wait_until(
            lambda: len(requests()) >= 2 and requests(), 20, "two webhook request spans"
        )
        await async_wait_until(
            lambda: sum(span.name == "webhook delivery" for span in receiver.spans) >= 2,
            20,
            "the spans of the NotificationStatus messages of both attempts",
        )
    for span in (failed, delivered):
        assert span.kind == SPAN_KIND_CLIENT
        assert span.end_ns > span.start_ns
        assert span.attributes["http.request.method"] == "POST"
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == hook.port
        # The conventions' form: url.full holds neither the user nor the password.
        assert span.attributes["url.full"] == f"http://REDACTED:REDACTED@127.0.0.1:{hook.port}/…"
        assert "secret" not in repr(span.attributes)
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["error.type"] == "503"
    assert failed.status_code == STATUS_ERROR
    assert delivered.attributes["http.response.status_code"] == 200
    assert "error.type" not in delivered.attributes
    assert delivered.attributes["http.request.resend_count"] == 1
    assert delivered.attributes["exesdb.delivery_id"] == failed.attributes["exesdb.delivery_id"]
    # One CLIENT span per request: the 'webhook delivery' spans of the NotificationStatus
    # messages that tell of them are CONSUMER spans, so span metrics and service graphs built
    # from CLIENT spans count each request once.
    clients = [span for span in receiver.spans if span.kind == SPAN_KIND_CLIENT]
    assert sorted(span.name for span in clients) == ["POST", "POST"]


@asynccontextmanager
async def _posting_to(
    alertmanager: Any, receiver: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> AsyncIterator[Bridge]:
    """A started bridge exporting to ``receiver`` whose alert sink posts to ``alertmanager``."""
    _export_to(receiver, monkeypatch)
    monkeypatch.setenv("EXESDB_ALERTMANAGER_URL", f"http://127.0.0.1:{alertmanager.port}")
    monkeypatch.setenv("EXESDB_STATE_DIR", str(tmp_path))
    bridge = Bridge(
        load_settings(), registry=CollectorRegistry(), components=[otlp_component, alert_sink]
    )
    await bridge.start(serve_http=False)
    try:
        yield bridge
    finally:
        await bridge.aclose()


async def test_an_alertmanager_post_span_never_carries_the_answers_body(
    receiver: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, webhook_receiver
) -> None:
    """A 503 from Alertmanager whose body holds a token and a URL with credentials is an ERROR
    span described as a webhook attempt's is, ``HTTP 503``: the body goes to no OTLP receiver."""
    alertmanager = webhook_receiver(path="/api/v2/alerts")
    alertmanager.script(
        Answer(503, text="down: token=s3cret, see http://admin:hunter2@internal.example/x")
    )
    async with _posting_to(alertmanager, receiver, monkeypatch, tmp_path) as bridge:
        bridge.bus.publish("node_failure", _node_down("alert-4"))
        failed = await async_wait_until(
            lambda: next((s for s in receiver.spans if s.kind == SPAN_KIND_CLIENT), None),
            30,
            "the span of the failed Alertmanager post",
        )
    assert failed.status_code == STATUS_ERROR
    assert failed.status_message == "HTTP 503"
    for secret in ("s3cret", "hunter2", "admin"):
        assert secret not in repr(failed)


async def test_alertmanager_posts_are_http_client_spans_with_the_http_conventions(
    receiver: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, webhook_receiver
) -> None:
    """Each post to Alertmanager is a POST CLIENT span with the same HTTP client conventions as
    a webhook request: a 503 is an error with error.type 503, the retried 200 is not."""
    alertmanager = webhook_receiver(path="/api/v2/alerts")
    alertmanager.script(503)
    async with _posting_to(alertmanager, receiver, monkeypatch, tmp_path) as bridge:
        bridge.bus.publish("node_failure", _node_down("alert-3"))

        def posts() -> list[Any]:
            return [span for span in receiver.spans if span.kind == SPAN_KIND_CLIENT]

        # The retry comes after the poster's first pause, 5 s.
        failed, posted = await async_wait_until(
            lambda: len(posts()) >= 2 and posts()[:2], 30, "two Alertmanager post spans"
        )
    for span in (failed, posted):
        assert span.name == "POST"
        assert span.end_ns > span.start_ns
        assert span.attributes["http.request.method"] == "POST"
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == alertmanager.port
        assert span.attributes["url.full"] == f"http://127.0.0.1:{alertmanager.port}/…"
        assert span.attributes["exesdb.alerts"] == 1
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["error.type"] == "503"
    assert failed.status_code == STATUS_ERROR
    assert posted.attributes["http.response.status_code"] == 200
    assert "error.type" not in posted.attributes
    assert posted.status_code != STATUS_ERROR
