"""What the simulated nodes report about their work (``ex_esdb_metrics``).

Per store and operation: a ThroughputMetric for the operations that succeeded and one (topic
ending ``:error``) for those that failed, the six LatencyMetric percentiles and a MetricAlert
when p99 is slow; per store a few PerformanceMetrics, and the node's GC pauses.
"""

from __future__ import annotations

import math
from typing import Final

from bridge.messages import LatencyMetric, MetricAlert, PerformanceMetric, ThroughputMetric
from collectors.demo.state import Build, ClusterState, Pairs, SimNode

__all__ = ["node_metrics"]

# Operation → (base p50 latency in ms, mean operations per second per store and node).
_OPERATIONS: Final[dict[str, tuple[float, float]]] = {
    "stream_append": (2.5, 180.0),
    "stream_read": (0.9, 420.0),
    "persistence_flush": (14.0, 6.0),
    "emitter_broadcast": (1.4, 160.0),
    "subscription_ack": (0.6, 90.0),
}
_PERCENTILES: Final = ("p50", "p95", "p99", "min", "max", "avg")
_LATENCY_ALERT_MS: Final = 400.0


def node_metrics(state: ClusterState, build: Build, node: SimNode, elapsed: float) -> Pairs:
    """An up node's figures over the ``elapsed`` seconds since the previous step."""
    rng = state.rng
    out: Pairs = []
    # A busy node is slower; now and then an operation spikes.
    slowdown = 1 + max(node.cpu - 60, 0) / 10
    for store in state.stores:
        for operation, (base_ms, rate) in _OPERATIONS.items():
            count = max(0, round(rng.gauss(rate, rate * 0.15) * elapsed))
            # Failed operations travel on a topic ending ":error" (result="error"); the others
            # succeeded, at a rate over them all, as the throughput collector reports them.
            error_rate = 0.002 if node.status == "healthy" else 0.03
            errors = round(count * error_rate * rng.uniform(0, 2))
            out.append(
                (
                    "metrics",
                    build(
                        ThroughputMetric,
                        operation=f"{store}.{operation}",
                        count=count - errors,
                        duration_ms=elapsed * 1000,
                        rate_per_sec=count / elapsed,
                        node=node.name,
                    ),
                )
            )
            out.append(
                (
                    "metrics:error",
                    build(
                        ThroughputMetric,
                        operation=f"{store}.{operation}",
                        count=errors,
                        duration_ms=elapsed * 1000,
                        node=node.name,
                    ),
                )
            )
            if operation == "stream_append":
                node.events_stored[store] += count - errors
            spike = 12.0 if rng.random() < 0.01 else 1.0
            p50 = base_ms * slowdown * spike * rng.uniform(0.85, 1.15)
            sigma = 0.6
            latencies = {
                "p50": p50,
                "p95": p50 * math.exp(1.645 * sigma),
                "p99": p50 * math.exp(2.326 * sigma),
                "min": p50 * rng.uniform(0.2, 0.4),
                "avg": p50 * math.exp(sigma * sigma / 2),
            }
            latencies["max"] = latencies["p99"] * rng.uniform(1.2, 2.0)
            for percentile in _PERCENTILES:
                out.append(
                    (
                        "metrics",
                        build(
                            LatencyMetric,
                            operation=f"{store}.{operation}",
                            latency_ms=round(latencies[percentile], 4),
                            percentile=percentile,
                            sample_count=count,
                            node=node.name,
                        ),
                    )
                )
            if latencies["p99"] > _LATENCY_ALERT_MS:
                out.append(
                    (
                        "metrics",
                        build(
                            MetricAlert,
                            metric_name=f"{store}.{operation}.latency_p99_ms",
                            current_value=round(latencies["p99"], 2),
                            threshold_value=_LATENCY_ALERT_MS,
                            threshold_type="max",
                            severity="warning",
                            node=node.name,
                        ),
                    )
                )
        for name, value, unit in (
            ("events_stored", node.events_stored[store], "count"),
            ("persistence_queue_length", max(0, round(rng.gauss(node.cpu / 4, 3))), "count"),
            ("emitter_pool_size", 8, "count"),
        ):
            out.append(
                (
                    "metrics",
                    build(
                        PerformanceMetric,
                        metric_name=name,
                        value=value,
                        unit=unit,
                        node=node.name,
                        component=store,
                        tags={"store_id": store},
                    ),
                )
            )
    out.append(
        (
            "metrics",
            build(
                PerformanceMetric,
                metric_name="gc_pause_ms",
                value=round(rng.uniform(0.1, 2.0) * slowdown, 3),
                unit="ms",
                node=node.name,
                component="beam",
                tags={},
            ),
        )
    )
    return out
