"""The OTLP sink's self-metrics, registered on the bridge's registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from bridge.settings import OtlpSignal

__all__ = ["SIGNALS", "OtlpMetrics", "Signal"]

Signal = OtlpSignal
SIGNALS: Final[tuple[Signal, ...]] = ("traces", "logs")


class OtlpMetrics:
    """``exesdb_otlp_{exported,export_failures,dropped}_total{signal}`` and the queue depths.

    All three counters count records (spans or log records), so that for each signal
    exported + failed + dropped = records the sink took in (once its queues are empty).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.exported = Counter(
            "exesdb_otlp_exported",
            "Spans, log records and metric data points the OTLP collector accepted, by signal.",
            ["signal"],
            registry=registry,
        )
        self.export_failures = Counter(
            "exesdb_otlp_export_failures",
            "Records lost because their OTLP export failed after the exporter's retries, by "
            "signal.",
            ["signal"],
            registry=registry,
        )
        self.dropped = Counter(
            "exesdb_otlp_dropped",
            "Spans and log records dropped before OTLP export (queue full or shutting down), by "
            "signal.",
            ["signal"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "exesdb_otlp_queue_depth",
            "Spans and log records waiting for OTLP export, by signal.",
            ["signal"],
            registry=registry,
        )
        for signal in SIGNALS:
            for family in (self.exported, self.export_failures, self.dropped):
                family.labels(signal)

    def init_signal(self, signal: Signal) -> None:
        """Show ``signal``'s counters at zero before its first export."""
        for family in (self.exported, self.export_failures, self.dropped):
            family.labels(signal)

    def watch_depth(self, signal: Signal, depth: Callable[[], int]) -> None:
        """Read ``signal``'s queue depth from ``depth`` at scrape time."""
        self.queue_depth.labels(signal).set_function(lambda: float(depth()))
