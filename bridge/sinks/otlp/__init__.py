"""The OTLP sink: spans, log records and the bridge's series to an OpenTelemetry collector.

What becomes what: docs/opentelemetry.md.

This package is light: the SDK and its exporters are imported (by ``bridge.sinks.otlp.sink``)
only when ``otlp_component`` finds a signal to export (an OTLP endpoint configured, and not
turned off by ``OTEL_SDK_DISABLED`` or ``OTEL_<SIGNAL>_EXPORTER=none``).
"""

from __future__ import annotations

from bridge.component import Component, Context
from bridge.otlp_settings import otlp_enabled
from bridge.sinks.otlp.batching import BatchSettings, BoundedBatcher
from bridge.sinks.otlp.mapping import LOG_TAGS, SPAN_TAGS, LogSpec, SpanSpec, translate
from bridge.sinks.otlp.metrics import SIGNALS, OtlpMetrics

__all__ = [
    "LOG_TAGS",
    "SIGNALS",
    "SPAN_TAGS",
    "BatchSettings",
    "BoundedBatcher",
    "LogSpec",
    "OtlpMetrics",
    "SpanSpec",
    "otlp_component",
    "translate",
]


def otlp_component(context: Context) -> Component | None:
    """The OTLP sink when a signal is exported (``bridge.otlp_settings.otlp_exports``), else
    None (and nothing OTLP imported)."""
    if not otlp_enabled(context.settings):
        return None
    from bridge.sinks.otlp.sink import OtlpSink

    return OtlpSink.from_context(context)
