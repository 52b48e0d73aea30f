"""The mirror's sums as the temporality ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` asks.

The OpenTelemetry specification (Metrics Exporter - OTLP) gives each instrument kind its
temporality by the preference: ``cumulative`` (the default) every kind cumulative; ``delta`` the
Counter, the Asynchronous Counter and the Histogram delta, the up-down counters cumulative;
``lowmemory`` the Counter and the Histogram delta, the others cumulative. The mirror sends
Prometheus families: a counter is the specification's Counter, a histogram's or summary's
``_count``, ``_sum`` and ``_bucket`` the parts of its Histogram, so under ``delta`` and
``lowmemory`` alike every sum the mirror sends is a delta. Prometheus has no up-down counter
(gauges, info and state sets go as OTLP gauges, which have no temporality).

Prometheus keeps totals, so ``DeltaSums`` remembers each sum's total at the last export that
succeeded, and sends the increase since, starting at that export's time. A total that fell, or a
series whose start moved (one that expired and came back), was reset: its whole total is new,
starting at its own start or the last export's time, whichever is later; no delta is negative.
It remembers only the series of that last export, so its memory is bounded as the series store
and the registry bound theirs, and forgets a series they dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Metric,
    MetricsData,
    NumberDataPoint,
    Sum,
)

from bridge.settings import TemporalityPreference

__all__ = ["DeltaSums", "sends_deltas"]

# A sum's series: its metric's name and its attributes (a bucket's le among them).
_Key = tuple[str, frozenset[tuple[str, object]]]
# A series' total as last collected: (its cumulative start, its value).
_Total = tuple[int, float]
_DELTA_PREFERENCES: Final = frozenset({"delta", "lowmemory"})


def sends_deltas(preference: TemporalityPreference) -> bool:
    """True when ``preference`` makes the mirror's sums (counters and histogram parts) deltas."""
    return preference in _DELTA_PREFERENCES


class DeltaSums:
    """Each collection's cumulative monotonic sums as the increase since the last export.

    ``deltas`` converts one collection; ``exported`` takes it for sent, so the next starts from
    it. Without ``exported`` (an export that failed) the next carries the increase since the last
    export that succeeded, nothing lost. Not thread-safe: one export at a time.
    """

    __slots__ = ("_last", "_last_ns", "_pending")

    def __init__(self) -> None:
        self._last: Mapping[_Key, _Total] = {}
        self._last_ns: int | None = None
        self._pending: tuple[int, Mapping[_Key, _Total]] | None = None

    def deltas(self, data: MetricsData, now_ns: int) -> MetricsData:
        """``data`` (collected at ``now_ns``) with every monotonic cumulative sum as a delta;
        gauges as they are."""
        totals: dict[_Key, _Total] = {}
        converted = dataclasses.replace(
            data,
            resource_metrics=[
                dataclasses.replace(
                    resource_metrics,
                    scope_metrics=[
                        dataclasses.replace(
                            scope_metrics,
                            metrics=[
                                self._metric(metric, now_ns, totals)
                                for metric in scope_metrics.metrics
                            ],
                        )
                        for scope_metrics in resource_metrics.scope_metrics
                    ],
                )
                for resource_metrics in data.resource_metrics
            ],
        )
        self._pending = (now_ns, totals)
        return converted

    def exported(self) -> None:
        """The collection ``deltas`` converted last was exported: later deltas start from it."""
        if self._pending is not None:
            self._last_ns, self._last = self._pending
            self._pending = None

    def _metric(self, metric: Metric, now_ns: int, totals: dict[_Key, _Total]) -> Metric:
        data = metric.data
        if not (
            isinstance(data, Sum)
            and data.is_monotonic
            and data.aggregation_temporality is AggregationTemporality.CUMULATIVE
        ):
            return metric
        points = []
        for point in data.data_points:
            key = (metric.name, frozenset((point.attributes or {}).items()))
            start, value = point.start_time_unix_nano, float(point.value)
            totals[key] = (start, value)
            points.append(self._delta(point, self._last.get(key), now_ns))
        return dataclasses.replace(
            metric, data=Sum(points, AggregationTemporality.DELTA, is_monotonic=True)
        )

    def _delta(self, point: NumberDataPoint, last: _Total | None, now_ns: int) -> NumberDataPoint:
        start, value = point.start_time_unix_nano, point.value
        if last is not None and self._last_ns is not None and last[0] == start and value >= last[1]:
            return dataclasses.replace(
                point,
                start_time_unix_nano=self._last_ns,
                time_unix_nano=now_ns,
                value=value - last[1],
            )
        # New since the last export, or reset since (its total fell, or it started anew):
        # all of its total is new, counted from its start or the last export, the later.
        began = start if self._last_ns is None else max(start, self._last_ns)
        return dataclasses.replace(point, start_time_unix_nano=began, time_unix_nano=now_ns)
