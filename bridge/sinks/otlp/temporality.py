"""The mirror's sums and histograms as ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` asks.

The OpenTelemetry specification (Metrics Exporter - OTLP) gives each instrument kind its
temporality by the preference: ``cumulative`` (the default) every kind cumulative; ``delta`` the
Counter, the Asynchronous Counter and the Histogram delta, the up-down counters cumulative;
``lowmemory`` only the synchronous Counter and Histogram delta, the Asynchronous Counter
cumulative, since turning observed totals into deltas takes the memory ``lowmemory`` avoids (the
SDK maps ObservableCounter to CUMULATIVE under it). The mirror observes Prometheus totals at each
collection: its counters are Asynchronous Counters, and its histograms (and a summary's
``_count`` and ``_sum``) are read from totals too, which an SDK histogram's are not: it starts
its buckets afresh after each collection, for nothing, where the mirror would have to remember
every bucket's total. So ``lowmemory`` sends what ``cumulative`` sends, and only ``delta`` makes
the sums and histograms deltas. Prometheus has no up-down counter (gauges, info and state sets go
as OTLP gauges, which have no temporality).

Prometheus keeps totals, so ``DeltaSums`` remembers each series' totals as last collected (a sum's;
a histogram's count, bucket counts and sum), and what it still owes: the increase since the last
export that succeeded, sent with each export and cleared when one succeeds, so an increase or reset
seen only by a failed export is carried, not lost. A total that fell (a histogram's count or a
bucket's: its sum may fall, with negative observations), or a series whose start moved (one that
expired and came back), was reset: its whole totals are new, added to what it owed, or (owing
nothing) counted from its own start or the last export, whichever is later; no delta is negative. A
histogram whose bounds changed is another series. A sum's total that is not finite (+Inf, NaN) is
sent as it is, from its own start, as cumulative sends it. A histogram's sum that is not finite
(once it observed +Inf or NaN) has no increase to take (+Inf less +Inf is NaN): its count and
buckets still go as deltas, and its delta point leaves the sum out (optional in OTLP) while the
sum's increase is not finite, so that a backend adding deltas counts each observation once, not its
totals again with each export. It remembers only the series of the last collection, so its memory is
bounded as the series store and the registry bound theirs, and forgets a series they dropped (with
what it owed: cumulative would not send that either).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from opentelemetry.util.types import Attributes

from bridge.settings import TemporalityPreference

__all__ = ["DeltaSums", "sends_deltas"]

_Attributes = frozenset[tuple[str, object]]
_Where = tuple[_Attributes, tuple[str, str | None, str | None]]
# A series: its resource's attributes, its scope (name, version, schema URL), its metric's name,
# its attributes, and a histogram's bounds (none for a sum).
_Key = tuple[_Attributes, tuple[str, str | None, str | None], str, _Attributes, tuple[float, ...]]
_Point = NumberDataPoint | HistogramDataPoint
_CUMULATIVE = AggregationTemporality.CUMULATIVE
# A histogram point's sum left out: None leaves the message's optional field out (the SDK's
# encoder passes it on), though the SDK's point types it as a number.
_LEFT_OUT: Final[Any] = None


class _Series(NamedTuple):
    """A series as last collected, and what it owes the next export."""

    start: int  # its cumulative start
    totals: tuple[float, ...]  # a sum's total; a histogram's count, bucket counts, then sum
    owed: tuple[float, ...]  # the increase of each since ``since`` that no export took yet
    since: int  # the start of that increase


def sends_deltas(preference: TemporalityPreference) -> bool:
    """True when ``preference`` makes the mirror's sums (counters) and histograms deltas:
    ``delta`` only, as the specification's asynchronous counters are delta only under it."""
    return preference == "delta"


def _frozen(attributes: Attributes) -> _Attributes:
    return frozenset((name, _hashable(value)) for name, value in (attributes or {}).items())


def _hashable(value: object) -> object:
    # Attribute values may be sequences (lists) or mappings: as tuples and frozensets they hash.
    if isinstance(value, Mapping):
        return frozenset((name, _hashable(item)) for name, item in value.items())
    if isinstance(value, list | tuple):
        return tuple(_hashable(item) for item in value)
    return value


def _key(where: _Where, metric: Metric, point: _Point) -> _Key:
    bounds = tuple(point.explicit_bounds) if isinstance(point, HistogramDataPoint) else ()
    return (*where, metric.name, _frozen(point.attributes), bounds)


def _converted(metric: Metric) -> bool:
    """True for what ``DeltaSums`` makes deltas: cumulative monotonic sums and histograms."""
    data = metric.data
    if isinstance(data, Sum):
        return data.is_monotonic and data.aggregation_temporality is _CUMULATIVE
    return isinstance(data, Histogram) and data.aggregation_temporality is _CUMULATIVE


def _keys(data: MetricsData) -> frozenset[_Key]:
    """The series of ``data``'s sums and histograms (converted already, or not)."""
    keys: set[_Key] = set()
    for resource_metrics in data.resource_metrics:
        resource = _frozen(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            where = (resource, (scope.name, scope.version, scope.schema_url))
            for metric in scope_metrics.metrics:
                if isinstance(metric.data, Sum | Histogram):
                    keys.update(
                        _key(where, metric, point)
                        for point in metric.data.data_points
                        if isinstance(point, NumberDataPoint | HistogramDataPoint)
                    )
    return frozenset(keys)


def _totals(point: _Point) -> tuple[float, ...]:
    if isinstance(point, HistogramDataPoint):
        # A sum left out (None) adds nothing; it stays out of what is sent.
        return (point.count, *point.bucket_counts, point.sum if point.sum is not None else 0.0)
    return (float(point.value),)


def _fell(point: _Point, totals: tuple[float, ...], last: tuple[float, ...]) -> bool:
    """True when a total that only grows fell: a sum's, a histogram's count or a bucket's."""
    grows = len(totals) - 1 if isinstance(point, HistogramDataPoint) else len(totals)
    return any(now < before for now, before in zip(totals[:grows], last[:grows], strict=True))


def _owes(owed: tuple[float, ...]) -> bool:
    """True when ``owed`` holds an increase: a histogram's sum not finite (NaN: +Inf less +Inf)
    is none of itself, its count says whether anything was observed."""
    return any(value for value in owed if math.isfinite(value))


def _with(point: _Point, start: int, now_ns: int, owed: tuple[float, ...]) -> _Point:
    """``point`` carrying ``owed`` from ``start`` to ``now_ns``."""
    if isinstance(point, HistogramDataPoint):
        count, *buckets, total = owed
        return dataclasses.replace(
            point,
            start_time_unix_nano=start,
            time_unix_nano=now_ns,
            count=int(count),
            bucket_counts=[int(bucket) for bucket in buckets],
            # Left out when not finite: a backend cannot add it, and OTLP's sum is optional.
            sum=total if point.sum is not None and math.isfinite(total) else _LEFT_OUT,
        )
    return dataclasses.replace(
        point, start_time_unix_nano=start, time_unix_nano=now_ns, value=owed[0]
    )


class DeltaSums:
    """Each collection's cumulative monotonic sums and histograms as the increase since the last
    export.

    ``deltas`` converts one collection; ``exported`` takes it for sent, so the next starts from
    it. Without ``exported`` (an export that failed) the next carries what this one owed, and the
    increase since, nothing lost. Not thread-safe: one export at a time.
    """

    __slots__ = ("_last_ns", "_pending", "_series")

    def __init__(self) -> None:
        self._series: Mapping[_Key, _Series] = {}
        self._last_ns: int | None = None
        # The last collection converted: its time and the series whose owed increase it sent.
        self._pending: tuple[int, frozenset[_Key]] | None = None

    def deltas(self, data: MetricsData, now_ns: int) -> MetricsData:
        """``data`` (collected at ``now_ns``) with every monotonic cumulative sum and every
        cumulative histogram as deltas; gauges as they are."""
        series: dict[_Key, _Series] = {}
        sent: set[_Key] = set()
        resources = []
        for resource_metrics in data.resource_metrics:
            resource = _frozen(resource_metrics.resource.attributes)
            scopes = []
            for scope_metrics in resource_metrics.scope_metrics:
                scope = scope_metrics.scope
                where = (resource, (scope.name, scope.version, scope.schema_url))
                metrics = [
                    self._metric(metric, where, now_ns, series, sent)
                    for metric in scope_metrics.metrics
                ]
                scopes.append(dataclasses.replace(scope_metrics, metrics=metrics))
            resources.append(dataclasses.replace(resource_metrics, scope_metrics=scopes))
        # Taken now, sent or not: a reset this collection saw is owed, not forgotten.
        self._series = series
        self._pending = (now_ns, frozenset(sent))
        return dataclasses.replace(data, resource_metrics=resources)

    def exported(self, part: MetricsData | None = None) -> None:
        """The collection ``deltas`` converted last was exported (only ``part`` of it, when
        given: one of the requests it was cut into): what that sent is owed no more."""
        if self._pending is None:
            return
        now_ns, sent = self._pending
        taken = sent if part is None else sent & _keys(part)
        left = sent - taken
        self._pending = (now_ns, left) if left else None
        self._last_ns = now_ns
        self._series = {
            key: entry._replace(owed=(0.0,) * len(entry.owed), since=now_ns)
            if key in taken
            else entry
            for key, entry in self._series.items()
        }

    def _metric(
        self,
        metric: Metric,
        where: _Where,
        now_ns: int,
        series: dict[_Key, _Series],
        sent: set[_Key],
    ) -> Metric:
        if not _converted(metric):
            return metric
        points: list[Any] = []  # each of its metric's kind, as it came
        for point in metric.data.data_points:
            assert isinstance(point, NumberDataPoint | HistogramDataPoint)
            key = _key(where, metric, point)
            last = self._series.get(key)
            totals = _totals(point)
            if isinstance(point, NumberDataPoint) and not math.isfinite(totals[0]):
                # No increase to take from it: sent as cumulative sends it; what it owed waits.
                if last is not None:
                    series[key] = last
                points.append(point)
                continue
            entry = self._owed(point, totals, last)
            series[key] = entry
            sent.add(key)
            points.append(_with(point, entry.since, now_ns, entry.owed))
        delta = AggregationTemporality.DELTA
        if isinstance(metric.data, Histogram):
            return dataclasses.replace(metric, data=Histogram(points, delta))
        return dataclasses.replace(metric, data=Sum(points, delta, is_monotonic=True))

    def _owed(self, point: _Point, totals: tuple[float, ...], last: _Series | None) -> _Series:
        """``point``'s series with what it owes: the increase since the last export taken."""
        start = point.start_time_unix_nano
        if last is not None and last.start == start and not _fell(point, totals, last.totals):
            increase = zip(last.owed, totals, last.totals, strict=True)
            return _Series(start, totals, tuple(o + t - b for o, t, b in increase), last.since)
        if last is not None and _owes(last.owed):
            # Reset with an increase still owed: that increase and all of the new totals.
            owed = tuple(o + t for o, t in zip(last.owed, totals, strict=True))
            return _Series(start, totals, owed, last.since)
        # New since the last export, or reset owing nothing: all of its totals are new, counted
        # from its start or the last export, the later.
        since = last.since if last is not None else self._last_ns
        return _Series(start, totals, totals, start if since is None else max(start, since))
