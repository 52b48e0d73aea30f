# ruff: noqa: E501  (PromQL expressions read best on one line)
"""Generate the shipped Grafana dashboards (``grafana/dashboards/*.json``) from one table.

    python grafana/generate.py           # rewrite the JSON files
    python grafana/generate.py --check   # exit 1 when a file differs from what this generates

Every panel has a query, a unit and the ``$datasource`` variable; every dashboard has the
``datasource`` and ``node`` variables. Each file also works through Grafana's "Import dashboard"
in an existing Grafana, as dashboards on grafana.com do: its ``__inputs`` asks for a Prometheus
data source (``DS_PROMETHEUS``), whose uid Grafana's importer writes where ``${DS_PROMETHEUS}``
stands, i.e. only as the ``datasource`` variable's starting value. Panels never name
``${DS_PROMETHEUS}`` themselves: provisioning (grafana/provisioning) does not substitute inputs,
and there the variable, finding no data source by that name, starts on the first Prometheus. Metric names are those of docs/metrics.md (the catalog);
tests/integration/test_dashboards.py runs every query against a real Prometheus scraping a
``--demo`` bridge.

Series written from bus messages are the cluster's: with the bus on Redis every replica exposes
them, differing only by target labels (``instance``, ``pod``, ...). Every query takes ``max by``
such a series' own labels (of the rate, for a counter) before it sums, so each node counts once
whatever the number of replicas scraped (docs/metrics.md#replicas); the bridge's own series are
per replica (the ``instance`` variable).

Panel ids are not positions: each panel and row has the id ``grafana/panel_ids.json`` gives its
title in its dashboard, so a link to a panel (``viewPanel=``, ``editPanel=``, a runbook's) still
opens it after panels are added, moved or removed around it. A panel without an id, or an id
naming no panel (a renamed panel: carry its id over to the new title), stops the generator; the
id of a removed panel goes to ``retired`` and is never given again.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
IDS = HERE / "panel_ids.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
INPUT = "DS_PROMETHEUS"
# What an imported dashboard needs, as Grafana's export for sharing externally lists it.
GRAFANA_VERSION = "10.0.0"
PANEL_NAMES = {
    "stat": "Stat",
    "timeseries": "Time series",
    "table": "Table",
    "state-timeline": "State timeline",
    "bargauge": "Bar gauge",
    "gauge": "Gauge",
    "piechart": "Pie chart",
    "text": "Text",
}
NODE = 'node=~"$node"'
RATE = "$__rate_interval"


@dataclass
class Q:
    """One query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    # A unit of its own, other than its panel's, on an axis of its own (right).
    unit: str = ""


@dataclass
class P:
    """One panel; ``kind`` is the Grafana panel type."""

    title: str
    kind: str
    queries: list[Q]
    unit: str
    width: int = 12
    height: int = 8
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    transformations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Row:
    """A collapsible row title."""

    title: str


def _thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


PERCENT_THRESHOLDS = _thresholds((None, "green"), (85, "yellow"), (95, "red"))
HEALTH_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "healthy", "color": "green", "index": 0},
            "1": {"text": "degraded", "color": "yellow", "index": 1},
            "2": {"text": "unhealthy", "color": "red", "index": 2},
            "3": {"text": "unknown", "color": "text", "index": 3},
        },
    }
]
# healthy 0, degraded 1, unhealthy 2, unknown (down or silent) 3: each replica's code of a node,
# then the worst of them (added up, two replicas would make a degraded node unhealthy).
NODE_HEALTH_CODE = (
    "max by (node) ("
    f'exesdb_node_health_status{{{NODE}, status="degraded"}}'
    f' + ignoring (status) 2 * exesdb_node_health_status{{{NODE}, status="unhealthy"}}'
    f' + ignoring (status) 3 * exesdb_node_health_status{{{NODE}, status="unknown"}}'
    ")"
)
# Open alerts: the lease holder's outbox on Redis (the others show 0), on the in-process bus the
# one replica's. The others are left out too: one of an earlier version showed the counts it had
# when it last held the lease.
ACTIVE_ALERTS = (
    "exesdb_alerts_active unless ignoring (severity) exesdb_redis_work_queue_leader == 0"
)


def stat(title: str, expr: str, unit: str, legend: str = "", width: int = 4, **kw: Any) -> P:
    """A single-value panel showing the latest value."""
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background",
        "graphMode": "none",
        "textMode": "auto",
        "orientation": "auto",
        "justifyMode": "auto",
    }
    options.update(kw.pop("options", {}))
    return P(title, "stat", [Q(expr, legend)], unit, width=width, height=4, options=options, **kw)


def series(title: str, queries: list[Q], unit: str, width: int = 12, **kw: Any) -> P:
    """A time series panel."""
    options = {
        "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    defaults = {"custom": {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}}
    defaults.update(kw.pop("defaults", {}))
    return P(
        title, "timeseries", queries, unit, width=width, options=options, defaults=defaults, **kw
    )


def table(title: str, queries: list[Q], unit: str, width: int = 12, **kw: Any) -> P:
    """An instant table, one row per series."""
    for query in queries:
        query.instant = True
    transformations = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}}},
    ]
    return P(
        title,
        "table",
        queries,
        unit,
        width=width,
        options={"showHeader": True, "cellHeight": "sm"},
        transformations=transformations,
        **kw,
    )


def timeline(title: str, expr: str, legend: str, width: int = 24) -> P:
    """A state timeline of the node health code."""
    return P(
        title,
        "state-timeline",
        [Q(expr, legend)],
        "none",
        width=width,
        height=6,
        options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
        defaults={"mappings": HEALTH_MAPPINGS, "color": {"mode": "thresholds"}},
    )


# -- the dashboards --

CLUSTER = [
    Row("Cluster"),
    stat(
        "Nodes",
        'max by (state) (exesdb_cluster_nodes{state="total"})',
        "none",
        defaults={"color": {"mode": "fixed", "fixedColor": "blue"}},
    ),
    stat(
        "Healthy nodes",
        'max by (state) (exesdb_cluster_nodes{state="healthy"})',
        "none",
        defaults={"color": {"mode": "fixed", "fixedColor": "green"}},
    ),
    stat(
        "Degraded or unhealthy",
        'sum(max by (state) (exesdb_cluster_nodes{state=~"degraded|unhealthy"}))',
        "none",
        defaults={"thresholds": _thresholds((None, "green"), (1, "yellow"))},
    ),
    stat(
        "Down",
        'max by (state) (exesdb_cluster_nodes{state="down"})',
        "none",
        defaults={"thresholds": _thresholds((None, "green"), (1, "red"))},
    ),
    stat(
        "Quorum",
        "min(exesdb_cluster_quorum_available)",
        "none",
        defaults={
            "mappings": [
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "lost", "color": "red"},
                        "1": {"text": "available", "color": "green"},
                    },
                }
            ]
        },
    ),
    stat(
        "Active alerts",
        f"sum({ACTIVE_ALERTS})",
        "none",
        defaults={"thresholds": _thresholds((None, "green"), (1, "orange"))},
    ),
    timeline("Node health", NODE_HEALTH_CODE, "{{node}}"),
    series(
        "Cluster nodes by state",
        [Q('max by (state) (exesdb_cluster_nodes{state!="total"})', "{{state}}")],
        "none",
        defaults={"custom": {"stacking": {"mode": "normal"}, "fillOpacity": 40}},
    ),
    series(
        "Cluster health",
        [Q("max by (status) (exesdb_cluster_health_status) == 1", "{{status}}")],
        "none",
    ),
    Row("Traffic"),
    series(
        "Operations per second by node",
        [
            Q(
                f"sum by (node) (max by (node, operation, result) (rate(exesdb_operations_total{{{NODE}}}[{RATE}])))",
                "{{node}}",
            )
        ],
        "ops",
    ),
    series(
        "Worst p99 latency by operation",
        [
            Q(
                f'max by (operation) (exesdb_operation_latency_seconds{{{NODE}, quantile="0.99"}})',
                "{{operation}}",
            )
        ],
        "s",
    ),
    series(
        "Failed operations",
        [
            Q(
                f'sum by (node) (max by (node, operation, result) (rate(exesdb_operations_total{{{NODE}, result="error"}}[{RATE}])))'
                f" / sum by (node) (max by (node, operation, result) (rate(exesdb_operations_total{{{NODE}}}[{RATE}])))",
                "{{node}}",
            )
        ],
        "percentunit",
    ),
    series(
        "Alerts raised by severity",
        [
            Q(
                f"sum by (severity) (max by (severity, category) (rate(exesdb_alerts_total[{RATE}]))) * 60",
                "{{severity}}",
            )
        ],
        "short",
        description="Alerts raised per minute: SystemAlert, MetricAlert (a host resource's once per crossing or severity, not again with every sample while it breaches), SecurityAlert, AccessViolation.",
    ),
    series(
        "Node lifecycle events",
        [
            Q(
                f"max by (node, event) (increase(exesdb_node_lifecycle_events_total{{{NODE}}}[5m]))",
                "{{node}} {{event}}",
            )
        ],
        "short",
    ),
    series(
        "Cluster membership changes",
        [Q("max by (event) (increase(exesdb_cluster_membership_events_total[5m]))", "{{event}}")],
        "short",
    ),
]

NODES = [
    Row("Health"),
    timeline("Node health", NODE_HEALTH_CODE, "{{node}}"),
    table(
        "Nodes now",
        [
            Q(f"max by (node) (exesdb_node_cpu_usage_percent{{{NODE}}})", "cpu"),
            Q(f"max by (node) (exesdb_node_memory_usage_percent{{{NODE}}})", "memory"),
            Q(f"max by (node) (exesdb_node_disk_usage_percent{{{NODE}}})", "disk"),
        ],
        "percent",
        defaults={
            "thresholds": PERCENT_THRESHOLDS,
            "custom": {"cellOptions": {"type": "color-text"}},
        },
    ),
    series(
        "Components not healthy",
        [
            Q(
                f'sum by (node, component) (max by (node, component, status) (exesdb_component_health_status{{{NODE}, status!="healthy"}}))',
                "{{node}} {{component}}",
            )
        ],
        "none",
        description="1 while a component (store persistence, emitter pool, ...) is degraded or unhealthy.",
    ),
    series(
        "Health checks by result",
        [
            Q(
                f"sum by (check, result) (max by (node, check, result) (rate(exesdb_health_checks_total{{{NODE}}}[{RATE}])))",
                "{{check}} {{result}}",
            )
        ],
        "ops",
    ),
    series(
        "Health check passing",
        [Q(f"max by (node, check) (exesdb_health_check_success{{{NODE}}})", "{{node}} {{check}}")],
        "bool_yes_no",
        defaults={"min": 0, "max": 1},
    ),
    series(
        "Health check duration",
        [
            Q(
                f"max by (node, check) (exesdb_health_check_duration_seconds{{{NODE}}})",
                "{{node}} {{check}}",
            )
        ],
        "s",
    ),
    series(
        "Uptime",
        [Q(f"time() - max by (node) (exesdb_node_start_time_seconds{{{NODE}}})", "{{node}}")],
        "s",
        description="Since each node last started (its own NodeLifecycle joined that is no heartbeat): each drop is a restart, found down or not (one quicker than the node's limit of silence raises no node_failure). Only for nodes whose start a bridge heard.",
    ),
    table(
        "Restarts in the time range",
        [Q(f"max by (node) (changes(exesdb_node_start_time_seconds{{{NODE}}}[$__range]))")],
        "none",
        description="How many times each node started anew within the dashboard's time range (exesdb_node_start_time_seconds changed); ExesdbNodeRestarted fires for 15 minutes after each.",
        defaults={
            "thresholds": _thresholds((None, "green"), (1, "orange")),
            "custom": {"cellOptions": {"type": "color-text"}},
        },
    ),
    Row("Resources"),
    series(
        "CPU",
        [Q(f"max by (node) (exesdb_node_cpu_usage_percent{{{NODE}}})", "{{node}}")],
        "percent",
        defaults={"min": 0, "max": 100, "thresholds": PERCENT_THRESHOLDS},
    ),
    series(
        "Memory",
        [Q(f"max by (node) (exesdb_node_memory_usage_percent{{{NODE}}})", "{{node}}")],
        "percent",
        defaults={"min": 0, "max": 100, "thresholds": PERCENT_THRESHOLDS},
    ),
    series(
        "Disk",
        [Q(f"max by (node) (exesdb_node_disk_usage_percent{{{NODE}}})", "{{node}}")],
        "percent",
        defaults={"min": 0, "max": 100, "thresholds": PERCENT_THRESHOLDS},
    ),
    series(
        "Network",
        [Q(f"max by (node) (exesdb_node_network_usage_percent{{{NODE}}})", "{{node}}")],
        "percent",
        defaults={"min": 0, "max": 100},
    ),
    series(
        "Load average",
        [Q(f"max by (node) (exesdb_node_load_average{{{NODE}}})", "{{node}}")],
        "short",
    ),
    series(
        "Memory and disk used",
        [
            Q(
                f'max by (node, resource) (exesdb_node_resource_used{{{NODE}, resource=~"memory|disk"}})',
                "{{node}} {{resource}}",
            )
        ],
        "bytes",
    ),
    Row("Stores"),
    table(
        "Performance values",
        [Q(f"max by (node, component, metric, unit) (exesdb_performance_value{{{NODE}}})", "")],
        "short",
        width=24,
        description="The latest PerformanceMetric of each component; the unit column names its unit.",
    ),
    series(
        "Processes and supervision",
        [
            Q(
                f"sum by (node, event) (max by (node, module, event) (increase(exesdb_process_lifecycle_events_total{{{NODE}}}[5m])))",
                "{{node}} process {{event}}",
            ),
            Q(
                f"max by (node, event) (increase(exesdb_node_lifecycle_events_total{{{NODE}}}[5m]))",
                "{{node}} node {{event}}",
            ),
        ],
        "short",
        width=24,
    ),
]

_OP = f'{NODE}, operation=~"$operation"'

THROUGHPUT = [
    Row("Throughput"),
    series(
        "Operations per second",
        [
            Q(
                f"sum by (operation) (max by (node, operation, result) (rate(exesdb_operations_total{{{_OP}}}[{RATE}])))",
                "{{operation}}",
            )
        ],
        "ops",
    ),
    series(
        "Reported rate by node",
        [
            Q(
                f"sum by (node) (max by (node, operation) (exesdb_operation_rate_per_second{{{_OP}}}))",
                "{{node}}",
            )
        ],
        "ops",
        description="The rate_per_sec of the latest ThroughputMetric of each operation, summed per node.",
    ),
    series(
        "Failed operations per second",
        [
            Q(
                f'sum by (operation) (max by (node, operation, result) (rate(exesdb_operations_total{{{_OP}, result="error"}}[{RATE}])))',
                "{{operation}}",
            )
        ],
        "ops",
    ),
    series(
        "Error ratio",
        [
            Q(
                f'sum by (operation) (max by (node, operation, result) (rate(exesdb_operations_total{{{_OP}, result="error"}}[{RATE}])))'
                f" / sum by (operation) (max by (node, operation, result) (rate(exesdb_operations_total{{{_OP}}}[{RATE}])))",
                "{{operation}}",
            )
        ],
        "percentunit",
    ),
    Row("Latency"),
    series(
        "p50 latency",
        [
            Q(
                f'max by (operation) (exesdb_operation_latency_seconds{{{_OP}, quantile="0.5"}})',
                "{{operation}}",
            )
        ],
        "s",
    ),
    series(
        "p95 latency",
        [
            Q(
                f'max by (operation) (exesdb_operation_latency_seconds{{{_OP}, quantile="0.95"}})',
                "{{operation}}",
            )
        ],
        "s",
    ),
    series(
        "p99 latency",
        [
            Q(
                f'max by (operation) (exesdb_operation_latency_seconds{{{_OP}, quantile="0.99"}})',
                "{{operation}}",
            )
        ],
        "s",
        defaults={"thresholds": _thresholds((None, "green"), (0.5, "red"))},
    ),
    series(
        "Average and maximum latency",
        [
            Q(
                f"max by (operation) (exesdb_operation_latency_avg_seconds{{{_OP}}})",
                "{{operation}} avg",
            ),
            Q(
                f'max by (operation) (exesdb_operation_latency_seconds{{{_OP}, quantile="1"}})',
                "{{operation}} max",
            ),
        ],
        "s",
    ),
    series(
        "Latency samples",
        [
            Q(
                f"sum by (operation) (max by (node, operation) (exesdb_operation_latency_samples{{{_OP}}}))",
                "{{operation}}",
            )
        ],
        "short",
        description="How many operations the latest latency figures were computed from.",
    ),
    table(
        "Latency by node and operation",
        [
            Q(
                f'max by (node, operation) (exesdb_operation_latency_seconds{{{_OP}, quantile="0.5"}})',
                "p50",
            ),
            Q(
                f'max by (node, operation) (exesdb_operation_latency_seconds{{{_OP}, quantile="0.99"}})',
                "p99",
            ),
            Q(f"max by (node, operation) (exesdb_operation_latency_avg_seconds{{{_OP}}})", "avg"),
        ],
        "s",
    ),
    series(
        "Metric alerts",
        [
            Q(
                f"sum by (metric, severity) (max by (node, metric, severity) (increase(exesdb_metric_alerts_total{{{NODE}}}[5m])))",
                "{{metric}} {{severity}}",
            )
        ],
        "short",
        width=24,
        description="MetricAlert messages: a metric crossed its threshold.",
    ),
]

INSTANCE = 'instance=~"$instance"'

INTERNALS = [
    Row("Bridge"),
    stat(
        "Up",
        f'up{{job="exesdb-bridge", {INSTANCE}}}',
        "none",
        "{{instance}}",
        defaults={
            "mappings": [
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "down", "color": "red"},
                        "1": {"text": "up", "color": "green"},
                    },
                }
            ]
        },
    ),
    stat(
        "Version",
        f"exesdb_build_info{{{INSTANCE}}}",
        "none",
        "{{version}}",
        options={"textMode": "name"},
    ),
    stat(
        "Integration",
        f"exesdb_integration_enabled{{{INSTANCE}}}",
        "none",
        "{{instance}}",
        defaults={
            "mappings": [
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "disabled", "color": "orange"},
                        "1": {"text": "enabled", "color": "green"},
                    },
                }
            ]
        },
    ),
    stat("Series held", f"sum(exesdb_prometheus_series{{{INSTANCE}}})", "short"),
    stat("Series limit", f"min(exesdb_prometheus_series_limit{{{INSTANCE}}})", "short"),
    stat(
        "Scrape duration", f'max(scrape_duration_seconds{{job="exesdb-bridge", {INSTANCE}}})', "s"
    ),
    Row("Bus"),
    series(
        "Published by bus instance",
        [
            Q(
                f"sum by (pubsub) (rate(exesdb_bus_published_total{{{INSTANCE}}}[{RATE}]))",
                "{{pubsub}}",
            )
        ],
        "ops",
    ),
    series(
        "Rejected by reason",
        [
            Q(
                f"sum by (reason) (rate(exesdb_bus_rejected_total{{{INSTANCE}}}[{RATE}]))",
                "{{reason}}",
            )
        ],
        "ops",
    ),
    series(
        "Subscriber queue depth",
        [Q(f"sum by (subscriber) (exesdb_bus_queue_depth{{{INSTANCE}}})", "{{subscriber}}")],
        "short",
    ),
    series(
        "Dropped and failed messages",
        [
            Q(
                f"sum by (subscriber) (rate(exesdb_bus_dropped_total{{{INSTANCE}}}[{RATE}]))",
                "dropped {{subscriber}}",
            ),
            Q(
                f"sum by (subscriber) (rate(exesdb_sink_errors_total{{{INSTANCE}}}[{RATE}]))",
                "failed {{subscriber}}",
            ),
        ],
        "ops",
    ),
    series(
        "Prometheus sink series",
        [
            Q(f"sum(exesdb_prometheus_series{{{INSTANCE}}})", "held"),
            Q(
                f"sum(rate(exesdb_prometheus_series_expired_total{{{INSTANCE}}}[{RATE}]))",
                "expired/s",
            ),
            Q(
                f"sum(rate(exesdb_prometheus_series_refused_total{{{INSTANCE}}}[{RATE}]))",
                "refused/s",
            ),
        ],
        "short",
        width=24,
    ),
    series(
        "Messages translated by the Prometheus sink",
        [
            Q(
                f"sum by (pubsub) (rate(exesdb_prometheus_messages_total{{{INSTANCE}}}[{RATE}]))",
                "{{pubsub}}",
            )
        ],
        "ops",
    ),
    series(
        "Collector runs",
        [
            Q(
                f"sum by (collector, result) (rate(exesdb_collector_runs_total{{{INSTANCE}}}[{RATE}]))",
                "{{collector}} {{result}}",
            ),
            Q(
                f"max by (collector) (exesdb_collector_duration_seconds{{{INSTANCE}}})",
                "{{collector}} duration",
                unit="s",
            ),
        ],
        "ops",
    ),
    Row("Redis bus"),
    series(
        "Redis connection",
        [
            Q(
                f"max by (instance) (exesdb_redis_connected{{{INSTANCE}}})",
                "connected {{instance}}",
            ),
            Q(
                f"max by (instance) (exesdb_redis_node_name_shared{{{INSTANCE}}})",
                "node name shared {{instance}}",
            ),
            Q(
                f"sum by (instance) (rate(exesdb_redis_connection_errors_total{{{INSTANCE}}}[{RATE}]))",
                "failed commands {{instance}}",
                unit="ops",
            ),
        ],
        "short",
        description="Connected: 1 while Redis answers the replica and refuses none of its commands, else 0 (ExesdbRedisUnusable fires after 5 minutes at 0; a deployment none of whose replicas is connected is not told as ExesdbRedisWorkQueueLeaseUnheld). Node name shared: 1 while another live bridge process on this Redis runs with the replica's EXESDB_NODE (ExesdbNodeNameShared fires after 5 minutes). Failed commands per second, right axis: Redis unreachable or refusing them (the credentials, an ACL permission, memory full). Only on the Redis bus.",
    ),
    series(
        "Redis TLS files",
        [
            Q(
                f"max by (instance) (exesdb_redis_tls_files_last_reload_successful{{{INSTANCE}}})",
                "reload successful {{instance}}",
            ),
            Q(
                f"time() - max by (instance) (exesdb_redis_tls_files_last_reload_success_timestamp_seconds{{{INSTANCE}}})",
                "in force for {{instance}}",
                unit="s",
            ),
        ],
        "short",
        description="Reload successful: 1 when the latest change to the TLS files named in EXESDB_BUS's query (ssl_ca_certs, ssl_certfile, ssl_keyfile) was taken, 0 while one that does not load is refused and the files loaded before stay in force (ExesdbRedisTLSFilesReloadFailed fires after 15 minutes). In force for, right axis: how long since the files in force were loaded. Only on the Redis bus with TLS files.",
    ),
    Row("Alerts"),
    series(
        "Alerts raised by category",
        [
            Q(
                f"sum by (category) (max by (severity, category) (rate(exesdb_alerts_total[{RATE}]))) * 60",
                "{{category}}",
            )
        ],
        "short",
        description="Alerts raised per minute (a host resource's MetricAlert once per crossing or severity, not again with every sample while it breaches).",
    ),
    series(
        "Active alerts by severity",
        [Q(f"sum by (severity) ({ACTIVE_ALERTS})", "{{severity}}")],
        "short",
    ),
    series(
        "Acknowledgements and notifications",
        [
            Q(
                "max by (severity) (increase(exesdb_alert_acknowledgements_total[5m]))",
                "acknowledged {{severity}}",
            ),
            Q(
                "max by (method, status) (increase(exesdb_alert_notifications_total[5m]))",
                "{{method}} {{status}}",
            ),
        ],
        "short",
    ),
    series(
        "Webhook deliveries",
        [
            Q(
                f"sum by (result) (rate(exesdb_webhook_deliveries_total{{{INSTANCE}}}[{RATE}]))",
                "{{result}}",
            ),
        ],
        "ops",
        description="Delivery attempts by result: delivered, retry, rejected, expired, stale.",
    ),
    series(
        "Webhook outbox",
        [
            Q(f"sum(exesdb_webhook_outbox_depth{{{INSTANCE}}})", "waiting"),
            # By state: needs_action (what ExesdbWebhookDeadLetters fires on), superseded.
            Q(
                f"sum by (state) (exesdb_webhook_dead_letters{{{INSTANCE}}})",
                "dead-lettered, {{state}}",
            ),
        ],
        "short",
        description="Alert notifications waiting, and dead letters by state: needs_action "
        "(the receiver has not heard of each of their alerts since: `exesdb-bridge outbox "
        "list`) or superseded (it took a later delivery of each).",
    ),
    series(
        "Webhook delivery latency",
        [
            Q(
                f"histogram_quantile(0.95, sum by (le) (rate(exesdb_webhook_delivery_seconds_bucket{{{INSTANCE}}}[{RATE}])))",
                "p95",
            ),
        ],
        "s",
    ),
    series(
        "Alertmanager posts",
        [
            Q(
                f"sum by (result) (rate(exesdb_alertmanager_posts_total{{{INSTANCE}}}[{RATE}]))",
                "{{result}}",
            )
        ],
        "ops",
    ),
    series(
        "Resolves of unknown alerts forgotten",
        [
            Q(
                f"sum by (instance) (increase(exesdb_alerts_resolves_forgotten_total{{{INSTANCE}}}[5m]))",
                "{{instance}}",
            )
        ],
        "short",
        description="Resolves of alerts the bridge did not know (a node's return taken before its down) forgotten at the cap of 10 000, per 5 minutes: a flood of returns of distinct nodes, or a misbehaving sender; a late firing sent before one forgotten opens its alert again. ExesdbAlertResolvesForgotten fires for 15 minutes after each.",
    ),
    series(
        "Alerts refused and stale events",
        [
            Q(
                f"sum by (instance) (increase(exesdb_alerts_refused_total{{{INSTANCE}}}[5m]))",
                "refused at the cap {{instance}}",
            ),
            Q(
                f"sum by (instance) (increase(exesdb_alerts_stale_events_total{{{INSTANCE}}}[5m]))",
                "stale events left out {{instance}}",
            ),
        ],
        "short",
        description="Per 5 minutes: new alerts refused because the cap on open alerts (50 000) was reached, and alert events left out because their message was sent before the event that last changed their alert (delivered late or again: a down redelivered after the return that resolved it re-opens nothing). On the Redis bus, at the work-queue lease holder.",
    ),
    series(
        "Work-queue lease (Redis bus)",
        [
            # A deployment's replicas share one lease: the targets of one job in one namespace.
            Q(
                f"sum by (job, namespace) (exesdb_redis_work_queue_leader{{{INSTANCE}}})",
                "holders {{job}} {{namespace}}",
            ),
            Q(
                f"max by (instance) (exesdb_redis_work_queue_lease_kept{{{INSTANCE}}})",
                "kept {{instance}}",
            ),
            Q(
                f"sum by (instance) (increase(exesdb_redis_work_queue_lease_kept_given_back_total{{{INSTANCE}}}[5m]))",
                "given back still failing {{instance}}",
            ),
        ],
        "short",
        description="Holders: the replicas of a deployment (a job in a namespace) that hold the work-queue lease, 1 but for a hand-over (ExesdbRedisWorkQueueLeaseUnheld fires after 2 minutes at 0, ExesdbRedisWorkQueueLeaseHeldBySeveral after 2 minutes above 1). Kept: 1 while a replica that took the work-queue lease back after Redis lost its data keeps it through failed take-ups, the work queue served by no replica (ExesdbRedisWorkQueueLeaseKept fires after 5 minutes). Given back: leases it gave back still failing, per 5 minutes, its open alerts then taken up by no replica (ExesdbRedisWorkQueueLeaseGivenBack). Only on the Redis bus.",
    ),
    Row("OpenTelemetry export"),
    series(
        "OTLP records exported",
        [
            Q(
                f"sum by (signal) (rate(exesdb_otlp_exported_total{{{INSTANCE}}}[{RATE}]))",
                "{{signal}}",
            )
        ],
        "ops",
    ),
    series(
        "OTLP failures, drops and queue",
        [
            Q(
                f"sum by (signal) (rate(exesdb_otlp_export_failures_total{{{INSTANCE}}}[{RATE}]))",
                "failed {{signal}}",
            ),
            Q(
                f"sum by (signal) (rate(exesdb_otlp_dropped_total{{{INSTANCE}}}[{RATE}]))",
                "dropped {{signal}}",
            ),
            Q(f"sum by (signal) (exesdb_otlp_queue_depth{{{INSTANCE}}})", "queued {{signal}}"),
        ],
        "short",
    ),
    Row("HTTP edge"),
    series(
        "Web config",
        [
            Q(
                f"max by (instance) (exesdb_web_config_last_reload_successful{{{INSTANCE}}})",
                "reload successful {{instance}}",
            ),
            Q(
                f"time() - max by (instance) (exesdb_web_config_last_reload_success_timestamp_seconds{{{INSTANCE}}})",
                "in force for {{instance}}",
                unit="s",
            ),
        ],
        "short",
        description="Reload successful: 1 when the latest change to EXESDB_WEB_CONFIG_FILE (or a file it names) was taken, 0 while a bad one is refused and the version loaded before stays in force (ExesdbWebConfigReloadFailed fires after 15 minutes). In force for, right axis: how long since the web config in force was loaded. Only with EXESDB_WEB_CONFIG_FILE.",
    ),
    Row("Security, audit and logs"),
    series(
        "Authentication events",
        [
            Q(
                f"sum by (event_type) (max by (node, event_type, method) (rate(exesdb_auth_events_total{{{NODE}}}[{RATE}])))",
                "{{event_type}}",
            )
        ],
        "ops",
    ),
    series(
        "Access violations",
        [
            Q(
                f"sum by (violation_type) (max by (node, violation_type, severity) (increase(exesdb_access_violations_total{{{NODE}}}[5m])))",
                "{{violation_type}}",
            ),
            Q(
                f"sum by (alert_type) (max by (node, alert_type, severity) (increase(exesdb_security_alerts_total{{{NODE}}}[5m])))",
                "security alert {{alert_type}}",
            ),
        ],
        "short",
    ),
    series(
        "Audited data changes",
        [
            Q(
                f"sum by (action) (max by (node, resource_type, action) (rate(exesdb_audit_data_changes_total{{{NODE}}}[{RATE}])))",
                "{{action}}",
            )
        ],
        "ops",
    ),
    series(
        "Audited accesses by result",
        [
            Q(
                f"sum by (result) (max by (node, resource_type, result) (rate(exesdb_audit_access_total{{{NODE}}}[{RATE}])))",
                "{{result}}",
            )
        ],
        "ops",
    ),
    series(
        "Log entries by level",
        [
            Q(
                f"sum by (level) (max by (node, level) (rate(exesdb_log_entries_total{{{NODE}}}[{RATE}])))",
                "{{level}}",
            )
        ],
        "ops",
    ),
    series(
        "Diagnostics",
        [
            Q(
                f"sum by (component) (max by (node, component) (increase(exesdb_debug_traces_total{{{NODE}}}[5m])))",
                "traces {{component}}",
            ),
            Q(
                f"sum by (error_type) (max by (node, error_type) (increase(exesdb_error_analyses_total{{{NODE}}}[5m])))",
                "errors {{error_type}}",
            ),
        ],
        "short",
    ),
    series(
        "Sessions",
        [
            Q(
                f"sum by (event_type) (max by (node, event_type) (increase(exesdb_session_events_total{{{NODE}}}[5m])))",
                "{{event_type}}",
            )
        ],
        "short",
    ),
]


@dataclass(frozen=True)
class PanelIds:
    """One dashboard's panel ids: by title, and those of removed panels, never given again."""

    panels: dict[str, int]
    retired: tuple[int, ...] = ()

    def next_free(self) -> int:
        """The id to give a new panel: above every id given so far."""
        return max([0, *self.panels.values(), *self.retired]) + 1


def load_ids(path: Path = IDS) -> dict[str, PanelIds]:
    """Each dashboard's panel ids, by dashboard uid."""
    table = json.loads(path.read_text())
    return {uid: PanelIds(entry["panels"], tuple(entry["retired"])) for uid, entry in table.items()}


def _check_ids(uid: str, titles: list[str], ids: PanelIds) -> None:
    """Refuse a title used twice, a panel without an id, an id naming no panel, an id given twice."""
    where = f"{IDS.name}, dashboard {uid}"
    for title in titles:
        if titles.count(title) > 1:
            raise ValueError(f"{where}: two panels have the title {title!r}, which keys its id")
        if title not in ids.panels:
            raise ValueError(
                f"{where}: panel {title!r} has no id; give it {ids.next_free()} (the next free one)"
            )
    for title in ids.panels.keys() - set(titles):
        raise ValueError(
            f"{where}: {title!r} names no panel; a renamed panel keeps its id under its new "
            "title, a removed one's id goes to retired"
        )
    given = [*ids.panels.values(), *ids.retired]
    for panel_id in given:
        if not isinstance(panel_id, int) or isinstance(panel_id, bool) or panel_id < 1:
            raise ValueError(f"{where}: id {panel_id!r} is not a positive whole number")
        if given.count(panel_id) > 1:
            raise ValueError(f"{where}: id {panel_id} is given twice")


@dataclass
class Dashboard:
    """One dashboard file."""

    uid: str
    title: str
    description: str
    panels: list[P | Row]
    extra_variables: list[dict[str, Any]] = field(default_factory=list)


def _query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
    }


def _variables(extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            # Replaced by the data source chosen at import; matches nothing when provisioned.
            "current": {"selected": False, "text": f"${{{INPUT}}}", "value": f"${{{INPUT}}}"},
            "hide": 0,
            "refresh": 1,
            "regex": "",
        },
        _query_variable("node", "Node", "label_values(exesdb_node_health_status, node)"),
        *extra,
    ]


def _panel(item: P | Row, panel_id: int, x: int, y: int) -> dict[str, Any]:
    if isinstance(item, Row):
        return {
            "id": panel_id,
            "type": "row",
            "title": item.title,
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            "panels": [],
        }
    defaults: dict[str, Any] = {"unit": item.unit}
    defaults.update(item.defaults)
    targets = []
    overrides = list(item.overrides)
    for index, query in enumerate(item.queries):
        target: dict[str, Any] = {
            "refId": chr(ord("A") + index),
            "datasource": DS,
            "expr": query.expr,
            "legendFormat": query.legend or "__auto",
            "range": not query.instant,
            "instant": query.instant,
            "editorMode": "code",
        }
        if query.instant:
            target["format"] = "table"
        targets.append(target)
        if query.unit:
            matcher = {"id": "byFrameRefID", "options": target["refId"]}
            properties = [
                {"id": "unit", "value": query.unit},
                {"id": "custom.axisPlacement", "value": "right"},
            ]
            overrides.append({"matcher": matcher, "properties": properties})
    panel: dict[str, Any] = {
        "id": panel_id,
        "type": item.kind,
        "title": item.title,
        "datasource": DS,
        "gridPos": {"h": item.height, "w": item.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": item.options,
        "targets": targets,
    }
    if item.description:
        panel["description"] = item.description
    if item.transformations:
        panel["transformations"] = item.transformations
    return panel


def build(dashboard: Dashboard, ids: PanelIds) -> dict[str, Any]:
    """The dashboard's JSON model, panels laid out left to right, top to bottom, each with its
    id from ``ids`` (a ``ValueError`` names the panel without one, or the id naming none)."""
    _check_ids(dashboard.uid, [item.title for item in dashboard.panels], ids)
    panels: list[dict[str, Any]] = []
    x = y = row_height = 0
    for item in dashboard.panels:
        panel_id = ids.panels[item.title]
        if isinstance(item, Row):
            if x:
                y, x, row_height = y + row_height, 0, 0
            panels.append(_panel(item, panel_id, 0, y))
            y += 1
            continue
        if x + item.width > 24:
            y, x, row_height = y + row_height, 0, 0
        panels.append(_panel(item, panel_id, x, y))
        x += item.width
        row_height = max(row_height, item.height)
    kinds = sorted({panel["type"] for panel in panels if panel["type"] != "row"})
    return {
        "__inputs": [
            {
                "name": INPUT,
                "label": "Prometheus",
                "description": "The Prometheus that scrapes exesdb-bridge",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *(
                {"type": "panel", "id": kind, "name": PANEL_NAMES[kind], "version": ""}
                for kind in kinds
            ),
        ],
        "id": None,
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["exesdb", "exesdb-bridge"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "title": "ExESDB dashboards",
                "type": "dashboards",
                "tags": ["exesdb"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {"list": _variables(dashboard.extra_variables)},
        "panels": panels,
    }


DASHBOARDS = [
    Dashboard(
        "exesdb-cluster-overview",
        "ExESDB / Cluster overview",
        "Cluster membership, quorum, node health, traffic and alerts at a glance.",
        CLUSTER,
    ),
    Dashboard(
        "exesdb-node-health",
        "ExESDB / Node health & resources",
        "Per-node health status, component health, health checks, CPU, memory, disk, network.",
        NODES,
    ),
    Dashboard(
        "exesdb-throughput-latency",
        "ExESDB / Throughput & latency",
        "Operations per second, errors and latency percentiles per operation.",
        THROUGHPUT,
        [
            _query_variable(
                "operation",
                "Operation",
                'label_values(exesdb_operations_total{node=~"$node"}, operation)',
            )
        ],
    ),
    Dashboard(
        "exesdb-bridge-internals",
        "ExESDB / Alerts & bridge internals",
        "Alerts, security, audit and logs, and the bridge itself: bus, Redis bus, sinks, webhooks, OTLP, HTTP edge.",
        INTERNALS,
        [_query_variable("instance", "Bridge", "label_values(exesdb_build_info, instance)")],
    ),
]


def render(dashboard: Dashboard, ids: PanelIds) -> str:
    """The file text of one dashboard."""
    return json.dumps(build(dashboard, ids), indent=2, sort_keys=False) + "\n"


def files() -> dict[Path, str]:
    """Every dashboard file this generates, by path."""
    ids = load_ids()
    unknown = ids.keys() - {dashboard.uid for dashboard in DASHBOARDS}
    if unknown:
        raise ValueError(f"{IDS.name}: no dashboard has the uid {sorted(unknown)[0]!r}")
    return {
        OUT / f"{dashboard.uid}.json": render(dashboard, ids.get(dashboard.uid, PanelIds({})))
        for dashboard in DASHBOARDS
    }


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or with ``--check`` report the ones that are out of date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    try:
        generated = files()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    stale = [
        path for path, text in generated.items() if not path.exists() or path.read_text() != text
    ]
    if args.check:
        for path in stale:
            print(f"out of date: {path} (run python grafana/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for path in stale:
        path.write_text(generated[path])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
