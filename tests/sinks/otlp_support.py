"""Helpers for the OTLP metrics mirror tests: a store as a source, its counter, sent points."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import HistogramDataPoint, Metric, NumberDataPoint
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from bridge.sinks.prometheus import MetricType, SeriesStore
from bridge.sinks.prometheus.store import Family
from tests.support import ManualClock

RESOURCE = Resource.create({"service.name": "test"})
SCOPE = InstrumentationScope("test")
# The wall-clock time (Unix seconds) the stores date their series' creation from.
WALL = 1_700_000_000.0


class StoreSource:
    """A store as the mirror sees a component with its own exposition."""

    def __init__(self, store: SeriesStore) -> None:
        self.store = store

    def render(self, openmetrics: bool) -> str:
        return self.store.render(openmetrics)

    def collect(self) -> Any:
        return self.store.collect()


def point(metric: Metric, **labels: str) -> NumberDataPoint:
    """The data point of ``metric`` with exactly ``labels``."""
    [found] = [p for p in metric.data.data_points if dict(p.attributes or {}) == labels]
    assert isinstance(found, NumberDataPoint)
    return found


def histogram_point(metric: Metric, **labels: str) -> HistogramDataPoint:
    """The histogram point of ``metric`` with exactly ``labels``."""
    [found] = [p for p in metric.data.data_points if dict(p.attributes or {}) == labels]
    assert isinstance(found, HistogramDataPoint)
    return found


def store_with_counter(clock: ManualClock) -> tuple[SeriesStore, Family]:
    """A store whose series expire 10 s unwritten, dated from ``WALL`` at ``clock``'s time, and
    its counter ``exesdb_test_events`` by ``node``."""
    store = SeriesStore(ttl_seconds=10, clock=clock, wall_clock=lambda: WALL)
    counter = store.family("exesdb_test_events", MetricType.COUNTER, "Test events.", ("node",))
    return store, counter
