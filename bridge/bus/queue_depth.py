"""``exesdb_bus_queue_depth{subscriber}``: the subscribers' queue depths, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.bus.bus import Bus

__all__ = ["QueueDepthCollector", "register_queue_depth"]


class QueueDepthCollector(Collector):
    """``exesdb_bus_queue_depth{subscriber}``, read from the live queues at scrape time."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "exesdb_bus_queue_depth",
            "Messages waiting in a subscriber's queue.",
            labels=["subscriber"],
        )
        # Several subscriptions may share a name (e.g. every stream client): one series per name.
        depths: dict[str, int] = {}
        for subscription in self._bus.subscriptions:
            depths[subscription.name] = depths.get(subscription.name, 0) + subscription.depth
        for name, depth in depths.items():
            family.add_metric([name], depth)
        yield family


def register_queue_depth(bus: Bus, registry: CollectorRegistry) -> None:
    """Expose the subscribers' queue depths on ``registry``."""
    registry.register(QueueDepthCollector(bus))
