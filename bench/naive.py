"""The naive baseline's sink step: map each message to gauges and ``Gauge.labels().set`` them.

What a straightforward Prometheus exporter does per message, with no caching of label children.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Gauge

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


def naive_sink(registry: CollectorRegistry) -> Callable[[Message], None]:
    """The baseline's sink step: ``Gauge.labels(...).set(...)`` every time."""
    table = gauges(registry)

    def handle(message: Message) -> None:
        for name, labels, value in readings(message):
            table[name].labels(*labels).set(value)

    return handle
