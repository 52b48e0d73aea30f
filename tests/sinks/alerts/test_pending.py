"""Health readings alert only once they have lasted EXESDB_ALERT_FOR_MS (Prometheus's ``for:``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bridge.messages import ComponentHealth, MetricAlert, NodeHealth
from bridge.sinks.alerts.pending import PendingConditions
from tests.sinks.alerts.helpers import alert_bridge, stored, system_alert
from tests.support import async_wait_until

T0 = datetime(2030, 1, 1, tzinfo=UTC)
MINUTE = "60000"


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_reading_waits_then_counts_at_the_status_held() -> None:
    """degraded waits until held; healthy ends the wait; unknown says nothing either way."""
    pending = PendingConditions(60, forget_after=300, max_conditions=10)
    assert pending.held("a", "degraded", _at(0)) is None
    assert pending.held("a", "unknown", _at(20)) == "unknown"
    assert pending.held("a", "unhealthy", _at(30)) is None
    assert pending.waiting() == 1
    assert pending.held("a", "unhealthy", _at(60)) == "degraded"  # unhealthy only since 30
    assert pending.held("a", "unhealthy", _at(90)) == "unhealthy"
    assert pending.waiting() == 0
    assert pending.held("a", "healthy", _at(120)) == "healthy"
    assert pending.held("a", "degraded", _at(150)) is None  # a new wait
    assert len(pending) == 1


async def _settled(bridge: Any, sink: Any, marker: str) -> None:
    """Wait until everything published before now reached the outbox: a marker alert follows."""
    bridge.bus.publish("marker", system_alert(marker, severity="warning"))
    await async_wait_until(lambda: stored(sink.outbox, marker), what="the marker alert")


async def test_a_node_degraded_for_the_hold_time_alerts_and_not_before(tmp_path: Path) -> None:
    """Readings 30 s apart with a 60 s hold: the third degraded reading raises node_health."""
    async with alert_bridge(tmp_path, EXESDB_ALERT_FOR_MS=MINUTE) as (bridge, sink, _):
        for step in range(2):
            bridge.bus.publish(
                "health", NodeHealth(node="n1", status="degraded", timestamp=_at(30 * step))
            )
        await _settled(bridge, sink, "m1")
        assert stored(sink.outbox, "node_health:n1") is None
        assert bridge.registry.get_sample_value("exesdb_alerts_pending") == 1
        bridge.bus.publish("health", NodeHealth(node="n1", status="degraded", timestamp=_at(60)))
        record = await async_wait_until(
            lambda: stored(sink.outbox, "node_health:n1"), what="node_health after the hold"
        )
        assert (record.state, record.severity) == ("firing", "warning")
        assert record.starts_at == _at(60).timestamp()
        assert bridge.registry.get_sample_value("exesdb_alerts_pending") == 0


async def test_a_single_unhealthy_reading_raises_nothing(tmp_path: Path) -> None:
    """One unhealthy reading between healthy ones, of a node or a component, alerts nothing."""
    async with alert_bridge(tmp_path, EXESDB_ALERT_FOR_MS=MINUTE) as (bridge, sink, _):
        for step, status in enumerate(["healthy", "unhealthy", "healthy", "unhealthy"]):
            at = _at(30 * step)
            bridge.bus.publish("health", NodeHealth(node="n1", status=status, timestamp=at))
            bridge.bus.publish(
                "store:health",
                ComponentHealth(component="store", node="n1", status=status, timestamp=at),
            )
        await _settled(bridge, sink, "m1")
        assert stored(sink.outbox, "node_health:n1") is None
        assert stored(sink.outbox, "component_health:n1:store") is None


async def test_a_component_held_unhealthy_alerts_critical(tmp_path: Path) -> None:
    """ComponentHealth waits the same way, then alerts at the status it held."""
    async with alert_bridge(tmp_path, EXESDB_ALERT_FOR_MS=MINUTE) as (bridge, sink, _):
        for step in range(3):
            bridge.bus.publish(
                "store:health",
                ComponentHealth(
                    component="store", node="n1", status="unhealthy", timestamp=_at(30 * step)
                ),
            )
        record = await async_wait_until(
            lambda: stored(sink.outbox, "component_health:n1:store"), what="component alert"
        )
        assert (record.severity, record.title) == ("critical", "component store on n1 is unhealthy")


async def test_messages_that_are_alerts_do_not_wait(tmp_path: Path) -> None:
    """A MetricAlert is its sender's verdict: it fires at once, whatever the hold."""
    async with alert_bridge(tmp_path, EXESDB_ALERT_FOR_MS=MINUTE) as (bridge, sink, _):
        bridge.bus.publish(
            "metric_alert",
            MetricAlert(
                metric_name="cpu_usage_percent",
                current_value=97,
                threshold_value=95,
                threshold_type="max",
                severity="critical",
                node="n1",
            ),
        )
        await async_wait_until(
            lambda: stored(sink.outbox, "metric_threshold:n1:cpu_usage_percent"), what="at once"
        )
