"""The 36 message models of the nine bus instances, and the registry that finds them.

One module per instance (``logs`` is ``ex_esdb_logging``). A model is found by its instance and
tag with :func:`model_for`; tags are unique, so :data:`TAGS` finds it by tag alone (both from
``registry``, which builds every model). Each name is imported from its module when first asked
for (``bridge.exports``), and :func:`model_tagged` finds a model by its tag building only its
module's models (``publish`` builds one module of nine).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

from bridge.exports import lazy_exports

if TYPE_CHECKING:
    from bridge.messages._base import (
        ALERT_ID_PATTERN,
        LABEL_PATTERN,
        MAX_NAME,
        MAX_TEXT,
        NAME_PATTERN,
        NAME_REFUSES,
        NO_CONTROL_CHARACTERS,
        NODE_BLANK_SAID,
        NODE_JOINERS_SAID,
        NODE_PATTERN,
        NODE_REFUSES,
        Message,
        Timestamp,
        input_given,
        pattern_refused,
        random_hex,
        utc_now,
        visible_name,
    )
    from bridge.messages.alerts import (
        SECURITY_SEVERITY,
        AlertAck,
        AlertEscalation,
        NotificationStatus,
        RiskSeverity,
        SystemAlert,
    )
    from bridge.messages.audit import AccessLog, AdminAction, ComplianceEvent, DataChange
    from bridge.messages.diagnostics import (
        DebugTrace,
        ErrorAnalysis,
        PerformanceAnalysis,
        SystemState,
    )
    from bridge.messages.health import ClusterHealth, ComponentHealth, HealthCheck, NodeHealth
    from bridge.messages.lifecycle import (
        ClusterMembership,
        NodeLifecycle,
        ProcessLifecycle,
        SupervisionEvent,
    )
    from bridge.messages.logs import LogEntry, LogFilter, LogRotation, LogSummary
    from bridge.messages.metrics import (
        LatencyMetric,
        MetricAlert,
        PerformanceMetric,
        ResourceUsage,
        ThroughputMetric,
    )
    from bridge.messages.registry import MESSAGE_TYPES, TAGS, model_for
    from bridge.messages.security import AccessViolation, AuthEvent, SecurityAlert, SessionEvent
    from bridge.messages.severities import SEVERITIES, AlertSeverity
    from bridge.messages.system import FeatureToggle, SystemConfig, SystemLifecycle
    from bridge.messages.timestamps import format_timestamp, utc_from_seconds

__all__ = [
    "ALERT_ID_PATTERN",
    "INSTANCES",
    "LABEL_PATTERN",
    "MAX_NAME",
    "MAX_TEXT",
    "MESSAGE_TYPES",
    "NAME_PATTERN",
    "NAME_REFUSES",
    "NODE_BLANK_SAID",
    "NODE_JOINERS_SAID",
    "NODE_PATTERN",
    "NODE_REFUSES",
    "NO_CONTROL_CHARACTERS",
    "SECURITY_SEVERITY",
    "SEVERITIES",
    "TAGS",
    "AccessLog",
    "AccessViolation",
    "AdminAction",
    "AlertAck",
    "AlertEscalation",
    "AlertSeverity",
    "AuthEvent",
    "ClusterHealth",
    "ClusterMembership",
    "ComplianceEvent",
    "ComponentHealth",
    "DataChange",
    "DebugTrace",
    "ErrorAnalysis",
    "FeatureToggle",
    "HealthCheck",
    "LatencyMetric",
    "LogEntry",
    "LogFilter",
    "LogRotation",
    "LogSummary",
    "Message",
    "MetricAlert",
    "NodeHealth",
    "NodeLifecycle",
    "NotificationStatus",
    "PerformanceAnalysis",
    "PerformanceMetric",
    "ProcessLifecycle",
    "ResourceUsage",
    "RiskSeverity",
    "SecurityAlert",
    "SessionEvent",
    "SupervisionEvent",
    "SystemAlert",
    "SystemConfig",
    "SystemLifecycle",
    "SystemState",
    "ThroughputMetric",
    "Timestamp",
    "format_timestamp",
    "input_given",
    "model_for",
    "model_tagged",
    "pattern_refused",
    "random_hex",
    "utc_from_seconds",
    "utc_now",
    "visible_name",
]

INSTANCES: Final[tuple[str, ...]] = (
    "ex_esdb_system",
    "ex_esdb_health",
    "ex_esdb_metrics",
    "ex_esdb_lifecycle",
    "ex_esdb_alerts",
    "ex_esdb_audit",
    "ex_esdb_diagnostics",
    "ex_esdb_security",
    "ex_esdb_logging",
)
"""The nine bus instances, in the order of docs/messages.md."""

# Each tag's model by class name (``registry``'s order), which ``__getattr__`` imports alone.
_MODEL_NAMES: Final = {
    "system_config_changed": "SystemConfig",
    "system_lifecycle_event": "SystemLifecycle",
    "feature_toggle_changed": "FeatureToggle",
    "node_health_updated": "NodeHealth",
    "cluster_health_updated": "ClusterHealth",
    "component_health_updated": "ComponentHealth",
    "health_check_completed": "HealthCheck",
    "performance_metric": "PerformanceMetric",
    "throughput_metric": "ThroughputMetric",
    "latency_metric": "LatencyMetric",
    "resource_usage": "ResourceUsage",
    "metric_alert": "MetricAlert",
    "node_lifecycle_event": "NodeLifecycle",
    "process_lifecycle_event": "ProcessLifecycle",
    "supervision_event": "SupervisionEvent",
    "cluster_membership_changed": "ClusterMembership",
    "system_alert": "SystemAlert",
    "alert_acknowledged": "AlertAck",
    "alert_escalated": "AlertEscalation",
    "notification_status": "NotificationStatus",
    "data_change": "DataChange",
    "admin_action": "AdminAction",
    "access_log": "AccessLog",
    "compliance_event": "ComplianceEvent",
    "debug_trace": "DebugTrace",
    "performance_analysis": "PerformanceAnalysis",
    "system_state": "SystemState",
    "error_analysis": "ErrorAnalysis",
    "auth_event": "AuthEvent",
    "access_violation": "AccessViolation",
    "security_alert": "SecurityAlert",
    "session_event": "SessionEvent",
    "log_entry": "LogEntry",
    "log_summary": "LogSummary",
    "log_filter_updated": "LogFilter",
    "log_rotation": "LogRotation",
}


def model_tagged(tag: str) -> type[Message] | None:
    """The model whose tag is ``tag``, or None; only its module's models are built (``TAGS``
    builds all 36).

    None too if the table above names no model whose ``TAG`` is ``tag`` (a stale entry): the
    caller then asks the registry, never sends another model.
    """
    name = _MODEL_NAMES.get(tag)
    model: type[Message] | None = getattr(sys.modules[__name__], name, None) if name else None
    if model is None or getattr(model, "TAG", None) != tag:
        return None
    return model


# ``check-config`` and the outbox read the alert severities without building any model.
__getattr__ = lazy_exports(
    __name__,
    {
        "_base": (
            "ALERT_ID_PATTERN",
            "LABEL_PATTERN",
            "MAX_NAME",
            "MAX_TEXT",
            "NAME_PATTERN",
            "NAME_REFUSES",
            "NO_CONTROL_CHARACTERS",
            "NODE_BLANK_SAID",
            "NODE_JOINERS_SAID",
            "NODE_PATTERN",
            "NODE_REFUSES",
            "Message",
            "Timestamp",
            "input_given",
            "pattern_refused",
            "random_hex",
            "utc_now",
            "visible_name",
        ),
        "alerts": (
            "SECURITY_SEVERITY",
            "AlertAck",
            "AlertEscalation",
            "NotificationStatus",
            "RiskSeverity",
            "SystemAlert",
        ),
        "audit": ("AccessLog", "AdminAction", "ComplianceEvent", "DataChange"),
        "diagnostics": ("DebugTrace", "ErrorAnalysis", "PerformanceAnalysis", "SystemState"),
        "health": ("ClusterHealth", "ComponentHealth", "HealthCheck", "NodeHealth"),
        "lifecycle": ("ClusterMembership", "NodeLifecycle", "ProcessLifecycle", "SupervisionEvent"),
        "logs": ("LogEntry", "LogFilter", "LogRotation", "LogSummary"),
        "metrics": (
            "LatencyMetric",
            "MetricAlert",
            "PerformanceMetric",
            "ResourceUsage",
            "ThroughputMetric",
        ),
        "security": ("AccessViolation", "AuthEvent", "SecurityAlert", "SessionEvent"),
        "system": ("FeatureToggle", "SystemConfig", "SystemLifecycle"),
        "timestamps": ("format_timestamp", "utc_from_seconds"),
        "severities": ("SEVERITIES", "AlertSeverity"),
        "registry": ("MESSAGE_TYPES", "TAGS", "model_for"),
    },
)
