"""The Prometheus sink: verified messages become series (docs/metrics.md) on ``GET /metrics``.

``store`` keeps the series (expiry, cardinality cap, pre-rendered lines), ``families`` lists
every family, ``translate`` maps each message type to its series, ``exposition`` negotiates and
renders the document, ``nodes`` reads the cluster's nodes back for the status page, ``sink`` is
the bus subscriber and the component.
"""

from __future__ import annotations

from bridge.sinks.prometheus.exposition import (
    OPENMETRICS_TYPE,
    TEXT_TYPE,
    Format,
    gzip_wanted,
    negotiate,
    render,
)
from bridge.sinks.prometheus.families import FAMILIES
from bridge.sinks.prometheus.nodes import NodeSummary, node_summaries
from bridge.sinks.prometheus.sink import (
    SUBSCRIBER,
    PrometheusSink,
    prometheus_sink,
    register_process_metrics,
)
from bridge.sinks.prometheus.store import Family, MetricType, SeriesStore
from bridge.sinks.prometheus.translate import QUANTILES, Translator

__all__ = [
    "FAMILIES",
    "OPENMETRICS_TYPE",
    "QUANTILES",
    "SUBSCRIBER",
    "TEXT_TYPE",
    "Family",
    "Format",
    "MetricType",
    "NodeSummary",
    "PrometheusSink",
    "SeriesStore",
    "Translator",
    "gzip_wanted",
    "negotiate",
    "node_summaries",
    "prometheus_sink",
    "register_process_metrics",
    "render",
]
