"""End to end against real OTLP receivers: the bridge's messages as spans and log records.

The /metrics series mirrored as OTLP metrics are in ``test_otlp_metrics.py``, the alert
deliveries' spans in ``test_otlp_delivery_spans.py``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bridge import __version__
from bridge.app import Bridge
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
from tests.integration.otlp_support import (
    SINKS,
    SPAN_KIND_CONSUMER,
    STATUS_ERROR,
    STATUS_OK,
    export_to,
    mirror_to,
    receiver,
    sample,
)
from tests.integration.servers.otlp import GrpcOtlpReceiver
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["receiver"]  # the fixture, imported for the tests below


@pytest.fixture
async def bridge(receiver: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bridge]:
    """A bridge exporting to ``receiver`` with short batch delays."""
    export_to(receiver, monkeypatch)
    monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
    monkeypatch.setenv("EXESDB_NODE", "node1@host")
    bridge = Bridge(load_settings(), registry=CollectorRegistry(), components=SINKS)
    await bridge.start(serve_http=False)
    yield bridge
    await bridge.aclose()


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
            sample(bridge, "exesdb_otlp_exported_total", signal="traces") == 5
            and sample(bridge, "exesdb_otlp_exported_total", signal="logs") == 6
        ),
        10,
        "export counters",
    )
    assert sample(bridge, "exesdb_otlp_export_failures_total", signal="traces") == 0
    assert sample(bridge, "exesdb_otlp_dropped_total", signal="logs") == 0
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
        lambda: sample(bridge, "exesdb_otlp_export_failures_total", signal="logs") == 1,
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
    assert sample(bridge, "exesdb_otlp_export_failures_total", signal="logs") == 0
    assert sample(bridge, "exesdb_otlp_export_failures_total", signal="traces") == 0


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
        export_to(receiver, monkeypatch)
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
                    sample(bridge, "exesdb_otlp_exported_total", signal="logs")
                    + sample(bridge, "exesdb_otlp_export_failures_total", signal="logs")
                    == 512
                ),
                30,
                "every record exported or failed",
            )
            assert sample(bridge, "exesdb_otlp_export_failures_total", signal="logs") == 0
        finally:
            await bridge.aclose()
        assert len(receiver.logs) == 512
    finally:
        receiver.stop()


async def test_an_exporter_of_none_keeps_its_signal_from_the_collector(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_LOGS_EXPORTER=none and OTEL_METRICS_EXPORTER=none send the collector spans alone,
    EXESDB_OTLP_METRICS and a flush at shutdown notwithstanding."""
    mirror_to(receiver, monkeypatch)
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
    export_to(receiver, monkeypatch)
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
    export_to(receiver, monkeypatch)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f" {receiver.endpoint} ")
    await _one_span_exported(receiver)
