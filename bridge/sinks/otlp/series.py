"""The bridge's Prometheus series as OTLP metrics (``EXESDB_OTLP_METRICS=true``).

Every ``OTEL_METRIC_EXPORT_INTERVAL`` (ms, default 60000) everything ``GET /metrics`` shows is
collected on the event loop, as a scrape would be: the registry, and the families of the
components that render their own series (the Prometheus sink's store), read as values; and once
more at shutdown (``MetricsMirror.close``). Each
family is sent in the OTLP form the OpenTelemetry Collector's prometheus receiver gives it:
counters as monotonic sums (named without ``_total``, as OpenTelemetry's Prometheus
compatibility rules have it), gauges, info and state sets as gauges, a histogram's series each as
one explicit-bucket histogram point (the finite ``le`` values its bounds, the buckets counted
apart, no min or max, which Prometheus does not keep). Summaries go as their Prometheus parts
(``quantile`` gauges, ``_count`` / ``_sum`` monotonic sums): the SDK's data model and its OTLP
encoder have no summary. A cumulative series starts at its ``_created`` sample (so a counter that
expired and came back from zero starts anew, which a backend reads as a reset), else when the
mirror started; ``_created`` samples are not sent themselves. The sums and histograms are
cumulative, or deltas since the previous export when
``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` is ``delta``
(``bridge.sinks.otlp.temporality``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Final

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
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
from prometheus_client.metrics_core import Metric as PromFamily

from bridge.component import HasExposition
from bridge.otlp_settings import otlp_number
from bridge.settings import TemporalityPreference
from bridge.sinks.otlp.sizes import MAX_REQUEST_BYTES, point_bytes, text_bytes
from bridge.sinks.otlp.temporality import DeltaSums, sends_deltas

__all__ = ["MetricsMirror", "registry_to_metrics"]

_logger = logging.getLogger(__name__)

_CUMULATIVE: Final = AggregationTemporality.CUMULATIVE
_COLLECT_TIMEOUT: Final = 10.0
# A histogram point's min and max: None leaves the message's optional fields out (the SDK's
# encoder passes it on), where Prometheus keeps neither.
_UNKNOWN: Final[Any] = None


def _point(labels: Mapping[str, str], start_ns: int, now_ns: int, value: float) -> NumberDataPoint:
    return NumberDataPoint(dict(labels), start_ns, now_ns, value)


def _sum(name: str, help_text: str, points: list[NumberDataPoint]) -> Metric:
    return Metric(name, help_text, "", Sum(points, _CUMULATIVE, True))


def _gauge(name: str, help_text: str, points: list[NumberDataPoint]) -> Metric:
    return Metric(name, help_text, "", Gauge(points))


def _series_key(labels: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    # A series' labels without a histogram bucket's ``le``: what its ``_created`` sample carries.
    return frozenset(item for item in labels.items() if item[0] != "le")


def _family_metrics(family: PromFamily, start_ns: int, now_ns: int) -> Iterable[Metric]:
    cumulative = family.type in ("counter", "summary", "histogram")
    starts = {
        _series_key(sample.labels): int(sample.value * 1e9)
        for sample in family.samples
        if cumulative and sample.name == family.name + "_created"
    }
    if family.type == "histogram":
        yield from _histogram(family, starts, start_ns, now_ns)
        return
    by_name: dict[str, list[NumberDataPoint]] = {}
    for sample in family.samples:
        if sample.name.endswith("_created"):
            continue
        start = starts.get(_series_key(sample.labels), start_ns) if starts else start_ns
        by_name.setdefault(sample.name, []).append(
            _point(sample.labels, start, now_ns, sample.value)
        )
    for name, points in by_name.items():
        if family.type == "counter":
            yield _sum(name.removesuffix("_total"), family.documentation, points)
        elif family.type in ("summary", "gaugehistogram") and name != family.name:
            # A summary's _count and _sum (gauge histograms' _gcount/_gsum/_bucket are gauges).
            maker = _sum if family.type == "summary" else _gauge
            yield maker(name, family.documentation, points)
        else:
            yield _gauge(name, family.documentation, points)


@dataclasses.dataclass
class _HistogramSeries:
    """One histogram series' samples: its labels but ``le``, its (bound, cumulative count)
    buckets, its ``_count`` and ``_sum``."""

    labels: Mapping[str, str]
    buckets: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    count: float | None = None
    total: float | None = None


def _histogram(
    family: PromFamily, starts: Mapping[frozenset[tuple[str, str]], int], start_ns: int, now_ns: int
) -> Iterable[Metric]:
    """``family``'s series as one OTLP histogram, a point each, as the Collector's prometheus
    receiver makes them: a series without ``_count``, or without a ``+Inf`` bucket (no complete
    Prometheus histogram), left out as it leaves it."""
    series: dict[frozenset[tuple[str, str]], _HistogramSeries] = {}
    for sample in family.samples:
        key = _series_key(sample.labels)
        found = series.get(key)
        if found is None:
            labels = {name: value for name, value in sample.labels.items() if name != "le"}
            found = series[key] = _HistogramSeries(labels)
        part = sample.name.removeprefix(family.name)
        if part == "_bucket":
            bound = _bound(sample.labels.get("le", ""))
            if bound is not None:
                found.buckets.append((bound, sample.value))
        elif part == "_count":
            found.count = sample.value
        elif part == "_sum":
            found.total = sample.value
    points = [
        _histogram_point(found, found.count, starts.get(key, start_ns), now_ns)
        for key, found in series.items()
        if found.count is not None and math.inf in (bound for bound, _ in found.buckets)
    ]
    if points:
        yield Metric(family.name, family.documentation, "", Histogram(points, _CUMULATIVE))


def _bound(le: str) -> float | None:
    """A bucket's ``le`` as a number; None for one that is none (that bucket left out, as the
    Collector leaves it, rather than the whole collection)."""
    try:
        bound = float(le)
    except ValueError:
        return None
    return None if math.isnan(bound) else bound


def _histogram_point(
    series: _HistogramSeries, count: float, start_ns: int, now_ns: int
) -> HistogramDataPoint:
    buckets = sorted(series.buckets)
    # Prometheus counts each bucket with those below it, OTLP apart; OTLP's last bucket, above
    # the bounds, is the +Inf one.
    totals = [total for _, total in buckets]
    return HistogramDataPoint(
        dict(series.labels),
        start_ns,
        now_ns,
        _whole(count),
        series.total if series.total is not None else _UNKNOWN,
        [_whole(later - earlier) for earlier, later in itertools.pairwise([0.0, *totals])],
        [bound for bound, _ in buckets[:-1]],
        _UNKNOWN,
        _UNKNOWN,
    )


def _whole(count: float) -> int:
    """A Prometheus count as OTLP's unsigned one: none for a count that is not a number or
    below zero (buckets that do not add up), which would fail the encoding of the whole export."""
    return int(count) if math.isfinite(count) and count > 0 else 0


def registry_to_metrics(
    registry: CollectorRegistry,
    resource: Resource,
    scope: InstrumentationScope,
    start_ns: int,
    expositions: Iterable[HasExposition] = (),
    now_ns: int | None = None,
) -> MetricsData:
    """One collection of ``registry`` and of the ``expositions``' families as ``MetricsData``,
    its sums cumulative, made at ``now_ns`` (unset: now).

    ``start_ns`` starts the cumulative series that have no ``_created`` sample.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    families = itertools.chain(registry.collect(), *(part.collect() for part in expositions))
    metrics = [
        metric for family in families for metric in _family_metrics(family, start_ns, now_ns)
    ]
    return MetricsData([ResourceMetrics(resource, [ScopeMetrics(scope, metrics, "")], "")])


class MetricsMirror:
    """Exports the registry on a schedule from a daemon thread; counts like the other signals.

    ``temporality`` is ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``'s value
    (``sends_deltas`` says what it makes of it); ``clock`` (nanoseconds since 1970) dates the
    mirror's start and each collection; ``collect_timeout`` is how long an export waits for the
    event loop to collect (a loop blocked or swamped past it fails that export, and its
    collection is called off: the loop, back, does not make it for nobody).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        exporter: Any,
        resource: Resource,
        scope: InstrumentationScope,
        on_export: Callable[[int, bool, float], None],
        environ: Mapping[str, str] = os.environ,
        expositions: Callable[[], Sequence[HasExposition]] = tuple,
        *,
        temporality: TemporalityPreference = "cumulative",
        clock: Callable[[], int] = time.time_ns,
        collect_timeout: float = _COLLECT_TIMEOUT,
    ) -> None:
        self._registry = registry
        self._exporter = exporter
        self._resource = resource
        self._scope = scope
        self._on_export = on_export
        self._expositions = expositions
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock = clock
        self._collect_timeout = collect_timeout
        self._start_ns = clock()
        self._deltas = DeltaSums() if sends_deltas(temporality) else None
        # One export at a time: each delta starts where the previous export ended.
        self._exporting = threading.Lock()
        self._interval = _interval(environ)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def sends_deltas(self) -> bool:
        """True when the sums go as deltas (the temporality preference is ``delta``)."""
        return self._deltas is not None

    def start(self) -> None:
        """Start exporting every interval (call on the event loop: collection happens there)."""
        self._loop = asyncio.get_running_loop()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="otlp-metrics", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.export_once()

    def _collect_on_loop(self, collecting: Future[tuple[MetricsData, int]]) -> None:
        # Not run_coroutine_threadsafe's task: cancelled before the loop got to it, that task
        # would still make its first step, the whole collection; this future, cancelled, is
        # left (the concurrent.futures protocol).
        if not collecting.set_running_or_notify_cancel():
            return
        try:
            collecting.set_result(self._collect())
        except Exception as exc:  # for the exporting thread to log
            collecting.set_exception(exc)

    def _collect(self) -> tuple[MetricsData, int]:
        now_ns = self._clock()
        data = registry_to_metrics(
            self._registry,
            self._resource,
            self._scope,
            self._start_ns,
            self._expositions(),
            now_ns=now_ns,
        )
        return data, now_ns

    def export_once(self) -> None:
        """Collect (on the loop, like a scrape) and export (on this thread) now."""
        if self._loop is None:
            return
        with self._exporting:
            started = time.monotonic()
            try:
                collecting: Future[tuple[MetricsData, int]] = Future()
                self._loop.call_soon_threadsafe(self._collect_on_loop, collecting)
                try:
                    data, now_ns = collecting.result(self._collect_timeout)
                except TimeoutError:
                    collecting.cancel()  # still queued on the loop: it is not made
                    raise
                if self._deltas is not None:
                    data = self._deltas.deltas(data, now_ns)
                requests = _split_requests(data)
            except Exception:
                _logger.exception("OTLP metrics collection raised")
                self._on_export(0, False, time.monotonic() - started)
                return
            for request in requests:
                # A part of the collection's deltas taken for sent: only that part's owed no more.
                self._export(request, None if len(requests) == 1 else request, started)
                started = time.monotonic()

    def _export(self, request: MetricsData, part: MetricsData | None, started: float) -> None:
        count = _points(request)
        try:
            ok = self._exporter.export(request) is MetricExportResult.SUCCESS
        except Exception:
            _logger.exception("OTLP metrics export raised")
            ok = False
        if ok and self._deltas is not None:
            self._deltas.exported(part)
        self._on_export(count, ok, time.monotonic() - started)

    def close(self, grace: float, flush: float = 0.0) -> None:
        """Stop; export a last collection, as the SDK's metric reader does at shutdown (what
        was counted since the last export), for up to ``flush`` seconds; then shut the exporter
        down (aborting retries) and wait for that and for the exports it cuts short, ``grace``
        seconds for each. Blocks for at most about ``flush + 2 * grace``."""
        self._stop.set()
        exporting = [self._thread]
        if flush > 0 and self._loop is not None:
            # In a thread of its own: an export that hangs is left behind, as the others are.
            last = threading.Thread(target=self.export_once, name="otlp-metrics-last", daemon=True)
            last.start()
            last.join(flush)
            exporting.append(last)
        stopper = threading.Thread(target=self._exporter.shutdown, daemon=True)
        stopper.start()
        stopper.join(grace)
        # The exports the shutdown cut short end (and say so) while the sink still hears them.
        deadline = time.monotonic() + grace
        for thread in exporting:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))


def _points(data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    )


_Item = tuple[ResourceMetrics, ScopeMetrics, Metric, Any]


def _split_requests(data: MetricsData, limit: int = MAX_REQUEST_BYTES) -> list[MetricsData]:
    """``data`` in requests of at most ``limit`` bytes of data points as ``sizes`` estimates
    them (a metric's name and description counted in each request it is in), in order; a point
    larger than that alone. One collection of every series ``GET /metrics`` shows can pass what
    a collector takes in one request, which it would refuse whole at every export."""
    requests: list[list[_Item]] = [[]]
    taken = 0
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                head = text_bytes(metric.name) + text_bytes(metric.description or "")
                for point in metric.data.data_points:
                    size = point_bytes(point)
                    if not requests[-1] or requests[-1][-1][2] is not metric:
                        size += head
                    if requests[-1] and taken + size > limit:
                        requests.append([])
                        size, taken = point_bytes(point) + head, 0
                    requests[-1].append((resource_metrics, scope_metrics, metric, point))
                    taken += size
    if len(requests) == 1:
        return [data]
    return [_rebuilt(items) for items in requests]


def _rebuilt(items: list[_Item]) -> MetricsData:
    """The ``MetricsData`` of ``items``, consecutive points of one metric (scope, resource) in
    one of it."""
    resources: list[ResourceMetrics] = []
    for _, by_resource in itertools.groupby(items, key=lambda item: id(item[0])):
        of_resource = list(by_resource)
        scopes: list[ScopeMetrics] = []
        for _, by_scope in itertools.groupby(of_resource, key=lambda item: id(item[1])):
            of_scope = list(by_scope)
            metrics: list[Metric] = []
            for _, by_metric in itertools.groupby(of_scope, key=lambda item: id(item[2])):
                of_metric = list(by_metric)
                metric = of_metric[0][2]
                points = [item[3] for item in of_metric]
                data: Any = dataclasses.replace(metric.data, data_points=points)  # type: ignore[arg-type]
                metrics.append(dataclasses.replace(metric, data=data))
            scopes.append(dataclasses.replace(of_scope[0][1], metrics=metrics))
        resources.append(dataclasses.replace(of_resource[0][0], scope_metrics=scopes))
    return MetricsData(resources)


def _interval(environ: Mapping[str, str]) -> float:
    # A bad value is warned of at start (``otlp_number``).
    interval_ms, _ = otlp_number(environ, "OTEL_METRIC_EXPORT_INTERVAL")
    return interval_ms / 1000
