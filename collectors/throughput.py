"""The throughput and latency collector: ``track()``-ed operations, the bus, host I/O.

Every ``EXESDB_METRICS_BROADCAST_INTERVAL`` ms it drains the integration's ``OperationRecorder``
(a bounded histogram per operation) and publishes, per operation, a ThroughputMetric for the
successes (topic ``throughput``, ``rate_per_sec`` over all outcomes), one for the failures when
there were any (topic ``throughput:error``) and six LatencyMetrics (p50, p95, p99, max, min, avg).
The bridge's own work is recorded too: a bus (batch) subscriber times every verified message from
publish to delivery as ``bus.delivery`` and per instance as ``bus.<instance>``. Host disk and
network throughput go out as PerformanceMetrics of component ``host`` in bytes per second.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from bridge.bus import Bus, Envelope
from bridge.component import Context
from bridge.integration import Integration
from bridge.messages import INSTANCES, LatencyMetric, PerformanceMetric, ThroughputMetric
from bridge.operations import OperationSnapshot
from collectors.host import HostProbe, IoCounters, PsutilProbe
from collectors.scheduler import CollectorMetrics, Schedule

__all__ = ["BUS_DELIVERY", "BUS_SUBSCRIBER", "ThroughputCollector", "throughput_collector"]

BUS_DELIVERY: Final = "bus.delivery"
BUS_SUBSCRIBER: Final = "collectors.bus"
_PERCENTILES: Final = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("min", 0.0), ("max", 1.0))
_IO_METRICS: Final = (
    ("disk_read_bytes", "disk_read_bytes_per_second"),
    ("disk_write_bytes", "disk_write_bytes_per_second"),
    ("net_received_bytes", "network_receive_bytes_per_second"),
    ("net_sent_bytes", "network_transmit_bytes_per_second"),
)


class ThroughputCollector:
    """Publishes operation throughput and latency, and host I/O rates, on a schedule."""

    name = "throughput_collector"
    required = False

    def __init__(
        self,
        integration: Integration,
        *,
        bus: Bus | None = None,
        probe: HostProbe | None = None,
        interval_seconds: float = 60.0,
        metrics: CollectorMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._integration = integration
        self._recorder = integration.recorder
        self._probe = probe
        self._clock = clock
        self._wall_clock = wall_clock
        self._last_drain = clock()
        self._last_io: IoCounters | None = probe.io() if probe is not None else None
        self._operations: Final = {
            instance: (BUS_DELIVERY, f"bus.{instance}") for instance in INSTANCES
        }
        if bus is not None:
            # A batch subscriber: one call, one clock read and one lock per batch, not per message.
            bus.subscribe(BUS_SUBSCRIBER, self.on_batch, batch=True)
        self.schedule = Schedule(
            "throughput",
            interval_seconds,
            self.collect,
            enabled=integration.enabled,
            first_at_once=False,
            metrics=metrics,
            clock=clock,
            sleep=sleep,
        )

    def on_batch(self, envelopes: Sequence[Envelope]) -> None:
        """Record a delivered batch's publish-to-delivery latencies, the batch's handling being
        the delivery instant of each of its messages."""
        now = self._wall_clock()
        record, operations = self._recorder.record_each, self._operations
        # Tallied in C, then recorded. A batch's envelopes mostly share one timestamp: then its
        # instances alone are tallied, cheaper than (instance, time) pairs, a tuple each (the
        # times only told apart first, in a set: nothing counted).
        times = {envelope.unix_ts for envelope in envelopes}
        if len(times) == 1:
            latency = now - next(iter(times))
            latency = latency if latency > 0.0 else 0.0
            for instance, count in Counter([envelope.instance for envelope in envelopes]).items():
                record(operations[instance], latency, count)
            return
        pairs = [(envelope.instance, envelope.unix_ts) for envelope in envelopes]
        for (instance, unix_ts), count in Counter(pairs).items():
            latency = now - unix_ts
            record(operations[instance], latency if latency > 0.0 else 0.0, count)

    async def start(self) -> None:
        """Start the schedule; the first collection covers the first interval (the host I/O
        counters read again now: the bytes the bridge's start moved are no part of it)."""
        self._last_drain = self._clock()
        if self._probe is not None:
            self._last_io = self._probe.io()
        self.schedule.start()

    def readiness(self) -> str | None:
        """Never holds up readiness."""
        return None

    async def aclose(self) -> None:
        """Stop the schedule; idempotent."""
        await self.schedule.aclose()

    # -- one collection --

    def collect(self) -> None:
        """Drain the recorder and read host I/O; publish the interval's figures."""
        now = self._clock()
        elapsed = max(now - self._last_drain, 1e-3)
        self._last_drain = now
        for snapshot in self._recorder.drain():
            self._publish_operation(snapshot, elapsed)
        self._publish_io(elapsed)

    def _publish(self, topic: str, model: Any, **fields: Any) -> None:
        self._integration.publish(topic, self._integration.build(model, **fields))

    def _publish_operation(self, snapshot: OperationSnapshot, elapsed: float) -> None:
        duration_ms = elapsed * 1000
        self._publish(
            "throughput",
            ThroughputMetric,
            operation=snapshot.operation,
            count=snapshot.succeeded,
            duration_ms=duration_ms,
            rate_per_sec=snapshot.count / elapsed,
        )
        if snapshot.failed:
            self._publish(
                "throughput:error",
                ThroughputMetric,
                operation=snapshot.operation,
                count=snapshot.failed,
                duration_ms=duration_ms,
                rate_per_sec=snapshot.failed / elapsed,
            )
        latency = snapshot.latency
        if not latency.count:
            return
        figures = [(name, latency.quantile(q)) for name, q in _PERCENTILES]
        figures.append(("avg", latency.mean))
        for percentile, seconds in figures:
            self._publish(
                "latency",
                LatencyMetric,
                operation=snapshot.operation,
                latency_ms=seconds * 1000,
                percentile=percentile,
                sample_count=latency.count,
            )

    def _publish_io(self, elapsed: float) -> None:
        if self._probe is None:
            return
        current = self._probe.io()
        previous, self._last_io = self._last_io, current
        if previous is None:
            return
        for field, metric in _IO_METRICS:
            before, after = getattr(previous, field), getattr(current, field)
            if before is None or after is None or after < before:
                continue  # no such counter here, or it wrapped / was reset
            self._publish(
                "host",
                PerformanceMetric,
                metric_name=metric,
                value=(after - before) / elapsed,
                unit="bytes_per_second",
                component="host",
            )


def throughput_collector(context: Context) -> ThroughputCollector:
    """The factory ``default_components()`` lists."""
    return ThroughputCollector(
        context.integration,
        bus=context.bus,
        probe=PsutilProbe(),
        interval_seconds=context.settings.metrics_broadcast_interval / 1000,
        metrics=CollectorMetrics.for_registry(context.registry),
    )
