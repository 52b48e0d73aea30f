"""The health collector: statuses from thresholds, what it publishes, alerts on change."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.messages import (
    ComponentHealth,
    HealthCheck,
    MetricAlert,
    NodeHealth,
    PerformanceMetric,
    ResourceUsage,
)
from collectors import HealthCollector, PsutilProbe, Thresholds
from tests.collectors.fakes import FakeProbe, make_integration

DEFAULTS = {
    "cpu": Thresholds(85, 95),
    "memory": Thresholds(85, 95),
    "disk": Thresholds(85, 95),
}


def _collector(probe, integration=None, thresholds=DEFAULTS, readiness=None) -> Any:
    integration = integration or make_integration()
    ticks = iter(i * 0.004 for i in range(1000))  # each timer read 4 ms after the last
    collector = HealthCollector(
        integration,
        probe=probe,
        thresholds=thresholds,
        readiness=readiness,
        timer=lambda: next(ticks),
    )
    return collector, integration


@pytest.mark.parametrize(
    ("percent", "limits", "status"),
    [
        (10, Thresholds(85, 95), "healthy"),
        (85, Thresholds(85, 95), "degraded"),
        (94.9, Thresholds(85, 95), "degraded"),
        (95, Thresholds(85, 95), "unhealthy"),
        (99, Thresholds(100, 100), "healthy"),
        (99, Thresholds(100, 95), "unhealthy"),
        (99, Thresholds(85, 100), "degraded"),
        (100, Thresholds(85, 150), "degraded"),
    ],
)
def test_thresholds_set_the_status(percent: float, limits: Thresholds, status: str):
    """At or above a threshold gives its status; 100 or more disables that status."""
    assert limits.status(percent) == status


def test_publishes_node_resources_process_and_check():
    """One collection publishes the check, NodeHealth, ResourceUsage x3 and process figures."""
    collector, integration = _collector(FakeProbe())
    collector.collect()
    (check,) = integration.of(HealthCheck)
    assert check.result == "pass"
    assert check.duration_ms == pytest.approx(4.0)
    assert check.check_name == "host_resources"
    (node,) = integration.of(NodeHealth)
    assert node.status == "healthy"
    assert node.node == "n1"
    assert node.memory_usage == 50.0
    assert node.disk_usage == 30.0
    assert node.load_avg == 0.5
    assert node.checks["process"] == {"rss_bytes": 5e7, "open_fds": 12}
    usage = {m.resource_type: m for m in integration.of(ResourceUsage)}
    assert set(usage) == {"cpu", "memory", "disk"}
    assert usage["cpu"].usage_percent == 10.0
    assert usage["cpu"].total_available == 4
    assert usage["memory"].current_used == 4e9
    process = {m.metric_name: m.value for m in integration.of(PerformanceMetric)}
    assert process == {"resident_memory_bytes": 5e7, "open_fds": 12.0}
    assert integration.of(MetricAlert) == []


def test_worst_resource_sets_the_node_status_and_changes_raise_alerts():
    """The node takes its worst resource's status; each worsening publishes one MetricAlert."""
    probe = FakeProbe()
    collector, integration = _collector(probe)
    probe.set(cpu_percent=90.0)
    collector.collect()
    probe.set(cpu_percent=97.0, disk_percent=86.0)
    collector.collect()
    collector.collect()  # no change: no new alert
    probe.set(cpu_percent=5.0, disk_percent=5.0)
    collector.collect()
    statuses = [m.status for m in integration.of(NodeHealth)]
    assert statuses == ["degraded", "unhealthy", "unhealthy", "healthy"]
    alerts = [
        (a.metric_name, a.severity, a.threshold_value, a.current_value)
        for a in integration.of(MetricAlert)
    ]
    assert alerts == [
        ("cpu_usage_percent", "warning", 85, 90.0),
        ("cpu_usage_percent", "critical", 95, 97.0),
        ("disk_usage_percent", "warning", 85, 86.0),
    ]


def test_a_failed_reading_is_a_failed_check_and_unknown_node():
    """When the probe raises, the check fails with the error and the node is unknown."""
    probe = FakeProbe()
    probe.fail = OSError("no /proc")
    collector, integration = _collector(probe)
    collector.collect()
    (check,) = integration.of(HealthCheck)
    assert check.result == "fail"
    assert "no /proc" in (check.error or "")
    (node,) = integration.of(NodeHealth)
    assert node.status == "unknown"


def test_component_health_follows_readiness():
    """Ready components are healthy; an unready required one unhealthy, optional degraded."""
    readiness = {
        "bus": {"ready": True, "required": True, "reason": None},
        "prometheus": {"ready": False, "required": True, "reason": "closed"},
        "otlp": {"ready": False, "required": False, "reason": "unreachable"},
    }
    collector, integration = _collector(FakeProbe(), readiness=lambda: readiness)
    collector.collect()
    health = {m.component: m for m in integration.of(ComponentHealth)}
    assert {name: m.status for name, m in health.items()} == {
        "bus": "healthy",
        "prometheus": "unhealthy",
        "otlp": "degraded",
    }
    assert health["otlp"].details == {"reason": "unreachable", "required": False}
    topics = {topic for topic, m in integration.published if isinstance(m, ComponentHealth)}
    assert topics == {"bus:health", "prometheus:health", "otlp:health"}


def test_publishes_nothing_while_disabled():
    """With the integration off a collection publishes nothing."""
    collector, integration = _collector(FakeProbe(), integration=make_integration(enabled=False))
    collector.collect()
    assert integration.published == []


def test_real_psutil_readings_are_plausible():
    """The psutil probe reads this host: percentages in range, this process's RSS and fds."""
    sample = PsutilProbe().sample()
    assert 0 <= sample.cpu_percent <= 100
    assert 0 < sample.memory_percent < 100
    assert sample.memory_total > sample.memory_used > 0
    assert 0 < sample.disk_percent <= 100
    assert sample.disk_total > 0
    assert sample.rss_bytes > 10_000_000  # a Python interpreter with pydantic loaded
    assert sample.open_fds is None or sample.open_fds >= 3
    assert sample.cpu_count >= 1
    collector, integration = _collector(PsutilProbe())
    collector.collect()
    assert len(integration.of(ResourceUsage)) == 3
