"""Golden exposition text for every message kind the Prometheus sink translates."""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec
import pytest

from bridge.bus import Envelope
from bridge.bus.decoding import decode_envelopes
from bridge.messages import MESSAGE_TYPES, Message
from bridge.sinks.prometheus import SeriesStore, Translator
from tests.messages.helpers import ALL_MODELS
from tests.sinks.label_support import fields_reaching, takes_a_control_character
from tests.sinks.prometheus_support import (
    envelope,
    families_text,
    propagate,
    sample,
    translate,
)
from tests.support import ManualClock


class Golden(NamedTuple):
    tag: str
    fields: dict[str, Any]
    expected: str
    topic: str | None = None


def _h(name: str, kind: str, help_text: str) -> str:
    sample = name + "_total" if kind == "counter" else name
    return f"# HELP {sample} {help_text}\n# TYPE {sample} {kind}\n"


GOLDEN = [
    Golden(
        "system_config_changed",
        {"component": "pubsub_integration", "changes": {"enabled": True}},
        _h("exesdb_config_changes", "counter", "SystemConfig messages, by component.")
        + 'exesdb_config_changes_total{node="n1",component="pubsub_integration"} 1.0\n',
    ),
    Golden(
        "system_lifecycle_event",
        {"event": "started", "system_name": "exesdb", "version": "0.8.0"},
        _h(
            "exesdb_system_lifecycle_events",
            "counter",
            "SystemLifecycle events (starting, started, stopping, stopped).",
        )
        + 'exesdb_system_lifecycle_events_total{node="n1",system="exesdb",event="started"} 1.0\n'
        + _h(
            "exesdb_system_lifecycle_state",
            "gauge",
            "A system's lifecycle as a state set: 1 for its latest event, 0 for the others.",
        )
        + 'exesdb_system_lifecycle_state{node="n1",system="exesdb",state="starting"} 0.0\n'
        + 'exesdb_system_lifecycle_state{node="n1",system="exesdb",state="started"} 1.0\n'
        + 'exesdb_system_lifecycle_state{node="n1",system="exesdb",state="stopping"} 0.0\n'
        + 'exesdb_system_lifecycle_state{node="n1",system="exesdb",state="stopped"} 0.0\n',
    ),
    Golden(
        "feature_toggle_changed",
        {"feature": "snapshots", "enabled": True, "previous_state": False, "changed_by": "ops"},
        _h("exesdb_feature_enabled", "gauge", "1 while a feature toggle is on, else 0.")
        + 'exesdb_feature_enabled{node="n1",feature="snapshots"} 1.0\n',
    ),
    Golden(
        "node_health_updated",
        {"status": "degraded", "load_avg": 1.5, "memory_usage": 86.0, "disk_usage": 40.25},
        _h(
            "exesdb_node_health_status",
            "gauge",
            "Node health as a state set: 1 for the current status, 0 for the others.",
        )
        + 'exesdb_node_health_status{node="n1",status="healthy"} 0.0\n'
        + 'exesdb_node_health_status{node="n1",status="degraded"} 1.0\n'
        + 'exesdb_node_health_status{node="n1",status="unhealthy"} 0.0\n'
        + 'exesdb_node_health_status{node="n1",status="unknown"} 0.0\n'
        + _h("exesdb_node_memory_usage_percent", "gauge", "Memory in use on the node, percent.")
        + 'exesdb_node_memory_usage_percent{node="n1"} 86.0\n'
        + _h("exesdb_node_disk_usage_percent", "gauge", "Disk space in use on the node, percent.")
        + 'exesdb_node_disk_usage_percent{node="n1"} 40.25\n'
        + _h("exesdb_node_load_average", "gauge", "The node's one-minute load average.")
        + 'exesdb_node_load_average{node="n1"} 1.5\n',
    ),
    Golden(
        "cluster_health_updated",
        {
            "status": "degraded",
            "healthy_nodes": 2,
            "total_nodes": 5,
            "degraded_nodes": ["n3"],
            "unhealthy_nodes": [],
            "quorum_status": "available",
        },
        _h(
            "exesdb_cluster_nodes",
            "gauge",
            "Cluster nodes by state (healthy, degraded, unhealthy, down, total).",
        )
        + 'exesdb_cluster_nodes{state="healthy"} 2.0\n'
        + 'exesdb_cluster_nodes{state="degraded"} 1.0\n'
        + 'exesdb_cluster_nodes{state="unhealthy"} 0.0\n'
        + 'exesdb_cluster_nodes{state="down"} 2.0\n'
        + 'exesdb_cluster_nodes{state="total"} 5.0\n'
        + _h("exesdb_cluster_quorum_available", "gauge", "1 while the cluster has quorum, else 0.")
        + "exesdb_cluster_quorum_available 1.0\n"
        + _h(
            "exesdb_cluster_health_status",
            "gauge",
            "Cluster health as a state set: 1 for the current status, 0 for the others.",
        )
        + 'exesdb_cluster_health_status{status="healthy"} 0.0\n'
        + 'exesdb_cluster_health_status{status="degraded"} 1.0\n'
        + 'exesdb_cluster_health_status{status="unhealthy"} 0.0\n',
    ),
    Golden(
        "component_health_updated",
        {"component": "store", "status": "unhealthy"},
        _h(
            "exesdb_component_health_status",
            "gauge",
            "Component health as a state set: 1 for the current status, 0 for the others.",
        )
        + 'exesdb_component_health_status{node="n1",component="store",status="healthy"} 0.0\n'
        + 'exesdb_component_health_status{node="n1",component="store",status="degraded"} 0.0\n'
        + 'exesdb_component_health_status{node="n1",component="store",status="unhealthy"} 1.0\n',
    ),
    Golden(
        "health_check_completed",
        {"check_name": "disk", "result": "timeout", "duration_ms": 1500},
        _h(
            "exesdb_health_checks",
            "counter",
            "Health checks completed, by result (pass, fail, timeout).",
        )
        + 'exesdb_health_checks_total{node="n1",check="disk",result="timeout"} 1.0\n'
        + _h(
            "exesdb_health_check_success",
            "gauge",
            "1 when the latest run of a health check passed, else 0.",
        )
        + 'exesdb_health_check_success{node="n1",check="disk"} 0.0\n'
        + _h(
            "exesdb_health_check_duration_seconds",
            "gauge",
            "How long the latest run of a health check took.",
        )
        + 'exesdb_health_check_duration_seconds{node="n1",check="disk"} 1.5\n',
    ),
    Golden(
        "performance_metric",
        {"metric_name": "queue_len", "value": 12, "unit": "count", "component": "writer"},
        _h(
            "exesdb_performance_value",
            "gauge",
            "A component's named measurement (PerformanceMetric), in the unit of its unit label.",
        )
        + 'exesdb_performance_value{node="n1",component="writer",metric="queue_len",unit="count"}'
        " 12.0\n",
    ),
    Golden(
        "throughput_metric",
        {"operation": "append", "count": 30, "duration_ms": 60000},
        _h("exesdb_operations", "counter", "Operations finished, by result (success, error).")
        + 'exesdb_operations_total{node="n1",operation="append",result="success"} 30.0\n'
        + _h(
            "exesdb_operation_rate_per_second",
            "gauge",
            "Operations per second over the latest reporting interval.",
        )
        + 'exesdb_operation_rate_per_second{node="n1",operation="append"} 0.5\n',
    ),
    Golden(
        "throughput_metric",
        {"operation": "append", "count": 3, "duration_ms": 60000},
        _h("exesdb_operations", "counter", "Operations finished, by result (success, error).")
        + 'exesdb_operations_total{node="n1",operation="append",result="error"} 3.0\n',
        topic="throughput:error",
    ),
    Golden(
        "latency_metric",
        {"operation": "append", "latency_ms": 12.5, "percentile": "p99", "sample_count": 40},
        _h(
            "exesdb_operation_latency_seconds",
            "summary",
            "Operation latency over the latest interval: quantile 0 is the minimum, 1 the maximum.",
        )
        + 'exesdb_operation_latency_seconds{node="n1",operation="append",quantile="0.99"}'
        " 0.0125\n",
    ),
    Golden(
        "latency_metric",
        {"operation": "append", "latency_ms": 2, "percentile": "avg", "sample_count": 40},
        _h(
            "exesdb_operation_latency_avg_seconds",
            "gauge",
            "Average operation latency over the latest interval.",
        )
        + 'exesdb_operation_latency_avg_seconds{node="n1",operation="append"} 0.002\n'
        + _h(
            "exesdb_operation_latency_samples",
            "gauge",
            "Operations the latest latency figures were computed from.",
        )
        + 'exesdb_operation_latency_samples{node="n1",operation="append"} 40.0\n',
    ),
    Golden(
        "resource_usage",
        {"resource_type": "cpu", "usage_percent": 42.5, "total_available": 4, "current_used": 1.7},
        _h("exesdb_node_cpu_usage_percent", "gauge", "CPU in use on the node, percent.")
        + 'exesdb_node_cpu_usage_percent{node="n1"} 42.5\n'
        + _h(
            "exesdb_node_resource_used",
            "gauge",
            "A resource's use in its own unit (bytes for memory and disk, CPUs for cpu).",
        )
        + 'exesdb_node_resource_used{node="n1",resource="cpu"} 1.7\n'
        + _h(
            "exesdb_node_resource_available",
            "gauge",
            "A resource's total in its own unit (bytes for memory and disk, CPUs for cpu).",
        )
        + 'exesdb_node_resource_available{node="n1",resource="cpu"} 4.0\n',
    ),
    Golden(
        "metric_alert",
        {
            "metric_name": "cpu_usage_percent",
            "current_value": 97,
            "threshold_value": 95,
            "threshold_type": "max",
            "severity": "critical",
        },
        _h(
            "exesdb_metric_alerts",
            "counter",
            "MetricAlert messages (a metric crossed its threshold), by metric and severity.",
        )
        + 'exesdb_metric_alerts_total{node="n1",metric="cpu_usage_percent",severity="critical"}'
        " 1.0\n"
        + _h(
            "exesdb_alerts",
            "counter",
            "Alerts raised by SystemAlert, MetricAlert, SecurityAlert and AccessViolation"
            " messages, by severity and category (a repeat of an alert still open is not raised"
            " again).",
        )
        + 'exesdb_alerts_total{severity="critical",category="performance"} 1.0\n',
    ),
    Golden(
        "node_lifecycle_event",
        {"event": "joined", "cluster_size": 3, "metadata": {}},
        _h(
            "exesdb_node_lifecycle_events",
            "counter",
            "Node lifecycle events (joining, joined, leaving, left, down, reconnected).",
        )
        + 'exesdb_node_lifecycle_events_total{node="n1",event="joined"} 1.0\n'
        + _h(
            "exesdb_node_cluster_size",
            "gauge",
            "Cluster size as of the node's latest lifecycle event.",
        )
        + 'exesdb_node_cluster_size{node="n1"} 3.0\n'
        + _h(
            "exesdb_node_start_time_seconds",
            "gauge",
            "When the node last started, in Unix seconds: the time of its own latest"
            " NodeLifecycle joined that is no heartbeat.",
        )
        + 'exesdb_node_start_time_seconds{node="n1"} 1795824000.0\n',
    ),
    Golden(
        "process_lifecycle_event",
        {"pid": "<0.1.0>", "module": "Writer", "event": "crashed"},
        _h(
            "exesdb_process_lifecycle_events",
            "counter",
            "Process lifecycle events (started, stopped, crashed, restarted), by module.",
        )
        + 'exesdb_process_lifecycle_events_total{node="n1",module="Writer",event="crashed"} 1.0\n',
    ),
    Golden(
        "supervision_event",
        {"supervisor": "StoreSup", "child_spec": {}, "event": "child_terminated"},
        _h(
            "exesdb_supervision_events",
            "counter",
            "Supervision events (child_started, child_terminated, restart_limit_exceeded).",
        )
        + 'exesdb_supervision_events_total{node="n1",supervisor="StoreSup",'
        'event="child_terminated"} 1.0\n',
    ),
    Golden(
        "cluster_membership_changed",
        {
            "event": "partition_detected",
            "affected_nodes": ["n3"],
            "active_nodes": ["n1"],
            "total_nodes": 3,
            "quorum_status": "lost",
        },
        _h("exesdb_cluster_quorum_available", "gauge", "1 while the cluster has quorum, else 0.")
        + "exesdb_cluster_quorum_available 0.0\n"
        + _h(
            "exesdb_cluster_membership_events",
            "counter",
            "Cluster membership changes (node_added, node_removed, partition_*).",
        )
        + 'exesdb_cluster_membership_events_total{event="partition_detected"} 1.0\n',
    ),
    Golden(
        "system_alert",
        {
            "severity": "error",
            "category": "data",
            "title": "t",
            "description": "d",
            "source": "s",
        },
        _h(
            "exesdb_alerts",
            "counter",
            "Alerts raised by SystemAlert, MetricAlert, SecurityAlert and AccessViolation"
            " messages, by severity and category (a repeat of an alert still open is not raised"
            " again).",
        )
        + 'exesdb_alerts_total{severity="error",category="data"} 1.0\n',
    ),
    Golden(
        "alert_acknowledged",
        {"alert_id": "abc", "ack_by": "ops"},
        _h(
            "exesdb_alert_acknowledgements",
            "counter",
            "Alerts acknowledged, by the severity the alert had (unknown when not seen).",
        )
        + 'exesdb_alert_acknowledgements_total{severity="unknown"} 1.0\n',
    ),
    Golden(
        "alert_escalated",
        {
            "alert_id": "abc",
            "from_level": "level1",
            "to_level": "level2",
            "escalation_reason": "unacked",
        },
        _h("exesdb_alert_escalations", "counter", "Alert escalations, by the level reached.")
        + 'exesdb_alert_escalations_total{level="level2"} 1.0\n',
    ),
    Golden(
        "notification_status",
        {"alert_id": "abc", "delivery_method": "webhook", "recipient": "r", "status": "failed"},
        _h(
            "exesdb_alert_notifications",
            "counter",
            "Alert notification outcomes, by delivery method and status.",
        )
        + 'exesdb_alert_notifications_total{method="webhook",status="failed"} 1.0\n',
    ),
    Golden(
        "data_change",
        {"user_id": "u", "resource_type": "stream", "resource_id": "s1", "action": "delete"},
        _h(
            "exesdb_audit_data_changes",
            "counter",
            "Audited data changes, by resource type and action.",
        )
        + 'exesdb_audit_data_changes_total{node="n1",resource_type="stream",action="delete"} 1.0\n',
    ),
    Golden(
        "admin_action",
        {"admin_user_id": "a", "action_type": "config_updated", "target_resource": "x"},
        _h("exesdb_audit_admin_actions", "counter", "Audited admin actions, by type.")
        + 'exesdb_audit_admin_actions_total{node="n1",action="config_updated"} 1.0\n',
    ),
    Golden(
        "access_log",
        {
            "user_id": "u",
            "resource_type": "stream",
            "resource_id": "s1",
            "action": "read",
            "success": False,
            "duration_ms": 3,
            "source_ip": "10.0.0.1",
        },
        _h(
            "exesdb_audit_access",
            "counter",
            "Audited accesses, by resource type and result (success, failure).",
        )
        + 'exesdb_audit_access_total{node="n1",resource_type="stream",result="failure"} 1.0\n',
    ),
    Golden(
        "compliance_event",
        {"event_type": "data_export", "compliance_rule": "gdpr", "action_taken": "logged"},
        _h("exesdb_audit_compliance_events", "counter", "Compliance events, by type.")
        + 'exesdb_audit_compliance_events_total{node="n1",event_type="data_export"} 1.0\n',
    ),
    Golden(
        "debug_trace",
        {"component": "reader", "operation": "scan"},
        _h("exesdb_debug_traces", "counter", "Debug traces, by component.")
        + 'exesdb_debug_traces_total{node="n1",component="reader"} 1.0\n',
    ),
    Golden(
        "performance_analysis",
        {"component": "reader", "analysis_type": "cpu_hotspot", "findings": {}},
        _h(
            "exesdb_performance_analyses",
            "counter",
            "Performance analyses, by component, type and severity.",
        )
        + 'exesdb_performance_analyses_total{node="n1",component="reader",'
        'analysis_type="cpu_hotspot",severity="medium"} 1.0\n',
    ),
    Golden(
        "system_state",
        {
            "snapshot_type": "full",
            "process_count": 120,
            "memory_usage": 1048576,
            "trigger_reason": "manual",
        },
        _h("exesdb_system_state_snapshots", "counter", "System state snapshots, by type.")
        + 'exesdb_system_state_snapshots_total{node="n1",snapshot_type="full"} 1.0\n'
        + _h(
            "exesdb_system_processes",
            "gauge",
            "Processes in the node's latest system state snapshot.",
        )
        + 'exesdb_system_processes{node="n1"} 120.0\n'
        + _h(
            "exesdb_system_memory_bytes",
            "gauge",
            "Memory in the node's latest system state snapshot.",
        )
        + 'exesdb_system_memory_bytes{node="n1"} 1048576.0\n',
    ),
    Golden(
        "error_analysis",
        {"error_type": "timeout", "error_message": "m", "frequency": 4},
        _h("exesdb_error_analyses", "counter", "Error analyses, by error type.")
        + 'exesdb_error_analyses_total{node="n1",error_type="timeout"} 1.0\n'
        + _h(
            "exesdb_error_frequency",
            "gauge",
            "How often an error type occurred, as of its latest analysis.",
        )
        + 'exesdb_error_frequency{node="n1",error_type="timeout"} 4.0\n',
    ),
    Golden(
        "auth_event",
        {
            "user_id": "u",
            "event_type": "login_failure",
            "auth_method": "password",
            "source_ip": "10.0.0.1",
        },
        _h("exesdb_auth_events", "counter", "Authentication events, by type and method.")
        + 'exesdb_auth_events_total{node="n1",event_type="login_failure",method="password"} 1.0\n',
    ),
    Golden(
        "access_violation",
        {
            "violation_type": "permission_denied",
            "resource": "r",
            "action": "write",
            "source_ip": "10.0.0.1",
            "severity": "high",
        },
        _h(
            "exesdb_alerts",
            "counter",
            "Alerts raised by SystemAlert, MetricAlert, SecurityAlert and AccessViolation"
            " messages, by severity and category (a repeat of an alert still open is not raised"
            " again).",
        )
        + 'exesdb_alerts_total{severity="error",category="security"} 1.0\n'
        + _h("exesdb_access_violations", "counter", "Access violations, by type and severity.")
        + 'exesdb_access_violations_total{node="n1",violation_type="permission_denied",'
        'severity="high"} 1.0\n',
    ),
    Golden(
        "security_alert",
        {
            "alert_type": "brute_force",
            "severity": "low",
            "description": "d",
            "affected_users": ["u"],
        },
        _h(
            "exesdb_alerts",
            "counter",
            "Alerts raised by SystemAlert, MetricAlert, SecurityAlert and AccessViolation"
            " messages, by severity and category (a repeat of an alert still open is not raised"
            " again).",
        )
        + 'exesdb_alerts_total{severity="info",category="security"} 1.0\n'
        + _h("exesdb_security_alerts", "counter", "Security alerts, by type and severity.")
        + 'exesdb_security_alerts_total{node="n1",alert_type="brute_force",severity="low"} 1.0\n',
    ),
    Golden(
        "session_event",
        {"session_id": "s", "user_id": "u", "event_type": "expired"},
        _h("exesdb_session_events", "counter", "Session events, by type.")
        + 'exesdb_session_events_total{node="n1",event_type="expired"} 1.0\n',
    ),
    Golden(
        "log_entry",
        {"level": "error", "message": "boom", "module": "Writer"},
        _h("exesdb_log_entries", "counter", "Log entries, by level.")
        + 'exesdb_log_entries_total{node="n1",level="error"} 1.0\n',
    ),
    Golden(
        "log_summary",
        {"time_period": "last_hour", "log_counts": {"info": 10, "error": 2}, "error_rate": 0.5},
        _h(
            "exesdb_log_period_entries",
            "gauge",
            "Log entries per level in the latest LogSummary for a period.",
        )
        + 'exesdb_log_period_entries{period="last_hour",level="info"} 10.0\n'
        + 'exesdb_log_period_entries{period="last_hour",level="error"} 2.0\n'
        + _h(
            "exesdb_log_period_error_rate_per_minute",
            "gauge",
            "Errors per minute in the latest LogSummary for a period.",
        )
        + 'exesdb_log_period_error_rate_per_minute{period="last_hour"} 0.5\n',
    ),
    Golden(
        "log_filter_updated",
        {"filter_type": "module", "filter_value": "Writer", "action": "exclude"},
        _h("exesdb_log_filter_updates", "counter", "Log filter changes, by filter type and action.")
        + 'exesdb_log_filter_updates_total{filter_type="module",action="exclude"} 1.0\n',
    ),
    Golden(
        "log_rotation",
        {
            "log_type": "audit",
            "old_file": "a.log",
            "new_file": "b.log",
            "file_size": 2048,
            "entries_count": 10,
        },
        _h("exesdb_log_rotations", "counter", "Log rotations, by log type.")
        + 'exesdb_log_rotations_total{node="n1",log_type="audit"} 1.0\n'
        + _h("exesdb_log_rotated_bytes", "counter", "Bytes in rotated log files, by log type.")
        + 'exesdb_log_rotated_bytes_total{node="n1",log_type="audit"} 2048.0\n',
    ),
]


def test_every_message_type_has_a_golden_case():
    """The golden table covers all 36 message types."""
    assert {case.tag for case in GOLDEN} == {tag for _, tag in MESSAGE_TYPES}


@pytest.mark.parametrize("case", GOLDEN, ids=lambda case: f"{case.tag}:{case.topic or ''}")
def test_golden_exposition(case: Golden):
    """Each message kind renders exactly its documented series, in text format 0.0.4."""
    store = translate(envelope(case.tag, case.topic, **case.fields))
    assert families_text(store) == case.expected


def _ingested(envelope: Envelope) -> Envelope:
    """``envelope`` as ingest decodes it from its wire form (its payload's model not built)."""
    decoded, failure = decode_envelopes([envelope.to_bytes()])
    assert failure is None
    return decoded[0]


@pytest.mark.parametrize("case", GOLDEN, ids=lambda case: f"{case.tag}:{case.topic or ''}")
def test_golden_exposition_of_ingested_messages(case: Golden):
    """Each message kind decoded by ingest renders exactly the same series."""
    store = translate(_ingested(envelope(case.tag, case.topic, **case.fields)))
    assert families_text(store) == case.expected


def test_the_ingest_mix_is_translated_without_building_its_models():
    """The handlers of the most frequent messages (every kind in bench's ingest mix) read the
    decoder's values, and leave the payloads' models unbuilt."""
    frequent = {
        "resource_usage",
        "throughput_metric",
        "latency_metric",
        "performance_metric",
        "node_health_updated",
    }
    ingested = [
        _ingested(envelope(case.tag, case.topic, **case.fields))
        for case in GOLDEN
        if case.tag in frequent
    ]
    assert {item.tag for item in ingested} == frequent
    translate(*ingested)
    assert not any(isinstance(item.fields, Message) for item in ingested)


def test_every_message_is_counted_by_instance_and_type():
    """exesdb_prometheus_messages_total counts each translated message under its pubsub label."""
    store = translate(
        envelope("log_entry", level="info", message="m", module="M"),
        envelope("log_entry", level="info", message="m", module="M"),
    )
    text = store.render()
    assert (
        'exesdb_prometheus_messages_total{pubsub="ex_esdb_logging",tag="log_entry"} 2.0\n' in text
    )
    assert (
        'exesdb_prometheus_messages_total{pubsub="ex_esdb_audit",tag="data_change"} 0.0\n' in text
    )
    assert "instance=" not in text


def test_alerts_are_counted_and_acknowledgements_labelled_by_severity():
    """SystemAlerts count in exesdb_alerts_total, a repeat once, and acks by severity;
    alerts_active is not here."""
    alert = {"category": "system", "title": "t", "description": "d", "source": "s"}
    store = translate(
        envelope("system_alert", alert_id="a1", severity="critical", **alert),
        envelope("system_alert", alert_id="a2", severity="critical", **alert),
        envelope("system_alert", alert_id="a2", severity="critical", **alert),  # repeated
        envelope("system_alert", alert_id="a3", severity="warning", **alert),
        envelope("alert_acknowledged", alert_id="a1", ack_by="ops"),
    )
    text = store.render()
    assert "exesdb_alerts_active" not in text
    assert 'exesdb_alert_acknowledgements_total{severity="critical"} 1.0\n' in text
    assert 'exesdb_alerts_total{severity="critical",category="system"} 2.0\n' in text


def _system_alert(alert_id: str, severity: str = "critical"):
    return envelope(
        "system_alert",
        alert_id=alert_id,
        severity=severity,
        category="system",
        title="t",
        description="d",
        source="s",
    )


def test_a_system_alert_sent_again_is_raised_once():
    """A SystemAlert sent again with an alert_id already counted is not counted again in
    exesdb_alerts_total, nor after an AlertAck without a resolution; at another severity, or
    after an AlertAck that resolves it (the alert sink opens it again), it is raised again."""
    store = SeriesStore(clock=ManualClock())
    translator = Translator(store)

    def raised(*envelopes: Envelope, severity: str = "critical") -> float | None:
        translator.handle_batch(envelopes, propagate)
        return sample(store, "exesdb_alerts_total", severity=severity, category="system")

    assert raised(_system_alert("a1"), _system_alert("a1")) == 1.0
    assert raised(_system_alert("a1")) == 1.0
    assert raised(envelope("alert_acknowledged", alert_id="a1", ack_by="ops")) == 1.0
    assert raised(_system_alert("a1")) == 1.0
    assert raised(_system_alert("a1", "warning"), severity="warning") == 1.0
    assert raised(_system_alert("a1")) == 2.0
    resolved = envelope("alert_acknowledged", alert_id="a1", ack_by="ops", resolution="fixed")
    assert raised(resolved, _system_alert("a1")) == 3.0
    assert raised(_system_alert("a1")) == 3.0
    acks = {severity: sample(store, "exesdb_alert_acknowledgements_total", severity=severity)
            for severity in ("critical", "unknown")}  # fmt: skip
    assert acks == {"critical": 2.0, "unknown": None}


def test_the_system_alerts_remembered_are_bounded():
    """Distinct alert_ids past max_remembered do not grow the memory of SystemAlerts counted:
    the least recently sent is forgotten, and counts as raised once more; the rest do not."""
    store = SeriesStore(clock=ManualClock())
    translator = Translator(store, max_remembered=3)

    def raised(*alert_ids: str) -> float | None:
        translator.handle_batch([_system_alert(alert_id) for alert_id in alert_ids], propagate)
        return sample(store, "exesdb_alerts_total", severity="critical", category="system")

    assert raised("first", "a0", "a1", "a2") == 4.0
    assert raised("a0", "a1", "a2") == 4.0  # the three remembered: sent again, not raised
    assert raised("first") == 5.0  # forgotten for a2: raised once more


def _crossing(metric: str = "memory_usage_percent", severity: str = "warning", node: str = "n1"):
    return envelope(
        "metric_alert",
        node=node,
        metric_name=metric,
        current_value=90,
        threshold_value=85,
        threshold_type="max",
        severity=severity,
    )


def test_a_host_resources_metric_alert_sent_again_is_raised_once():
    """A host resource's MetricAlert the health collector sends again with every sample while it
    breaches counts once in exesdb_alerts_total (each in exesdb_metric_alerts_total); a new
    severity, a crossing after the resource's healthy check, or one after the series TTL is
    raised again; other metrics' MetricAlerts count each."""
    clock = ManualClock()
    store = SeriesStore(clock=clock, ttl_seconds=600.0)
    translator = Translator(store)

    def batch(*envelopes: Envelope) -> None:
        translator.handle_batch(envelopes, propagate)
        clock.advance(30)

    def raised(severity: str) -> float | None:
        return sample(store, "exesdb_alerts_total", severity=severity, category="performance")

    for _ in range(4):
        batch(_crossing())
    assert raised("warning") == 1.0
    messages = {"node": "n1", "metric": "memory_usage_percent", "severity": "warning"}
    assert sample(store, "exesdb_metric_alerts_total", **messages) == 4.0
    batch(_crossing(severity="critical"))
    batch(_crossing(severity="critical"))
    assert raised("critical") == 1.0
    batch(envelope("node_health_updated", status="healthy"))  # no resource checks: still open
    batch(_crossing(severity="critical"))
    assert raised("critical") == 1.0
    healthy = {"memory": {"status": "healthy", "usage_percent": 20}}
    batch(_ingested(envelope("node_health_updated", status="healthy", checks=healthy)))
    batch(_crossing(severity="critical"))
    assert raised("critical") == 2.0
    batch(_crossing("orders_lag"), _crossing("orders_lag"))
    assert raised("warning") == 3.0
    clock.advance(600)  # none sent within the series TTL: the alert sink resolved it
    batch(_crossing(severity="critical"))
    assert raised("critical") == 3.0


def test_the_host_resources_alerts_remembered_are_bounded():
    """Distinct nodes' MetricAlerts past max_remembered do not grow the memory of alerts
    raised: the least recently sent is forgotten, and counts as raised once more; the rest do
    not."""
    store = SeriesStore(clock=ManualClock())
    translator = Translator(store, max_remembered=3)

    def raised(*nodes: str) -> float | None:
        translator.handle_batch([_crossing(node=node) for node in nodes], propagate)
        return sample(store, "exesdb_alerts_total", severity="warning", category="performance")

    assert raised("first", "n0", "n1", "n2") == 4.0
    assert raised("n0", "n1", "n2") == 4.0  # the three remembered: sent again, not raised
    assert raised("first") == 5.0  # forgotten for n2: raised once more


def test_counters_accumulate_and_state_sets_move():
    """A counter adds up across messages; a state set moves its 1 to the latest status."""
    store = translate(
        envelope("node_health_updated", status="healthy"),
        envelope("node_health_updated", status="unhealthy"),
        envelope("throughput_metric", operation="op", count=5, duration_ms=1000),
        envelope("throughput_metric", operation="op", count=7, duration_ms=1000),
    )
    text = store.render()
    assert 'exesdb_node_health_status{node="n1",status="healthy"} 0.0\n' in text
    assert 'exesdb_node_health_status{node="n1",status="unhealthy"} 1.0\n' in text
    assert 'exesdb_operations_total{node="n1",operation="op",result="success"} 12.0\n' in text
    assert 'exesdb_operation_rate_per_second{node="n1",operation="op"} 7.0\n' in text


def test_label_values_are_escaped():
    """Quotes and backslashes in label values are escaped in the exposition (a message with a
    newline, or any control character, in a label value is refused before it gets here)."""
    store = translate(
        envelope("component_health_updated", component='we"ird\\name', status="healthy")
    )
    assert 'component="we\\"ird\\\\name"' in store.render()


def test_openmetrics_names_counter_families_without_total():
    """In OpenMetrics a counter's metadata names the family; its samples end in _total."""
    store = translate(envelope("log_entry", level="info", message="m", module="M"))
    text = families_text(store, openmetrics=True)
    assert "# TYPE exesdb_log_entries counter\n" in text
    assert 'exesdb_log_entries_total{node="n1",level="info"} 1.0\n' in text


def test_a_batch_renders_as_its_messages_one_by_one():
    """handle_batch() leaves the same series, message counts included, as handle() per message."""
    envelopes = [envelope(case.tag, case.topic, **case.fields) for case in GOLDEN] * 2
    one_by_one = translate(*envelopes)
    store = SeriesStore(clock=ManualClock())
    failures: list[Envelope] = []
    Translator(store).handle_batch(envelopes, failures.append)
    assert failures == []
    assert store.render() == one_by_one.render()


def _frequent(scale: float) -> list[Envelope]:
    # The messages whose series the translator holds between batches, with values by ``scale``.
    return [
        envelope(
            "resource_usage",
            resource_type="cpu",
            usage_percent=10 * scale,
            total_available=4 * scale,
            current_used=scale,
        ),
        envelope("throughput_metric", operation="op", count=int(5 * scale), duration_ms=1000),
        envelope(
            "latency_metric",
            operation="op",
            latency_ms=2 * scale,
            percentile="avg",
            sample_count=int(40 * scale),
        ),
        envelope("node_health_updated", status="healthy", memory_usage=scale, load_avg=scale),
    ]


def test_repeated_messages_in_later_batches_write_their_series():
    """The series of a message seen in an earlier batch take the values of the latest one (and
    a counter adds them up), as the first message's did."""
    store = SeriesStore(clock=ManualClock())
    translator = Translator(store)
    for scale in (1.0, 2.0, 3.0):
        translator.handle_batch(_frequent(scale), propagate)
    text = store.render()
    for line in (
        'exesdb_node_cpu_usage_percent{node="n1"} 30.0\n',
        'exesdb_node_resource_used{node="n1",resource="cpu"} 3.0\n',
        'exesdb_node_resource_available{node="n1",resource="cpu"} 12.0\n',
        'exesdb_operations_total{node="n1",operation="op",result="success"} 30.0\n',
        'exesdb_operation_rate_per_second{node="n1",operation="op"} 15.0\n',
        'exesdb_operation_latency_avg_seconds{node="n1",operation="op"} 0.006\n',
        'exesdb_operation_latency_samples{node="n1",operation="op"} 120.0\n',
        'exesdb_node_memory_usage_percent{node="n1"} 3.0\n',
        'exesdb_node_load_average{node="n1"} 3.0\n',
    ):
        assert line in text
    assert "exesdb_node_disk_usage_percent" not in text


def test_series_that_expired_come_back_when_their_messages_do():
    """After their series expired, the same messages make them again (nothing is written to a
    series the store no longer has)."""
    clock = ManualClock()
    store = SeriesStore(ttl_seconds=10, clock=clock)
    translator = Translator(store)
    translator.handle_batch(_frequent(1.0), propagate)
    translator.handle_batch(_frequent(1.0), propagate)
    clock.now += 11
    assert "exesdb_node_cpu_usage_percent" not in store.render()
    translator.handle_batch(_frequent(2.0), propagate)
    fresh = SeriesStore(clock=ManualClock(clock.now))
    Translator(fresh).handle_batch(_frequent(2.0), propagate)
    assert families_text(store) == families_text(fresh)


def _lifecycle(event: str, at: float, node: str = "n1", **metadata: object) -> Envelope:
    """NodeLifecycle ``event`` of node n1, published at ``at`` (Unix seconds) by ``node``."""
    message = envelope(
        "node_lifecycle_event", event=event, cluster_size=2, metadata=metadata, node=node
    )
    return msgspec.structs.replace(
        message, payload=message.payload.model_copy(update={"node": "n1"}), unix_ts=at
    )


def test_a_restart_sets_the_nodes_start_time_anew_and_its_signs_of_life_keep_it():
    """A node's own joined sets exesdb_node_start_time_seconds to when it was published; a
    heartbeat, its NodeHealth or another's word about it (down, reconnected) leaves it, the
    signs of life keeping it from expiring; its next start (a restart, quick or not) sets it
    anew."""
    clock = ManualClock()
    store = SeriesStore(ttl_seconds=10, clock=clock)
    translator = Translator(store)

    def start_time() -> float | None:
        return sample(store, "exesdb_node_start_time_seconds", node="n1")

    translator.handle_batch([_lifecycle("joined", 1_000.0, interval_ms=1_000)], propagate)
    assert start_time() == 1_000.0
    for step in range(4):  # 24 s of signs of life, past the 10 s series TTL
        clock.advance(6)
        signs = [
            _lifecycle("joined", 1_010.0 + step, heartbeat=True),
            envelope("node_health_updated", status="healthy"),
            _lifecycle("down", 1_020.0 + step, node="bridge-2"),
            _lifecycle("reconnected", 1_030.0 + step, node="bridge-2"),
        ]
        translator.handle_batch(signs[step % 2 : step % 2 + 1] + signs[2:], propagate)
        assert start_time() == 1_000.0
    translator.handle_batch([_lifecycle("joined", 1_100.0)], propagate)  # restarted
    assert start_time() == 1_100.0
    clock.advance(11)
    translator.handle_batch([_lifecycle("left", 1_111.0)], propagate)
    assert start_time() is None  # silent since its start, then gone: expired


def test_a_node_state_set_written_in_later_batches_moves_to_the_latest_status():
    """A node's health state set, held once made, still moves its 1 to each batch's status,
    as it would for the same readings in a fresh store."""
    store = SeriesStore(clock=ManualClock())
    translator = Translator(store)
    for status in ("healthy", "degraded", "unknown", "unhealthy"):
        translator.handle_batch([envelope("node_health_updated", status=status)], propagate)
        fresh = SeriesStore(clock=ManualClock())
        Translator(fresh).handle_batch([envelope("node_health_updated", status=status)], propagate)
        assert families_text(store) == families_text(fresh)
        assert f'exesdb_node_health_status{{node="n1",status="{status}"}} 1.0\n' in store.render()


def _label_values(marked: Envelope) -> list[str]:
    """Every label value of every series ``marked`` makes in a fresh store."""
    return [
        value
        for family in translate(marked).collect()
        for item in family.samples
        for value in item.labels.values()
    ]


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda model: model.TAG)
def test_every_field_that_becomes_a_label_value_refuses_control_characters(
    model: type[Message],
) -> None:
    """Each text field of a message that the sink writes into a label value refuses a control
    character when the message is read, so that none reaches /metrics (not only the fields
    the ingest tests try)."""
    taken = {
        field: controls
        for field in fields_reaching(model, _label_values)
        if (controls := takes_a_control_character(model, field))
    }
    assert taken == {}


def test_the_label_field_finder_finds_the_fields_labels_are_made_of() -> None:
    """The finder the test above relies on finds a process's node and module, and a metric's
    name, unit and component, and no field that becomes no label."""
    [process_lifecycle] = [m for m in ALL_MODELS if m.TAG == "process_lifecycle_event"]
    assert sorted(fields_reaching(process_lifecycle, _label_values)) == ["module", "node"]
    [performance] = [m for m in ALL_MODELS if m.TAG == "performance_metric"]
    assert sorted(fields_reaching(performance, _label_values)) == [
        "component",
        "metric_name",
        "node",
        "unit",
    ]


@pytest.mark.parametrize(
    ("named", "node"),
    [
        pytest.param("exesdb-2@demo", "exesdb-2@demo", id="a node name"),
        pytest.param("db-1\n", "n1", id="a final newline"),
        pytest.param("", "n1", id="empty"),
        pytest.param(7, "n1", id="not a string"),
    ],
)
def test_an_access_violation_counts_under_the_node_its_alert_names(named: object, node: str):
    """An AccessViolation's series has the node its alert names (its metadata's ``node``, as a
    sender reporting for another node gives it, when any message's ``node`` could be it, else
    the publishing node's), so the node a dashboard filters on shows the violations alerted
    for it."""
    store = translate(
        envelope(
            "access_violation",
            violation_type="invalid_token",
            resource="/streams",
            action="read",
            source_ip="10.0.0.1",
            severity="high",
            metadata={"node": named},
        )
    )
    labels = {"node": node, "violation_type": "invalid_token", "severity": "high"}
    assert sample(store, "exesdb_access_violations_total", **labels) == 1.0
