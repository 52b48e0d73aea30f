"""The outbox's memory of active alerts, which lets the sink skip resolved no-ops cheaply."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import AlertState
from tests.sinks.alerts.helpers import T0, URL, event, observe, stored


def test_unknown_alerts_are_not_active(outbox: Outbox) -> None:
    """An alert never seen may not be active, so a resolved event for it is a no-op."""
    assert not outbox.alerts.may_be_active("node_failure:n1")
    assert observe(outbox, event(status="resolved"), T0) is None


def test_firing_makes_an_alert_active_and_resolving_forgets_it(outbox: Outbox) -> None:
    """Firing marks the alert active; once the resolution commits it is not active any more."""
    assert observe(outbox, event(), T0) is not None
    assert outbox.alerts.may_be_active("node_failure:n1")
    assert observe(outbox, event(status="resolved"), T0 + 1) is not None
    assert not outbox.alerts.may_be_active("node_failure:n1")


def test_acknowledged_alerts_stay_active_until_resolved(outbox: Outbox) -> None:
    """An acknowledgement without a resolution leaves the alert active."""
    observe(outbox, event(), T0)
    outbox.alerts.acknowledge("node_failure:n1", "ops", T0 + 1)
    assert outbox.alerts.may_be_active("node_failure:n1")
    outbox.alerts.acknowledge("node_failure:n1", "ops", T0 + 2, resolution="fixed")
    assert not outbox.alerts.may_be_active("node_failure:n1")


def test_active_alerts_are_remembered_across_a_restart(tmp_path: Path) -> None:
    """Reopening the outbox reloads which alerts are active from the database."""
    first = Outbox.in_dir(tmp_path / "state", urls=[URL])
    observe(first, event("a:1"), T0)
    observe(first, event("b:2"), T0)
    observe(first, event("b:2", status="resolved"), T0 + 1)
    first.close()
    again = Outbox.in_dir(tmp_path / "state", urls=[URL])
    try:
        assert again.alerts.may_be_active("a:1")
        assert not again.alerts.may_be_active("b:2")
        assert observe(again, event("a:1", status="resolved"), T0 + 2) is not None
    finally:
        again.close()


def test_a_rolled_back_resolution_keeps_the_alert_active(outbox: Outbox) -> None:
    """When the transaction resolving an alert fails, the alert is still taken as active."""
    observe(outbox, event(), T0)
    broken = event("bad", alertname=None)  # NOT NULL violated when stored, after the resolve
    with pytest.raises(sqlite3.IntegrityError):
        outbox.alerts.apply([event(status="resolved"), broken], T0 + 1)
    assert stored(outbox, "node_failure:n1").state is AlertState.FIRING  # type: ignore[union-attr]
    observe(outbox, event("other"), T0 + 1)  # a later commit must not forget it either
    assert outbox.alerts.may_be_active("node_failure:n1")
    assert observe(outbox, event(status="resolved"), T0 + 2) is not None


def test_the_active_ids_tested_at_once_follow_fire_acknowledge_and_resolve(
    outbox: Outbox,
) -> None:
    """maybe_active_ids holds an id exactly while may_be_active says it may be active."""
    alert_id = "node_failure:n1"
    seen = []
    for step in range(4):
        if step == 1:
            observe(outbox, event(), T0)
        elif step == 2:
            outbox.alerts.acknowledge(alert_id, "ops", T0 + 1)
        elif step == 3:
            observe(outbox, event(status="resolved"), T0 + 2)
        held = alert_id in outbox.alerts.maybe_active_ids
        assert held is outbox.alerts.may_be_active(alert_id)
        seen.append(held)
    assert seen == [False, True, True, False]
