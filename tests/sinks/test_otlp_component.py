"""The OTLP component's wiring: off without an endpoint, light when off, metrics when on."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import socket
import sys
import threading
import time
from concurrent import futures
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.config import load_settings
from bridge.messages import LogEntry
from bridge.sinks.otlp.sink import OtlpSink
from tests.support import async_wait_until, free_port, run_command

_HALF_A_DAY = 43_200.0


def test_idle_bridge_imports_nothing_from_opentelemetry() -> None:
    """Without an OTLP endpoint the sink is absent and no opentelemetry module is loaded."""
    code = (
        "import sys\n"
        "from prometheus_client import CollectorRegistry\n"
        "from bridge.app import Bridge\n"
        "from bridge.config import load_settings\n"
        "bridge = Bridge(load_settings(), registry=CollectorRegistry())\n"
        "assert not [c for c in bridge.components if c.name == 'otlp']\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
    )
    result = run_command([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr


async def test_sink_is_on_with_an_endpoint_and_not_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An endpoint turns the sink on; it is not required and its self-metrics start at zero."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("EXESDB_STATE_DIR", str(tmp_path))  # the bridge starts: not in the cwd
    registry = CollectorRegistry()
    bridge = Bridge(load_settings(), registry=registry)
    [sink] = [c for c in bridge.components if isinstance(c, OtlpSink)]
    assert sink.required is False
    for name in (
        "exesdb_otlp_exported_total",
        "exesdb_otlp_export_failures_total",
        "exesdb_otlp_dropped_total",
        "exesdb_otlp_queue_depth",
    ):
        for signal in ("traces", "logs"):
            assert registry.get_sample_value(name, {"signal": signal}) == 0.0, (name, signal)
    await bridge.start(serve_http=False)
    assert bridge.readiness()["otlp"]["ready"] is True
    await bridge.aclose()


def test_a_signal_endpoint_alone_exports_only_that_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_LOGS_ENDPOINT alone exports logs and no traces."""
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", f"http://127.0.0.1:{free_port()}/v1/logs"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    registry = CollectorRegistry()
    bridge = Bridge(load_settings(), registry=registry)
    assert [c for c in bridge.components if isinstance(c, OtlpSink)]

    def depth(signal: str) -> float | None:
        return registry.get_sample_value("exesdb_otlp_queue_depth", {"signal": signal})

    assert (depth("logs"), depth("traces")) == (0.0, None)


def test_metrics_signal_needs_its_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    """EXESDB_OTLP_METRICS adds a metrics exporter, with its counters shown at zero."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("EXESDB_OTLP_METRICS", "true")
    registry = CollectorRegistry()
    bridge = Bridge(load_settings(), registry=registry)
    assert [c for c in bridge.components if isinstance(c, OtlpSink)]
    assert registry.get_sample_value("exesdb_otlp_exported_total", {"signal": "metrics"}) == 0.0


@pytest.mark.parametrize(
    "switch",
    [
        {"OTEL_SDK_DISABLED": "true"},
        {f"OTEL_{s}_EXPORTER": "none" for s in ("TRACES", "LOGS", "METRICS")},
    ],
)
def test_the_specification_s_off_switches_leave_the_sink_out(
    monkeypatch: pytest.MonkeyPatch, switch: dict[str, str]
) -> None:
    """OTEL_SDK_DISABLED=true, or every OTEL_<SIGNAL>_EXPORTER=none, turns OTLP off with an
    endpoint set, the metrics mirror included."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("EXESDB_OTLP_METRICS", "true")
    for name, value in switch.items():
        monkeypatch.setenv(name, value)
    registry = CollectorRegistry()
    bridge = Bridge(load_settings(), registry=registry)
    assert not [c for c in bridge.components if isinstance(c, OtlpSink)]
    assert registry.get_sample_value("exesdb_otlp_exported_total", {"signal": "metrics"}) is None


def test_an_exporter_of_none_leaves_its_signal_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_LOGS_EXPORTER=none beside the general endpoint exports traces and no logs."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    registry = CollectorRegistry()
    bridge = Bridge(load_settings(), registry=registry)
    assert [c for c in bridge.components if isinstance(c, OtlpSink)]

    def depth(signal: str) -> float | None:
        return registry.get_sample_value("exesdb_otlp_queue_depth", {"signal": signal})

    assert (depth("traces"), depth("logs")) == (0.0, None)


async def test_a_close_cut_short_by_the_stop_deadline_logs_no_asyncio_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The sink's close, cut short by the bridge's stop deadline while an export hangs on a
    collector that never answers, leaves no "exception was never retrieved" error (with a
    traceback) for asyncio to log once the closers are collected."""
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the backlog), never answers
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "10")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")  # the export left behind ends soon
    monkeypatch.setenv("EXESDB_STATE_DIR", str(tmp_path))
    bridge = Bridge(load_settings(), registry=CollectorRegistry())
    [sink] = [c for c in bridge.components if isinstance(c, OtlpSink)]
    try:
        await bridge.start(serve_http=False)
        bridge.bus.publish("logs", LogEntry(level="info", message="m", module="m", node="n"))
        await async_wait_until(
            lambda: (
                bridge.registry.get_sample_value("exesdb_otlp_queue_depth", {"signal": "logs"}) == 0
            ),
            what="the export under way",
        )
        with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(TimeoutError):
            await asyncio.wait_for(sink.aclose(), 0.3)
        gc.collect()
    finally:
        await bridge.aclose()
        # The export left behind, ended before the collector goes: its retries would otherwise
        # be refused, in a thread named as the next test's.
        await async_wait_until(
            lambda: not [t for t in threading.enumerate() if t.name.startswith("otlp-")],
            what="the OTLP threads ended",
        )
        silent.close()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


async def test_readiness_says_the_export_fails_not_the_collector_unreachable_for_a_protocol(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Logs sent over OTLP/HTTP to a gRPC port fail for the protocol, not for want of a
    collector: readiness says the export is failing, since when by the bridge's clock, with
    that cause, not "unreachable"."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))  # no service: HTTP/2 only
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", f"http://127.0.0.1:{port}/v1/logs")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "10")
    # The first attempt's failure is retried once, its cause logged, within it.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2.5")
    monkeypatch.setenv("EXESDB_STATE_DIR", str(tmp_path))
    # The bridge's clock half a day behind the host's (its messages' time inside the window).
    monkeypatch.setenv("EXESDB_REPLAY_WINDOW_MS", "86400000")
    bridge = Bridge(
        load_settings(), registry=CollectorRegistry(), clock=lambda: time.time() - _HALF_A_DAY
    )
    try:
        await bridge.start(serve_http=False)
        bridge.bus.publish("logs", LogEntry(level="info", message="m", module="m", node="n"))
        await async_wait_until(
            lambda: bridge.readiness()["otlp"]["reason"], 20, what="the export failed"
        )
        reason = bridge.readiness()["otlp"]["reason"]
    finally:
        await bridge.aclose()
        server.stop(grace=None)
    said = re.fullmatch(
        r"OTLP export failing: logs: 1 failed export\(s\) in a row since (\S+Z) \(latest: .*",
        reason,
    )
    assert said, reason
    since = datetime.strptime(said[1], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    assert abs(time.time() - _HALF_A_DAY - since) < 60, reason
    assert "(latest: the endpoint answers in HTTP/2, as an OTLP/gRPC port does" in reason
    assert "unreachable" not in reason
