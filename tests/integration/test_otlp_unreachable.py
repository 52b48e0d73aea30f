"""With the collector unreachable the bus keeps flowing, losses are counted, shutdown is bounded."""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.bus import Envelope, new_message_id
from bridge.component import ComponentFactory
from bridge.config import load_settings
from bridge.messages import DebugTrace, LogEntry
from bridge.sinks.otlp import otlp_component
from bridge.sinks.prometheus import prometheus_sink
from tests.integration.servers.otlp import GrpcOtlpReceiver
from tests.support import (
    BridgeProcess,
    async_wait_until,
    free_port,
    http_get,
    post_signed,
    wait_until,
)

pytestmark = pytest.mark.integration

# The sinks without the collectors, so that only the test's messages are exported.
SINKS: list[ComponentFactory] = [prometheus_sink, otlp_component]

MESSAGES = 10_000


def _sample(bridge: Bridge, name: str, **labels: str) -> float:
    return bridge.registry.get_sample_value(name, labels) or 0.0


def _exposed(text: str, name: str, label: str) -> float:
    """The summed value of ``name`` series carrying ``label`` (e.g. 'level="info"')."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and label in line:
            total += float(line.rsplit(" ", 1)[-1])
    return total


def _log_entries(bridge: Bridge) -> float:
    text = bridge.render_metrics("text/plain")[0].decode()
    return _exposed(text, "exesdb_log_entries_total", 'level="info"')


@pytest.fixture(params=["grpc", "http/protobuf"])
async def bridge(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Bridge]:
    """A bridge whose OTLP endpoint is a closed port, with small OTLP queues."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", request.param)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("EXESDB_OTLP_QUEUE_SIZE", "100")
    monkeypatch.setenv("EXESDB_SHUTDOWN_TIMEOUT_MS", "2000")  # the sink gets 1 s to close
    bridge = Bridge(load_settings(), registry=CollectorRegistry(), components=SINKS)
    await bridge.start(serve_http=False)
    yield bridge
    await bridge.aclose()


async def test_publishing_ten_thousand_messages_is_not_held_up(bridge: Bridge) -> None:
    """10 000 messages publish promptly; other subscribers see them all; OTLP losses are counted."""
    seen: list[Any] = []
    bridge.bus.subscribe("prometheus-stand-in", seen.append)
    started = time.monotonic()
    for index in range(MESSAGES):
        if index % 2:
            bridge.bus.publish(
                "logs", LogEntry(level="info", message=f"m{index}", module="m", node="n")
            )
        else:
            bridge.bus.publish("diag", DebugTrace(component="c", operation="op", node="n"))
    published = time.monotonic() - started
    assert published < 10, f"publishing took {published:.1f}s"

    await async_wait_until(lambda: len(seen) == MESSAGES, 20, "the other subscriber")
    await async_wait_until(
        lambda: _log_entries(bridge) == MESSAGES / 2, 20, "the Prometheus sink's log counter"
    )
    assert (
        _sample(bridge, "exesdb_bus_published_total", pubsub="ex_esdb_logging", tag="log_entry")
        == MESSAGES / 2
    )
    assert _sample(bridge, "exesdb_bus_dropped_total", subscriber="otlp") == 0
    await async_wait_until(
        lambda: all(
            _sample(bridge, "exesdb_otlp_export_failures_total", signal=s) > 0
            for s in ("traces", "logs")
        ),
        20,
        "counted export failures",
    )
    assert _sample(bridge, "exesdb_otlp_dropped_total", signal="traces") > 0
    assert _sample(bridge, "exesdb_otlp_dropped_total", signal="logs") > 0
    assert _sample(bridge, "exesdb_otlp_exported_total", signal="logs") == 0
    check = bridge.readiness()["otlp"]
    assert check["required"] is False
    assert check["reason"].startswith("OTLP export failing: "), check
    failed = [op for op in bridge.integration.recorder.drain() if op.operation == "otlp.export"]
    assert failed
    assert failed[0].failed > 0

    started = time.monotonic()
    await bridge.aclose()
    assert time.monotonic() - started < 3
    for signal in ("traces", "logs"):
        lost = _sample(bridge, "exesdb_otlp_dropped_total", signal=signal) + _sample(
            bridge, "exesdb_otlp_export_failures_total", signal=signal
        )
        assert lost == MESSAGES / 2, signal


def _ingest_body(count: int) -> bytes:
    now = datetime.now(UTC)
    lines = [
        Envelope(
            new_message_id(),
            "ex_esdb_logging",
            "logs",
            "log_entry",
            "node1",
            now,
            LogEntry(level="error", message=f"line {index}", module="m", node="node1"),
            now.timestamp(),
        ).to_bytes()
        for index in range(count)
    ]
    return b"\n".join(lines) + b"\n"


def _exporting(
    tmp_path: Path, bridge_processes: list[BridgeProcess], endpoint: str, **env: str
) -> BridgeProcess:
    """A bridge process started with ingest on, exporting to ``endpoint``, its log records
    batched every 50 ms (``env`` adds settings)."""
    # Typed Any: mypy cannot tell these apart from BridgeProcess's keyword-only options.
    settings: dict[str, Any] = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BLRP_SCHEDULE_DELAY": "50",
        "EXESDB_INGEST": "true",
        **env,
    }
    process = BridgeProcess(**settings)
    bridge_processes.append(process)
    process.start(tmp_path)
    return process


def _said_then_failing(process: BridgeProcess, start_up: str, warning: str) -> None:
    """The process's log gives ``start_up`` and, once a batch is ingested, ``warning``."""
    wait_until(lambda: start_up in process.log(), 10, "the start-up line naming the endpoint")
    post_signed(process.url, _ingest_body(3))
    wait_until(lambda: warning in process.log(), 30, "the warning naming the endpoint")


def test_bridge_process_stops_within_ten_seconds_with_collector_unreachable(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """``exesdb-bridge run`` stays ready and exits on SIGTERM within 10 s while exports retry."""
    process = _exporting(
        tmp_path, bridge_processes, f"http://127.0.0.1:{free_port()}", EXESDB_OTLP_QUEUE_SIZE="100"
    )
    post_signed(process.url, _ingest_body(1000))

    def exposed(name: str, label: str) -> float:
        return _exposed(http_get(process.url + "/metrics")[1].decode(), name, label)

    wait_until(
        lambda: exposed("exesdb_log_entries_total", 'level="error"') == 1000,
        10,
        "the Prometheus sink's log counter",
    )
    wait_until(
        lambda: exposed("exesdb_otlp_dropped_total", 'signal="logs"') > 0, 10, "counted drops"
    )
    status, _ = http_get(process.url + "/readyz")
    assert status == 200

    started = time.monotonic()
    code = process.stop(timeout=10)
    elapsed = time.monotonic() - started
    assert code == 0, process.log()
    assert elapsed < 10, f"shutdown took {elapsed:.1f}s"


def test_an_unreachable_collector_is_told_once_per_signal_not_per_retry(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """`exesdb-bridge run` with the collector down logs one warning per signal that fails, and
    none of the SDK exporters' own per-retry lines."""
    process = _exporting(
        tmp_path,
        bridge_processes,
        f"http://127.0.0.1:{free_port()}",
        OTEL_BSP_SCHEDULE_DELAY="50",
        # Each export gives up after 3 s (SDK default 10 s), retrying once or twice meanwhile.
        OTEL_EXPORTER_OTLP_TIMEOUT="3",
    )
    for _ in range(3):
        post_signed(process.url, _ingest_body(20))

    def failed_exports() -> float:
        text = http_get(process.url + "/metrics")[1].decode()
        return _exposed(text, "exesdb_otlp_export_failures_total", 'signal="logs"')

    wait_until(lambda: failed_exports() >= 60, 30, "every ingested log record's export failed")
    assert process.stop() == 0
    log = process.log()
    assert len(re.findall(r"OTLP logs export to \S+ failing:", log)) == 1, log
    assert "opentelemetry.exporter" not in log, log


def test_over_http_the_log_says_where_otlp_goes_and_that_the_connection_was_refused(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """Over http/protobuf with nothing listening, the start-up line names the signals, endpoint
    and protocol, and the failure warning names the endpoint and the refused connection."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    process = _exporting(
        tmp_path,
        bridge_processes,
        endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_TIMEOUT="2",  # the export gives up after 2 s of retries
    )
    _said_then_failing(
        process,
        f"OTLP export: traces, logs → {endpoint} (http/protobuf)",
        f"OTLP logs export to {endpoint} failing: connection refused: nothing listens at the"
        " endpoint: start the collector, or set OTEL_EXPORTER_OTLP_ENDPOINT to where it"
        " listens; ",
    )
    assert "next report within 60 s)" in process.log()
    assert process.stop() == 0


def test_a_signal_with_its_own_endpoint_answered_404_is_told_to_check_that_variable(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """Logs sent to their own endpoint (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT), where a real web
    server answers 404: the warning names that variable as the one to check, not the general
    one, and calls the server likely no collector's /v1/logs, not surely none."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        logs = f"http://127.0.0.1:{server.server_port}/v1/logs"
        process = _exporting(
            tmp_path,
            bridge_processes,
            f"http://127.0.0.1:{free_port()}",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=logs,
        )
        _said_then_failing(
            process,
            f"logs → http://127.0.0.1:{server.server_port}/… (http/protobuf)",
            f"OTLP logs export to http://127.0.0.1:{server.server_port}/… failing: HTTP 404 (Not"
            " Found): the URL is likely not an OTLP collector's /v1/logs: check"
            " OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, its port (4318 for OTLP/HTTP, 4317 for gRPC) and"
            " its path (/v1/logs); ",
        )
        assert process.stop() == 0
    finally:
        server.shutdown()
        server.server_close()


class _NotFound(http.server.BaseHTTPRequestHandler):
    """A web server answering every POST 404, as one at a wrong URL does."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_a_grpc_endpoint_without_a_scheme_is_named_as_given_and_said_to_be_dialled_with_tls(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """A gRPC endpoint given as host:port, which the exporter dials with TLS, against a
    plaintext collector: a warning at start says it has no scheme and is dialled with TLS, the
    start-up line names it as given with TLS, the failure warning names it, and gRPC's own
    lines about each failed handshake stay out of the log."""
    collector = GrpcOtlpReceiver().start()
    try:
        endpoint = f"127.0.0.1:{collector.port}"
        process = _exporting(
            tmp_path,
            bridge_processes,
            endpoint,
            OTEL_EXPORTER_OTLP_TIMEOUT="2",  # the export gives up after 2 s of retries
        )
        warning = f"OTLP logs export to {endpoint} failing: "
        _said_then_failing(process, f"OTLP export: traces, logs → {endpoint} (grpc, TLS)", warning)
        assert process.stop() == 0
        log = process.log()
        assert "TLS handshake failed: the endpoint answers without TLS" in log.split(warning)[1]
        assert (
            f" WARNING bridge.app: OTEL_EXPORTER_OTLP_ENDPOINT {endpoint} has no scheme, so the"
            " grpc exporter dials it with TLS"
        ) in log.split("OTLP export: ", 1)[0], log
        assert "ssl_transport_security" not in log, log
    finally:
        collector.stop()


def test_a_stop_while_an_export_retries_logs_no_warning(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """Stopped while the SDK retries an export (default 10 s of retries), the bridge says at
    INFO that the records were not sent, and warns of no failure."""
    process = _exporting(
        tmp_path,
        bridge_processes,
        f"http://127.0.0.1:{free_port()}",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
    )
    post_signed(process.url, _ingest_body(3))
    assert process.stop() == 0
    log = process.log()
    assert re.search(
        r"OTLP logs: \d+ record\(s\) not sent: the bridge stopped while their export was being"
        r" retried",
        log,
    )
    assert "WARNING" not in log, log


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_stop_while_the_last_metrics_export_retries_logs_no_warning(
    tmp_path: Path, bridge_processes: list[BridgeProcess], protocol: str
) -> None:
    """The metrics mirror's last export at shutdown, retried until the exporter's shutdown cuts
    it short, is said at INFO as the bridge stopping, as the other signals' are: no warning."""
    process = _exporting(
        tmp_path,
        bridge_processes,
        f"http://127.0.0.1:{free_port()}",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        EXESDB_OTLP_METRICS="true",
    )
    assert process.stop() == 0
    log = process.log()
    assert re.search(
        r"OTLP metrics: \d+ record\(s\) not sent: the bridge stopped while their export was being"
        r" retried",
        log,
    )
    assert log.count("WARNING") == 0, log
