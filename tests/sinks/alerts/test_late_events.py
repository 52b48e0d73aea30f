"""The alert sink past late and redelivered events: one sent before the event that last changed
its alert changes nothing, and is counted (docs/alerts.md, late and redelivered events)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.app import Bridge
from bridge.bus import LocalCoordinator
from bridge.messages import NodeLifecycle
from bridge.sinks.alerts import AlertSink
from bridge.sinks.alerts.alert_store import RESOLVES_REMEMBERED
from bridge.sinks.alerts.records import AlertState
from bridge.sinks.alerts.thread import DbThread
from tests.sinks.alerts.helpers import T0, alert_bridge, hold, stored, system_alert
from tests.support import ManualClock, async_wait_until

STALE = "exesdb_alerts_stale_events_total"


def _lifecycle(event: str, sent: float) -> NodeLifecycle:
    """NodeLifecycle ``event`` of node app-5, sent ``sent`` seconds ago."""
    return NodeLifecycle(
        node="app-5",
        event=event,
        cluster_size=3,
        timestamp=datetime.fromtimestamp(time.time() - sent, UTC),
    )


async def marked(bridge: Bridge, sink: AlertSink) -> None:
    """Publish marker alert m1 and wait until it is stored and its batch's stale events
    counted: everything published before it has been handled then."""
    bridge.bus.publish("marker", system_alert("m1", severity="warning"))
    # The batch is counted once its store returns, a moment after the outbox shows it.
    await async_wait_until(
        lambda: stored(sink.outbox, "m1") and bridge.registry.get_sample_value(STALE),
        what="the marker alert, and the batch it came in counted",
    )


async def test_a_down_handled_again_after_its_reconnected_fires_no_alert(tmp_path: Path) -> None:
    """A node's down, then its reconnected, then the down again (redelivered) leave its
    node_failure resolved, count the down stale and notify nothing more; a later down fires
    again."""
    async with alert_bridge(tmp_path) as (bridge, sink, _):
        down = _lifecycle("down", sent=60)
        bridge.bus.publish("lifecycle", down)
        bridge.bus.publish("lifecycle", _lifecycle("reconnected", sent=30))
        bridge.bus.publish("lifecycle", down)
        await marked(bridge, sink)
        resolved = stored(sink.outbox, "node_failure:app-5")
        assert resolved is not None
        assert resolved.state is AlertState.RESOLVED
        assert bridge.registry.get_sample_value(STALE) == 1
        bridge.bus.publish("lifecycle", _lifecycle("down", sent=0))

        def fired_again() -> bool:
            record = stored(sink.outbox, "node_failure:app-5")
            return record is not None and record.state is AlertState.FIRING

        await async_wait_until(fired_again, what="node_failure fired again")
        assert bridge.registry.get_sample_value(STALE) == 1


async def test_a_down_sent_before_the_reconnected_that_came_first_fires_no_alert(
    tmp_path: Path,
) -> None:
    """A node's reconnected taken while its node_failure is unknown, then its down sent before
    it (the two overtaking one another on the way) open no alert, notify nothing and count the
    down stale."""
    async with alert_bridge(tmp_path) as (bridge, sink, _):
        bridge.bus.publish("lifecycle", _lifecycle("reconnected", sent=30))
        bridge.bus.publish("lifecycle", _lifecycle("down", sent=60))
        await marked(bridge, sink)
        assert stored(sink.outbox, "node_failure:app-5") is None
        assert sink.outbox.alerts.find(state="firing") == [stored(sink.outbox, "m1")]
        assert bridge.registry.get_sample_value(STALE) == 1


async def test_a_down_sent_between_two_returns_leaves_its_alert_resolved(tmp_path: Path) -> None:
    """A node_failure resolved by a reconnected, then a second reconnected, then a down sent
    between the two (delivered late) leaves it resolved, notified of nothing more, the down
    counted stale."""
    async with alert_bridge(tmp_path) as (bridge, sink, _):
        bridge.bus.publish("lifecycle", _lifecycle("down", sent=90))
        bridge.bus.publish("lifecycle", _lifecycle("reconnected", sent=60))
        bridge.bus.publish("lifecycle", _lifecycle("joined", sent=10))
        bridge.bus.publish("lifecycle", _lifecycle("down", sent=30))
        await marked(bridge, sink)
        resolved = stored(sink.outbox, "node_failure:app-5")
        assert resolved is not None
        assert resolved.state is AlertState.RESOLVED
        assert bridge.registry.get_sample_value(STALE) == 1


def _dated(event: str, at: float) -> NodeLifecycle:
    """NodeLifecycle ``event`` of node app-5, dated ``at`` (Unix seconds)."""
    return NodeLifecycle(
        node="app-5", event=event, cluster_size=3, timestamp=datetime.fromtimestamp(at, UTC)
    )


async def test_a_down_taken_in_time_that_waited_in_the_queue_past_the_window_fires_no_alert(
    tmp_path: Path,
) -> None:
    """In process: a node's reconnected taken while its node_failure is unknown, then its down
    sent before it, taken in while the resolve is remembered but waiting in the sink's queue
    (behind a batch the outbox holds) until EXESDB_REPLAY_WINDOW_MS has passed since: the down
    opens no alert and is counted stale, as handled at once it would have been. The sink has
    the in-process bus's coordinator, as ``alert_sink`` gives it (on the sink's clock here)."""
    clock = ManualClock(T0)
    db = DbThread()
    coordinator = LocalCoordinator(wall_clock=clock)
    async with alert_bridge(tmp_path, clock=clock, db=db, coordinator=coordinator) as (
        bridge,
        sink,
        _,
    ):
        bridge.bus.publish("lifecycle", _dated("reconnected", T0 - 30))
        bridge.bus.publish("marker", system_alert("m1", severity="warning"))
        await async_wait_until(lambda: stored(sink.outbox, "m1"), what="the reconnected handled")
        release = await hold(db)
        try:
            bridge.bus.publish("marker", system_alert("m2", severity="warning"))
            await async_wait_until(
                lambda: sink.subscription.depth == 0 and not sink.subscription.idle,
                what="m2 taken by the handler, held by the outbox",
            )
            bridge.bus.publish("lifecycle", _dated("down", T0 - 60))
            bridge.bus.publish("marker", system_alert("m3", severity="warning"))
            clock.advance(sink.settings.replay_window_ms / 1000 + 1)
        finally:
            release.set()
        await async_wait_until(lambda: stored(sink.outbox, "m3"), what="the down handled")
        assert stored(sink.outbox, "node_failure:app-5") is None
        await async_wait_until(
            lambda: bridge.registry.get_sample_value(STALE) == 1, what="the down counted stale"
        )


async def test_resolves_of_unknown_alerts_forgotten_at_the_cap_are_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """In process: the returns of more distinct nodes than ``RESOLVES_REMEMBERED``, their alerts
    unknown, count each resolve forgotten beyond the cap in
    exesdb_alerts_resolves_forgotten_total, and a warning says so."""
    caplog.set_level(logging.WARNING, logger="bridge.sinks.alerts.refusals")
    async with alert_bridge(tmp_path) as (bridge, _, _):
        at = datetime.fromtimestamp(time.time() - 1, UTC)
        for number in range(RESOLVES_REMEMBERED + 2):
            back = NodeLifecycle(
                node=f"n{number}", event="reconnected", cluster_size=3, timestamp=at
            )
            bridge.bus.publish("lifecycle", back)
        await async_wait_until(
            lambda: bridge.registry.get_sample_value("exesdb_alerts_resolves_forgotten_total") == 2,
            what="two resolves counted forgotten",
        )
    forgot = [
        record for record in caplog.records if "resolve(s) of alerts unknown" in record.getMessage()
    ]
    assert len(forgot) == 1  # both told at once, or the second within the minute after
    assert forgot[0].levelno == logging.WARNING
