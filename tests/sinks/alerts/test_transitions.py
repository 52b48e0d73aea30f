"""The alert state machine, transition by transition, from tables (no database, no clock)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bridge.sinks.alerts.records import (
    Acknowledgement,
    AlertRecord,
    AlertState,
    HistoryEntry,
    HistoryEvent,
)
from bridge.sinks.alerts.sources import AlertEvent
from bridge.sinks.alerts.transitions import (
    Effect,
    Transition,
    adopted,
    escalation,
    expiry,
    on_ack,
    on_event,
    opens,
    superseded,
)
from tests.sinks.alerts.helpers import T0

FIRING = AlertState.FIRING
ACKNOWLEDGED = AlertState.ACKNOWLEDGED
RESOLVED = AlertState.RESOLVED


def alert(**changes: object) -> AlertRecord:
    """A stored alert: firing at level1 since T0, last seen then."""
    base = AlertRecord(
        alert_id="a1",
        alertname="disk_full",
        severity="critical",
        category="system",
        node="n1",
        title="disk full",
        description="n1's disk is full",
        requires_ack=True,
        state=FIRING,
        level=1,
        starts_at=T0,
        updated_at=T0,
        ends_at=None,
        level_since=T0,
        last_seen=T0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _at(seconds: float) -> datetime:
    """``seconds`` as the UTC time an AlertAck or the admin API carries."""
    return datetime.fromtimestamp(seconds, UTC)


def event(status: str = "firing", at: float = T0, **changes: object) -> AlertEvent:
    """An alert event about ``a1`` that happened at ``at``."""
    base = AlertEvent(
        alert_id="a1",
        alertname="disk_full",
        status="firing",
        severity="critical",
        category="system",
        node="n1",
        title="disk full",
        description="n1's disk is full",
        requires_ack=True,
        at=datetime.fromtimestamp(at, UTC),
    )
    return replace(base, status=status, **changes)  # type: ignore[arg-type]


NOW = T0 + 100


@pytest.mark.parametrize(
    ("current", "happened", "expected"),
    [
        pytest.param(
            None,
            event(),
            Transition(
                alert(updated_at=NOW, level_since=NOW, last_seen=NOW, event_at=T0), Effect.NOTIFY
            ),
            id="a new alert fires and is notified, starting when it happened",
        ),
        pytest.param(
            alert(),
            event(),
            Transition(alert(last_seen=NOW, event_at=T0), Effect.SEEN),
            id="firing again at the same severity is only seen",
        ),
        pytest.param(
            alert(state=ACKNOWLEDGED, ack_by="ops", ack_at=T0 + 1),
            event(),
            Transition(
                alert(state=ACKNOWLEDGED, ack_by="ops", ack_at=T0 + 1, last_seen=NOW, event_at=T0),
                Effect.SEEN,
            ),
            id="an acknowledged alert firing again stays acknowledged, only seen",
        ),
        pytest.param(
            alert(auto_resolve=True),
            event(auto_resolve=False),
            Transition(alert(auto_resolve=False, last_seen=NOW, event_at=T0), Effect.SEEN),
            id="an event alert repeated by a condition becomes a condition",
        ),
        pytest.param(
            alert(auto_resolve=True),
            event(auto_resolve=True),
            Transition(alert(auto_resolve=True, last_seen=NOW, event_at=T0), Effect.SEEN),
            id="an event alert repeated stays an event alert",
        ),
        pytest.param(
            alert(severity="warning", level=2),
            event(severity="critical", title="disk fuller", at=T0 + 50),
            Transition(
                alert(
                    title="disk fuller", level=2, updated_at=NOW, last_seen=NOW, event_at=T0 + 50
                ),
                Effect.NOTIFY,
            ),
            id="a new severity is notified again, keeping its start and level",
        ),
        pytest.param(
            alert(),
            event("resolved", at=T0 + 30),
            Transition(
                alert(state=RESOLVED, ends_at=T0 + 30, updated_at=NOW, event_at=T0 + 30),
                Effect.NOTIFY,
            ),
            id="a resolved event ends an open alert when it happened",
        ),
        pytest.param(
            None,
            event(at=NOW + 10**9),
            Transition(
                alert(starts_at=NOW, updated_at=NOW, level_since=NOW, last_seen=NOW, event_at=NOW),
                Effect.NOTIFY,
            ),
            id="a new alert dated by a clock far ahead starts now, not in the future",
        ),
        pytest.param(
            alert(),
            event("resolved", at=NOW + 10**9),
            Transition(
                alert(state=RESOLVED, ends_at=NOW, updated_at=NOW, event_at=NOW), Effect.NOTIFY
            ),
            id="a resolved event dated by a clock far ahead ends the alert now",
        ),
        pytest.param(
            alert(state=ACKNOWLEDGED, ack_by="ops"),
            event("resolved", at=T0 + 30),
            Transition(
                alert(
                    state=RESOLVED, ack_by="ops", ends_at=T0 + 30, updated_at=NOW, event_at=T0 + 30
                ),
                Effect.NOTIFY,
            ),
            id="a resolved event ends an acknowledged alert",
        ),
        pytest.param(
            alert(starts_at=T0 + 60),
            event("resolved", at=T0 + 30),
            Transition(
                alert(
                    starts_at=T0 + 60,
                    state=RESOLVED,
                    ends_at=T0 + 60,
                    updated_at=NOW,
                    event_at=T0 + 30,
                ),
                Effect.NOTIFY,
            ),
            id="an alert never ends before it started",
        ),
        pytest.param(
            None,
            event("resolved"),
            Transition(None),
            id="a resolved event for an unknown alert changes nothing",
        ),
        pytest.param(
            alert(state=RESOLVED, ends_at=T0 + 5, event_at=T0 + 5),
            event("resolved", at=T0 + 60),
            Transition(alert(state=RESOLVED, ends_at=T0 + 5, event_at=T0 + 60), Effect.SEEN),
            id="a resolved event for a resolved alert only moves its date, notifying nobody",
        ),
        pytest.param(
            alert(state=RESOLVED, ends_at=T0 + 5),
            event("resolved", at=T0 + 60),
            Transition(alert(state=RESOLVED, ends_at=T0 + 5, event_at=T0 + 60), Effect.SEEN),
            id="a resolved event dates a resolved alert stored without a date",
        ),
        pytest.param(
            alert(state=RESOLVED, ends_at=T0 + 5, event_at=T0 + 5),
            event("resolved"),
            Transition(alert(state=RESOLVED, ends_at=T0 + 5, event_at=T0 + 5)),
            id="a resolved event older than a resolved alert's date changes nothing",
        ),
        pytest.param(
            alert(state=RESOLVED, level=3, ack_by="ops", resolution="fixed", ends_at=T0 + 5),
            event(at=T0 + 90),
            Transition(
                alert(
                    starts_at=T0 + 90,
                    updated_at=NOW,
                    level_since=NOW,
                    last_seen=NOW,
                    event_at=T0 + 90,
                ),
                Effect.NOTIFY,
            ),
            id="firing after resolving starts a new episode at level1",
        ),
    ],
)
def test_alert_events(
    current: AlertRecord | None, happened: AlertEvent, expected: Transition
) -> None:
    """Firing and resolved events move an alert as the table says."""
    assert on_event(current, happened, NOW) == expected


def test_a_fire_sent_between_two_resolves_of_an_alert_is_superseded() -> None:
    """An alert resolved at T0, resolved again by an event sent at T0 + 60, does not fire again
    on a firing event sent at T0 + 30 delivered after both: it is stale (it would fire a false
    alarm that no later resolve ends); one sent after the second resolve fires."""
    resolved = alert(state=RESOLVED, ends_at=T0, event_at=T0)
    again = on_event(resolved, event("resolved", at=T0 + 60), NOW).record
    assert again is not None
    assert superseded(again, event(at=T0 + 30), NOW)
    assert on_event(again, event(at=T0 + 30), NOW) == Transition(again)
    assert not superseded(again, event(at=T0 + 61), NOW)


@pytest.mark.parametrize(
    ("current", "ack", "expected"),
    [
        pytest.param(
            None,
            Acknowledgement("a1", "ops"),
            Transition(None),
            id="an unknown alert cannot be acknowledged",
        ),
        pytest.param(
            alert(),
            Acknowledgement("a1", "ops", "looking"),
            Transition(
                alert(
                    state=ACKNOWLEDGED, ack_by="ops", ack_note="looking", ack_at=NOW, updated_at=NOW
                ),
                Effect.CHANGED,
            ),
            id="acknowledging a firing alert is a change receivers are not notified of",
        ),
        pytest.param(
            alert(),
            Acknowledgement("a1", "ops", None, "rebooted"),
            Transition(
                alert(
                    state=RESOLVED,
                    ack_by="ops",
                    ack_at=NOW,
                    resolution="rebooted",
                    updated_at=NOW,
                    ends_at=NOW,
                ),
                Effect.NOTIFY,
            ),
            id="an acknowledgement with a resolution resolves and notifies",
        ),
        pytest.param(
            alert(state=ACKNOWLEDGED, ack_by="ops", ack_at=T0 + 1),
            Acknowledgement("a1", "someone else"),
            Transition(alert(state=ACKNOWLEDGED, ack_by="ops", ack_at=T0 + 1)),
            id="acknowledging twice changes nothing",
        ),
        pytest.param(
            alert(state=ACKNOWLEDGED, ack_by="ops", ack_at=T0 + 1),
            Acknowledgement("a1", "ops", "done", "fixed"),
            Transition(
                alert(
                    state=RESOLVED,
                    ack_by="ops",
                    ack_note="done",
                    ack_at=NOW,
                    resolution="fixed",
                    updated_at=NOW,
                    ends_at=NOW,
                ),
                Effect.NOTIFY,
            ),
            id="an acknowledged alert resolves with a later resolution",
        ),
        pytest.param(
            alert(event_at=T0 + 30),
            Acknowledgement("a1", "ops", None, "fixed"),
            Transition(
                alert(
                    state=RESOLVED,
                    ack_by="ops",
                    ack_at=NOW,
                    resolution="fixed",
                    updated_at=NOW,
                    ends_at=NOW,
                    event_at=math.nextafter(T0 + 30, math.inf),
                ),
                Effect.NOTIFY,
            ),
            id="a resolution is dated just after the newest event the alert saw, none redone",
        ),
        pytest.param(
            alert(state=RESOLVED, ends_at=T0 + 5),
            Acknowledgement("a1", "ops", None, "fixed"),
            Transition(alert(state=RESOLVED, ends_at=T0 + 5)),
            id="a resolved alert stays as it was",
        ),
        pytest.param(
            alert(starts_at=T0 + 0.0004),
            Acknowledgement("a1", "ops", starts_at=_at(T0)),
            Transition(
                alert(
                    starts_at=T0 + 0.0004,
                    state=ACKNOWLEDGED,
                    ack_by="ops",
                    ack_at=NOW,
                    updated_at=NOW,
                ),
                Effect.CHANGED,
            ),
            id="an ack for the episode as listed (to the millisecond) acknowledges it",
        ),
        pytest.param(
            alert(starts_at=T0 + 600),
            Acknowledgement("a1", "ops", None, "fixed", starts_at=_at(T0)),
            Transition(alert(starts_at=T0 + 600)),
            id="an ack for an episode that ended leaves the one firing since as it is",
        ),
    ],
)
def test_acknowledgements(
    current: AlertRecord | None, ack: Acknowledgement, expected: Transition
) -> None:
    """Acknowledgements move an alert as the table says."""
    assert on_ack(current, ack, NOW) == expected


AFTER = 60.0


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(
            alert(level_since=NOW - AFTER),
            Transition(alert(level=2, level_since=NOW, updated_at=NOW), Effect.NOTIFY),
            id="an unacknowledged alert left a whole period at level1 goes to level2",
        ),
        pytest.param(
            alert(level=2, level_since=NOW - AFTER),
            Transition(alert(level=3, level_since=NOW, updated_at=NOW), Effect.NOTIFY),
            id="level2 goes to level3",
        ),
        pytest.param(
            alert(level_since=NOW - AFTER + 1),
            Transition(alert(level_since=NOW - AFTER + 1)),
            id="not before the period is over",
        ),
        pytest.param(
            alert(level_since=NOW + 3600),
            Transition(alert(level_since=NOW), Effect.CHANGED),
            id="a period begun after now (the clock set back) restarts now, stored, not notified",
        ),
        pytest.param(
            alert(level=3, level_since=NOW + 3600),
            Transition(alert(level=3, level_since=NOW + 3600)),
            id="a level3 alert has no period to restart",
        ),
        pytest.param(
            alert(level=3, level_since=T0 - 1000),
            Transition(alert(level=3, level_since=T0 - 1000)),
            id="level3 is the last",
        ),
        pytest.param(
            alert(state=ACKNOWLEDGED, level_since=T0 - 1000),
            Transition(alert(state=ACKNOWLEDGED, level_since=T0 - 1000)),
            id="an acknowledged alert does not escalate",
        ),
        pytest.param(
            alert(requires_ack=False, level_since=T0 - 1000),
            Transition(alert(requires_ack=False, level_since=T0 - 1000)),
            id="an alert that needs no acknowledgement does not escalate",
        ),
        pytest.param(
            alert(state=RESOLVED, level_since=T0 - 1000),
            Transition(alert(state=RESOLVED, level_since=T0 - 1000)),
            id="a resolved alert does not escalate",
        ),
    ],
)
def test_escalation(current: AlertRecord, expected: Transition) -> None:
    """Escalation steps one level per period, only for firing requires_ack alerts."""
    assert escalation(current, NOW, AFTER) == expected


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(
            alert(auto_resolve=True, requires_ack=False, last_seen=NOW - AFTER),
            Transition(
                alert(
                    auto_resolve=True,
                    requires_ack=False,
                    last_seen=NOW - AFTER,
                    state=RESOLVED,
                    ends_at=NOW,
                    updated_at=NOW,
                ),
                Effect.NOTIFY,
            ),
            id="an event alert unseen for the timeout resolves, ending a timeout after last seen",
        ),
        pytest.param(
            alert(auto_resolve=True, requires_ack=False, last_seen=NOW - AFTER + 1),
            Transition(alert(auto_resolve=True, requires_ack=False, last_seen=NOW - AFTER + 1)),
            id="an event alert seen within the timeout stays",
        ),
        pytest.param(
            alert(auto_resolve=True, requires_ack=False, last_seen=None, updated_at=T0),
            Transition(
                alert(
                    auto_resolve=True,
                    requires_ack=False,
                    last_seen=None,
                    state=RESOLVED,
                    ends_at=T0 + AFTER,
                    updated_at=NOW,
                ),
                Effect.NOTIFY,
            ),
            id="without last_seen (an old file) the last change counts",
        ),
        pytest.param(
            alert(auto_resolve=False, requires_ack=False, last_seen=T0 - 1000),
            Transition(alert(auto_resolve=False, requires_ack=False, last_seen=T0 - 1000)),
            id="a condition alert waits for the message that clears it",
        ),
        pytest.param(
            alert(auto_resolve=True, last_seen=T0 - 1000),
            Transition(alert(auto_resolve=True, last_seen=T0 - 1000)),
            id="a requires_ack event alert waits for its acknowledgement",
        ),
        pytest.param(
            alert(auto_resolve=True, state=ACKNOWLEDGED, last_seen=T0 - 1000, ack_at=NOW - 30),
            Transition(
                alert(auto_resolve=True, state=ACKNOWLEDGED, last_seen=T0 - 1000, ack_at=NOW - 30)
            ),
            id="once acknowledged the timeout counts from the acknowledgement",
        ),
        pytest.param(
            alert(auto_resolve=True, state=ACKNOWLEDGED, last_seen=T0 - 1000, ack_at=NOW - 60),
            Transition(
                alert(
                    auto_resolve=True,
                    last_seen=T0 - 1000,
                    ack_at=NOW - 60,
                    state=RESOLVED,
                    ends_at=NOW,
                    updated_at=NOW,
                ),
                Effect.NOTIFY,
            ),
            id="an acknowledged event alert resolves a timeout after its acknowledgement",
        ),
        pytest.param(
            alert(auto_resolve=True, state=RESOLVED, requires_ack=False, last_seen=T0 - 1000),
            Transition(
                alert(auto_resolve=True, state=RESOLVED, requires_ack=False, last_seen=T0 - 1000)
            ),
            id="a resolved alert stays resolved",
        ),
        pytest.param(
            alert(auto_resolve=True, requires_ack=False, last_seen=NOW + 3600),
            Transition(alert(auto_resolve=True, requires_ack=False, last_seen=NOW), Effect.CHANGED),
            id="seen after now (the clock set back) restarts the wait now, stored, not notified",
        ),
        pytest.param(
            alert(auto_resolve=True, state=ACKNOWLEDGED, last_seen=NOW - 5, ack_at=NOW + 3600),
            Transition(
                alert(auto_resolve=True, state=ACKNOWLEDGED, last_seen=NOW - 5, ack_at=NOW),
                Effect.CHANGED,
            ),
            id="acknowledged after now (the clock set back) restarts the wait now",
        ),
        pytest.param(
            alert(auto_resolve=True, last_seen=NOW + 3600),
            Transition(alert(auto_resolve=True, last_seen=NOW + 3600)),
            id="a requires_ack alert seen after now still waits for its acknowledgement",
        ),
    ],
)
def test_expiry(current: AlertRecord, expected: Transition) -> None:
    """Event alerts resolve once not seen for the resolve timeout (after their ack if needed)."""
    assert expiry(current, NOW, AFTER) == expected


@pytest.mark.parametrize(
    ("current", "kept", "expected"),
    [
        pytest.param(
            None, alert(), Transition(alert(), Effect.CHANGED), id="an alert we never saw"
        ),
        pytest.param(
            alert(updated_at=T0),
            alert(updated_at=T0 + 1, level=2),
            Transition(alert(updated_at=T0 + 1, level=2), Effect.CHANGED),
            id="the kept one differs: the kept one",
        ),
        pytest.param(alert(), alert(), Transition(alert()), id="the same: nothing to do"),
        pytest.param(
            alert(),
            None,
            Transition(alert(state=RESOLVED, ends_at=NOW, updated_at=NOW), Effect.CHANGED),
            id="open here, resolved by another holder: closed",
        ),
        pytest.param(
            alert(state=RESOLVED), None, Transition(alert(state=RESOLVED)), id="resolved: stays"
        ),
        pytest.param(None, None, Transition(None), id="unknown everywhere"),
    ],
)
def test_adopting_the_alerts_kept_for_the_work_queue(
    current: AlertRecord | None, kept: AlertRecord | None, expected: Transition
) -> None:
    """The record kept in Redis replaces ours, and an alert open only here is closed; receivers
    already heard of every change, so nothing is notified."""
    assert adopted(current, kept, NOW) == expected


@pytest.mark.parametrize(
    ("current", "happened", "expected"),
    [
        pytest.param(None, event(), True, id="a new alert"),
        pytest.param(alert(state=RESOLVED), event(), True, id="a resolved alert firing again"),
        pytest.param(alert(), event(), False, id="a firing alert"),
        pytest.param(alert(state=ACKNOWLEDGED), event(), False, id="an acknowledged alert"),
        pytest.param(None, event("resolved"), False, id="a resolved event"),
    ],
)
def test_what_opens_an_alert(
    current: AlertRecord | None, happened: AlertEvent, expected: bool
) -> None:
    """Only a firing event for an alert not open counts against the open-alert cap."""
    assert opens(current, happened) is expected


STALE = 600.0


def condition(alertname: str = "component_health", **changes: object) -> AlertRecord:
    """A health condition alert, warning (no ack needed), last kept up by a reading at T0."""
    base: dict[str, object] = {"severity": "warning", "requires_ack": False, "auto_resolve": False}
    return alert(alertname=alertname, **(base | changes))


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(
            condition(last_seen=NOW - STALE),
            Transition(
                condition(last_seen=NOW - STALE, state=RESOLVED, ends_at=NOW, updated_at=NOW),
                Effect.NOTIFY,
            ),
            id="a component alert no reading kept up resolves",
        ),
        pytest.param(
            condition("node_health", last_seen=NOW - STALE - 5),
            Transition(
                condition(
                    "node_health",
                    last_seen=NOW - STALE - 5,
                    state=RESOLVED,
                    ends_at=NOW - 5,
                    updated_at=NOW,
                ),
                Effect.NOTIFY,
            ),
            id="a node alert too, ending when the wait ran out",
        ),
        pytest.param(
            condition(last_seen=NOW - STALE + 1),
            Transition(condition(last_seen=NOW - STALE + 1)),
            id="a reading within the wait keeps it up",
        ),
        pytest.param(
            condition("metric_threshold", last_seen=NOW - STALE),
            Transition(
                condition(
                    "metric_threshold",
                    last_seen=NOW - STALE,
                    state=RESOLVED,
                    ends_at=NOW,
                    updated_at=NOW,
                ),
                Effect.NOTIFY,
            ),
            id="a host resource's metric_threshold no MetricAlert kept up resolves too",
        ),
        pytest.param(
            condition("metric_threshold", last_seen=NOW - STALE + 1),
            Transition(condition("metric_threshold", last_seen=NOW - STALE + 1)),
            id="a MetricAlert sent again within the wait keeps it up",
        ),
        pytest.param(
            condition("node_failure", last_seen=NOW - STALE),
            Transition(condition("node_failure", last_seen=NOW - STALE)),
            id="a down node sends nothing: node_failure waits for the cluster monitor",
        ),
        pytest.param(
            condition(requires_ack=True, last_seen=NOW - STALE),
            Transition(condition(requires_ack=True, last_seen=NOW - STALE)),
            id="a requires_ack one waits for its acknowledgement, as an event alert does",
        ),
        pytest.param(
            condition(state=ACKNOWLEDGED, last_seen=T0 - 1000, ack_at=NOW - STALE),
            Transition(
                condition(
                    state=RESOLVED,
                    last_seen=T0 - 1000,
                    ack_at=NOW - STALE,
                    ends_at=NOW,
                    updated_at=NOW,
                ),
                Effect.NOTIFY,
            ),
            id="an acknowledged one resolves the wait after its acknowledgement",
        ),
    ],
)
def test_a_health_condition_no_reading_keeps_up_resolves(
    current: AlertRecord, expected: Transition
) -> None:
    """With ``stale_after``, a node_health or component_health alert no reading has kept up for
    that long resolves (a component removed or renamed sends none), and so does a host
    resource's metric_threshold no MetricAlert has kept up; node_failure, and requires_ack ones
    not acknowledged, wait."""
    assert expiry(current, NOW, AFTER, STALE) == expected
    assert expiry(current, NOW, AFTER) == Transition(current)  # without it, nothing ends them


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        pytest.param(
            on_event(None, event(), NOW),
            HistoryEntry(NOW, HistoryEvent.FIRED, "critical on n1"),
            id="a new alert fired",
        ),
        pytest.param(
            on_event(alert(), event(severity="warning"), NOW),
            HistoryEntry(NOW, HistoryEvent.SEVERITY_CHANGED, "critical → warning"),
            id="its severity changed",
        ),
        pytest.param(
            on_event(alert(), event("resolved"), NOW),
            HistoryEntry(NOW, HistoryEvent.RESOLVED, "the condition cleared"),
            id="it cleared",
        ),
        pytest.param(
            on_ack(alert(), Acknowledgement("a1", "ops", "looking"), NOW),
            HistoryEntry(NOW, HistoryEvent.ACKNOWLEDGED, "by ops: looking"),
            id="acknowledged with a note",
        ),
        pytest.param(
            on_ack(alert(), Acknowledgement("a1", "ops"), NOW),
            HistoryEntry(NOW, HistoryEvent.ACKNOWLEDGED, "by ops"),
            id="acknowledged without a note",
        ),
        pytest.param(
            on_ack(alert(), Acknowledgement("a1", "ops", None, "rebooted"), NOW),
            HistoryEntry(NOW, HistoryEvent.RESOLVED, "by ops: rebooted"),
            id="resolved by an acknowledgement",
        ),
        pytest.param(
            escalation(alert(level_since=NOW - AFTER), NOW, AFTER),
            HistoryEntry(NOW, HistoryEvent.ESCALATED, "level1 → level2, not acknowledged"),
            id="escalated",
        ),
        pytest.param(
            expiry(alert(auto_resolve=True, requires_ack=False), NOW, 30.0),
            HistoryEntry(NOW, HistoryEvent.RESOLVED, "not seen for 30 s"),
            id="expired",
        ),
        pytest.param(
            expiry(condition(last_seen=NOW - STALE), NOW, AFTER, STALE),
            HistoryEntry(NOW, HistoryEvent.RESOLVED, "no health reading for 600 s"),
            id="no reading kept it up",
        ),
        pytest.param(
            expiry(condition("metric_threshold", last_seen=NOW - STALE), NOW, AFTER, STALE),
            HistoryEntry(NOW, HistoryEvent.RESOLVED, "no MetricAlert for 600 s"),
            id="no MetricAlert kept it up",
        ),
        pytest.param(
            adopted(None, alert(level=2, updated_at=T0 + 5), NOW),
            HistoryEntry(NOW, HistoryEvent.TAKEN_OVER, "taken over firing at level2"),
            id="taken over from the alerts kept for the work queue",
        ),
        pytest.param(
            adopted(alert(), None, NOW),
            HistoryEntry(NOW, HistoryEvent.RESOLVED, "resolved by another work-queue holder"),
            id="resolved by another holder meanwhile",
        ),
    ],
)
def test_each_change_says_what_happened(step: Transition, expected: HistoryEntry) -> None:
    """Every transition that changes an alert carries the entry its history records."""
    assert step.entry == expected


def test_no_change_has_no_history_entry() -> None:
    """Transitions that change nothing, or only last_seen, record nothing."""
    steps = [
        on_event(alert(), event(), NOW),  # seen again
        on_event(None, event("resolved"), NOW),
        on_ack(alert(state=ACKNOWLEDGED, ack_by="ops"), Acknowledgement("a1", "x"), NOW),
        escalation(alert(level_since=NOW), NOW, AFTER),  # not due yet
        adopted(alert(), alert(), NOW),  # already the record kept in Redis
    ]
    assert [step.entry for step in steps] == [None, None, None, None, None]


def test_an_alert_keeps_the_source_it_opened_with_and_takes_new_details_with_a_severity() -> None:
    """A new alert takes its event's source and details; at another severity it takes the new
    details but keeps its source (a label: the alert stays the one receivers know)."""
    opened = on_event(None, event(source="backup-job", details=(("metadata_try", "1"),)), T0)
    assert opened.record is not None
    assert (opened.record.source, opened.record.details) == ("backup-job", (("metadata_try", "1"),))
    later = event(at=T0 + 5, severity="warning", source="other", details=(("metadata_try", "2"),))
    changed = on_event(opened.record, later, T0 + 5)
    assert changed.record is not None
    assert (changed.record.source, changed.record.details) == (
        "backup-job",
        (("metadata_try", "2"),),
    )


def test_times_told_to_receivers_stay_within_this_replicas_now_whatever_the_shared_clock() -> None:
    """With the shared clock (Redis's) ahead of this replica's, an event dated by it orders
    alerts by that date, but the start and end receivers are told are no later than now by
    this replica's clock: never in the future, where Alertmanager would hold them."""
    ahead = NOW + 120
    opened = on_event(None, event(at=ahead), NOW, latest=ahead).record
    assert opened is not None
    assert (opened.starts_at, opened.event_at) == (NOW, ahead)
    ended = on_event(opened, event("resolved", at=ahead + 1), NOW + 1, latest=ahead + 1).record
    assert ended is not None
    assert (ended.ends_at, ended.event_at) == (NOW + 1, ahead + 1)
