# ruff: noqa: E501  (PromQL expressions read best on one line)
"""The Cluster overview dashboard: membership, quorum, node health, traffic and alerts."""

from __future__ import annotations

from ..panels import Dashboard, P, Q, Row, series, stat, thresholds, timeline, zero_one
from ..queries import ACTIVE_ALERTS, NODE, NODE_HEALTH_CODE, RATE

PANELS: list[P | Row] = [
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
        defaults={"thresholds": thresholds((None, "green"), (1, "yellow"))},
    ),
    stat(
        "Down",
        'max by (state) (exesdb_cluster_nodes{state="down"})',
        "none",
        defaults={"thresholds": thresholds((None, "green"), (1, "red"))},
    ),
    stat(
        "Quorum",
        "min(exesdb_cluster_quorum_available)",
        "none",
        defaults=zero_one(("lost", "red"), ("available", "green")),
    ),
    stat(
        "Active alerts",
        f"sum({ACTIVE_ALERTS})",
        "none",
        defaults={"thresholds": thresholds((None, "green"), (1, "orange"))},
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
    series(
        "Down storms and forgotten nodes",
        [
            Q("max(increase(exesdb_cluster_down_storms_total[5m]))", "down storms"),
            Q(
                "max by (reason) (increase(exesdb_cluster_nodes_forgotten_total[5m]))",
                "forgotten {{reason}}",
            ),
            Q(
                "max(increase(exesdb_cluster_farewells_dropped_total[5m]))",
                "farewells dropped",
            ),
        ],
        "short",
        width=24,
        description="Per 5 minutes, the most any bridge replica's cluster monitor counted. Down storms: more than 10 node downs within one health interval, during which downs are grouped into one node_failure alert per interval. Forgotten: nodes the cluster monitor stopped tracking, by reason: silent (down and silent for EXESDB_NODE_FORGET_MS) or evicted (the longest silent, at the cap on tracked nodes); a silent one is announced left, which resolves its node_failure. Farewells dropped: forgotten down nodes never announced left because the backlog of announcements was full.",
    ),
]

CLUSTER_OVERVIEW = Dashboard(
    "exesdb-cluster-overview",
    "ExESDB / Cluster overview",
    "Cluster membership, quorum, node health, traffic and alerts at a glance.",
    PANELS,
)
