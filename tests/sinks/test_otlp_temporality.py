"""The OTLP mirror's sums as the temporality preference asks, over successive exports."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    Gauge,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily

from bridge.sinks.otlp.series import MetricsMirror
from bridge.sinks.prometheus import MetricType, SeriesStore
from tests.support import ManualClock

RESOURCE = Resource.create({"service.name": "test"})
SCOPE = InstrumentationScope("test")
WALL = 1_700_000_000.0
DELTA = AggregationTemporality.DELTA
CUMULATIVE = AggregationTemporality.CUMULATIVE


class NanoClock:
    """Unix nanoseconds that move only when the test moves them: the mirror's ``clock``."""

    def __init__(self, seconds: float) -> None:
        self.now = ns(seconds)

    def __call__(self) -> int:
        return self.now

    def at(self, seconds: float) -> int:
        """Move to ``seconds`` (Unix); the time in nanoseconds."""
        self.now = ns(seconds)
        return self.now


def ns(seconds: float) -> int:
    """Unix ``seconds`` in nanoseconds, as the mirror reads a ``_created`` sample."""
    return int(seconds * 1e9)


class Capturing(ConsoleMetricExporter):
    """An exporter that keeps each export's data and answers ``answer``."""

    def __init__(self) -> None:
        super().__init__(out=io.StringIO())
        self.sent: list[MetricsData] = []
        self.answer = MetricExportResult.SUCCESS

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        self.sent.append(metrics_data)
        return self.answer


class StoreSource:
    """A store as the mirror sees a component with its own exposition."""

    def __init__(self, store: SeriesStore) -> None:
        self.store = store

    def render(self, openmetrics: bool) -> str:
        return self.store.render(openmetrics)

    def collect(self) -> Any:
        return self.store.collect()


class Totals:
    """A registry collector of one counter family whose totals the test sets (no _created)."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("exesdb_test_frames", "Frames.", labels=["stream"])
        for stream, value in self.values.items():
            family.add_metric([stream], value)
        yield family


class Mirror:
    """A running mirror over ``registry`` and ``store``, exported by the test on ``clock``."""

    def __init__(self, mirror: MetricsMirror, exporter: Capturing, clock: NanoClock) -> None:
        self.mirror = mirror
        self.exporter = exporter
        self.clock = clock

    async def export_at(self, seconds: float) -> dict[str, Metric]:
        """Export at Unix ``seconds``; what was sent, by metric name."""
        self.clock.at(seconds)
        await asyncio.to_thread(self.mirror.export_once)
        [resource_metrics] = self.exporter.sent[-1].resource_metrics
        [scope_metrics] = resource_metrics.scope_metrics
        return {metric.name: metric for metric in scope_metrics.metrics}


@asynccontextmanager
async def mirror_of(
    registry: CollectorRegistry, store: SeriesStore | None = None, temporality: str | None = None
) -> AsyncIterator[Mirror]:
    """A mirror started a second after ``WALL``, exporting only when the test asks, with the
    ``temporality`` preference (unset: the default); closed after."""
    clock = NanoClock(WALL + 1)
    exporter = Capturing()
    preference: dict[str, Any] = {"temporality": temporality} if temporality else {}
    mirror = MetricsMirror(
        registry,
        exporter,
        RESOURCE,
        SCOPE,
        lambda count, ok, seconds: None,
        environ={"OTEL_METRIC_EXPORT_INTERVAL": "3600000"},
        expositions=lambda: [StoreSource(store)] if store is not None else [],
        **preference,
        clock=clock,
    )
    mirror.start()
    try:
        yield Mirror(mirror, exporter, clock)
    finally:
        await asyncio.to_thread(mirror.close, 1.0)


def point(metric: Metric, **labels: str) -> NumberDataPoint:
    """The data point of ``metric`` with exactly ``labels``."""
    [found] = [p for p in metric.data.data_points if dict(p.attributes or {}) == labels]
    assert isinstance(found, NumberDataPoint)
    return found


def span(found: NumberDataPoint) -> tuple[int, int, float]:
    """A point's (start, time, value)."""
    return found.start_time_unix_nano, found.time_unix_nano, found.value


def temporality(metric: Metric) -> AggregationTemporality:
    """A sum's temporality."""
    assert isinstance(metric.data, Sum)
    assert metric.data.is_monotonic
    return metric.data.aggregation_temporality


def store_with_counter(clock: ManualClock) -> tuple[SeriesStore, Any]:
    """A store whose series expire 10 s unwritten, dated from ``WALL`` at ``clock``'s 1000."""
    store = SeriesStore(ttl_seconds=10, clock=clock, wall_clock=lambda: WALL)
    counter = store.family("exesdb_test_events", MetricType.COUNTER, "Test events.", ("node",))
    return store, counter


@pytest.mark.parametrize("preference", [None, "cumulative"])
async def test_cumulative_sends_totals_from_one_start(preference: str | None) -> None:
    """Unset or cumulative, each export sends a counter's total as a cumulative sum, started
    at its creation every time."""
    clock = ManualClock(1000.0)
    store, counter = store_with_counter(clock)
    counter.inc(("a",), 3)
    async with mirror_of(CollectorRegistry(), store, preference) as mirror:
        first = (await mirror.export_at(WALL + 2))["exesdb_test_events"]
        counter.inc(("a",), 2)
        second = (await mirror.export_at(WALL + 3))["exesdb_test_events"]
    assert (temporality(first), temporality(second)) == (CUMULATIVE, CUMULATIVE)
    assert span(point(first, node="a")) == (ns(WALL), ns(WALL + 2), 3)
    assert span(point(second, node="a")) == (ns(WALL), ns(WALL + 3), 5)


@pytest.mark.parametrize("preference", ["delta", "lowmemory"])
async def test_delta_sends_each_increase_from_the_previous_export(preference: str) -> None:
    """Under delta (and lowmemory: a Prometheus counter is the specification's Counter), the
    first export sends a counter's total from its creation, each later one the increase since
    the previous export, starting at that export's time (0 when nothing changed); gauges stay
    gauges."""
    clock = ManualClock(1000.0)
    store, counter = store_with_counter(clock)
    counter.inc(("a",), 3)
    store.family("exesdb_test_level", MetricType.GAUGE, "A level.", ("node",)).set(("a",), 0.5)
    async with mirror_of(CollectorRegistry(), store, preference) as mirror:
        first = await mirror.export_at(WALL + 2)
        counter.inc(("a",), 2)
        second = await mirror.export_at(WALL + 3)
        third = await mirror.export_at(WALL + 4)
    events = [sent["exesdb_test_events"] for sent in (first, second, third)]
    assert [temporality(metric) for metric in events] == [DELTA, DELTA, DELTA]
    assert [span(point(metric, node="a")) for metric in events] == [
        (ns(WALL), ns(WALL + 2), 3),
        (ns(WALL + 2), ns(WALL + 3), 2),
        (ns(WALL + 3), ns(WALL + 4), 0),
    ]
    level = third["exesdb_test_level"]
    assert isinstance(level.data, Gauge)
    assert point(level, node="a").value == 0.5


async def test_delta_sends_a_histograms_parts_as_increases() -> None:
    """A histogram's _count, _sum and _bucket go as deltas too: what the interval observed."""
    registry = CollectorRegistry()
    histogram = Histogram("exesdb_test_seconds", "Seconds.", buckets=(0.25, 1.0), registry=registry)
    histogram.observe(0.2)
    async with mirror_of(registry, temporality="delta") as mirror:
        await mirror.export_at(WALL + 2)
        histogram.observe(0.5)
        histogram.observe(0.5)
        sent = await mirror.export_at(WALL + 3)
    assert point(sent["exesdb_test_seconds_count"]).value == 2
    assert point(sent["exesdb_test_seconds_sum"]).value == pytest.approx(1.0)
    buckets = sent["exesdb_test_seconds_bucket"]
    assert temporality(buckets) == DELTA
    assert [point(buckets, le=le).value for le in ("0.25", "1.0", "+Inf")] == [0, 2, 2]
    assert point(buckets, le="1.0").start_time_unix_nano == ns(WALL + 2)


async def test_a_total_that_falls_starts_afresh_from_the_previous_export() -> None:
    """A counter whose total falls (its source restarted) sends its new total as the increase
    since the previous export, never a negative delta; increases go on from there."""
    registry = CollectorRegistry()
    totals = Totals()
    registry.register(totals)
    totals.values["s"] = 10
    async with mirror_of(registry, temporality="delta") as mirror:
        first = point((await mirror.export_at(WALL + 2))["exesdb_test_frames"], stream="s")
        totals.values["s"] = 3
        reset = point((await mirror.export_at(WALL + 3))["exesdb_test_frames"], stream="s")
        totals.values["s"] = 5
        after = point((await mirror.export_at(WALL + 4))["exesdb_test_frames"], stream="s")
    assert span(first) == (ns(WALL + 1), ns(WALL + 2), 10)  # no _created: the mirror's start
    assert span(reset) == (ns(WALL + 2), ns(WALL + 3), 3)
    assert span(after) == (ns(WALL + 3), ns(WALL + 4), 2)


async def test_a_series_gone_and_back_counts_from_its_return() -> None:
    """A counter series that expired from the store and came back sends its whole new total,
    starting when it came back, not its difference from the total before it went."""
    clock = ManualClock(1000.0)
    store, counter = store_with_counter(clock)
    counter.inc(("a",), 5)
    async with mirror_of(CollectorRegistry(), store, "delta") as mirror:
        await mirror.export_at(WALL + 2)
        clock.advance(11)  # past the TTL: the series expires
        assert "exesdb_test_events" not in await mirror.export_at(WALL + 11.5)
        clock.advance(1)
        counter.inc(("a",), 7)
        back = (await mirror.export_at(WALL + 13))["exesdb_test_events"]
    assert temporality(back) == DELTA
    assert span(point(back, node="a")) == (ns(WALL + 12), ns(WALL + 13), 7)


async def test_a_series_gone_and_back_between_two_exports_counts_from_its_return() -> None:
    """A counter series that expired (a scrape dropped it) and came back between two exports,
    above its old total, sends its whole new total from its return: it started anew."""
    clock = ManualClock(1000.0)
    store, counter = store_with_counter(clock)
    counter.inc(("a",), 5)
    async with mirror_of(CollectorRegistry(), store, "delta") as mirror:
        await mirror.export_at(WALL + 2)
        clock.advance(11)  # past the TTL: the next read expires the series
        assert "exesdb_test_events_total" not in store.render()
        clock.advance(1)
        counter.inc(("a",), 7)
        sent = (await mirror.export_at(WALL + 13))["exesdb_test_events"]
    assert temporality(sent) == DELTA
    assert span(point(sent, node="a")) == (ns(WALL + 12), ns(WALL + 13), 7)


async def test_a_series_missing_from_an_export_is_forgotten() -> None:
    """A series absent from an export (its source dropped it) is forgotten: back with a total
    above its old one, all of that total is new since the export it was missing from."""
    registry = CollectorRegistry()
    totals = Totals()
    registry.register(totals)
    totals.values["s"] = 5
    async with mirror_of(registry, temporality="delta") as mirror:
        await mirror.export_at(WALL + 2)
        del totals.values["s"]
        await mirror.export_at(WALL + 3)
        totals.values["s"] = 8
        back = point((await mirror.export_at(WALL + 4))["exesdb_test_frames"], stream="s")
    assert span(back) == (ns(WALL + 3), ns(WALL + 4), 8)


async def test_after_a_failed_export_the_next_carries_the_increase_since_the_last_sent() -> None:
    """An export the collector refused is not taken for sent: the next one carries the whole
    increase since the last export that succeeded, starting at its time."""
    clock = ManualClock(1000.0)
    store, counter = store_with_counter(clock)
    counter.inc(("a",), 3)
    async with mirror_of(CollectorRegistry(), store, "delta") as mirror:
        await mirror.export_at(WALL + 2)
        counter.inc(("a",), 2)
        mirror.exporter.answer = MetricExportResult.FAILURE
        refused = point((await mirror.export_at(WALL + 3))["exesdb_test_events"], node="a")
        counter.inc(("a",), 4)
        mirror.exporter.answer = MetricExportResult.SUCCESS
        sent = point((await mirror.export_at(WALL + 4))["exesdb_test_events"], node="a")
    assert span(refused) == (ns(WALL + 2), ns(WALL + 3), 2)
    assert span(sent) == (ns(WALL + 2), ns(WALL + 4), 6)
