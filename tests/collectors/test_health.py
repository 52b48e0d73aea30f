"""The health collector: statuses from thresholds, what it publishes, alerts once held."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.messages import (
    ComponentHealth,
    HealthCheck,
    MetricAlert,
    NodeHealth,
    PerformanceMetric,
    ResourceUsage,
)
from collectors import HealthCollector, PsutilProbe, Thresholds
from collectors.health import health_collector
from collectors.host import busy_percent
from tests.collectors.fakes import FakeProbe, VirtualTime, cpu_times, make_integration
from tests.support import make_settings

DEFAULTS = {
    "cpu": Thresholds(85, 95),
    "memory": Thresholds(85, 95),
    "disk": Thresholds(85, 95),
}


def _collector(
    probe, integration=None, thresholds=DEFAULTS, readiness=None, alert_for=0.0, clock=None
) -> Any:
    integration = integration or make_integration()
    ticks = iter(i * 0.004 for i in range(1000))  # each timer read 4 ms after the last
    collector = HealthCollector(
        integration,
        probe=probe,
        thresholds=thresholds,
        readiness=readiness,
        alert_for=alert_for,
        timer=lambda: next(ticks),
        **({"clock": clock} if clock else {}),
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
    """The node takes its worst resource's status; every sample at a non-healthy status
    publishes a MetricAlert at it, none once healthy again."""
    probe = FakeProbe()
    collector, integration = _collector(probe)
    probe.set(cpu_percent=90.0)
    collector.collect()
    probe.set(cpu_percent=97.0, disk_percent=86.0)
    collector.collect()
    collector.collect()  # no change: the same alerts again, so a resolve meanwhile is undone
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
        ("cpu_usage_percent", "critical", 95, 97.0),
        ("disk_usage_percent", "warning", 85, 86.0),
    ]


def test_the_check_fails_exactly_when_the_node_is_unhealthy():
    """The check passes while the worst resource is degraded and fails, naming the resource,
    in the same collection as the NodeHealth turns unhealthy, with no hold (as the status)."""
    probe = FakeProbe()
    collector, integration = _collector(probe, alert_for=60.0)
    for percent in (90.0, 96.0, 10.0):
        probe.set(memory_percent=percent)
        collector.collect()
    outcomes = [
        (node.status, check.result, check.error)
        for node, check in zip(integration.of(NodeHealth), integration.of(HealthCheck), strict=True)
    ]
    assert outcomes == [
        ("degraded", "pass", None),
        ("unhealthy", "fail", "memory 96.0% (unhealthy at 95%)"),
        ("healthy", "pass", None),
    ]
    assert integration.of(HealthCheck)[1].details["memory"] == "unhealthy"


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
    assert sample.cpu_percent is not None  # no window to wait for
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


# -- CPU over a whole interval, alerts only once held --


def test_busy_percent_is_the_busy_share_of_the_cpu_time_between_readings() -> None:
    """Idle and I/O wait are not busy; guest time, already in user time, is not counted twice."""
    before = cpu_times(100, 100)
    assert busy_percent(before, cpu_times(130, 170)) == 30.0
    assert busy_percent(before, cpu_times(130, 150, iowait=20)) == 30.0
    assert busy_percent(before, cpu_times(150, 150, guest=40)) == 50.0
    assert busy_percent(before, before) == 0.0  # no time passed


def test_the_first_cpu_reading_covers_a_whole_interval() -> None:
    """The psutil probe reads no CPU until cpu_window has passed; then each reading covers the
    time since the previous one."""
    time = VirtualTime(now=0.0)
    readings = iter([cpu_times(0, 0), cpu_times(90, 10), cpu_times(100, 100)])
    probe = PsutilProbe(cpu_window=30, clock=time.clock, cpu_times=lambda: next(readings))
    time.now = 0.5  # the bridge's own start-up: busy, but not measured
    assert probe.sample().cpu_percent is None
    time.now = 30.0
    assert probe.sample().cpu_percent == 90.0  # from construction to now
    time.now = 31.0
    assert probe.cpu_percent() == 10.0  # since the previous reading


def test_until_cpu_is_measured_the_collection_leaves_cpu_out() -> None:
    """A sample without a CPU reading publishes memory and disk, and no CPU status or usage."""
    probe = FakeProbe()
    probe.set(cpu_percent=None)
    collector, integration = _collector(probe)
    collector.collect()
    (node,) = integration.of(NodeHealth)
    assert "cpu" not in node.checks
    assert {m.resource_type for m in integration.of(ResourceUsage)} == {"memory", "disk"}


def test_the_bridges_collector_waits_an_interval_for_cpu_and_holds_alerts() -> None:
    """As the bridge builds it (health_collector), a collection right after start has no CPU
    reading and raises no alert for a resource already degraded: CPU waits for a whole health
    interval, and alerts for EXESDB_ALERT_FOR_MS (by default two intervals)."""
    settings = make_settings(
        EXESDB_HEALTH_BROADCAST_INTERVAL="60000",
        EXESDB_MEMORY_DEGRADED="2",  # any host's memory is degraded now
        EXESDB_MEMORY_UNHEALTHY="100",
    )
    bridge = Bridge(settings, registry=CollectorRegistry(), components=[])
    integration = make_integration()
    collector = health_collector(replace(bridge.context, integration=integration))
    collector.collect()
    assert [node.status for node in integration.of(NodeHealth)] == ["degraded"]
    assert {m.resource_type for m in integration.of(ResourceUsage)} == {"memory", "disk"}
    assert integration.of(MetricAlert) == []


def _run(cpu_readings: list[float], alert_for: float = 60.0) -> Any:
    """Collections 30 s apart reading ``cpu_readings``; the collector's integration, with
    ``alerts_at``: how many MetricAlerts each collection published."""
    probe = FakeProbe()
    time = VirtualTime(now=0.0)
    collector, integration = _collector(probe, alert_for=alert_for, clock=time.clock)
    integration.alerts_at = []
    for cpu in cpu_readings:
        before = len(integration.of(MetricAlert))
        probe.set(cpu_percent=cpu)
        collector.collect()
        integration.alerts_at.append(len(integration.of(MetricAlert)) - before)
        time.now += 30
    return integration


def test_a_sustained_high_cpu_alerts_once_it_has_held_for_the_hold_time() -> None:
    """CPU at 99 % read at 0, 30, 60 and 90 s with a 60 s hold: a critical MetricAlert from 60 s
    on, with every sample while it holds; every reading still shows in NodeHealth."""
    integration = _run([99, 99, 99, 99])
    alerts = [(a.metric_name, a.severity, a.current_value) for a in integration.of(MetricAlert)]
    assert alerts == [("cpu_usage_percent", "critical", 99.0)] * 2
    assert integration.alerts_at == [0, 0, 1, 1]
    assert [m.status for m in integration.of(NodeHealth)] == ["unhealthy"] * 4


def test_a_single_cpu_spike_raises_no_alert() -> None:
    """One reading at 100 % between idle ones raises nothing, though NodeHealth shows it."""
    integration = _run([5, 100, 5, 100, 5])
    assert integration.of(MetricAlert) == []
    assert [m.status for m in integration.of(NodeHealth)][1] == "unhealthy"


def test_a_spike_while_degraded_holds_alerts_only_as_degraded() -> None:
    """Degraded for a minute (warning), then one unhealthy reading: no critical alert."""
    integration = _run([90, 90, 90, 99, 90])
    assert [a.severity for a in integration.of(MetricAlert)] == ["warning"] * 3


def _read_99_at_0_and_30() -> tuple[FakeProbe, VirtualTime, Any, Any]:
    """A collector with a 60 s hold (and a 30 s interval) that read CPU at 99 % at 0 and 30 s:
    its probe, clock, itself and its integration."""
    probe = FakeProbe()
    time = VirtualTime(now=0.0)
    collector, integration = _collector(probe, alert_for=60.0, clock=time.clock)
    probe.set(cpu_percent=99.0)
    collector.collect()
    time.now = 30.0
    collector.collect()
    return probe, time, collector, integration


@pytest.mark.parametrize("silence", ["switched off", "probe failing"])
def test_a_reading_after_a_silence_is_a_spike_not_a_condition_held_through_it(
    silence: str,
) -> None:
    """CPU at 99 % read at 0 and 30 s, then no reading for an hour (the integration switched
    off, or the probe failing), then 99 % again: the hold starts afresh, so that one reading
    alerts nothing; the condition alerts once it has lasted the hold time anew."""
    probe, time, collector, integration = _read_99_at_0_and_30()
    if silence == "probe failing":
        probe.fail = OSError("no /proc")
        for time.now in range(60, 3600, 30):
            collector.collect()
        probe.fail = None
    time.now = 3630.0
    collector.collect()  # held since 0 s, were the hour without readings counted
    assert integration.of(MetricAlert) == []
    time.now = 3660.0
    collector.collect()
    assert integration.of(MetricAlert) == []
    time.now = 3690.0
    collector.collect()
    assert [a.severity for a in integration.of(MetricAlert)] == ["critical"]


@pytest.mark.parametrize(
    ("gap", "alerts"),
    [(2 * 30.0 + 4.0, 1), (3 * 30.0 - 4.0, 0)],
    ids=["one tick skipped, run late", "two ticks skipped, run early"],
)
def test_one_skipped_tick_keeps_the_hold_and_two_start_it_afresh(gap: float, alerts: int) -> None:
    """CPU at 99 % read at 0 and 30 s with a 30 s interval and a 60 s hold, then once more after
    one skipped tick run 4 s late (64 s later): held since 0 s, it alerts; after two skipped
    ticks run 4 s early (86 s later, past two and a half intervals), it starts afresh."""
    _, time, collector, integration = _read_99_at_0_and_30()
    time.now = 30.0 + gap
    collector.collect()
    assert len(integration.of(MetricAlert)) == alerts


def test_the_log_tells_a_held_condition_and_its_end_not_every_sample(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Flapping readings log nothing above debug; a held one logs one warning when it alerts and
    one line when it is over."""
    with caplog.at_level("INFO", logger="collectors.health"):
        _run([5, 99, 5, 99, 5])
        assert caplog.records == []
        _run([99, 99, 99, 99, 5])
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "cpu unhealthy for 60s (99.0%, threshold 95%): alerting"),
        ("INFO", "cpu is healthy again (5.0%)"),
    ]


def test_every_sample_still_breaching_sends_the_alert_again_and_a_healthy_one_none() -> None:
    """The collector never hears of a resolve made elsewhere (a healthy NodeHealth from another
    sender), so it repeats its MetricAlert on every sample still breaching rather than keep it
    as already said; the first healthy sample sends none."""
    integration = _run([99, 99, 99, 99, 99, 5], alert_for=60.0)
    assert integration.alerts_at == [0, 0, 1, 1, 1, 0]
    assert {(a.metric_name, a.severity) for a in integration.of(MetricAlert)} == {
        ("cpu_usage_percent", "critical")
    }
