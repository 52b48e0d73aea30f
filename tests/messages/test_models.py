"""The 36 message models: what each accepts, rejects and fills in, and the registry."""

from __future__ import annotations

import re
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NamedTuple

import msgspec
import pytest
from pydantic import ValidationError
from pydantic_core import SchemaValidator, core_schema

import bridge.messages as messages
from bridge.bus.structs import _NAME
from bridge.messages import (
    INSTANCES,
    MESSAGE_TYPES,
    NAME_PATTERN,
    TAGS,
    AccessLog,
    AccessViolation,
    AdminAction,
    AlertAck,
    AlertEscalation,
    AuthEvent,
    ClusterHealth,
    ClusterMembership,
    ComplianceEvent,
    ComponentHealth,
    DataChange,
    DebugTrace,
    ErrorAnalysis,
    FeatureToggle,
    HealthCheck,
    LatencyMetric,
    LogEntry,
    LogFilter,
    LogRotation,
    LogSummary,
    Message,
    MetricAlert,
    NodeHealth,
    NodeLifecycle,
    NotificationStatus,
    PerformanceAnalysis,
    PerformanceMetric,
    ProcessLifecycle,
    ResourceUsage,
    SecurityAlert,
    SessionEvent,
    SupervisionEvent,
    SystemAlert,
    SystemConfig,
    SystemLifecycle,
    SystemState,
    ThroughputMetric,
    model_for,
)
from tests.support import blank_in_the_pattern, drawn_as_nothing

NODE = "node1@host"
CONTEXT = {"node": NODE}
TS = "2026-11-28T00:00:00.123Z"
TS2 = "2026-11-28T00:05:00.456Z"

EXPECTED_REGISTRY: dict[str, dict[str, type[Message]]] = {
    "ex_esdb_system": {
        "system_config_changed": SystemConfig,
        "system_lifecycle_event": SystemLifecycle,
        "feature_toggle_changed": FeatureToggle,
    },
    "ex_esdb_health": {
        "node_health_updated": NodeHealth,
        "cluster_health_updated": ClusterHealth,
        "component_health_updated": ComponentHealth,
        "health_check_completed": HealthCheck,
    },
    "ex_esdb_metrics": {
        "performance_metric": PerformanceMetric,
        "throughput_metric": ThroughputMetric,
        "latency_metric": LatencyMetric,
        "resource_usage": ResourceUsage,
        "metric_alert": MetricAlert,
    },
    "ex_esdb_lifecycle": {
        "node_lifecycle_event": NodeLifecycle,
        "process_lifecycle_event": ProcessLifecycle,
        "supervision_event": SupervisionEvent,
        "cluster_membership_changed": ClusterMembership,
    },
    "ex_esdb_alerts": {
        "system_alert": SystemAlert,
        "alert_acknowledged": AlertAck,
        "alert_escalated": AlertEscalation,
        "notification_status": NotificationStatus,
    },
    "ex_esdb_audit": {
        "data_change": DataChange,
        "admin_action": AdminAction,
        "access_log": AccessLog,
        "compliance_event": ComplianceEvent,
    },
    "ex_esdb_diagnostics": {
        "debug_trace": DebugTrace,
        "performance_analysis": PerformanceAnalysis,
        "system_state": SystemState,
        "error_analysis": ErrorAnalysis,
    },
    "ex_esdb_security": {
        "auth_event": AuthEvent,
        "access_violation": AccessViolation,
        "security_alert": SecurityAlert,
        "session_event": SessionEvent,
    },
    "ex_esdb_logging": {
        "log_entry": LogEntry,
        "log_summary": LogSummary,
        "log_filter_updated": LogFilter,
        "log_rotation": LogRotation,
    },
}


class Case(NamedTuple):
    """How one model is exercised: payloads, and one bad value of each kind."""

    minimal: dict[str, Any]
    """Only the required fields; ``node`` comes from the validation context."""
    full: dict[str, Any]
    """Every field, in its JSON form (so it equals ``model_dump(mode="json")``)."""
    required: str
    bad_type: tuple[str, Any]
    bad_enum: tuple[str, Any] | None


CASES: dict[type[Message], Case] = {
    SystemConfig: Case(
        {"component": "store"},
        {
            "timestamp": TS,
            "component": "store",
            "changes": {"pool_size": 10},
            "previous_config": {"pool_size": 5},
            "changed_by": "admin",
            "node": "node2@host",
        },
        "component",
        ("changes", ["not", "a", "map"]),
        None,
    ),
    SystemLifecycle: Case(
        {"event": "started", "system_name": "ex_esdb", "version": "0.8.0"},
        {
            "timestamp": TS,
            "event": "stopping",
            "system_name": "ex_esdb",
            "version": "0.8.0",
            "node": "node2@host",
        },
        "system_name",
        ("version", 8),
        ("event", "exploded"),
    ),
    FeatureToggle: Case(
        {"feature": "snapshots", "enabled": True, "previous_state": False, "changed_by": "ops"},
        {
            "timestamp": TS,
            "feature": "snapshots",
            "enabled": False,
            "previous_state": True,
            "changed_by": "ops",
            "node": "node2@host",
        },
        "changed_by",
        ("enabled", "maybe"),
        None,
    ),
    NodeHealth: Case(
        {"status": "healthy"},
        {
            "timestamp": TS,
            "node": "node2@host",
            "status": "degraded",
            "checks": {"disk": "ok"},
            "load_avg": 1.5,
            "memory_usage": 61.5,
            "disk_usage": 80.0,
        },
        "status",
        ("load_avg", "high"),
        ("status", "sick"),
    ),
    ClusterHealth: Case(
        {"status": "healthy", "healthy_nodes": 3, "total_nodes": 3},
        {
            "timestamp": TS,
            "status": "degraded",
            "healthy_nodes": 2,
            "total_nodes": 4,
            "degraded_nodes": ["node3@host"],
            "unhealthy_nodes": ["node4@host"],
            "quorum_status": "lost",
            "degraded_count": 1,
            "unhealthy_count": 1,
        },
        "total_nodes",
        ("healthy_nodes", "three"),
        ("quorum_status", "maybe"),
    ),
    ComponentHealth: Case(
        {"component": "store", "status": "healthy"},
        {
            "timestamp": TS,
            "component": "store",
            "node": "node2@host",
            "status": "unhealthy",
            "details": {"reason": "timeout"},
            "last_check": TS2,
        },
        "component",
        ("last_check", "yesterday"),
        ("status", "unknown"),
    ),
    HealthCheck: Case(
        {"check_name": "disk", "result": "pass", "duration_ms": 3},
        {
            "timestamp": TS,
            "check_name": "disk",
            "node": "node2@host",
            "result": "fail",
            "duration_ms": 12.5,
            "details": {"free": 10},
            "error": "disk full",
        },
        "result",
        ("duration_ms", "slow"),
        ("result", "ok"),
    ),
    PerformanceMetric: Case(
        {"metric_name": "append", "value": 3, "unit": "ms", "component": "store"},
        {
            "timestamp": TS,
            "metric_name": "append",
            "value": 3.25,
            "unit": "ms",
            "node": "node2@host",
            "component": "store",
            "tags": {"stream": "orders"},
        },
        "unit",
        ("value", "fast"),
        None,
    ),
    ThroughputMetric: Case(
        {"operation": "append", "count": 10, "duration_ms": 500},
        {
            "timestamp": TS,
            "operation": "append",
            "count": 10,
            "duration_ms": 500.0,
            "rate_per_sec": 19.5,
            "node": "node2@host",
        },
        "operation",
        ("count", "many"),
        None,
    ),
    LatencyMetric: Case(
        {"operation": "read", "latency_ms": 1.5, "percentile": "p99", "sample_count": 100},
        {
            "timestamp": TS,
            "operation": "read",
            "latency_ms": 1.5,
            "percentile": "avg",
            "sample_count": 100,
            "node": "node2@host",
        },
        "percentile",
        ("sample_count", [1]),
        ("percentile", "p90"),
    ),
    ResourceUsage: Case(
        {"resource_type": "cpu", "usage_percent": 42, "total_available": 8, "current_used": 3.4},
        {
            "timestamp": TS,
            "resource_type": "memory",
            "usage_percent": 42.5,
            "total_available": 1024.0,
            "current_used": 435.2,
            "node": "node2@host",
        },
        "usage_percent",
        ("total_available", "lots"),
        ("resource_type", "gpu"),
    ),
    MetricAlert: Case(
        {
            "metric_name": "latency",
            "current_value": 120,
            "threshold_value": 100,
            "threshold_type": "max",
            "severity": "warning",
        },
        {
            "timestamp": TS,
            "metric_name": "latency",
            "current_value": 120.0,
            "threshold_value": 100.0,
            "threshold_type": "min",
            "severity": "critical",
            "node": "node2@host",
        },
        "threshold_value",
        ("current_value", {"v": 1}),
        ("severity", "error"),
    ),
    NodeLifecycle: Case(
        {"event": "joined", "cluster_size": 3},
        {
            "timestamp": TS,
            "node": "node2@host",
            "event": "reconnected",
            "cluster_size": 3,
            "metadata": {"reason": "netsplit"},
        },
        "cluster_size",
        ("cluster_size", "three"),
        ("event", "exploded"),
    ),
    ProcessLifecycle: Case(
        {"pid": "<0.123.0>", "module": "ExESDB.Store", "event": "started"},
        {
            "timestamp": TS,
            "pid": "<0.123.0>",
            "name": "store_worker",
            "module": "ExESDB.Store",
            "event": "crashed",
            "node": "node2@host",
            "reason": "badarg",
            "restart_count": 2,
        },
        "pid",
        ("restart_count", "twice"),
        ("event", "paused"),
    ),
    SupervisionEvent: Case(
        {"supervisor": "ExESDB.Sup", "event": "child_started"},
        {
            "timestamp": TS,
            "supervisor": "ExESDB.Sup",
            "child_spec": {"id": "worker"},
            "event": "restart_limit_exceeded",
            "node": "node2@host",
            "reason": "too many restarts",
        },
        "supervisor",
        ("child_spec", "worker"),
        ("event", "child_paused"),
    ),
    ClusterMembership: Case(
        {"event": "node_added", "affected_nodes": ["b@h"], "active_nodes": ["a@h", "b@h"]},
        {
            "timestamp": TS,
            "event": "partition_detected",
            "affected_nodes": ["c@h"],
            "active_nodes": ["a@h", "b@h"],
            "total_nodes": 3,
            "quorum_status": "lost",
            "originating_node": "a@h",
        },
        "active_nodes",
        ("affected_nodes", "b@h"),
        ("event", "node_renamed"),
    ),
    SystemAlert: Case(
        {
            "severity": "warning",
            "category": "system",
            "title": "Disk filling",
            "description": "80% used",
            "source": "disk_monitor",
        },
        {
            "timestamp": TS,
            "alert_id": "0123456789abcdef",
            "severity": "critical",
            "category": "network",
            "title": "Partition",
            "description": "node lost",
            "source": "cluster",
            "node": "node2@host",
            "metadata": {"peer": "node3@host"},
            "requires_ack": False,
        },
        "title",
        ("metadata", ["a"]),
        ("category", "weather"),
    ),
    AlertAck: Case(
        {"alert_id": "0123456789abcdef", "ack_by": "ops"},
        {
            "timestamp": TS,
            "alert_id": "0123456789abcdef",
            "ack_by": "ops",
            "ack_note": "looking",
            "resolution": "restarted",
            "ack_timestamp": TS2,
            "alert_starts_at": TS,
        },
        "ack_by",
        ("ack_timestamp", "soon"),
        None,
    ),
    AlertEscalation: Case(
        {
            "alert_id": "0123456789abcdef",
            "from_level": "level1",
            "to_level": "level2",
            "escalation_reason": "no ack",
        },
        {
            "timestamp": TS,
            "alert_id": "0123456789abcdef",
            "from_level": "level2",
            "to_level": "level3",
            "escalation_reason": "no ack",
            "escalated_by": "oncall",
            "notify_contacts": ["ops@example.com"],
        },
        "escalation_reason",
        ("notify_contacts", "ops@example.com"),
        ("to_level", "level4"),
    ),
    NotificationStatus: Case(
        {
            "alert_id": "0123456789abcdef",
            "delivery_method": "webhook",
            "recipient": "https://example.com/hook",
            "status": "sent",
        },
        {
            "timestamp": TS,
            "alert_id": "0123456789abcdef",
            "delivery_method": "email",
            "recipient": "ops@example.com",
            "status": "bounced",
            "error_reason": "mailbox full",
            "attempts": 3,
        },
        "recipient",
        ("attempts", "three"),
        ("delivery_method", "pigeon"),
    ),
    DataChange: Case(
        {"user_id": "u1", "resource_type": "stream", "resource_id": "orders", "action": "update"},
        {
            "timestamp": TS,
            "user_id": "u1",
            "resource_type": "stream",
            "resource_id": "orders",
            "action": "delete",
            "changes": {"deleted": True},
            "metadata": {"ticket": 7},
            "source_ip": "10.0.0.1",
            "node": "node2@host",
        },
        "resource_id",
        ("changes", 5),
        ("action", "truncate"),
    ),
    AdminAction: Case(
        {"admin_user_id": "root", "action_type": "user_created", "target_resource": "u2"},
        {
            "timestamp": TS,
            "admin_user_id": "root",
            "action_type": "permissions_changed",
            "target_resource": "u2",
            "details": {"role": "reader"},
            "justification": "onboarding",
            "source_ip": "10.0.0.1",
            "node": "node2@host",
        },
        "admin_user_id",
        ("details", "reader"),
        ("action_type", "user_banned"),
    ),
    AccessLog: Case(
        {
            "user_id": "u1",
            "resource_type": "stream",
            "resource_id": "orders",
            "action": "read",
            "success": True,
            "duration_ms": 4,
        },
        {
            "timestamp": TS,
            "user_id": "u1",
            "resource_type": "stream",
            "resource_id": "orders",
            "action": "subscribe",
            "success": False,
            "duration_ms": 4.5,
            "source_ip": "10.0.0.1",
            "user_agent": "curl/8",
            "node": "node2@host",
        },
        "success",
        ("success", "sometimes"),
        None,
    ),
    ComplianceEvent: Case(
        {"event_type": "data_export", "compliance_rule": "gdpr-15", "action_taken": "exported"},
        {
            "timestamp": TS,
            "event_type": "policy_violation",
            "compliance_rule": "gdpr-17",
            "affected_data": {"streams": ["orders"]},
            "action_taken": "blocked",
            "user_id": "u1",
            "automated": True,
            "metadata": {"ticket": 7},
            "node": "node2@host",
        },
        "compliance_rule",
        ("automated", "yes please"),
        ("event_type", "data_sale"),
    ),
    DebugTrace: Case(
        {"component": "store", "operation": "append"},
        {
            "timestamp": TS,
            "trace_id": "trace_0123456789abcdef",
            "component": "store",
            "operation": "append",
            "trace_data": {"events": 3},
            "stack_trace": ["store.ex:10", "writer.ex:20"],
            "duration_ms": 2.5,
            "node": "node2@host",
            "metadata": {"stream": "orders"},
        },
        "operation",
        ("duration_ms", "slow"),
        None,
    ),
    PerformanceAnalysis: Case(
        {"component": "store", "analysis_type": "bottleneck"},
        {
            "timestamp": TS,
            "analysis_id": "analysis_0123456789abcdef",
            "component": "store",
            "analysis_type": "memory_leak",
            "findings": {"growth_mb_per_hour": 12},
            "recommendations": ["restart the writer"],
            "severity": "high",
            "node": "node2@host",
        },
        "analysis_type",
        ("recommendations", "restart"),
        ("severity", "severe"),
    ),
    SystemState: Case(
        {
            "snapshot_type": "full",
            "process_count": 120,
            "memory_usage": 1048576,
            "trigger_reason": "manual",
        },
        {
            "timestamp": TS,
            "snapshot_id": "snapshot_0123456789abcdef",
            "snapshot_type": "process_tree",
            "state_data": {"schedulers": 8},
            "process_count": 120,
            "memory_usage": 1048576,
            "node": "node2@host",
            "trigger_reason": "alert",
        },
        "trigger_reason",
        ("process_count", "many"),
        ("snapshot_type", "core_dump"),
    ),
    ErrorAnalysis: Case(
        {"error_type": "timeout", "error_message": "call timed out"},
        {
            "timestamp": TS,
            "error_id": "error_0123456789abcdef",
            "error_type": "timeout",
            "error_message": "call timed out",
            "stack_trace": ["store.ex:10"],
            "context": {"stream": "orders"},
            "frequency": 4,
            "first_seen": TS,
            "last_seen": TS2,
            "node": "node2@host",
        },
        "error_message",
        ("frequency", "often"),
        None,
    ),
    AuthEvent: Case(
        {"user_id": "u1", "event_type": "login_success", "auth_method": "password"},
        {
            "timestamp": TS,
            "user_id": "u1",
            "event_type": "login_failure",
            "auth_method": "oauth",
            "source_ip": "10.0.0.1",
            "user_agent": "curl/8",
            "node": "node2@host",
            "metadata": {"attempt": 2},
        },
        "user_id",
        ("metadata", "attempt 2"),
        ("auth_method", "magic"),
    ),
    AccessViolation: Case(
        {
            "violation_type": "permission_denied",
            "resource": "stream:orders",
            "action": "write",
            "source_ip": "10.0.0.1",
        },
        {
            "timestamp": TS,
            "user_id": "u1",
            "violation_type": "rate_limit_exceeded",
            "resource": "stream:orders",
            "action": "read",
            "source_ip": "10.0.0.1",
            "severity": "high",
            "metadata": {"requests": 900},
        },
        "resource",
        ("metadata", [900]),
        ("violation_type", "being_rude"),
    ),
    SecurityAlert: Case(
        {"alert_type": "brute_force", "severity": "high", "description": "100 failed logins"},
        {
            "timestamp": TS,
            "alert_type": "data_breach",
            "severity": "critical",
            "description": "export of all streams",
            "affected_users": ["u1", "u2"],
            "source_ip": "10.0.0.9",
            "node": "node2@host",
            "metadata": {"bytes": 10},
        },
        "description",
        ("affected_users", "u1"),
        ("severity", "warning"),
    ),
    SessionEvent: Case(
        {"session_id": "s1", "user_id": "u1", "event_type": "created"},
        {
            "timestamp": TS,
            "session_id": "s1",
            "user_id": "u1",
            "event_type": "expired",
            "duration_ms": 3600000.0,
            "source_ip": "10.0.0.1",
            "node": "node2@host",
        },
        "session_id",
        ("duration_ms", "an hour"),
        ("event_type", "paused"),
    ),
    LogEntry: Case(
        {"level": "info", "message": "started", "module": "ExESDB.Store"},
        {
            "timestamp": TS,
            "log_id": "log_0123456789abcdef",
            "level": "critical",
            "message": "disk full",
            "module": "ExESDB.Store",
            "function": "append/2",
            "line": 42,
            "node": "node2@host",
            "pid": "<0.123.0>",
            "metadata": {"stream": "orders"},
        },
        "message",
        ("line", "forty-two"),
        ("level", "warning"),
    ),
    LogSummary: Case(
        {"time_period": "last_hour"},
        {
            "timestamp": TS,
            "summary_id": "summary_0123456789abcdef",
            "time_period": "last_day",
            "log_counts": {"info": 10, "error": 2},
            "top_errors": [{"message": "timeout", "count": 2}],
            "error_rate": 0.5,
            "nodes_reporting": ["a@h", "b@h"],
            "total_logs": 13,
        },
        "time_period",
        ("top_errors", "timeout"),
        ("log_counts", {"fatal": 1}),
    ),
    LogFilter: Case(
        {"filter_type": "level", "filter_value": "debug", "action": "exclude"},
        {
            "timestamp": TS,
            "filter_id": "filter_0123456789abcdef",
            "filter_type": "pattern",
            "filter_value": "heartbeat",
            "action": "rate_limit",
            "enabled": False,
            "created_by": "ops",
            "metadata": {"per_minute": 10},
        },
        "filter_value",
        ("enabled", "sometimes"),
        ("action", "drop"),
    ),
    LogRotation: Case(
        {
            "log_type": "app",
            "old_file": "app.log",
            "new_file": "app.log.1",
            "file_size": 1048576,
            "entries_count": 5000,
        },
        {
            "timestamp": TS,
            "rotation_id": "rotation_0123456789abcdef",
            "log_type": "audit",
            "old_file": "audit.log",
            "new_file": "audit.log.1",
            "file_size": 2048,
            "entries_count": 10,
            "node": "node2@host",
        },
        "new_file",
        ("file_size", "big"),
        None,
    ),
}

ALL_MODELS = list(CASES)
WITH_ENUMS = [model for model, case in CASES.items() if case.bad_enum is not None]
WITH_NODE = [model for model in ALL_MODELS if "node" in model.model_fields]

ID_DEFAULTS: list[tuple[type[Message], str, str]] = [
    (SystemAlert, "alert_id", ""),
    (DebugTrace, "trace_id", "trace_"),
    (PerformanceAnalysis, "analysis_id", "analysis_"),
    (SystemState, "snapshot_id", "snapshot_"),
    (ErrorAnalysis, "error_id", "error_"),
    (LogEntry, "log_id", "log_"),
    (LogSummary, "summary_id", "summary_"),
    (LogFilter, "filter_id", "filter_"),
    (LogRotation, "rotation_id", "rotation_"),
]

STATIC_DEFAULTS: list[tuple[type[Message], str, Any]] = [
    (SystemConfig, "changes", {}),
    (SystemConfig, "previous_config", None),
    (SystemConfig, "changed_by", "system"),
    (NodeHealth, "checks", {}),
    (NodeHealth, "load_avg", None),
    (ClusterHealth, "degraded_nodes", []),
    (ClusterHealth, "unhealthy_nodes", []),
    (ClusterHealth, "quorum_status", "available"),
    (ClusterHealth, "degraded_count", None),
    (ClusterHealth, "unhealthy_count", None),
    (ComponentHealth, "last_check", None),
    (HealthCheck, "error", None),
    (PerformanceMetric, "tags", {}),
    (NodeLifecycle, "metadata", {}),
    (ProcessLifecycle, "name", None),
    (ProcessLifecycle, "reason", None),
    (ProcessLifecycle, "restart_count", 0),
    (SupervisionEvent, "child_spec", {}),
    (ClusterMembership, "quorum_status", "available"),
    (SystemAlert, "metadata", {}),
    (AlertAck, "ack_note", None),
    (AlertAck, "resolution", None),
    (AlertEscalation, "escalated_by", "system"),
    (AlertEscalation, "notify_contacts", []),
    (NotificationStatus, "error_reason", None),
    (NotificationStatus, "attempts", 1),
    (DataChange, "source_ip", None),
    (AdminAction, "justification", None),
    (AccessLog, "user_agent", None),
    (ComplianceEvent, "user_id", None),
    (ComplianceEvent, "automated", False),
    (DebugTrace, "stack_trace", None),
    (DebugTrace, "duration_ms", None),
    (PerformanceAnalysis, "recommendations", []),
    (PerformanceAnalysis, "severity", "medium"),
    (ErrorAnalysis, "stack_trace", []),
    (ErrorAnalysis, "frequency", 1),
    (AuthEvent, "source_ip", None),
    (AccessViolation, "user_id", None),
    (AccessViolation, "severity", "medium"),
    (SecurityAlert, "affected_users", []),
    (SessionEvent, "duration_ms", None),
    (LogEntry, "function", None),
    (LogEntry, "line", None),
    (LogEntry, "pid", None),
    (LogSummary, "top_errors", []),
    (LogSummary, "error_rate", 0.0),
    (LogFilter, "enabled", True),
    (LogFilter, "created_by", "system"),
]


def build(model: type[Message], payload: dict[str, Any], node: str | None = NODE) -> Message:
    """Validate ``payload`` as the bus does, with the envelope's node in the context."""
    return model.model_validate(payload, context={"node": node} if node else None)


def error_locations(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    """The top-level field names a validation error points at."""
    return {str(error["loc"][0]) for error in exc.value.errors() if error["loc"]}


def recent(value: datetime) -> bool:
    """Whether ``value`` is within a few seconds of now."""
    return abs(datetime.now(UTC) - value) < timedelta(seconds=5)


# Catalogue and registry


def test_cases_cover_every_registered_model() -> None:
    """The test table exercises exactly the 36 registered models."""
    assert set(CASES) == set(MESSAGE_TYPES.values())
    assert len(CASES) == 36


def test_registry_matches_the_spec_table() -> None:
    """MESSAGE_TYPES holds the 36 (instance, tag) pairs of docs/messages.md, and nothing else."""
    expected = {
        (instance, tag): model
        for instance, tags in EXPECTED_REGISTRY.items()
        for tag, model in tags.items()
    }
    assert dict(MESSAGE_TYPES) == expected
    assert len(MESSAGE_TYPES) == 36


def test_instances_are_the_nine_in_spec_order() -> None:
    """INSTANCES lists the nine instances in their bus order (docs/messages.md)."""
    assert tuple(EXPECTED_REGISTRY) == INSTANCES
    assert {instance for instance, _ in MESSAGE_TYPES} == set(INSTANCES)


def test_tags_are_unique_and_index_every_model() -> None:
    """TAGS maps each of the 36 tags to the same model MESSAGE_TYPES does."""
    assert len(TAGS) == 36
    assert {tag: model for (_, tag), model in MESSAGE_TYPES.items()} == dict(TAGS)


@pytest.mark.parametrize(("key", "model"), list(MESSAGE_TYPES.items()), ids=str)
def test_model_carries_its_own_instance_and_tag(key: tuple[str, str], model: type[Message]) -> None:
    """Each model's INSTANCE and TAG are the key it is registered under."""
    assert key == (model.INSTANCE, model.TAG)


def test_model_for_finds_known_pairs() -> None:
    """model_for returns the model registered for an (instance, tag) pair."""
    assert model_for("ex_esdb_logging", "log_entry") is LogEntry
    assert model_for("ex_esdb_health", "node_health_updated") is NodeHealth


@pytest.mark.parametrize(
    ("instance", "tag"),
    [
        ("ex_esdb_logging", "node_health_updated"),
        ("ex_esdb_nope", "log_entry"),
        ("ex_esdb_logging", "log_entries"),
        ("", ""),
    ],
)
def test_model_for_returns_none_for_unknown_pairs(instance: str, tag: str) -> None:
    """model_for returns None for an unknown instance, an unknown tag or a mismatched pair."""
    assert model_for(instance, tag) is None


@pytest.mark.parametrize("tag", list(TAGS), ids=str)
def test_model_tagged_finds_every_registered_tag(tag: str) -> None:
    """model_tagged finds each tag's model as TAGS does (publish asks it, building one module),
    a model whose TAG is that tag."""
    model = messages.model_tagged(tag)
    assert model is TAGS[tag]
    assert tag == model.TAG


def test_model_tagged_refuses_a_model_of_another_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tag whose model's name finds a model of another tag (here SystemAlert's name bound to
    NodeHealth) gives None, so publish asks the registry rather than send the wrong model."""
    monkeypatch.setattr(messages, "SystemAlert", TAGS["node_health_updated"])
    assert messages.model_tagged("system_alert") is None


@pytest.mark.parametrize("name", ["SystemAlert", "system_alerts", "ex_esdb_alerts", ""])
def test_model_tagged_returns_none_for_anything_but_a_tag(name: str) -> None:
    """model_tagged returns None for a class name, an unknown tag or an instance."""
    assert messages.model_tagged(name) is None


def test_registry_cannot_be_mutated() -> None:
    """MESSAGE_TYPES and TAGS are read-only views."""
    with pytest.raises(TypeError):
        MESSAGE_TYPES[("x", "y")] = LogEntry  # type: ignore[index]
    with pytest.raises(TypeError):
        TAGS["x"] = LogEntry  # type: ignore[index]


def test_every_model_is_exported() -> None:
    """Each message model is a public name of bridge.messages (the names are pinned elsewhere)."""
    assert {model.__name__ for model in CASES} <= set(messages.__all__)


# Accepting valid payloads


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_accepts_minimal_payload(model: type[Message]) -> None:
    """Each model accepts only its required fields, with node from the context."""
    message = build(model, CASES[model].minimal)
    assert recent(message.timestamp)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_accepts_full_payload_and_keeps_every_value(model: type[Message]) -> None:
    """Each model accepts every one of its fields and keeps the values as given."""
    full = CASES[model].full
    assert set(full) == set(model.model_fields), "the full payload must set every field"
    assert build(model, full).model_dump(mode="json") == full


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("which", ["minimal", "full"])
def test_json_round_trip_is_lossless(model: type[Message], which: str) -> None:
    """model_dump_json then model_validate_json gives back an equal message."""
    message = build(model, getattr(CASES[model], which))
    assert model.model_validate_json(message.model_dump_json()) == message


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_messages_are_frozen(model: type[Message]) -> None:
    """Assigning to a field of a built message fails."""
    message = build(model, CASES[model].minimal)
    with pytest.raises(ValidationError):
        message.timestamp = datetime.now(UTC)  # type: ignore[misc]


# Rejecting invalid payloads


@pytest.mark.parametrize("model", WITH_ENUMS, ids=lambda m: m.__name__)
def test_rejects_value_outside_enum(model: type[Message]) -> None:
    """An enum field refuses a value the catalog does not list."""
    case = CASES[model]
    assert case.bad_enum is not None
    field, value = case.bad_enum
    with pytest.raises(ValidationError) as exc:
        build(model, {**case.minimal, field: value})
    assert error_locations(exc) == {field}


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_rejects_missing_required_field(model: type[Message]) -> None:
    """Leaving out a required field fails, naming that field."""
    case = CASES[model]
    payload = {key: value for key, value in case.minimal.items() if key != case.required}
    assert payload != case.minimal, "the required field must be in the minimal payload"
    with pytest.raises(ValidationError) as exc:
        build(model, payload)
    assert case.required in error_locations(exc)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_rejects_wrong_type(model: type[Message]) -> None:
    """A value of the wrong type fails, naming only that field."""
    case = CASES[model]
    field, value = case.bad_type
    with pytest.raises(ValidationError) as exc:
        build(model, {**case.minimal, field: value})
    assert error_locations(exc) == {field}


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_rejects_unknown_field(model: type[Message]) -> None:
    """A field the catalog does not define is refused, not dropped."""
    with pytest.raises(ValidationError) as exc:
        build(model, {**CASES[model].minimal, "surprise": 1})
    assert error_locations(exc) == {"surprise"}


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("field", ["timestamp"])
def test_rejects_unparseable_timestamp(model: type[Message], field: str) -> None:
    """Every model's timestamp refuses a value that is not a date and time."""
    with pytest.raises(ValidationError) as exc:
        build(model, {**CASES[model].minimal, field: "not a time"})
    assert error_locations(exc) == {field}


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_rejects_timestamp_outside_the_years_utc_holds(model: type[Message], value: str) -> None:
    """A timestamp whose offset puts it before year 1 or after 9999 in UTC is refused as a
    ValidationError naming the field (its conversion overflowed: an error no caller expects)."""
    with pytest.raises(ValidationError) as exc:
        build(model, {**CASES[model].minimal, "timestamp": value})
    assert error_locations(exc) == {"timestamp"}


@pytest.mark.parametrize("model", [ClusterHealth, AlertAck, AccessViolation])
def test_payloads_documented_without_node_refuse_one(model: type[Message]) -> None:
    """A payload the catalog documents with no node field has none and refuses one."""
    assert "node" not in model.model_fields
    with pytest.raises(ValidationError):
        build(model, {**CASES[model].minimal, "node": NODE})


@pytest.mark.parametrize("usage", [-0.1, 100.1, 250])
def test_resource_usage_refuses_percent_outside_0_to_100(usage: float) -> None:
    """usage_percent must lie in 0..100."""
    with pytest.raises(ValidationError):
        build(ResourceUsage, {**CASES[ResourceUsage].minimal, "usage_percent": usage})


@pytest.mark.parametrize("usage", [0, 100])
def test_resource_usage_accepts_percent_bounds(usage: float) -> None:
    """usage_percent accepts 0 and 100 themselves."""
    message = build(ResourceUsage, {**CASES[ResourceUsage].minimal, "usage_percent": usage})
    assert isinstance(message, ResourceUsage)
    assert message.usage_percent == usage


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (ThroughputMetric, "duration_ms", 0),
        (ThroughputMetric, "count", -1),
        (HealthCheck, "duration_ms", -1),
        (LatencyMetric, "latency_ms", -0.5),
        (ClusterHealth, "healthy_nodes", -1),
        (ClusterHealth, "healthy_nodes", 4),
        (ClusterHealth, "degraded_count", -1),
        (SystemState, "memory_usage", -1),
        (LogSummary, "log_counts", {"info": -1}),
        (SystemConfig, "component", ""),
    ],
)
def test_rejects_out_of_range_value(model: type[Message], field: str, value: Any) -> None:
    """Numbers outside their documented range and empty required strings are refused."""
    with pytest.raises(ValidationError):
        build(model, {**CASES[model].minimal, field: value})


@pytest.mark.parametrize("kind", ["degraded", "unhealthy"])
def test_cluster_health_refuses_a_count_below_the_nodes_its_list_names(kind: str) -> None:
    """``degraded_count`` (``unhealthy_count``) counts at least the nodes its list names; the
    error names the count."""
    payload = {**CASES[ClusterHealth].minimal, f"{kind}_nodes": ["a", "b"], f"{kind}_count": 1}
    with pytest.raises(ValidationError, match=f"{kind}_count must be >= the nodes"):
        build(ClusterHealth, payload)
    assert (
        build(ClusterHealth, {**payload, f"{kind}_count": 2000}).model_dump()[f"{kind}_count"]
        == 2000
    )


# Defaults


@pytest.mark.parametrize("model", WITH_NODE, ids=lambda m: m.__name__)
def test_node_defaults_to_context_node(model: type[Message]) -> None:
    """A payload without node takes the envelope's node from the validation context."""
    assert build(model, CASES[model].minimal).model_dump()["node"] == NODE


@pytest.mark.parametrize("model", WITH_NODE, ids=lambda m: m.__name__)
def test_payload_node_wins_over_context_node(model: type[Message]) -> None:
    """A node given in the payload is kept even when the context has another."""
    message = build(model, {**CASES[model].minimal, "node": "other@host"})
    assert message.model_dump()["node"] == "other@host"


@pytest.mark.parametrize("model", WITH_NODE, ids=lambda m: m.__name__)
def test_node_is_required_without_context(model: type[Message]) -> None:
    """Without a context node, a payload lacking node is refused."""
    with pytest.raises(ValidationError) as exc:
        build(model, CASES[model].minimal, node=None)
    assert "node" in error_locations(exc)


@pytest.mark.parametrize(("model", "field", "prefix"), ID_DEFAULTS)
def test_ids_default_to_prefix_and_16_hex(model: type[Message], field: str, prefix: str) -> None:
    """A generated id is its prefix plus 16 lowercase hex characters, new for each message."""
    first = getattr(build(model, CASES[model].minimal), field)
    second = getattr(build(model, CASES[model].minimal), field)
    assert re.fullmatch(re.escape(prefix) + "[0-9a-f]{16}", first)
    assert first != second


@pytest.mark.parametrize(("model", "field", "expected"), STATIC_DEFAULTS)
def test_documented_default(model: type[Message], field: str, expected: Any) -> None:
    """An omitted field takes the default docs/messages.md documents."""
    assert getattr(build(model, CASES[model].minimal), field) == expected


def test_throughput_rate_is_computed_from_count_and_duration() -> None:
    """rate_per_sec defaults to count / (duration_ms / 1000)."""
    message = build(ThroughputMetric, {"operation": "append", "count": 10, "duration_ms": 500})
    assert isinstance(message, ThroughputMetric)
    assert message.rate_per_sec == 20.0


def test_throughput_rate_uses_coerced_inputs() -> None:
    """The computed rate uses the same coercion as the fields, so numeric strings work."""
    message = ThroughputMetric.model_validate_json(
        '{"operation": "append", "count": "30", "duration_ms": "1500", "node": "n@h"}'
    )
    assert message.rate_per_sec == 20.0


@pytest.mark.parametrize("duration_ms", [5e-324, 1e-306])
def test_throughput_rate_of_a_vanishing_duration_is_infinite(duration_ms: float) -> None:
    """A positive duration too small for a float rate (subnormal, or near it) gives an infinite
    rate, not an error: the decoder would otherwise fail on a valid message."""
    payload = {"operation": "append", "count": 10, "duration_ms": duration_ms}
    message = build(ThroughputMetric, payload)
    assert isinstance(message, ThroughputMetric)
    assert message.rate_per_sec == float("inf")


def test_throughput_rate_given_is_kept() -> None:
    """A given rate_per_sec is kept even when it disagrees with count and duration."""
    payload = {"operation": "append", "count": 10, "duration_ms": 500, "rate_per_sec": 7}
    message = build(ThroughputMetric, payload)
    assert isinstance(message, ThroughputMetric)
    assert message.rate_per_sec == 7.0


@pytest.mark.parametrize(
    ("severity", "requires_ack"),
    [("info", False), ("warning", False), ("error", True), ("critical", True)],
)
def test_system_alert_requires_ack_follows_severity(severity: str, requires_ack: bool) -> None:
    """requires_ack defaults to true for error and critical alerts, false otherwise."""
    message = build(SystemAlert, {**CASES[SystemAlert].minimal, "severity": severity})
    assert isinstance(message, SystemAlert)
    assert message.requires_ack is requires_ack


@pytest.mark.parametrize(("severity", "given"), [("critical", False), ("info", True)])
def test_system_alert_requires_ack_given_is_kept(severity: str, given: bool) -> None:
    """A given requires_ack overrides the severity-based default."""
    payload = {**CASES[SystemAlert].minimal, "severity": severity, "requires_ack": given}
    message = build(SystemAlert, payload)
    assert isinstance(message, SystemAlert)
    assert message.requires_ack is given


def test_cluster_membership_total_defaults_to_active_count() -> None:
    """total_nodes defaults to the number of active nodes."""
    message = build(ClusterMembership, CASES[ClusterMembership].minimal)
    assert isinstance(message, ClusterMembership)
    assert message.total_nodes == 2


def test_cluster_membership_total_given_is_kept() -> None:
    """A given total_nodes is kept."""
    message = build(ClusterMembership, {**CASES[ClusterMembership].minimal, "total_nodes": 5})
    assert isinstance(message, ClusterMembership)
    assert message.total_nodes == 5


def test_cluster_membership_originating_node_defaults_to_context_node() -> None:
    """originating_node defaults to the envelope's node."""
    message = build(ClusterMembership, CASES[ClusterMembership].minimal)
    assert isinstance(message, ClusterMembership)
    assert message.originating_node == NODE


def test_cluster_membership_originating_node_required_without_context() -> None:
    """Without a context node, originating_node must be given."""
    with pytest.raises(ValidationError) as exc:
        build(ClusterMembership, CASES[ClusterMembership].minimal, node=None)
    assert error_locations(exc) == {"originating_node"}


def test_log_summary_total_defaults_to_sum_of_counts() -> None:
    """total_logs defaults to the sum of log_counts."""
    payload = {"time_period": "last_hour", "log_counts": {"info": 7, "warn": 2, "error": 1}}
    message = build(LogSummary, payload)
    assert isinstance(message, LogSummary)
    assert message.total_logs == 10


def test_log_summary_total_is_zero_without_counts() -> None:
    """With no log_counts, total_logs defaults to 0."""
    message = build(LogSummary, CASES[LogSummary].minimal)
    assert isinstance(message, LogSummary)
    assert message.log_counts == {}
    assert message.total_logs == 0


def test_log_summary_nodes_reporting_defaults_to_context_node() -> None:
    """nodes_reporting defaults to [the envelope's node]."""
    message = build(LogSummary, CASES[LogSummary].minimal)
    assert isinstance(message, LogSummary)
    assert message.nodes_reporting == [NODE]


def test_log_summary_nodes_reporting_empty_without_context() -> None:
    """Without a context node, nodes_reporting defaults to []."""
    message = build(LogSummary, CASES[LogSummary].minimal, node=None)
    assert isinstance(message, LogSummary)
    assert message.nodes_reporting == []


def test_alert_ack_timestamp_defaults_to_now() -> None:
    """ack_timestamp defaults to the current time."""
    message = build(AlertAck, CASES[AlertAck].minimal)
    assert isinstance(message, AlertAck)
    assert recent(message.ack_timestamp)


def test_error_analysis_seen_times_default_to_one_now() -> None:
    """first_seen and last_seen both default to the same current time."""
    message = build(ErrorAnalysis, CASES[ErrorAnalysis].minimal)
    assert isinstance(message, ErrorAnalysis)
    assert recent(message.first_seen)
    assert message.first_seen == message.last_seen


def test_error_analysis_last_seen_defaults_to_now_when_first_seen_given() -> None:
    """With only first_seen given, last_seen defaults to now."""
    message = build(ErrorAnalysis, {**CASES[ErrorAnalysis].minimal, "first_seen": TS})
    assert isinstance(message, ErrorAnalysis)
    assert message.first_seen == datetime(2026, 11, 28, 0, 0, 0, 123000, tzinfo=UTC)
    assert recent(message.last_seen)


def test_timestamp_defaults_to_now_at_millisecond_precision() -> None:
    """The timestamp every model carries is now, truncated to the millisecond, in UTC."""
    message = build(LogEntry, CASES[LogEntry].minimal)
    assert recent(message.timestamp)
    assert message.timestamp.tzinfo is UTC
    assert message.timestamp.microsecond % 1000 == 0


@pytest.mark.parametrize(
    ("moment", "written"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "0999-12-31T23:59:59.999Z"),
        (datetime(2026, 11, 28, 0, 0, 0, 123000, tzinfo=UTC), "2026-11-28T00:00:00.123Z"),
        (datetime(9999, 12, 31, tzinfo=UTC), "9999-12-31T00:00:00.000Z"),
    ],
)
def test_a_timestamp_of_any_year_is_written_as_rfc_3339_and_read_back(
    moment: datetime, written: str
) -> None:
    """Every year a timestamp holds is written with four digits, as RFC 3339 (and Go, and
    Alertmanager, which refuse the whole post of a time they cannot parse) require, and a
    message written so is read back as it was."""
    assert messages.format_timestamp(moment) == written
    message = build(LogEntry, {**CASES[LogEntry].minimal, "timestamp": written})
    assert message.timestamp == moment


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_a_model_with_a_before_validator_names_the_fields_it_derives(model: type[Message]) -> None:
    """A model has a before-validator exactly when it names DERIVED fields (its only job)."""
    befores = [
        decorator
        for decorator in model.__pydantic_decorators__.model_validators.values()
        if decorator.info.mode == "before"
    ]
    assert bool(befores) == bool(model.DERIVED)
    assert set(model.DERIVED) <= set(model.model_fields)


# The name pattern read by each engine that checks it: pydantic-core's Rust regex (the models),
# Python's re through msgspec (the envelope decoder's fast path, bridge.bus.structs).
_RUST_NAMES = SchemaValidator(
    core_schema.list_schema(core_schema.str_schema(pattern=NAME_PATTERN, regex_engine="rust-regex"))
)
_MSGSPEC_NAME = Annotated[str, msgspec.Meta(pattern=_NAME)]


def _taken_by_each_engine(name: str) -> tuple[bool, bool, bool]:
    """Whether AlertAck's ack_by, the Rust regex alone and msgspec take ``name``."""
    try:
        AlertAck.model_validate({"alert_id": "a1", "ack_by": name})
    except ValidationError:
        model = False
    else:
        model = True
    try:
        _RUST_NAMES.validate_python([name])
    except ValidationError:
        rust = False
    else:
        rust = True
    try:
        msgspec.convert(name, _MSGSPEC_NAME)
    except msgspec.ValidationError:
        fast = False
    else:
        fast = True
    return model, rust, fast


@pytest.mark.parametrize(
    ("name", "taken"),
    [
        ("", False),
        (" ", False),
        ("   ", False),
        ("\t", False),  # a control character anyway
        ("\xa0", False),
        ("\u3000", False),
        (" \u2003\u205f\u1680\u202f ", False),
        (" " * 200, False),
        ("\u200b", False),
        ("\ufeff\u2060\u3164\u00ad \u200c", False),
        ("\u2800", False),
        ("a\u2800b", True),
        ("a", True),
        ("a\u200bb", True),
        ("\U0001f468\u200d\U0001f469", True),
        (" a ", True),
        ("\u3000名前\u3000", True),
        (" " * 199 + "a", True),
        ("a" * 200, True),
    ],
    ids=ascii,
)
def test_a_blank_name_is_refused_by_every_engine_alike(name: str, taken: bool) -> None:
    """A name of spaces or other Unicode whitespace only (U+00A0, U+3000), or of characters drawn
    as nothing (U+200B, U+FEFF), shows as no one: the model, pydantic-core's Rust regex and
    msgspec's Python re refuse it alike; a name with one other character among blanks is taken,
    up to 200 characters, invisible ones within it too (U+200D joining an emoji)."""
    assert _taken_by_each_engine(name) == (taken, taken, taken)


def test_a_one_character_name_is_refused_by_both_engines_as_unicode_says() -> None:
    """Over every code point (lone surrogates aside), the Rust regex and Python's re refuse the
    same one-character names: exactly the whitespace, the BMP's default ignorable characters and
    the braille blank U+2800 (shown as no one), the controls, the line and paragraph separators
    and the bidirectional controls, by Unicode's own data (Default_Ignorable_Code_Point as
    DerivedCoreProperties.txt lists it, which unicodedata does not carry)."""
    characters = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    try:
        _RUST_NAMES.validate_python(characters)
    except ValidationError as exc:
        refused_by_rust = {characters[int(error["loc"][0])] for error in exc.errors()}
    else:
        refused_by_rust = set()
    python = re.compile(_NAME)  # msgspec checks a pattern with re.search
    refused_by_python = {character for character in characters if not python.search(character)}
    refused_by_unicode = {
        character
        for character in characters
        if blank_in_the_pattern(character)
        or unicodedata.category(character) in ("Cc", "Zl", "Zp")
        or unicodedata.bidirectional(character)
        in ("LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI")
        or character in "\u061c\u200e\u200f"
    }
    assert refused_by_rust == refused_by_python == refused_by_unicode


def test_a_one_character_name_the_pattern_takes_is_refused_when_unicode_draws_it_as_nothing() -> (
    None
):
    """Over every code point the name pattern takes, visible_name (ack_by's check after it)
    refuses exactly those drawn as nothing past the pattern's reach: the default ignorable
    characters beyond the BMP (U+E0001, U+1D173, U+1BCA0) and the combining marks (U+0301 with
    no letter to sit on), by Unicode's own data; AlertAck refuses them as blank."""
    python = re.compile(_NAME)
    taken = [
        chr(c)
        for c in range(sys.maxunicode + 1)
        if not 0xD800 <= c <= 0xDFFF and python.search(chr(c))
    ]
    refused = set()
    for character in taken:
        try:
            messages.visible_name(character)
        except ValueError:
            refused.add(character)
    assert refused == {character for character in taken if drawn_as_nothing(character)}
    with pytest.raises(ValidationError, match="must not be blank"):
        AlertAck.model_validate({"alert_id": "a1", "ack_by": "\U000e0041\u0301"})
