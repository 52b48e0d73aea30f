"""Every message model by ``(instance, tag)`` and by tag: importing it builds all 36."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from bridge.messages._base import Message
from bridge.messages.alerts import AlertAck, AlertEscalation, NotificationStatus, SystemAlert
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

__all__ = ["MESSAGE_TYPES", "TAGS", "model_for"]

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
