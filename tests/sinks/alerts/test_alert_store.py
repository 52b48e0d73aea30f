"""The alert states in the outbox: transitions stored, escalation, expiry, adoption, pages."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.sinks.alerts.alert_store import RESOLVES_REMEMBERED
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import (
    AlertState,
    HistoryEvent,
)
from tests.sinks.alerts.helpers import (
    AT,
    T0,
    URL,
    event,
    observe,
    one_each,
    query_plans,
    returns,
    stored,
)


def test_firing_twice_notifies_once(outbox: Outbox) -> None:
    """An alert already firing at the same severity is not queued again."""
    assert observe(outbox, event(), T0) is not None
    assert observe(outbox, event(), T0 + 1) is None
    assert outbox.queue.depth().queued == 1


def test_severity_change_renotifies_and_keeps_the_start(outbox: Outbox) -> None:
    """A firing alert whose severity changes is notified again with its original start."""
    observe(outbox, event(severity="warning"), T0)
    changed = observe(outbox, event(severity="critical"), T0 + 5)
    assert changed is not None
    assert changed.severity == "critical"
    assert changed.starts_at == T0


def test_the_count_mark_moves_when_an_alert_fires_or_changes_severity(outbox: Outbox) -> None:
    """The mark a count of the open alerts is taken at moves when an alert fires, first or
    again once resolved, or changes severity (the count by severity is short then), not when
    one open is seen again or acknowledged."""
    marks = [outbox.alerts.count_mark]
    observe(outbox, event(severity="warning"), T0)
    marks.append(outbox.alerts.count_mark)
    observe(outbox, event(severity="warning"), T0 + 1)
    outbox.alerts.acknowledge("node_failure:n1", "ops", T0 + 2)
    marks.append(outbox.alerts.count_mark)
    observe(outbox, event(severity="critical"), T0 + 3)
    marks.append(outbox.alerts.count_mark)
    observe(outbox, event(status="resolved", at=AT.replace(second=30)), T0 + 30)
    marks.append(outbox.alerts.count_mark)
    observe(outbox, event(at=AT.replace(second=40)), T0 + 40)
    marks.append(outbox.alerts.count_mark)
    assert marks == [0, 1, 1, 2, 2, 3]


def test_resolve_of_unknown_alert_is_ignored(outbox: Outbox) -> None:
    """A condition clearing that never fired (or fired below the filter) sends nothing."""
    assert observe(outbox, event(status="resolved"), T0) is None
    assert outbox.queue.depth().queued == 0


def test_life_cycle_firing_acknowledged_resolved(outbox: Outbox) -> None:
    """Firing, then acknowledged, then resolved by the condition clearing."""
    observe(outbox, event(), T0)
    acked = outbox.alerts.acknowledge("node_failure:n1", "ops", T0 + 10, ack_note="looking")
    assert acked is not None
    assert (acked.state, acked.ack_by, acked.ack_note) == (
        AlertState.ACKNOWLEDGED,
        "ops",
        "looking",
    )
    resolved = observe(outbox, event(status="resolved", at=AT.replace(second=30)), T0 + 30)
    assert resolved is not None
    assert resolved.state is AlertState.RESOLVED
    assert resolved.ends_at == T0 + 30
    assert outbox.alerts.acknowledge("nope", "ops", T0) is None


def test_acknowledging_with_a_resolution_resolves_and_notifies(outbox: Outbox) -> None:
    """An ack carrying a resolution ends the alert and queues the resolve notification."""
    observe(outbox, event(), T0)
    outbox.queue.group(URL, T0, 0.0, one_each)
    done = outbox.alerts.acknowledge("node_failure:n1", "ops", T0 + 1, resolution="rebooted")
    assert done is not None
    assert done.state is AlertState.RESOLVED
    assert outbox.queue.depth().queued == 1


def test_refiring_after_resolve_starts_a_new_episode(outbox: Outbox) -> None:
    """A resolved alert that fires again is firing at level1 with no acknowledgement."""
    observe(outbox, event(), T0)
    outbox.alerts.acknowledge("node_failure:n1", "ops", T0 + 1)
    observe(outbox, event(status="resolved"), T0 + 2)
    again = observe(outbox, event(), T0 + 3)
    assert again is not None
    assert (again.state, again.level, again.ack_by) == (AlertState.FIRING, 1, None)


def test_a_fire_sent_before_the_resolve_reopens_nothing_and_is_counted(outbox: Outbox) -> None:
    """A node's down handled again after the reconnected that resolved its alert (sent before
    it) leaves the alert resolved, queues nothing and is counted stale; a newer down re-opens
    it as before, starting when it was sent."""
    observe(outbox, event(at=AT), T0)
    observe(outbox, event(status="resolved", at=AT + timedelta(seconds=30)), T0 + 30)
    queued = outbox.queue.depth().queued
    applied = outbox.alerts.apply([event(at=AT)], T0 + 40)
    assert (applied.changed, applied.stale) == ([], 1)
    resolved = stored(outbox, "node_failure:n1")
    assert resolved is not None
    assert (resolved.state, resolved.ends_at) == (AlertState.RESOLVED, T0 + 30)
    assert outbox.queue.depth().queued == queued
    applied = outbox.alerts.apply([event(at=AT + timedelta(seconds=50))], T0 + 50)
    assert applied.stale == 0
    [again] = applied.changed
    assert (again.state, again.starts_at) == (AlertState.FIRING, T0 + 50)


def test_a_fire_sent_before_a_resolve_of_the_unknown_alert_opens_nothing(outbox: Outbox) -> None:
    """A node's reconnected that comes first, its alert unknown, then its down sent before it
    (overtaken on the way) open nothing, queue nothing and count the down stale, in one batch
    or two; a down sent after the reconnected fires."""
    back = event(status="resolved", at=AT + timedelta(seconds=30))
    applied = outbox.alerts.apply([back, event(at=AT)], T0 + 40, remember_for=300)
    assert (applied.changed, applied.stale) == ([], 1)
    applied = outbox.alerts.apply([event(at=AT + timedelta(seconds=10))], T0 + 41)
    assert (applied.changed, applied.stale) == ([], 1)
    assert stored(outbox, "node_failure:n1") is None
    assert outbox.queue.depth().queued == 0
    applied = outbox.alerts.apply([event(at=AT + timedelta(seconds=31))], T0 + 42)
    assert (len(applied.changed), applied.stale) == (1, 0)


def test_a_resolve_of_an_unknown_alert_is_remembered_for_its_time_only(outbox: Outbox) -> None:
    """A resolve of an unknown alert is remembered ``remember_for`` seconds after it came (a
    message sent before it is refused at ingest after that); a fire sent before it and
    delivered later opens the alert."""
    back = event(status="resolved", at=AT + timedelta(seconds=30))
    outbox.alerts.apply([back], T0 + 40, remember_for=300)
    assert outbox.alerts.apply([event(at=AT)], T0 + 339).stale == 1
    applied = outbox.alerts.apply([event(at=AT)], T0 + 340)
    assert (len(applied.changed), applied.stale) == (1, 0)


def test_a_resolve_of_an_unknown_alert_holds_for_what_came_in_its_time_handled_later(
    outbox: Outbox,
) -> None:
    """A resolve of an unknown alert remembered ``remember_for`` seconds still holds for a fire
    sent before it that came within that time (``arrived_after`` before its end), however late
    it is handled; one that came after it opens the alert."""
    back = event(status="resolved", at=AT + timedelta(seconds=30))
    outbox.alerts.apply([back], T0 + 40, remember_for=300)
    assert outbox.alerts.apply([event(at=AT)], T0 + 900, arrived_after=T0 + 339).stale == 1
    applied = outbox.alerts.apply([event(at=AT)], T0 + 901, arrived_after=T0 + 340)
    assert (len(applied.changed), applied.stale) == (1, 0)


def test_the_resolves_of_unknown_alerts_remembered_are_capped_oldest_first(
    outbox: Outbox,
) -> None:
    """At most ``RESOLVES_REMEMBERED`` resolves of unknown alerts are remembered: beyond, the
    oldest is forgotten first (counted), and a fire sent before it opens its alert."""
    resolves = returns(range(RESOLVES_REMEMBERED + 1), T0 + 30, step=0)
    assert outbox.alerts.apply(resolves, T0 + 40, remember_for=300).forgotten == 1
    applied = outbox.alerts.apply([event("node_failure:n0"), event("node_failure:n1")], T0 + 41)
    assert ([record.alert_id for record in applied.changed], applied.stale) == (
        ["node_failure:n0"],
        1,
    )


def test_a_resolve_or_severity_sent_before_the_last_change_changes_nothing(
    outbox: Outbox,
) -> None:
    """A resolve, or another severity, sent before the fire of the episode under way leaves it
    firing as it is (both counted stale); the same severity sent before is only seen."""
    observe(outbox, event(at=AT + timedelta(seconds=30)), T0 + 30)
    older = AT + timedelta(seconds=10)
    changes = [event(status="resolved", at=older), event(severity="warning", at=older)]
    applied = outbox.alerts.apply(changes, T0 + 40)
    assert (applied.changed, applied.stale) == ([], 2)
    firing = stored(outbox, "node_failure:n1")
    assert firing is not None
    assert (firing.state, firing.severity) == (AlertState.FIRING, "critical")
    assert outbox.alerts.apply([event(at=older)], T0 + 41).stale == 0
    seen = stored(outbox, "node_failure:n1")
    assert seen is not None
    assert (seen.last_seen, seen.event_at) == (T0 + 41, T0 + 30)


def test_a_fire_sent_between_two_resolves_of_a_resolved_alert_reopens_nothing(
    outbox: Outbox,
) -> None:
    """An alert resolved at T0 + 10, resolved again by a message sent at T0 + 30 (nobody
    notified: its date alone moves), stays resolved on a down sent at T0 + 20 delivered after
    both, counted stale."""
    observe(outbox, event(at=AT), T0)
    observe(outbox, event(status="resolved", at=AT + timedelta(seconds=10)), T0 + 10)
    queued = outbox.queue.depth().queued
    again = outbox.alerts.apply([event(status="resolved", at=AT + timedelta(seconds=30))], T0 + 30)
    assert again.changed == []
    applied = outbox.alerts.apply([event(at=AT + timedelta(seconds=20))], T0 + 40)
    assert (applied.changed, applied.stale) == ([], 1)
    resolved = stored(outbox, "node_failure:n1")
    assert resolved is not None
    assert (resolved.state, resolved.ends_at, resolved.event_at) == (
        AlertState.RESOLVED,
        T0 + 10,
        T0 + 30,
    )
    assert outbox.queue.depth().queued == queued


def test_an_alert_stored_before_event_times_were_kept_takes_every_event(outbox: Outbox) -> None:
    """An alert resolved without the time of its last event (stored by an earlier version, or
    taken from Redis) re-opens on any fire, as before."""
    observe(outbox, event(at=AT + timedelta(seconds=30)), T0 + 30)
    observe(outbox, event(status="resolved", at=AT + timedelta(seconds=40)), T0 + 40)
    with outbox.database.transaction() as db:
        db.execute("UPDATE alerts SET event_at = NULL")
    applied = outbox.alerts.apply([event(at=AT)], T0 + 50)
    assert (len(applied.changed), applied.stale) == (1, 0)


def test_an_alert_taken_over_from_another_holder_counts_as_told_to_every_receiver(
    outbox: Outbox, tmp_path: Path
) -> None:
    """An open alert adopted from the holders' record (Redis) was perhaps sent to any receiver
    by the holder before: each hears its later changes, below its filter too."""
    other = Outbox.in_dir(tmp_path / "other", urls=[URL])
    observe(other, event(), T0)
    [kept] = other.alerts.find()
    other.close()
    assert outbox.alerts.adopt_open_alerts({kept.alert_id: kept}, T0 + 1) == 1
    observe(outbox, event(severity="warning"), T0 + 2)
    assert outbox.queue.group(URL, T0 + 2, 0.0, one_each, lambda r, told: told) == 1


def test_an_alert_open_here_too_counts_as_told_once_taken_over(
    outbox: Outbox, tmp_path: Path
) -> None:
    """An alert this replica holds open from before (a warning) but another holder changed
    (critical, paged) counts as told to every receiver when the lease comes back."""
    observe(outbox, event(severity="warning"), T0)
    other = Outbox.in_dir(tmp_path / "other", urls=[URL])
    observe(other, event(), T0 + 1)
    [kept] = other.alerts.find()
    other.close()
    assert outbox.alerts.adopt_open_alerts({kept.alert_id: kept}, T0 + 2) == 1
    observe(outbox, event(status="resolved"), T0 + 3)
    assert outbox.queue.group(URL, T0 + 3, 0.0, one_each, lambda r, told: told) == 1


def test_escalation_steps_one_level_per_period_up_to_level3(outbox: Outbox) -> None:
    """An unacknowledged requires_ack alert climbs one level per period and stops at level3."""
    observe(outbox, event(), T0)
    observe(outbox, event("quiet", requires_ack=False), T0)
    assert outbox.alerts.escalate_due(T0 + 59, 60) == []
    [step] = outbox.alerts.escalate_due(T0 + 60, 60)
    assert (step.from_level, step.to_level) == ("level1", "level2")
    assert step.alert.labels["escalation_level"] == "level2"
    [step] = outbox.alerts.escalate_due(T0 + 120, 60)
    assert step.to_level == "level3"
    assert outbox.alerts.escalate_due(T0 + 1000, 60) == []


def test_acknowledged_alerts_do_not_escalate(outbox: Outbox) -> None:
    """Acknowledging stops escalation."""
    observe(outbox, event(), T0)
    outbox.alerts.acknowledge("node_failure:n1", "ops", T0 + 1)
    assert outbox.alerts.escalate_due(T0 + 1000, 60) == []


def test_a_batch_is_one_transaction_all_or_nothing(outbox: Outbox) -> None:
    """apply() commits a whole batch at once: a failure midway leaves none of it stored."""
    broken = event("bad", alertname=None)  # NOT NULL violated when stored
    with pytest.raises(sqlite3.IntegrityError):
        outbox.alerts.apply([event("ok1"), event("ok2"), broken], T0)
    assert outbox.alerts.find() == []
    applied = outbox.alerts.apply([event("ok1"), event("ok2"), event("ok1", "resolved")], T0)
    assert [r.alert_id for r in applied.changed] == ["ok1", "ok2"]
    assert stored(outbox, "ok1").state is AlertState.RESOLVED  # type: ignore[union-attr]


def test_new_alerts_beyond_max_open_are_refused(outbox: Outbox) -> None:
    """Past max_open open alerts new ones are refused; a resolve frees a place."""
    applied = outbox.alerts.apply([event(f"a{n}") for n in range(4)], T0, max_open=3)
    assert (len(applied.changed), applied.refused) == (3, 1)
    applied = outbox.alerts.apply([event("a0", "resolved"), event("a3")], T0 + 1, max_open=3)
    assert (len(applied.changed), applied.refused) == (2, 0)


def test_the_last_tenth_of_max_open_is_kept_for_the_nodes_conditions(outbox: Outbox) -> None:
    """Event alerts open at most nine tenths of max_open; node_failure (the cluster monitor's
    grouped one too) and a node's health still open in the last tenth, none past max_open."""
    events = [event(f"e{n}", alertname="disk_full", auto_resolve=True) for n in range(10)]
    applied = outbox.alerts.apply(events, T0, max_open=10)
    assert (len(applied.changed), applied.refused) == (9, 1)
    grouped = event("nodes_down:1", alertname="node_failure", auto_resolve=True)
    applied = outbox.alerts.apply([grouped, event("node_failure:n2")], T0, max_open=10)
    assert ([r.alert_id for r in applied.changed], applied.refused) == (["nodes_down:1"], 1)
    applied = outbox.alerts.apply(
        [event("e0", "resolved"), event("e10", alertname="disk_full", auto_resolve=True)],
        T0 + 1,
        max_open=10,
    )
    assert ([r.alert_id for r in applied.changed], applied.refused) == (["e0"], 1)
    applied = outbox.alerts.apply(
        [event("node_health:n3", alertname="node_health")], T0 + 1, max_open=10
    )
    assert ([r.alert_id for r in applied.changed], applied.refused) == (["node_health:n3"], 0)


def test_health_conditions_no_reading_keeps_up_resolve_after_the_stale_wait(
    outbox: Outbox,
) -> None:
    """With a stale wait, node_health and component_health alerts no reading has kept up, and
    host resources' metric_threshold alerts no MetricAlert has kept up, resolve, noting why;
    those kept up, and node_failure, stay firing."""
    conditions = {
        "component_health:n1:otlp": "component_health",
        "component_health:n1:orders": "component_health",
        "node_health:n2": "node_health",
        "node_failure:n3": "node_failure",
        "metric_threshold:n1:cpu_usage_percent": "metric_threshold",
        "metric_threshold:n1:disk_usage_percent": "metric_threshold",
    }
    outbox.alerts.apply(
        [
            event(alert_id, alertname=name, severity="warning", requires_ack=False)
            for alert_id, name in conditions.items()
        ],
        T0,
    )
    kept_up = event(
        "component_health:n1:orders",
        alertname="component_health",
        severity="warning",
        requires_ack=False,
    )
    resent = event(
        "metric_threshold:n1:disk_usage_percent",
        alertname="metric_threshold",
        severity="warning",
        requires_ack=False,
    )
    outbox.alerts.apply([kept_up, resent], T0 + 500)  # the same status again: seen
    assert outbox.alerts.resolve_expired(T0 + 600, 300) == []  # no stale wait given
    assert outbox.alerts.resolve_expired(T0 + 599, 300, 600) == []
    resolved = outbox.alerts.resolve_expired(T0 + 600, 300, 600)
    assert sorted(r.alert_id for r in resolved) == [
        "component_health:n1:otlp",
        "metric_threshold:n1:cpu_usage_percent",
        "node_health:n2",
    ]
    for alert_id, why in (
        ("node_health:n2", "no health reading for 600 s"),
        ("metric_threshold:n1:cpu_usage_percent", "no MetricAlert for 600 s"),
    ):
        detail = outbox.alerts.detail(alert_id)
        assert detail is not None
        last = detail.history[-1]
        assert (last.at, last.event, last.detail) == (T0 + 600, HistoryEvent.RESOLVED, why)
    for alert_id in conditions.keys() - {r.alert_id for r in resolved}:
        assert stored(outbox, alert_id).state is AlertState.FIRING  # type: ignore[union-attr]


def test_event_alerts_resolve_after_the_timeout_unless_they_need_ack(outbox: Outbox) -> None:
    """Unseen event alerts resolve; requires_ack ones after their ack; conditions never."""
    outbox.alerts.apply(
        [
            event("ev", auto_resolve=True, requires_ack=False),
            event("ack-me", auto_resolve=True, requires_ack=True),
            event("condition", auto_resolve=False, requires_ack=False),
        ],
        T0,
    )
    assert outbox.alerts.resolve_expired(T0 + 299, 300) == []
    [resolved] = outbox.alerts.resolve_expired(T0 + 300, 300)
    assert (resolved.alert_id, resolved.ends_at) == ("ev", T0 + 300)
    outbox.alerts.acknowledge("ack-me", "ops", T0 + 400)
    assert outbox.alerts.resolve_expired(T0 + 600, 300) == []
    assert [r.alert_id for r in outbox.alerts.resolve_expired(T0 + 700, 300)] == ["ack-me"]
    assert stored(outbox, "condition").state is AlertState.FIRING  # type: ignore[union-attr]
    assert outbox.alerts.active_counts() == {"critical": 1}


def test_detail_tells_the_history_in_order(outbox: Outbox) -> None:
    """Fired, escalated, acknowledged and resolved are recorded with their times, in order."""
    observe(outbox, event(), T0)
    observe(outbox, event(), T0 + 1)  # seen again: nothing to record
    outbox.alerts.escalate_due(T0 + 60, 60)
    outbox.alerts.acknowledge("node_failure:n1", "ops", T0 + 70, ack_note="rebooting")
    observe(outbox, event(status="resolved"), T0 + 80)
    detail = outbox.alerts.detail("node_failure:n1")
    assert detail is not None
    assert detail.alert.state is AlertState.RESOLVED
    assert [(e.at, e.event, e.detail) for e in detail.history] == [
        (T0, HistoryEvent.FIRED, "critical on n1"),
        (T0 + 60, HistoryEvent.ESCALATED, "level1 → level2, not acknowledged"),
        (T0 + 70, HistoryEvent.ACKNOWLEDGED, "by ops: rebooting"),
        (T0 + 80, HistoryEvent.RESOLVED, "the condition cleared"),
    ]


def test_detail_lists_the_alerts_deliveries_and_waiting_windows(outbox: Outbox) -> None:
    """Only deliveries carrying the alert (newest first), and the windows it waits in."""
    observe(outbox, event("a1"), T0)
    observe(outbox, event("a10"), T0)  # an id containing the other: not a match
    outbox.queue.group(URL, T0, 0.0, one_each)
    observe(outbox, event("a1", severity="warning"), T0 + 5)  # queued again, not yet grouped
    detail = outbox.alerts.detail("a1")
    assert detail is not None
    assert [d.alert_ids for d in detail.deliveries] == [("a1",)]
    assert detail.waiting == ((URL, T0 + 5),)
    outbox.queue.group(URL, T0 + 5, 0.0, one_each)
    again = outbox.alerts.detail("a1")
    assert again is not None
    assert [d.created_at for d in again.deliveries] == [T0 + 5, T0]
    assert again.waiting == ()
    assert outbox.alerts.detail("unknown") is None


@pytest.mark.parametrize(
    ("state", "by_start"),
    [(None, False), ("firing", False), ("firing", True), ("acknowledged", True)],
    ids=["by change", "one state by change", "one state by start", "acknowledged by start"],
)
def test_listings_read_their_page_from_an_index_not_every_alert(
    outbox: Outbox, state: str | None, by_start: bool
) -> None:
    """A listing (GET /v1/alerts, the status page's every few seconds), its first page and the
    next, is read from an index in its order: no sort of every alert of the state (50 000 open
    ones took 60 ms a page)."""
    for n in range(3):
        observe(outbox, event(f"a{n}"), T0 + n)
    [first] = outbox.alerts.find(None, 1)
    plans = query_plans(
        outbox,
        lambda: (
            outbox.alerts.find(state, 1, by_start=by_start),
            outbox.alerts.find(state, 1, by_start=by_start, after=first),
        ),
    )
    assert len(plans) == 2, plans
    for plan in plans:
        assert not [line for line in plan if "TEMP B-TREE" in line], plan
        assert all("USING INDEX alerts_by_" in line for line in plan), plan


def test_pages_of_a_listing_follow_one_another(outbox: Outbox) -> None:
    """Page after page (``after``: the last listed) lists every alert once, newest first, those
    changed at the same time by id, last first."""
    for n in range(5):
        observe(outbox, event(f"a{n}"), T0 + n // 2)
    listed: list[str] = []
    page = outbox.alerts.find(None, 2)
    while page:
        listed += [record.alert_id for record in page]
        page = outbox.alerts.find(None, 2, after=page[-1])
    assert listed == ["a4", "a3", "a2", "a1", "a0"]
