"""The Prometheus sink's metric catalog: every family's name, type, help and labels.

One table, ``FAMILIES``: the translator registers it whole, and docs/metrics.md's catalog is
checked against it (``tests/test_metric_catalog.py``). What sets each family is ``translate``'s.
"""

from __future__ import annotations

from typing import Final

from bridge.sinks.prometheus.kept import KEPT_PER_METRIC
from bridge.sinks.prometheus.store import MetricType

__all__ = ["FAMILIES"]

C: Final = MetricType.COUNTER
G: Final = MetricType.GAUGE
S: Final = MetricType.SUMMARY

# name: (type, help, labels). Not here: exesdb_alerts_active, which the alert sink registers
# from its outbox, the authority on alert states.
FAMILIES: Final[dict[str, tuple[MetricType, str, tuple[str, ...]]]] = {
    # health
    "exesdb_node_health_status": (
        G,
        "Node health as a state set: 1 for the current status, 0 for the others.",
        ("node", "status"),
    ),
    "exesdb_node_cpu_usage_percent": (G, "CPU in use on the node, percent.", ("node",)),
    "exesdb_node_memory_usage_percent": (G, "Memory in use on the node, percent.", ("node",)),
    "exesdb_node_disk_usage_percent": (G, "Disk space in use on the node, percent.", ("node",)),
    "exesdb_node_network_usage_percent": (
        G,
        "Network capacity in use on the node, percent.",
        ("node",),
    ),
    "exesdb_node_load_average": (G, "The node's one-minute load average.", ("node",)),
    "exesdb_node_resource_used": (
        G,
        "A resource's use in its own unit (bytes for memory and disk, CPUs for cpu).",
        ("node", "resource"),
    ),
    "exesdb_node_resource_available": (
        G,
        "A resource's total in its own unit (bytes for memory and disk, CPUs for cpu).",
        ("node", "resource"),
    ),
    "exesdb_component_health_status": (
        G,
        "Component health as a state set: 1 for the current status, 0 for the others.",
        ("node", "component", "status"),
    ),
    "exesdb_health_checks": (
        C,
        "Health checks completed, by result (pass, fail, timeout).",
        ("node", "check", "result"),
    ),
    "exesdb_health_check_success": (
        G,
        "1 when the latest run of a health check passed, else 0.",
        ("node", "check"),
    ),
    "exesdb_health_check_duration_seconds": (
        G,
        "How long the latest run of a health check took.",
        ("node", "check"),
    ),
    # cluster
    "exesdb_cluster_nodes": (
        G,
        "Cluster nodes by state (healthy, degraded, unhealthy, down, total).",
        ("state",),
    ),
    "exesdb_cluster_quorum_available": (G, "1 while the cluster has quorum, else 0.", ()),
    "exesdb_cluster_health_status": (
        G,
        "Cluster health as a state set: 1 for the current status, 0 for the others.",
        ("status",),
    ),
    "exesdb_cluster_membership_events": (
        C,
        "Cluster membership changes (node_added, node_removed, partition_*).",
        ("event",),
    ),
    # throughput, latency, performance
    "exesdb_operations": (
        C,
        "Operations finished, by result (success, error).",
        ("node", "operation", "result"),
    ),
    "exesdb_operation_rate_per_second": (
        G,
        "Operations per second over the latest reporting interval.",
        ("node", "operation"),
    ),
    "exesdb_operation_latency_seconds": (
        S,
        "Operation latency over the latest interval: quantile 0 is the minimum, 1 the maximum.",
        ("node", "operation", "quantile"),
    ),
    "exesdb_operation_latency_avg_seconds": (
        G,
        "Average operation latency over the latest interval.",
        ("node", "operation"),
    ),
    "exesdb_operation_latency_samples": (
        G,
        "Operations the latest latency figures were computed from.",
        ("node", "operation"),
    ),
    "exesdb_performance_value": (
        G,
        "A component's named measurement (PerformanceMetric), in the unit of its unit label.",
        ("node", "component", "metric", "unit"),
    ),
    "exesdb_metric_alerts": (
        C,
        "MetricAlert messages (a metric crossed its threshold), by metric and severity.",
        ("node", "metric", "severity"),
    ),
    # alerts
    "exesdb_alerts": (
        C,
        "Alerts raised by SystemAlert, MetricAlert, SecurityAlert and AccessViolation messages,"
        " by severity and category (a repeat of an alert still open is not raised again).",
        ("severity", "category"),
    ),
    "exesdb_alert_acknowledgements": (
        C,
        "Alerts acknowledged, by the severity the alert had (unknown when not seen).",
        ("severity",),
    ),
    "exesdb_alert_escalations": (C, "Alert escalations, by the level reached.", ("level",)),
    "exesdb_alert_notifications": (
        C,
        "Alert notification outcomes, by delivery method and status.",
        ("method", "status"),
    ),
    # system
    "exesdb_config_changes": (C, "SystemConfig messages, by component.", ("node", "component")),
    "exesdb_system_lifecycle_events": (
        C,
        "SystemLifecycle events (starting, started, stopping, stopped).",
        ("node", "system", "event"),
    ),
    "exesdb_system_lifecycle_state": (
        G,
        "A system's lifecycle as a state set: 1 for its latest event, 0 for the others.",
        ("node", "system", "state"),
    ),
    "exesdb_feature_enabled": (G, "1 while a feature toggle is on, else 0.", ("node", "feature")),
    # lifecycle
    "exesdb_node_lifecycle_events": (
        C,
        "Node lifecycle events (joining, joined, leaving, left, down, reconnected).",
        ("node", "event"),
    ),
    "exesdb_node_cluster_size": (
        G,
        "Cluster size as of the node's latest lifecycle event.",
        ("node",),
    ),
    "exesdb_node_start_time_seconds": (
        G,
        "When the node last started, in Unix seconds: the time of its own latest NodeLifecycle "
        "joined that is no heartbeat.",
        ("node",),
    ),
    "exesdb_process_lifecycle_events": (
        C,
        "Process lifecycle events (started, stopped, crashed, restarted), by module.",
        ("node", "module", "event"),
    ),
    "exesdb_supervision_events": (
        C,
        "Supervision events (child_started, child_terminated, restart_limit_exceeded).",
        ("node", "supervisor", "event"),
    ),
    # audit
    "exesdb_audit_data_changes": (
        C,
        "Audited data changes, by resource type and action.",
        ("node", "resource_type", "action"),
    ),
    "exesdb_audit_admin_actions": (C, "Audited admin actions, by type.", ("node", "action")),
    "exesdb_audit_access": (
        C,
        "Audited accesses, by resource type and result (success, failure).",
        ("node", "resource_type", "result"),
    ),
    "exesdb_audit_compliance_events": (
        C,
        "Compliance events, by type.",
        ("node", "event_type"),
    ),
    # diagnostics
    "exesdb_debug_traces": (C, "Debug traces, by component.", ("node", "component")),
    "exesdb_performance_analyses": (
        C,
        "Performance analyses, by component, type and severity.",
        ("node", "component", "analysis_type", "severity"),
    ),
    "exesdb_system_state_snapshots": (
        C,
        "System state snapshots, by type.",
        ("node", "snapshot_type"),
    ),
    "exesdb_system_processes": (
        G,
        "Processes in the node's latest system state snapshot.",
        ("node",),
    ),
    "exesdb_system_memory_bytes": (
        G,
        "Memory in the node's latest system state snapshot.",
        ("node",),
    ),
    "exesdb_error_analyses": (C, "Error analyses, by error type.", ("node", "error_type")),
    "exesdb_error_frequency": (
        G,
        "How often an error type occurred, as of its latest analysis.",
        ("node", "error_type"),
    ),
    # security
    "exesdb_auth_events": (
        C,
        "Authentication events, by type and method.",
        ("node", "event_type", "method"),
    ),
    "exesdb_access_violations": (
        C,
        "Access violations, by type and severity.",
        ("node", "violation_type", "severity"),
    ),
    "exesdb_security_alerts": (
        C,
        "Security alerts, by type and severity.",
        ("node", "alert_type", "severity"),
    ),
    "exesdb_session_events": (C, "Session events, by type.", ("node", "event_type")),
    # logging
    "exesdb_log_entries": (C, "Log entries, by level.", ("node", "level")),
    "exesdb_log_period_entries": (
        G,
        "Log entries per level in the latest LogSummary for a period.",
        ("period", "level"),
    ),
    "exesdb_log_period_error_rate_per_minute": (
        G,
        "Errors per minute in the latest LogSummary for a period.",
        ("period",),
    ),
    "exesdb_log_filter_updates": (
        C,
        "Log filter changes, by filter type and action.",
        ("filter_type", "action"),
    ),
    "exesdb_log_rotations": (C, "Log rotations, by log type.", ("node", "log_type")),
    "exesdb_log_rotated_bytes": (
        C,
        "Bytes in rotated log files, by log type.",
        ("node", "log_type"),
    ),
    # the sink itself
    "exesdb_prometheus_messages": (
        C,
        "Verified messages the Prometheus sink translated, by bus instance and type.",
        ("pubsub", "tag"),
    ),
    "exesdb_prometheus_late_readings": (
        C,
        "Readings (health, metrics) the Prometheus sink set no gauge from: sent more than half"
        " EXESDB_REPLAY_WINDOW_MS after they were made, as frames a replica held through a"
        " Redis outage are.",
        (),
    ),
    "exesdb_prometheus_kept_series_released": (
        C,
        "State series (feature toggles, lifecycles) no longer kept while their node is heard, by"
        f" metric: the oldest-written past the {KEPT_PER_METRIC} a node keeps of a metric, left"
        " to expire with EXESDB_SERIES_TTL_MS.",
        ("metric",),
    ),
}
