"""Which bus messages become alert events, with what name, severity, id and status."""

from __future__ import annotations

import pytest

from bridge.messages import (
    AccessViolation,
    ClusterHealth,
    ComponentHealth,
    Message,
    MetricAlert,
    NodeHealth,
    NodeLifecycle,
    NotificationStatus,
    SecurityAlert,
    SystemAlert,
)
from bridge.sinks.alerts.sources import alert_event, meets
from tests.sinks.alerts.helpers import envelope


def test_system_alert_is_named_after_its_topic() -> None:
    """A SystemAlert's alertname is its topic, and it keeps its own id, severity and ack need."""
    alert = SystemAlert(
        alert_id="a1",
        severity="error",
        category="network",
        title="t",
        description="d",
        source="s",
        node="n1",
    )
    event = alert_event(envelope(alert, topic="node_failure"))
    assert event is not None
    assert (event.alertname, event.alert_id, event.severity, event.category, event.node) == (
        "node_failure",
        "a1",
        "error",
        "network",
        "n1",
    )
    assert event.requires_ack
    assert event.firing


def test_metric_alert_is_a_performance_threshold_alert() -> None:
    """A MetricAlert becomes metric_threshold/performance with an id stable per node and metric."""
    metric = MetricAlert(
        metric_name="cpu",
        current_value=97,
        threshold_value=95,
        threshold_type="max",
        severity="critical",
        node="n2",
    )
    event = alert_event(envelope(metric))
    assert event is not None
    assert (event.alertname, event.category, event.severity, event.alert_id) == (
        "metric_threshold",
        "performance",
        "critical",
        "metric_threshold:n2:cpu",
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [("low", "info"), ("medium", "warning"), ("high", "error"), ("critical", "critical")],
)
def test_security_severities_map_to_alert_severities(given: str, expected: str) -> None:
    """SecurityAlert and AccessViolation severities map low→info … critical→critical."""
    security = SecurityAlert(
        alert_type="brute_force", severity=given, description="many logins", node="n1"
    )
    violation = AccessViolation(
        violation_type="invalid_token",
        resource="/streams",
        action="read",
        source_ip="10.0.0.1",
        severity=given,
    )
    first = alert_event(envelope(security, id="s" * 16))
    second = alert_event(envelope(violation, id="v" * 16, node="n9"))
    assert first is not None
    assert second is not None
    assert (first.alertname, first.severity, first.category) == (
        "brute_force",
        expected,
        "security",
    )
    assert (second.alertname, second.severity, second.node) == ("invalid_token", expected, "n9")
    assert first.alert_id == "brute_force:" + "s" * 16


@pytest.mark.parametrize(
    ("message", "alert_id", "status", "severity"),
    [
        (NodeHealth(node="n1", status="degraded"), "node_health:n1", "firing", "warning"),
        (NodeHealth(node="n1", status="unhealthy"), "node_health:n1", "firing", "critical"),
        (NodeHealth(node="n1", status="healthy"), "node_health:n1", "resolved", None),
        (
            ComponentHealth(component="store", node="n1", status="unhealthy"),
            "component_health:n1:store",
            "firing",
            "critical",
        ),
        (
            ComponentHealth(component="store", node="n1", status="healthy"),
            "component_health:n1:store",
            "resolved",
            None,
        ),
        (
            NodeLifecycle(node="n3", event="down", cluster_size=2),
            "node_failure:n3",
            "firing",
            "critical",
        ),
        (
            NodeLifecycle(node="n3", event="reconnected", cluster_size=3),
            "node_failure:n3",
            "resolved",
            None,
        ),
        (
            NodeLifecycle(node="n3", event="joined", cluster_size=3),
            "node_failure:n3",
            "resolved",
            None,
        ),
    ],
)
def test_bridge_derives_its_own_alerts(
    message: Message, alert_id: str, status: str, severity: str | None
) -> None:
    """Health and lifecycle changes fire or resolve the condition's stable alert id."""
    event = alert_event(envelope(message, node="publisher"))
    assert event is not None
    assert (event.alert_id, event.status) == (alert_id, status)
    if severity is not None:
        assert event.severity == severity
        assert event.node == alert_id.split(":")[1]  # the subject, not the publisher


@pytest.mark.parametrize(
    "message",
    [
        NodeHealth(node="n1", status="unknown"),
        NodeLifecycle(node="n1", event="joining", cluster_size=1),
        ClusterHealth(status="healthy", healthy_nodes=1, total_nodes=1),
        NotificationStatus(alert_id="a", delivery_method="webhook", recipient="r", status="sent"),
    ],
)
def test_other_messages_are_not_alerts(message: Message) -> None:
    """Messages that say nothing about an alert condition yield no event."""
    assert alert_event(envelope(message)) is None


@pytest.mark.parametrize(
    ("severity", "minimum", "expected"),
    [
        ("info", "warning", False),
        ("warning", "warning", True),
        ("critical", "error", True),
        ("error", "critical", False),
        ("bogus", "info", False),
    ],
)
def test_severity_filter_orders_info_warning_error_critical(
    severity: str, minimum: str, expected: bool
) -> None:
    """``meets`` keeps severities at or above EXESDB_WEBHOOK_MIN_SEVERITY."""
    assert meets(severity, minimum) is expected
