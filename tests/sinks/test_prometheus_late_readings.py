"""Messages sent long after they were made (held through a Redis outage): readings set no gauge,
and a start is dated by when it was made."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from bridge.bus import Envelope, new_message_id
from bridge.messages import NodeLifecycle
from bridge.sinks.prometheus import SeriesStore, Translator, node_summaries
from tests.sinks.prometheus_support import envelope, propagate, sample
from tests.support import ManualClock, undated_health_from_ahead

# Half the default replay window, as Bus.late_after gives it.
LATE_AFTER = timedelta(seconds=150)


def made_before(tag: str, seconds: float, **fields: Any) -> Envelope:
    """A ``tag`` envelope whose message was made ``seconds`` before its ``ts``."""
    sent = envelope(tag, **fields)
    made = sent.ts - timedelta(seconds=seconds)
    return envelope(tag, timestamp=made, **fields)


def translated(*envelopes: Envelope) -> SeriesStore:
    """A fresh store with ``envelopes`` translated, late readings told by LATE_AFTER."""
    store = SeriesStore(clock=ManualClock())
    Translator(store, late_after=LATE_AFTER).handle_batch(envelopes, propagate)
    return store


def test_a_health_reading_sent_late_leaves_the_gauges_to_the_one_sent_in_time() -> None:
    """A NodeHealth made ten minutes before it was sent, after one sent in time, is counted as
    translated and as late but sets neither the state set nor the resource gauges."""
    store = translated(
        made_before("node_health_updated", 1, node="n1", status="healthy", memory_usage=10.0),
        made_before("node_health_updated", 600, node="n1", status="unhealthy", memory_usage=99.0),
    )
    assert sample(store, "exesdb_node_health_status", node="n1", status="healthy") == 1.0
    assert sample(store, "exesdb_node_health_status", node="n1", status="unhealthy") == 0.0
    assert sample(store, "exesdb_node_memory_usage_percent", node="n1") == 10.0
    assert sample(store, "exesdb_prometheus_late_readings_total") == 1.0
    messages = {"pubsub": "ex_esdb_health", "tag": "node_health_updated"}
    assert sample(store, "exesdb_prometheus_messages_total", **messages) == 2.0


def test_a_reading_sent_within_half_the_window_still_sets_its_gauge() -> None:
    """A NodeHealth made two minutes before it was sent (under half the window) is current."""
    store = translated(made_before("node_health_updated", 120, node="n1", status="degraded"))
    assert sample(store, "exesdb_node_health_status", node="n1", status="degraded") == 1.0
    assert sample(store, "exesdb_prometheus_late_readings_total") == 0.0


@pytest.mark.parametrize("seconds", [150, 0, -600], ids=["half-the-window", "at-ts", "after-ts"])
def test_a_reading_made_half_the_window_before_its_ts_or_later_is_current(seconds: int) -> None:
    """A NodeHealth made exactly half the window before its ``ts``, at it, or after it (a
    sender's clock ahead of the one that stamped ``ts``) is not late: it sets its gauge."""
    store = translated(made_before("node_health_updated", seconds, node="n1", status="degraded"))
    assert sample(store, "exesdb_node_health_status", node="n1", status="degraded") == 1.0
    assert sample(store, "exesdb_prometheus_late_readings_total") == 0.0


def test_a_late_throughput_or_check_is_still_counted_without_its_gauges() -> None:
    """A late ThroughputMetric adds its operations and a late HealthCheck counts its check;
    neither sets the rate, success or duration gauge."""
    store = translated(
        made_before("throughput_metric", 600, operation="append", count=7, duration_ms=1000),
        made_before("health_check_completed", 600, check_name="disk", result="fail", duration_ms=5),
    )
    operation = {"node": "n1", "operation": "append"}
    assert sample(store, "exesdb_operations_total", **operation, result="success") == 7.0
    assert sample(store, "exesdb_operation_rate_per_second", **operation) is None
    check = {"node": "n1", "check": "disk"}
    assert sample(store, "exesdb_health_checks_total", **check, result="fail") == 1.0
    assert sample(store, "exesdb_health_check_success", **check) is None
    assert sample(store, "exesdb_prometheus_late_readings_total") == 2.0


def test_an_event_sent_late_still_sets_its_state() -> None:
    """A FeatureToggle made ten minutes before it was sent is an event: the last one known, it
    sets the feature's gauge."""
    store = translated(
        made_before(
            "feature_toggle_changed",
            600,
            feature="snapshots",
            enabled=True,
            previous_state=False,
            changed_by="ops",
        )
    )
    assert sample(store, "exesdb_feature_enabled", node="n1", feature="snapshots") == 1.0
    assert sample(store, "exesdb_prometheus_late_readings_total") == 0.0


def test_a_start_sent_late_is_dated_by_when_it_was_made() -> None:
    """A node's own joined (no heartbeat) made ten minutes before it was sent sets its start
    time to when it was made, not to the fresh ts it was signed again with."""
    joined = made_before(
        "node_lifecycle_event", 600, node="n1", event="joined", cluster_size=1, metadata={}
    )
    store = translated(joined)
    started = sample(store, "exesdb_node_start_time_seconds", node="n1")
    assert started == joined.ts.timestamp() - 600


def test_a_reading_left_undated_by_a_sender_whose_clock_is_ahead_still_sets_its_gauge() -> None:
    """A NodeHealth without ``timestamp`` from a sender whose clock is 200 s ahead of the
    bridge's (within the replay window) is current: its default is the bridge's decode time,
    no sign of when it was made."""
    store = translated(undated_health_from_ahead("n1", "degraded"))
    assert sample(store, "exesdb_node_health_status", node="n1", status="degraded") == 1.0
    assert sample(store, "exesdb_prometheus_late_readings_total") == 0.0


def lifecycle(
    node: str, event: str, made: datetime, *, sender: str | None = None, heartbeat: bool = False
) -> Envelope:
    """``node``'s NodeLifecycle ``event`` made at ``made`` (by the shared clock, as a bridge
    dates it), sent by ``sender`` (the node itself by default) at the fixed ``ts``."""
    metadata: dict[str, Any] = {"heartbeat": True} if heartbeat else {}
    said = NodeLifecycle(node=node, event=event, cluster_size=2, metadata=metadata, timestamp=made)
    ts = envelope("node_lifecycle_event", node=node, event=event, cluster_size=2).ts
    return Envelope(
        new_message_id(), said.INSTANCE, "lifecycle", said.TAG, sender or node, ts, said,
        ts.timestamp(),
    )  # fmt: skip


def test_a_heartbeat_made_before_its_node_was_found_down_leaves_it_down() -> None:
    """A node's heartbeat made before another bridge found it down, written after the down (a
    replica held it through a Redis outage), is no word of the node now: the status page's
    nodes table still shows it down; one made after the down shows it back."""
    clock = ManualClock()
    store = SeriesStore(clock=clock)
    translator = Translator(store, late_after=LATE_AFTER)
    healthy = envelope("node_health_updated", node="x", status="healthy")
    found_down = healthy.ts  # every envelope here is sent then
    down = lifecycle("x", "down", found_down, sender="bridge-b")
    for message in (healthy, down):
        translator.handle_batch([message], propagate)
        clock.advance(1)
    held = lifecycle("x", "joined", found_down - timedelta(seconds=300), heartbeat=True)
    translator.handle_batch([held], propagate)
    assert [(n.node, n.status) for n in node_summaries(store)] == [("x", "down")]
    clock.advance(1)
    back = lifecycle("x", "joined", found_down + timedelta(seconds=1), heartbeat=True)
    translator.handle_batch([back], propagate)
    assert [(n.node, n.status) for n in node_summaries(store)] == [("x", "healthy")]


def test_a_start_dated_before_its_node_was_found_down_still_dates_its_start() -> None:
    """A node's start (joined, no heartbeat) dated before another bridge found it down, as a
    node whose clock is behind Redis's dates a restart just after, is no word of the node now
    (it stays down on the nodes table until it is heard anew) but still sets its start time."""
    store = SeriesStore(clock=ManualClock())
    translator = Translator(store, late_after=LATE_AFTER)
    found_down = envelope("node_health_updated", node="x", status="healthy").ts
    restarted = lifecycle("x", "joined", found_down - timedelta(seconds=5))
    translator.handle_batch([lifecycle("x", "down", found_down, sender="bridge-b")], propagate)
    translator.handle_batch([restarted], propagate)
    assert [(n.node, n.status) for n in node_summaries(store)] == [("x", "down")]
    started = sample(store, "exesdb_node_start_time_seconds", node="x")
    assert started == found_down.timestamp() - 5
