"""The alerts posted to Alertmanager: labels, endsAt while firing and once resolved."""

from __future__ import annotations

from bridge.sinks.alerts.alertmanager import alertmanager_alert
from bridge.sinks.alerts.outbox import AlertState
from tests.sinks.alerts.helpers import T0
from tests.sinks.alerts.test_payload import record


def test_firing_alert_ends_four_intervals_ahead() -> None:
    """A firing alert's endsAt is now + 4 intervals, so it lapses if the bridge stops posting."""
    posted = alertmanager_alert(record(), now=T0 + 10, interval=60, generator_url="http://b")
    assert posted["startsAt"] == "2027-01-15T08:00:00.000Z"
    assert posted["endsAt"] == "2027-01-15T08:04:10.000Z"
    assert posted["generatorURL"] == "http://b"


def test_resolved_alert_carries_its_real_end() -> None:
    """A resolved alert is posted with the time it ended."""
    resolved = record(state=AlertState.RESOLVED, ends_at=T0 + 30)
    posted = alertmanager_alert(resolved, now=T0 + 100, interval=60, generator_url="http://b")
    assert posted["endsAt"] == "2027-01-15T08:00:30.000Z"


def test_escalation_level_is_an_annotation_not_a_label() -> None:
    """Escalating does not change the label set, so Alertmanager sees the same alert."""
    posted = alertmanager_alert(record(level=2), now=T0, interval=60, generator_url="http://b")
    assert "escalation_level" not in posted["labels"]
    assert posted["annotations"]["escalation_level"] == "level2"
    assert posted["labels"]["alert_id"] == "a1"
