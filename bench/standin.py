"""A minimal Prometheus sink, used by the bus benchmark when ``bridge.sinks.prometheus`` is absent.

It does what any such sink must: map each message to a gauge and set it, with the labelled
children cached per (message type, labels). The naive baseline does the same work uncached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from prometheus_client import CollectorRegistry, Gauge

from bridge.bus import Envelope
from bridge.messages import (
    LatencyMetric,
    Message,
    NodeHealth,
    PerformanceMetric,
    ResourceUsage,
    ThroughputMetric,
)

NODE_HEALTH: Final = ("healthy", "degraded", "unhealthy", "unknown")


def readings(message: Message) -> list[tuple[str, tuple[str, ...], float]]:
    """(gauge name, label values, value) for the benchmark's message types."""
    if isinstance(message, ResourceUsage):
        return [(f"resource_{message.resource_type}", (message.node,), message.usage_percent)]
    if isinstance(message, NodeHealth):
        return [
            ("node_health_status", (message.node, status), float(status == message.status))
            for status in NODE_HEALTH
        ]
    if isinstance(message, PerformanceMetric):
        return [
            (
                "performance_value",
                (message.node, message.component, message.metric_name, message.unit),
                message.value,
            )
        ]
    if isinstance(message, ThroughputMetric):
        return [("operation_rate", (message.node, message.operation), message.rate_per_sec)]
    if isinstance(message, LatencyMetric):
        return [
            (
                "operation_latency",
                (message.node, message.operation, message.percentile),
                message.latency_ms / 1000,
            )
        ]
    return []


_LABELS: Final = {
    "resource_cpu": ("node",),
    "resource_memory": ("node",),
    "resource_disk": ("node",),
    "resource_network": ("node",),
    "node_health_status": ("node", "status"),
    "performance_value": ("node", "component", "metric", "unit"),
    "operation_rate": ("node", "operation"),
    "operation_latency": ("node", "operation", "quantile"),
}


def gauges(registry: CollectorRegistry) -> dict[str, Gauge]:
    """The gauges both the stand-in sink and the naive baseline set."""
    return {
        name: Gauge(f"exesdb_bench_{name}", name, list(labels), registry=registry)
        for name, labels in _LABELS.items()
    }


class StandInSink:
    """Subscribes to the bus and sets cached gauge children."""

    name = "prometheus-standin"

    def __init__(self, registry: CollectorRegistry) -> None:
        self._gauges = gauges(registry)
        self._children: dict[tuple[str, tuple[str, ...]], Callable[[float], None]] = {}
        self.handled = 0

    def handle(self, envelope: Envelope) -> None:
        """Set the gauges for one message."""
        for name, labels, value in readings(envelope.payload):
            key = (name, labels)
            setter = self._children.get(key)
            if setter is None:
                setter = self._children[key] = self._gauges[name].labels(*labels).set
            setter(value)
        self.handled += 1


def naive_sink(registry: CollectorRegistry) -> Callable[[Message], None]:
    """The baseline's sink step: ``Gauge.labels(...).set(...)`` every time."""
    table = gauges(registry)

    def handle(message: Message) -> None:
        for name, labels, value in readings(message):
            table[name].labels(*labels).set(value)

    return handle


def count_handled(counter: list[int]) -> Callable[[Any], None]:
    """A handler that only counts (to wait for a real sink's queue to drain)."""

    def handle(envelope: Any) -> None:
        counter[0] += 1

    return handle
