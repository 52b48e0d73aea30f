"""The 36 message models of the nine bus instances, and the registry that finds them.

One module per instance (``logs`` is ``ex_esdb_logging``). A model is found by its instance and
tag with :func:`model_for`; tags are unique, so :data:`TAGS` finds it by tag alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from bridge.messages._base import (
    MAX_TEXT,
    NO_CONTROL_CHARACTERS,
    Message,
    Timestamp,
    format_timestamp,
    random_hex,
    utc_now,
)
from bridge.messages.alerts import (
    SECURITY_SEVERITY,
    SEVERITIES,
    AlertAck,
    AlertEscalation,
    AlertSeverity,
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
from bridge.messages.security import AccessViolation, AuthEvent, SecurityAlert, SessionEvent
from bridge.messages.system import FeatureToggle, SystemConfig, SystemLifecycle

__all__ = [
    "INSTANCES",
    "MAX_TEXT",
    "MESSAGE_TYPES",
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
    "model_for",
    "random_hex",
    "utc_now",
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

_MODELS: Final[tuple[type[Message], ...]] = (
    SystemConfig,
    SystemLifecycle,
    FeatureToggle,
    NodeHealth,
    ClusterHealth,
    ComponentHealth,
    HealthCheck,
    PerformanceMetric,
    ThroughputMetric,
    LatencyMetric,
    ResourceUsage,
    MetricAlert,
    NodeLifecycle,
    ProcessLifecycle,
    SupervisionEvent,
    ClusterMembership,
    SystemAlert,
    AlertAck,
    AlertEscalation,
    NotificationStatus,
    DataChange,
    AdminAction,
    AccessLog,
    ComplianceEvent,
    DebugTrace,
    PerformanceAnalysis,
    SystemState,
    ErrorAnalysis,
    AuthEvent,
    AccessViolation,
    SecurityAlert,
    SessionEvent,
    LogEntry,
    LogSummary,
    LogFilter,
    LogRotation,
)

MESSAGE_TYPES: Final[Mapping[tuple[str, str], type[Message]]] = MappingProxyType(
    {(model.INSTANCE, model.TAG): model for model in _MODELS}
)
"""Every message model, keyed by ``(instance, tag)``."""

TAGS: Final[Mapping[str, type[Message]]] = MappingProxyType({model.TAG: model for model in _MODELS})
"""Every message model, keyed by tag (tags are unique across instances)."""


def model_for(instance: str, tag: str) -> type[Message] | None:
    """The model for ``tag`` on ``instance``, or ``None`` when that pair is unknown."""
    return MESSAGE_TYPES.get((instance, tag))
