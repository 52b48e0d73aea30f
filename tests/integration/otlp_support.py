"""What the OTLP export tests share: a real receiver of each protocol (the ``receiver``
fixture), a bridge's OTLP settings to export to it (its series mirrored too, if asked), the
sinks without the collectors, OTLP's span kinds and statuses, and a self-metric read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.component import ComponentFactory
from bridge.sinks.otlp import otlp_component
from bridge.sinks.prometheus import prometheus_sink
from tests.integration.servers.otlp import GrpcOtlpReceiver, HttpOtlpReceiver

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


def sample(bridge: Bridge, name: str, **labels: str) -> float:
    """The value of ``bridge``'s self-metric sample ``name`` with ``labels``, 0 when it has none."""
    value = bridge.registry.get_sample_value(name, labels)
    return value or 0.0


def export_to(receiver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The OTLP settings of a bridge exporting to ``receiver``, spans batched for 50 ms."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", receiver.protocol)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")


def mirror_to(receiver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``export_to``, and the /metrics series mirrored as OTLP metrics every 100 ms."""
    export_to(receiver, monkeypatch)
    monkeypatch.setenv("EXESDB_OTLP_METRICS", "true")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
