"""The public names of each package, pinned: changing them is a deliberate act."""

from __future__ import annotations

import types

import pytest

import bridge
import bridge.bus
import bridge.integration
import bridge.messages
import bridge.schema
import bridge.webconfig

EXPORTS: dict[types.ModuleType, list[str]] = {
    bridge: ["__version__"],
    bridge.bus: [
        "MAX_BATCH",
        "SIGNATURE_HEADER",
        "WORK_QUEUE_INSTANCES",
        "BatchHandler",
        "BatchSubscription",
        "Bus",
        "BusMetrics",
        "Coordinator",
        "Durability",
        "Envelope",
        "Frame",
        "FrameReceiver",
        "HandOver",
        "Handler",
        "HeaderCheck",
        "Keyring",
        "LocalCoordinator",
        "MemoryTransport",
        "PublishResult",
        "PublishStatus",
        "RejectReason",
        "Rejection",
        "ReplayGuard",
        "ReplayVerdict",
        "Subscription",
        "Transport",
        "TransportCapabilities",
        "Verifier",
        "WorkQueueLease",
        "check_topic",
        "decode_envelope",
        "new_message_id",
        "register_queue_depth",
    ],
    bridge.integration: [
        "OPERATIONS",
        "Integration",
        "broadcast",
        "broadcast_alert",
        "broadcast_audit_event",
        "broadcast_batch",
        "broadcast_cluster_health",
        "broadcast_diagnostic",
        "broadcast_health_update",
        "broadcast_lifecycle_event",
        "broadcast_metrics",
        "broadcast_store_health",
        "broadcast_system_config",
        "broadcast_system_lifecycle",
        "current",
        "disable",
        "enable",
        "enabled",
        "health_broadcast_interval",
        "install",
        "metrics_broadcast_interval",
        "track",
    ],
    bridge.messages: [
        "INSTANCES",
        "MESSAGE_TYPES",
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
    ],
    bridge.schema: [
        "DERIVED_DEFAULTS",
        "ENVELOPE_FIELDS",
        "RULES",
        "FieldDoc",
        "add_schema_command",
        "closest_tag",
        "describe",
        "model_named",
        "render_markdown",
        "tags_by_instance",
        "wire_schema",
    ],
    bridge.webconfig: [
        "CIPHER_SUITES",
        "CLIENT_AUTH_TYPES",
        "BasicAuthChecker",
        "HTTPServerConfig",
        "LiveWebConfig",
        "ResponseHeaders",
        "TLSServerConfig",
        "WebConfig",
        "describe_web_config",
        "install",
        "load_web_config",
    ],
}


@pytest.mark.parametrize("module", list(EXPORTS), ids=lambda module: module.__name__)
def test_all_is_pinned(module: types.ModuleType) -> None:
    """Each package's __all__ is exactly the pinned list of public names."""
    assert sorted(module.__all__) == sorted(EXPORTS[module])


@pytest.mark.parametrize("module", list(EXPORTS), ids=lambda module: module.__name__)
def test_all_is_sorted_and_every_name_exists(module: types.ModuleType) -> None:
    """__all__ is sorted (constants, classes, then functions, as ruff sorts it) and importable."""
    assert list(module.__all__) == EXPORTS[module]
    for name in module.__all__:
        assert hasattr(module, name), name


def test_every_public_class_says_where_it_lives() -> None:
    """Exported classes and functions come from inside the bridge package."""
    for module, names in EXPORTS.items():
        for name in names:
            value = getattr(module, name)
            origin = getattr(value, "__module__", None)
            if isinstance(value, type | types.FunctionType) and origin is not None:
                assert origin.startswith("bridge"), (module.__name__, name, origin)
