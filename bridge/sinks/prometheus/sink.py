"""The Prometheus sink: a fan-out bus subscriber feeding a ``SeriesStore``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Metric, PlatformCollector, ProcessCollector

from bridge.bus import BatchSubscription, Bus, Envelope
from bridge.component import Context
from bridge.sinks.prometheus.nodes import NodeSummary, node_summaries
from bridge.sinks.prometheus.store import MAX_SERIES, MAX_SERIES_BYTES, SeriesStore
from bridge.sinks.prometheus.translate import Translator

__all__ = ["SUBSCRIBER", "PrometheusSink", "prometheus_sink", "register_process_metrics"]

_logger = logging.getLogger(__name__)

SUBSCRIBER: Final = "prometheus"


class PrometheusSink:
    """Subscribes to all nine instances and keeps their series for ``GET /metrics``."""

    name = SUBSCRIBER
    required = True

    def __init__(
        self,
        bus: Bus,
        *,
        ttl_seconds: float = 600.0,
        max_series: int = MAX_SERIES,
        max_series_bytes: int = MAX_SERIES_BYTES,
        queue_size: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        own_node: str | None = None,
    ) -> None:
        self.store = SeriesStore(
            ttl_seconds=ttl_seconds,
            max_series=max_series,
            max_bytes=max_series_bytes,
            clock=clock,
            own_node=own_node,
            own_write=self._own_write,
        )
        self.translator = Translator(self.store, late_after=bus.late_after)
        self._bus = bus
        self._started = False
        self._closed = False
        # Failures are counted per message, as the bus counts those of a per-message handler.
        self._errors = bus.metrics.handler_errors.labels(SUBSCRIBER)
        # A batch subscriber: one handler call per batch rather than per message (hot path).
        self.subscription: BatchSubscription = bus.subscribe(
            SUBSCRIBER, self.handle_batch, queue_size=queue_size, batch=True
        )

    def _own_write(self) -> bool:
        """Whether the message being translated is one this bridge published (the series cap
        keeps room for those alone)."""
        current = self.translator.current
        return current is not None and self._bus.published_here(current.id)

    def handle_batch(self, envelopes: Sequence[Envelope]) -> None:
        """Translate each message; one that fails is counted in exesdb_sink_errors and skipped."""
        self.translator.handle_batch(envelopes, self._failed)

    def _failed(self, envelope: Envelope) -> None:
        self._errors.inc()
        _logger.exception("subscriber %s failed on %s", SUBSCRIBER, envelope.tag)

    async def start(self) -> None:
        """Nothing to start: the subscription drains with the bus."""
        self._started = True

    def readiness(self) -> str | None:
        """Ready once started and until closed."""
        if self._closed:
            return "the Prometheus sink is closed"
        return None if self._started else "the Prometheus sink has not started"

    def render(self, openmetrics: bool) -> str:
        """The sink's series as exposition text."""
        return self.store.render(openmetrics)

    def collect(self) -> list[Metric]:
        """The sink's series as prometheus_client families (structured, for the OTLP mirror)."""
        return self.store.collect()

    def nodes(self) -> list[NodeSummary]:
        """The cluster's nodes with their health status and resource use (for the status page)."""
        return node_summaries(self.store)

    async def aclose(self) -> None:
        """Stop reporting ready; the bus drains what is queued when it stops."""
        self._closed = True


def register_process_metrics(registry: CollectorRegistry) -> None:
    """``process_*`` and ``python_info`` on ``registry``, unless it has them already.

    prometheus_client's default ``REGISTRY`` has both; a registry only notices a duplicate
    collector when built with ``auto_describe=True``, so what it serves is asked instead.
    """
    present = {family.name for family in registry.collect()}
    if "process_cpu_seconds" not in present:
        ProcessCollector(registry=registry)
    if "python_info" not in present:
        PlatformCollector(registry=registry)


def prometheus_sink(context: Context) -> PrometheusSink:
    """The factory ``default_components()`` lists."""
    settings = context.settings
    register_process_metrics(context.registry)
    return PrometheusSink(
        context.bus,
        ttl_seconds=settings.series_ttl_ms / 1000,
        max_series=settings.max_series,
        max_series_bytes=settings.max_series_bytes,
        own_node=settings.node,
    )
