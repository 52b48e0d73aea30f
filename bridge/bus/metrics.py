"""The bus's self-metrics (docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from bridge.bus.envelope import RejectReason

__all__ = ["BusMetrics"]


class BusMetrics:
    """Counters for what the bus published, refused, dropped and failed to handle."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "exesdb_bus_published",
            "Messages published on the bus, by bus instance and message type.",
            ["pubsub", "tag"],
            registry=registry,
        )
        self.rejected = Counter(
            "exesdb_bus_rejected",
            "Messages refused for what they are, by verification or at ingest, by reason (the "
            "refusal's error code).",
            ["reason"],
            registry=registry,
        )
        self.dropped = Counter(
            "exesdb_bus_dropped",
            "Messages dropped, by subscriber: its queue was full, or the transport could not "
            "keep them.",
            ["subscriber"],
            registry=registry,
        )
        self.handler_errors = Counter(
            "exesdb_sink_errors",
            "Messages a subscriber (sink) failed to handle, and the alert sink's failed "
            "background steps, by subscriber.",
            ["subscriber"],
            registry=registry,
        )
        self.waited = Counter(
            "exesdb_bus_waited",
            "Work-queue messages taken past the replay window after waiting in Redis for a "
            "replica.",
            registry=registry,
        )
        for reason in RejectReason:
            self.rejected.labels(reason.value)
        self._rejected_children = {
            reason: self.rejected.labels(reason.value) for reason in RejectReason
        }

    def count_rejection(self, reason: RejectReason) -> None:
        """Increment ``exesdb_bus_rejected_total{reason}``."""
        self._rejected_children[reason].inc()
