# ruff: noqa: E501  (PromQL expressions read best on one line)
"""The Node health dashboard: each node's health, its components and checks, its resources."""

from __future__ import annotations

from ..panels import Dashboard, P, Q, Row, series, table, thresholds, timeline
from ..queries import NODE, NODE_HEALTH_CODE, RATE

PERCENT_THRESHOLDS = thresholds((None, "green"), (85, "yellow"), (95, "red"))

PANELS: list[P | Row] = [
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
            "thresholds": thresholds((None, "green"), (1, "orange")),
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
            ),
            Q(
                f'max by (node, resource) (exesdb_node_resource_available{{{NODE}, resource=~"memory|disk"}})',
                "{{node}} {{resource}} total",
            ),
        ],
        "bytes",
        description="Memory and disk in use on each node, and each one's total (a resource's total in its own unit, bytes for memory and disk): the room left, for capacity planning.",
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
            Q(
                f"sum by (node, event) (max by (node, supervisor, event) (increase(exesdb_supervision_events_total{{{NODE}}}[5m])))",
                "{{node}} supervision {{event}}",
            ),
            Q(
                f"sum by (node, event) (max by (node, system, event) (increase(exesdb_system_lifecycle_events_total{{{NODE}}}[5m])))",
                "{{node}} system {{event}}",
            ),
        ],
        "short",
        width=24,
        description="Per 5 minutes: process lifecycle events (started, stopped, crashed, restarted), node lifecycle events, supervision events (child_started, child_terminated, restart_limit_exceeded) and SystemLifecycle events (starting, started, stopping, stopped).",
    ),
    series(
        "Systems not started",
        [
            Q(
                f'sum by (node, system) (max by (node, system, state) (exesdb_system_lifecycle_state{{{NODE}, state!="started"}}))',
                "{{node}} {{system}}",
            )
        ],
        "none",
        description="1 while a system's latest SystemLifecycle event is other than started (starting, stopping, stopped), from exesdb_system_lifecycle_state: a system's lifecycle as a state set, 1 for its latest event, 0 for the others.",
    ),
    series(
        "Configuration changes and feature toggles",
        [
            Q(
                f"sum by (node, component) (max by (node, component) (increase(exesdb_config_changes_total{{{NODE}}}[5m])))",
                "{{node}} config {{component}}",
            ),
            Q(
                f"max by (node, feature) (exesdb_feature_enabled{{{NODE}}})",
                "{{node}} feature {{feature}} on",
            ),
        ],
        "short",
        description="SystemConfig messages per 5 minutes, by component (what changed before an incident), and each feature toggle: 1 while it is on, else 0.",
    ),
    series(
        "System state",
        [
            Q(
                f"max by (node) (exesdb_system_memory_bytes{{{NODE}}})",
                "{{node}} memory",
            ),
            Q(
                f"max by (node) (exesdb_system_processes{{{NODE}}})",
                "{{node}} processes",
                unit="short",
            ),
        ],
        "bytes",
        width=24,
        description="Memory in the node's latest system state snapshot, and, right axis, processes in it.",
    ),
]

NODE_HEALTH = Dashboard(
    "exesdb-node-health",
    "ExESDB / Node health & resources",
    "Per-node health status, component health, health checks, CPU, memory, disk, network.",
    PANELS,
)
