"""The OTLP mirror's sums and histograms as the temporality preference asks, over exports."""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    Gauge,
    Histogram,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry
from prometheus_client import Histogram as PromHistogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from bridge.sinks.otlp.series import MetricsMirror
from bridge.sinks.otlp.temporality import DeltaSums
from bridge.sinks.prometheus import MetricType, SeriesStore
from tests.sinks.otlp_support import (
    RESOURCE,
    SCOPE,
    WALL,
    StoreSource,
    histogram_point,
    point,
    store_with_counter,
)
from tests.support import ManualClock

DELTA = AggregationTemporality.DELTA
CUMULATIVE = AggregationTemporality.CUMULATIVE
CUMULATIVE_SUM = (CUMULATIVE, True)  # a Sum's temporality and monotonicity


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
    """An exporter that keeps each export's data and answers the next of ``answers``, then
    ``answer``."""

    def __init__(self) -> None:
        super().__init__(out=io.StringIO())
        self.sent: list[MetricsData] = []
        self.answer = MetricExportResult.SUCCESS
        self.answers: list[MetricExportResult] = []

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        self.sent.append(metrics_data)
        return self.answers.pop(0) if self.answers else self.answer


class Totals:
    """A registry collector of one counter family whose totals the test sets (no _created)."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("exesdb_test_frames", "Frames.", labels=["stream"])
        for stream, value in self.values.items():
            family.add_metric([stream], value)
        yield family


class Waits:
    """A registry collector of one histogram family, exesdb_test_wait_seconds by stream, bounds
    0.5 and 1, whose totals (cumulative buckets, the last +Inf, and sum) and ``_created``
    (Unix seconds; unset: none) the test sets."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[tuple[float, float, float], float]] = {}
        self.created: dict[str, float] = {}

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily("exesdb_test_wait_seconds", "Waits.", labels=["stream"])
        for stream, (buckets, total) in self.values.items():
            family.add_metric(
                [stream], list(zip(("0.5", "1.0", "+Inf"), buckets, strict=True)), total
            )
            if stream in self.created:
                labels = {"stream": stream}
                family.add_sample("exesdb_test_wait_seconds_created", labels, self.created[stream])
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


def span(found: NumberDataPoint) -> tuple[int, int, float]:
    """A point's (start, time, value)."""
    return found.start_time_unix_nano, found.time_unix_nano, found.value


def waits(metric: Metric, stream: str = "s") -> tuple[int, int, int, list[int], float | None]:
    """A histogram's point of ``stream``: (start, time, count, bucket counts, sum), its bounds
    checked."""
    found = histogram_point(metric, stream=stream)
    assert list(found.explicit_bounds) == [0.5, 1.0]
    timing = (found.start_time_unix_nano, found.time_unix_nano)
    return (*timing, found.count, list(found.bucket_counts), found.sum)


def histogram_temporality(metric: Metric) -> AggregationTemporality:
    """A histogram's temporality."""
    assert isinstance(metric.data, Histogram)
    return metric.data.aggregation_temporality


def temporality(metric: Metric) -> AggregationTemporality:
    """A sum's temporality."""
    assert isinstance(metric.data, Sum)
    assert metric.data.is_monotonic
    return metric.data.aggregation_temporality


@pytest.mark.parametrize("preference", [None, "cumulative", "lowmemory"])
async def test_cumulative_sends_totals_from_one_start(preference: str | None) -> None:
    """Unset, cumulative or lowmemory (the mirror's counters are observed totals, the
    specification's asynchronous counters, cumulative under lowmemory), each export sends a
    counter's total as a cumulative sum, started at its creation every time."""
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


async def test_delta_sends_each_increase_from_the_previous_export() -> None:
    """Under delta the first export sends a counter's total from its creation, each later one
    the increase since the previous export, starting at that export's time (0 when nothing
    changed); gauges stay gauges."""
    clock = ManualClock(1000.0)
    store, counter = store_with_counter(clock)
    counter.inc(("a",), 3)
    store.family("exesdb_test_level", MetricType.GAUGE, "A level.", ("node",)).set(("a",), 0.5)
    async with mirror_of(CollectorRegistry(), store, "delta") as mirror:
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


@pytest.mark.parametrize("preference", [None, "cumulative", "lowmemory"])
async def test_cumulative_sends_a_histograms_totals_from_one_start(preference: str | None) -> None:
    """Unset, cumulative or lowmemory (the mirror reads the histogram's totals, which it would
    have to remember bucket by bucket to send deltas), each export sends a histogram's totals as
    a cumulative histogram started at its creation."""
    registry = CollectorRegistry()
    waits_source = Waits()
    registry.register(waits_source)
    waits_source.values["s"] = ((1, 2, 3), 4.0)
    waits_source.created["s"] = WALL
    async with mirror_of(registry, temporality=preference) as mirror:
        first = (await mirror.export_at(WALL + 2))["exesdb_test_wait_seconds"]
        waits_source.values["s"] = ((2, 4, 5), 6.5)
        second = (await mirror.export_at(WALL + 3))["exesdb_test_wait_seconds"]
    assert [histogram_temporality(metric) for metric in (first, second)] == [CUMULATIVE] * 2
    assert waits(first) == (ns(WALL), ns(WALL + 2), 3, [1, 1, 1], 4.0)
    assert waits(second) == (ns(WALL), ns(WALL + 3), 5, [2, 2, 1], 6.5)


async def test_delta_sends_a_histograms_buckets_count_and_sum_as_increases() -> None:
    """Under delta a Prometheus histogram goes as one delta histogram: each bucket's, the
    count's and the sum's increase since the previous export (what the interval observed),
    starting at that export's time, the bounds as they are; nothing when nothing was observed."""
    registry = CollectorRegistry()
    histogram = PromHistogram(
        "exesdb_test_seconds", "Seconds.", buckets=(0.25, 1.0), registry=registry
    )
    histogram.observe(0.125)
    async with mirror_of(registry, temporality="delta") as mirror:
        first = (await mirror.export_at(WALL + 2))["exesdb_test_seconds"]
        histogram.observe(0.5)
        histogram.observe(0.75)
        histogram.observe(2.0)
        second = (await mirror.export_at(WALL + 3))["exesdb_test_seconds"]
        third = (await mirror.export_at(WALL + 4))["exesdb_test_seconds"]
    assert [histogram_temporality(m) for m in (first, second, third)] == [DELTA] * 3
    points = [histogram_point(metric) for metric in (first, second, third)]
    assert [
        (found.count, list(found.bucket_counts), found.sum, list(found.explicit_bounds))
        for found in points
    ] == [
        (1, [1, 0, 0], 0.125, [0.25, 1.0]),
        (3, [0, 2, 1], 3.25, [0.25, 1.0]),
        (0, [0, 0, 0], 0.0, [0.25, 1.0]),
    ]
    assert [(found.start_time_unix_nano, found.time_unix_nano) for found in points[1:]] == [
        (ns(WALL + 2), ns(WALL + 3)),
        (ns(WALL + 3), ns(WALL + 4)),
    ]


async def test_a_histogram_back_with_a_later_start_sends_all_of_it_from_its_return() -> None:
    """A histogram series that expired and came back (a later _created) between two exports
    sends all of its new totals from its return, though they are above the old ones; one whose
    count fell (its source restarted) all of its new totals from the previous export: no
    negative bucket, count or sum."""
    registry = CollectorRegistry()
    waits_source = Waits()
    registry.register(waits_source)
    waits_source.values = {"s": ((1, 2, 3), 4.0), "r": ((5, 5, 5), 2.0)}
    waits_source.created["s"] = WALL
    async with mirror_of(registry, temporality="delta") as mirror:
        await mirror.export_at(WALL + 2)
        waits_source.values = {"s": ((2, 4, 6), 9.0), "r": ((0, 1, 1), 0.75)}
        waits_source.created["s"] = WALL + 2.5
        sent = (await mirror.export_at(WALL + 3))["exesdb_test_wait_seconds"]
        waits_source.values = {"s": ((3, 5, 7), 10.0), "r": ((1, 2, 2), 1.0)}
        after = (await mirror.export_at(WALL + 4))["exesdb_test_wait_seconds"]
    assert histogram_temporality(sent) == DELTA
    assert waits(sent) == (ns(WALL + 2.5), ns(WALL + 3), 6, [2, 2, 2], 9.0)
    assert waits(sent, "r") == (ns(WALL + 2), ns(WALL + 3), 1, [0, 1, 0], 0.75)
    assert waits(after) == (ns(WALL + 3), ns(WALL + 4), 1, [1, 0, 0], 1.0)
    assert waits(after, "r") == (ns(WALL + 3), ns(WALL + 4), 1, [1, 0, 0], 0.25)


async def test_after_a_failed_export_a_histogram_carries_its_increase_since_the_last_sent() -> None:
    """An export of a histogram the collector refused is not taken for sent: the next one
    carries each bucket's whole increase since the last export that succeeded, from its time."""
    registry = CollectorRegistry()
    waits_source = Waits()
    registry.register(waits_source)
    waits_source.values["s"] = ((1, 1, 1), 0.25)
    async with mirror_of(registry, temporality="delta") as mirror:
        await mirror.export_at(WALL + 2)
        waits_source.values["s"] = ((2, 2, 3), 3.5)
        mirror.exporter.answer = MetricExportResult.FAILURE
        refused = (await mirror.export_at(WALL + 3))["exesdb_test_wait_seconds"]
        waits_source.values["s"] = ((2, 4, 5), 6.5)
        mirror.exporter.answer = MetricExportResult.SUCCESS
        sent = (await mirror.export_at(WALL + 4))["exesdb_test_wait_seconds"]
    assert waits(refused) == (ns(WALL + 2), ns(WALL + 3), 2, [1, 0, 1], 3.25)
    assert waits(sent) == (ns(WALL + 2), ns(WALL + 4), 4, [1, 2, 1], 6.25)


@pytest.mark.parametrize("odd", [math.inf, math.nan])
async def test_a_histogram_whose_sum_is_not_finite_sends_its_counts_as_deltas_without_a_sum(
    odd: float,
) -> None:
    """A histogram whose sum became +Inf or NaN still sends its count and buckets as their
    increase since the previous export, from its time, so that they add up to its totals; its
    sum, which has no finite increase, is left out; once reset to a finite sum, it is sent
    again."""
    registry = CollectorRegistry()
    waits_source = Waits()
    registry.register(waits_source)
    waits_source.values["s"] = ((1, 1, 1), 0.25)
    async with mirror_of(registry, temporality="delta") as mirror:
        sent = []
        for step, values in enumerate(
            [((1, 1, 1), 0.25), ((1, 1, 2), odd), ((1, 1, 4), odd), ((0, 1, 1), 0.75)], start=2
        ):
            waits_source.values["s"] = values
            sent.append((await mirror.export_at(WALL + step))["exesdb_test_wait_seconds"])
    assert [histogram_temporality(metric) for metric in sent] == [DELTA] * 4
    assert [waits(metric) for metric in sent] == [
        (ns(WALL + 1), ns(WALL + 2), 1, [1, 0, 0], 0.25),
        (ns(WALL + 2), ns(WALL + 3), 1, [0, 0, 1], None),
        (ns(WALL + 3), ns(WALL + 4), 2, [0, 0, 2], None),
        (ns(WALL + 4), ns(WALL + 5), 1, [0, 1, 0], 0.75),
    ]


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


async def test_a_collection_too_large_for_one_request_goes_in_parts_each_taken_on_its_own() -> None:
    """A collection larger than one request takes (two series of 2 MiB labels) goes in two; when
    the collector takes one part and refuses the other, the next export sends the part taken
    its increase since then, and the part refused all it still owed, from the export before."""
    registry = CollectorRegistry()
    totals = Totals()
    registry.register(totals)
    big = {name: name * (2 * 1024 * 1024) for name in "ab"}
    totals.values = {big["a"]: 3, big["b"]: 3}
    async with mirror_of(registry, temporality="delta") as mirror:
        await mirror.export_at(WALL + 2)
        assert len(mirror.exporter.sent) == 2  # one series a request
        totals.values = {big["a"]: 5, big["b"]: 5}
        mirror.exporter.answers = [MetricExportResult.SUCCESS, MetricExportResult.FAILURE]
        await mirror.export_at(WALL + 3)
        totals.values = {big["a"]: 6, big["b"]: 6}
        await mirror.export_at(WALL + 4)
    last = {}
    for data in mirror.exporter.sent[-2:]:
        [resource_metrics] = data.resource_metrics
        [scope_metrics] = resource_metrics.scope_metrics
        [metric] = scope_metrics.metrics
        for stream in big.values():
            if any(found.attributes == {"stream": stream} for found in metric.data.data_points):
                last[stream[0]] = span(point(metric, stream=stream))
    assert last == {"a": (ns(WALL + 3), ns(WALL + 4), 1), "b": (ns(WALL + 2), ns(WALL + 4), 3)}


@pytest.mark.parametrize(
    ("preference", "deltas"),
    [(None, False), ("cumulative", False), ("lowmemory", False), ("delta", True)],
)
async def test_only_delta_makes_the_mirror_send_deltas(
    preference: str | None, deltas: bool
) -> None:
    """The mirror says it sends deltas (the sink's start-up line reads it) under delta only."""
    async with mirror_of(CollectorRegistry(), temporality=preference) as mirror:
        assert mirror.mirror.sends_deltas is deltas


class Refused(float):
    """A total whose export the collector refuses."""


async def frames_sent(mirror: Mirror, totals: Totals, seconds: float, *sent: float | None) -> Any:
    """Set stream s's total to each of ``sent`` in turn (None: s is gone, its export refused),
    exporting a second apart from Unix ``seconds``; the (start, time, value) of s in each
    export, None where it was not sent."""
    spans: list[tuple[int, int, float] | None] = []
    for step, total in enumerate(sent):
        if total is None:
            totals.values.pop("s", None)
        else:
            totals.values["s"] = float(total)
        refused = total is None or isinstance(total, Refused)
        answer = MetricExportResult.FAILURE if refused else MetricExportResult.SUCCESS
        mirror.exporter.answer = answer
        frames = (await mirror.export_at(seconds + step)).get("exesdb_test_frames")
        spans.append(None if frames is None else span(point(frames, stream="s")))
    return spans


@pytest.mark.parametrize(
    ("totals", "expected"),
    [
        # Sent 10; refused 3 (its source restarted); sent 15: all of 15 is new since 10 was sent.
        ([10, Refused(3), 15], [(1, 2, 10), (2, 3, 3), (2, 4, 15)]),
        # Refused 12 (2 more), refused 4 (a restart), sent 9: 2, then 4, then 5 more.
        (
            [10, Refused(12), Refused(4), 9, 10],
            [(1, 2, 10), (2, 3, 2), (2, 4, 6), (2, 5, 11), (5, 6, 1)],
        ),
        # Refused 14, then gone (refused), then back at 12: it started anew, all of 12 is new.
        ([10, Refused(14), None, 12], [(1, 2, 10), (2, 3, 4), None, (2, 5, 12)]),
        # Refused 3 (restarted), then refused 0 (restarted again): sent 2, 5 owed in all.
        ([10, Refused(3), Refused(0), 2], [(1, 2, 10), (2, 3, 3), (2, 4, 3), (2, 5, 5)]),
    ],
)
async def test_a_reset_seen_only_by_a_refused_export_is_not_lost(
    totals: list[float | None], expected: list[tuple[float, float, float] | None]
) -> None:
    """What a refused export's collection saw (an increase, a total that fell, a series gone)
    is carried to the next export: it sends all that is new since the last export sent."""
    registry = CollectorRegistry()
    source = Totals()
    registry.register(source)
    async with mirror_of(registry, temporality="delta") as mirror:
        sent = await frames_sent(mirror, source, WALL + 2, *totals)
    assert sent == [
        None if step is None else (ns(WALL + step[0]), ns(WALL + step[1]), step[2])
        for step in expected
    ]


@pytest.mark.parametrize("odd", [math.inf, math.nan])
async def test_a_total_not_finite_is_sent_as_it_is(odd: float) -> None:
    """A total of +Inf or NaN goes as it is, from its own start, never a NaN difference; the
    next finite total goes on from the last export that sent a finite one."""
    registry = CollectorRegistry()
    source = Totals()
    registry.register(source)
    async with mirror_of(registry, temporality="delta") as mirror:
        sent = await frames_sent(mirror, source, WALL + 2, 10, odd, odd, 15)
    assert sent[0] == (ns(WALL + 1), ns(WALL + 2), 10)
    for step, (start, end, value) in ((1, sent[1]), (2, sent[2])):
        assert (start, end) == (ns(WALL + 1), ns(WALL + 2 + step))
        assert math.isnan(value) if math.isnan(odd) else value == odd
    assert sent[3] == (ns(WALL + 2), ns(WALL + 5), 5)


def collection(now_ns: int, *totals: tuple[Resource, InstrumentationScope, float]) -> MetricsData:
    """A collection holding, under each resource and scope given, the sum exesdb_test_x at
    that total, started at ``WALL``."""
    return MetricsData(
        [
            ResourceMetrics(
                resource,
                [
                    ScopeMetrics(
                        scope,
                        [
                            Metric(
                                "exesdb_test_x",
                                "X.",
                                "",
                                Sum(
                                    [NumberDataPoint({}, ns(WALL), now_ns, total)], CUMULATIVE, True
                                ),
                            )
                        ],
                        "",
                    )
                ],
                "",
            )
            for resource, scope, total in totals
        ]
    )


@pytest.mark.parametrize(
    ("other_resource", "other_scope"),
    [
        (Resource.create({"service.name": "other"}), SCOPE),
        (RESOURCE, InstrumentationScope("other")),
        (RESOURCE, InstrumentationScope(SCOPE.name, "2.0")),
    ],
)
def test_the_same_series_under_another_resource_or_scope_is_another(
    other_resource: Resource, other_scope: InstrumentationScope
) -> None:
    """A sum of the same name and attributes under another resource, or another scope name or
    version, keeps its own total: each sends its own increase."""
    sums = DeltaSums()
    sums.deltas(
        collection(ns(WALL + 1), (RESOURCE, SCOPE, 10), (other_resource, other_scope, 100)),
        ns(WALL + 1),
    )
    sums.exported()
    later = collection(ns(WALL + 2), (RESOURCE, SCOPE, 12), (other_resource, other_scope, 101))
    sent = sums.deltas(later, ns(WALL + 2))
    assert [
        span(point(resource_metrics.scope_metrics[0].metrics[0]))
        for resource_metrics in sent.resource_metrics
    ] == [(ns(WALL + 1), ns(WALL + 2), 2), (ns(WALL + 1), ns(WALL + 2), 1)]
