"""Health readings alert only once they have lasted EXESDB_ALERT_FOR_MS (Prometheus's ``for:``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.bus import Envelope
from bridge.messages import ComponentHealth, NodeHealth
from bridge.sinks.alerts.pending import PendingConditions
from bridge.sinks.alerts.sources import AlertEvent, alert_events
from tests.sinks.alerts.helpers import (
    alert_bridge,
    critical_cpu,
    envelope,
    stored,
    system_alert,
)
from tests.support import ManualClock, async_wait_until

MINUTE = "60000"
_T0: list[datetime] = []


@pytest.fixture(autouse=True)
def _readings_dated_recently() -> None:
    """Each test's readings are dated from 100 s before it starts (whole seconds), so the latest
    is in the past (an alert never starts after the bridge's now) and the first well within the
    time after which a condition not read is forgotten."""
    _T0[:] = [datetime.fromtimestamp(int(time.time()) - 100, UTC)]


def _at(seconds: float) -> datetime:
    return _T0[0] + timedelta(seconds=seconds)


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
    assert "a" in pending
    assert "b" not in pending


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


async def test_a_reading_dated_by_a_clock_far_ahead_holds_no_alert_back(tmp_path: Path) -> None:
    """A degraded reading dated years ahead counts as read at the bridge's now, so readings
    after it, degraded for the hold time, still raise node_health (not years later)."""
    clock = ManualClock(_at(0).timestamp())
    ahead = datetime(2999, 1, 1, tzinfo=UTC)
    async with alert_bridge(tmp_path, clock=clock, EXESDB_ALERT_FOR_MS=MINUTE) as (
        bridge,
        sink,
        _,
    ):
        bridge.bus.publish("health", NodeHealth(node="n1", status="degraded", timestamp=ahead))
        for step in range(3):
            bridge.bus.publish(
                "health", NodeHealth(node="n1", status="degraded", timestamp=_at(30 * step))
            )
            await _settled(bridge, sink, f"m{step}")
            clock.advance(30)
        record = stored(sink.outbox, "node_health:n1")
    assert record is not None
    assert record.starts_at == _at(60).timestamp()


async def test_readings_a_health_interval_apart_hold_when_it_is_longer_than_the_resolve_timeout(
    tmp_path: Path,
) -> None:
    """With a health interval of 10 min, longer than EXESDB_ALERT_RESOLVE_TIMEOUT_MS (5 min),
    readings one interval apart are one condition held, not each a silence's new start: the
    third unhealthy reading, two intervals after the first, raises node_health."""
    clock = ManualClock(_at(0).timestamp())
    async with alert_bridge(
        tmp_path,
        clock=clock,
        EXESDB_HEALTH_BROADCAST_INTERVAL="600000",
        EXESDB_ALERT_FOR_MS="1200000",  # two health intervals, as when it is unset
    ) as (bridge, sink, _):
        for step in range(3):
            at = _at(600 * step)
            clock.now = at.timestamp()
            bridge.bus.publish("health", NodeHealth(node="n1", status="unhealthy", timestamp=at))
            await _settled(bridge, sink, f"m{step}")
        record = await async_wait_until(
            lambda: stored(sink.outbox, "node_health:n1"), what="node_health after the hold"
        )
    assert (record.severity, record.starts_at) == ("critical", _at(1200).timestamp())


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
            critical_cpu(),
        )
        await async_wait_until(
            lambda: stored(sink.outbox, "metric_threshold:n1:cpu_usage_percent"), what="at once"
        )


# A reading's own check of the cpu: what resolves a cpu threshold alert.
CPU_HEALTHY = {"cpu": {"usage_percent": 5.0, "status": "healthy"}}


async def test_a_healthy_reading_is_passed_over_while_another_node_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another node's component waiting in the hold does not stop a healthy NodeHealth with
    nothing to change from being passed over; one whose node has an alert, or whose own
    node_health condition waits, still goes through and resolves it or ends the wait."""
    worked_out: list[str] = []

    def counted(item: Envelope, *args: Any) -> list[AlertEvent]:
        """The real alert_events, noting each healthy NodeHealth it is given."""
        if isinstance(item.payload, NodeHealth) and item.payload.status == "healthy":
            worked_out.append(item.payload.node)
        return alert_events(item, *args)

    monkeypatch.setattr("bridge.sinks.alerts.sources.alert_events", counted)
    cpu = "metric_threshold:n1:cpu_usage_percent"
    async with alert_bridge(tmp_path, EXESDB_ALERT_FOR_MS=MINUTE) as (bridge, sink, _):
        bridge.bus.publish(
            "store:health",
            ComponentHealth(component="store", node="n2", status="degraded", timestamp=_at(0)),
        )
        bridge.bus.publish("health", NodeHealth(node="n3", status="degraded", timestamp=_at(0)))
        # Dated as the readings are: a healthy one sent before it would be stale.
        bridge.bus.publish("metric_alert", critical_cpu().model_copy(update={"timestamp": _at(0)}))
        await _settled(bridge, sink, "m1")
        assert stored(sink.outbox, cpu) is not None
        # n2's store and n3 wait in the hold.
        assert bridge.registry.get_sample_value("exesdb_alerts_pending") == 2
        # n4 has nothing to change; n1 has an active alert; n3's own condition waits, and its
        # healthy reading must end that wait (else degraded since 0 fires at 70).
        bridge.bus.publish_verified(
            [
                envelope(NodeHealth(node="n4", status="healthy", timestamp=_at(30))),
                envelope(
                    NodeHealth(node="n1", status="healthy", checks=CPU_HEALTHY, timestamp=_at(30))
                ),
                envelope(NodeHealth(node="n3", status="healthy", timestamp=_at(30))),
                envelope(NodeHealth(node="n3", status="degraded", timestamp=_at(40))),
                envelope(NodeHealth(node="n3", status="degraded", timestamp=_at(70))),
            ]
        )
        await _settled(bridge, sink, "m2")
        assert worked_out == ["n1", "n3"]
        resolved = stored(sink.outbox, cpu)
        assert resolved is not None
        assert resolved.state == "resolved"
        assert stored(sink.outbox, "node_health:n3") is None
        assert stored(sink.outbox, "node_health:n4") is None
        # n2's store still waits, and so does n3 again (since its reading at 40).
        assert bridge.registry.get_sample_value("exesdb_alerts_pending") == 2
