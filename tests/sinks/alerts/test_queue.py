"""Each receiver's delivery queue: grouping windows, attempts in order, what it was told."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.outbox_before import DEPTH_BEFORE, OF_ALERT_BEFORE
from bridge.messages.severities import AlertSeverity
from bridge.receivers import Receiver, resolve_receivers
from bridge.sinks.alerts.delivery import keep_for
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.payload import build_payloads, split_body
from bridge.sinks.alerts.queue import BuildPayloads, Keep
from bridge.sinks.alerts.records import (
    AlertRecord,
    DeliveryState,
)
from tests.sinks.alerts.helpers import (
    T0,
    URL,
    event,
    first_attempt_failed,
    insert_deliveries,
    observe,
    one_each,
    query_plans,
)


def test_grouping_waits_for_the_window_then_takes_everything(outbox: Outbox) -> None:
    """Queued alerts become deliveries only once the oldest waited the group window."""
    observe(outbox, event("a"), T0)
    observe(outbox, event("b"), T0 + 0.2)
    assert outbox.queue.group(URL, T0 + 0.4, 0.5, one_each) == 0
    assert outbox.queue.next_wake(URL, 0.5) == T0 + 0.5
    assert outbox.queue.group(URL, T0 + 0.5, 0.5, one_each) == 2
    assert outbox.queue.depth().queued == 0
    due = outbox.queue.next_due(URL, T0 + 0.5)
    assert due is not None
    assert due.body == b"a"


def test_a_wall_clock_set_back_holds_no_queued_alert_or_retry_back(outbox: Outbox) -> None:
    """After the wall clock is set back an hour, a retry planned before the jump is due at
    once, not an hour on, and alerts queued before it are grouped at once (their wait is
    over); the retries planned after the jump, and the alerts queued after it, wait their
    time."""
    hour = 3600.0
    queue = outbox.queue

    def attempted(delivery_id: str, state: DeliveryState, now: float, then: float) -> None:
        queue.finish_attempt(
            delivery_id, state=state, next_attempt_at=then, status=503, error=None, now=now
        )

    observe(outbox, event("a"), T0)
    assert queue.group(URL, T0 + 1, 0.5, one_each) == 1
    first = queue.next_due(URL, T0 + 1)
    assert first is not None
    attempted(first.id, DeliveryState.PENDING, T0 + 1, T0 + 3)
    observe(outbox, event("b"), T0 + 2)
    assert queue.next_due(URL, T0 + 2) is None  # the clock steady: the retry waits
    assert queue.group(URL, T0 + 2.1, 0.5, one_each) == 0
    back = T0 - hour
    due = queue.next_due(URL, back)
    assert due is not None
    assert due.id == first.id
    attempted(first.id, DeliveryState.PENDING, back, back + 2)
    assert queue.next_due(URL, back + 1) is None  # its backoff, on this clock
    assert queue.next_due(URL, back + 2) is not None
    attempted(first.id, DeliveryState.DELIVERED, back + 2, back + 2)
    assert queue.group(URL, back + 2, 0.5, one_each) == 1  # b, queued before the jump
    observe(outbox, event("c"), back + 3)
    assert queue.group(URL, back + 3.1, 0.5, one_each) == 0  # c, queued after it, waits


@pytest.mark.parametrize("planned", [T0 + 1e10, 253402300799.0], ids=["years ahead", "year 9999"])
def test_a_retry_planned_past_the_largest_backoff_is_planned_again_at_it(
    outbox: Outbox, planned: float
) -> None:
    """A pending delivery whose next attempt lies further ahead than the largest backoff (an
    edited row, an older version's) is planned again that backoff after now, and listed so,
    then sent; the delivery behind it follows, rather than both waiting for good."""
    observe(outbox, event("a"), T0)
    observe(outbox, event("b"), T0)
    assert outbox.queue.group(URL, T0, 0.0, one_each) == 2
    with outbox.database.transaction() as db:
        db.execute("UPDATE deliveries SET next_attempt_at = ?", (planned,))
    assert outbox.queue.next_due(URL, T0 + 1, longest=300.0) is None
    first, second = sorted(outbox.queue.deliveries(), key=lambda d: d.body)  # a, then b
    assert first.next_attempt_at == T0 + 301
    assert first.summary()["next_attempt_at"] == "2027-01-15T08:05:01.000Z"
    assert second.next_attempt_at == planned  # planned again once it is the oldest
    assert outbox.queue.next_due(URL, T0 + 300, longest=300.0) is None
    due = outbox.queue.next_due(URL, T0 + 301, longest=300.0)
    assert due is not None
    assert due.id == first.id
    outbox.queue.finish_attempt(
        due.id,
        state=DeliveryState.DELIVERED,
        next_attempt_at=T0,
        status=200,
        error=None,
        now=T0 + 301,
    )
    assert outbox.queue.next_due(URL, T0 + 302, longest=300.0) is None
    behind = outbox.queue.next_due(URL, T0 + 602, longest=300.0)
    assert behind is not None
    assert behind.id == second.id


@pytest.mark.parametrize(
    "next_attempt_at", [float("inf"), float("-inf"), float("nan"), "soon", 253402300800.0]
)
def test_a_next_attempt_that_is_no_time_is_never_stored(
    outbox: Outbox, next_attempt_at: float | str
) -> None:
    """A delivery's next attempt time that never comes (infinite, NaN, text, past the year 9999)
    is refused, by a new delivery and by a change alike: the outbox stores none."""
    observe(outbox, event("a"), T0)
    assert outbox.queue.group(URL, T0, 0.0, one_each) == 1
    [delivery] = outbox.queue.deliveries()
    with pytest.raises(sqlite3.IntegrityError):
        outbox.queue.finish_attempt(
            delivery.id,
            state=DeliveryState.PENDING,
            next_attempt_at=next_attempt_at,  # type: ignore[arg-type]
            status=503,
            error="HTTP 503",
            now=T0,
        )
    with pytest.raises(sqlite3.IntegrityError), outbox.database.transaction() as db:
        db.execute(
            "INSERT INTO deliveries (id, url, body, alert_ids, created_at, next_attempt_at,"
            " state) VALUES ('d-2', ?, x'7b7d', '[]', ?, ?, 'pending')",
            (URL, T0, next_attempt_at),
        )
    [kept] = outbox.queue.deliveries()
    assert (kept.next_attempt_at, kept.attempts) == (T0, 0)


def test_a_receivers_deliveries_go_out_in_the_order_they_were_made(outbox: Outbox) -> None:
    """A later notification waits in the grouping window behind an earlier delivery whose retry
    is not due yet, the worker told to wake when that retry is due (not at once, which would
    spin), and becomes a delivery once that one is delivered."""
    observe(outbox, event(), T0)
    firing = first_attempt_failed(outbox, URL, one_each, T0 + 10, 503)
    observe(outbox, event(status="resolved"), T0 + 1)
    assert outbox.queue.group(URL, T0 + 1, 0.0, one_each) == 0
    assert outbox.queue.next_due(URL, T0 + 1) is None
    assert outbox.queue.next_wake(URL, 0.0) == T0 + 10
    again = outbox.queue.next_due(URL, T0 + 10)
    assert again is not None
    assert again.id == firing.id
    outbox.queue.finish_attempt(
        firing.id,
        state=DeliveryState.DELIVERED,
        next_attempt_at=T0 + 10,
        status=200,
        error=None,
        now=T0 + 10,
    )
    assert outbox.queue.group(URL, T0 + 10, 0.0, one_each) == 1
    resolve = outbox.queue.next_due(URL, T0 + 10)
    assert resolve is not None
    assert resolve.alert_ids == ("node_failure:n1",)


def _states(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
    """One payload per alert, its body the alert's id and state."""
    return [(f"{r.alert_id} {r.state.value}".encode(), [r.alert_id]) for r in records]


def receiver_from(min_severity: AlertSeverity) -> Receiver:
    """A webhook receiver taking alerts at ``min_severity`` and above, as configured."""
    [receiver], _ = resolve_receivers(
        ["http://127.0.0.1:9/hook"],
        None,
        secret=None,
        timeout=7.0,
        max_alerts=50,
        min_severity=min_severity,
    )
    return receiver


def held_window(box: Outbox, key: str, build: BuildPayloads, keep: Keep) -> str:
    """Hold ``key``'s grouping window: the alert observed at T0 made its delivery, whose first
    attempt failed (its retry due at T0 + 10); that delivery's id."""
    return first_attempt_failed(box, key, build, T0 + 10, 500, keep).id


def delivered_at(box: Outbox, delivery_id: str, now: float) -> None:
    """The receiver took ``delivery_id`` at ``now``: its window is let go."""
    box.queue.finish_attempt(
        delivery_id,
        state=DeliveryState.DELIVERED,
        next_attempt_at=now,
        status=200,
        error=None,
        now=now,
    )


def test_an_alert_that_fired_and_resolved_while_the_window_was_held_is_sent_its_resolve(
    tmp_path: Path,
) -> None:
    """An alert that fires and resolves while a receiver's window is held (its delivery
    failing) reaches it, back, as its resolve alone, when its filters take the alert firing:
    never heard of at all, it would be lost; a critical-only receiver gets the critical one's
    resolve alone, one with send_resolved: false neither."""
    base = receiver_from("info")
    receivers = {
        "all": dataclasses.replace(base, key="all"),
        "critical": dataclasses.replace(base, key="critical", min_severity="critical"),
        "no_resolves": dataclasses.replace(base, key="no_resolves", send_resolved=False),
    }
    box = Outbox.in_dir(tmp_path / "state", urls=list(receivers))
    try:
        observe(box, event("held"), T0)
        failing = {
            key: held_window(box, key, _states, keep_for(receiver))
            for key, receiver in receivers.items()
        }
        for alert_id, severity in (("brief", "critical"), ("minor", "warning")):
            observe(box, event(alert_id, severity=severity), T0 + 1)
            observe(box, event(alert_id, "resolved", severity=severity), T0 + 2)
        told = {}
        for key, receiver in receivers.items():
            assert box.queue.group(key, T0 + 3, 0.0, _states, keep_for(receiver)) == 0  # held
            delivered_at(box, failing[key], T0 + 10)
            box.queue.group(key, T0 + 10, 0.0, _states, keep_for(receiver))
            # Made at the same moment, the deliveries come in no set order.
            told[key] = sorted(
                d.body for d in box.queue.deliveries(state="pending") if d.url == key
            )
        assert told == {
            "all": [b"brief resolved", b"minor resolved"],
            "critical": [b"brief resolved"],
            "no_resolves": [],
        }
        assert box.queue.depth().queued == 0
    finally:
        box.close()


def test_an_alert_critical_while_the_window_was_held_reaches_a_critical_only_receiver(
    tmp_path: Path,
) -> None:
    """An alert that was critical while a critical-only receiver's window was held reaches it
    though it stands below critical when the window closes: one that fired critical, resolved
    and fired again as a warning that resolved too is sent its resolve alone, one that eased
    to a warning and still fires is sent as it stands; judged as they end, neither was sent."""
    base = receiver_from("critical")
    box = Outbox.in_dir(tmp_path / "state", urls=["critical"])
    keep = keep_for(dataclasses.replace(base, key="critical"))

    def bodies(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
        """One payload per alert, its body the alert's id, state and severity."""
        return [
            (f"{r.alert_id} {r.state.value} {r.severity}".encode(), [r.alert_id]) for r in records
        ]

    try:
        observe(box, event("held"), T0)
        failing = held_window(box, "critical", bodies, keep)
        observe(box, event("twice"), T0 + 1)
        observe(box, event("twice", "resolved"), T0 + 2)
        observe(box, event("twice", severity="warning"), T0 + 3)
        observe(box, event("twice", "resolved", severity="warning"), T0 + 4)
        observe(box, event("eased"), T0 + 1)
        observe(box, event("eased", severity="warning"), T0 + 2)
        assert box.queue.group("critical", T0 + 5, 0.0, bodies, keep) == 0  # held
        delivered_at(box, failing, T0 + 10)
        box.queue.group("critical", T0 + 10, 0.0, bodies, keep)
        assert sorted(d.body for d in box.queue.deliveries(state="pending")) == [
            b"eased firing warning",
            b"twice resolved warning",
        ]
        assert box.queue.depth().queued == 0
    finally:
        box.close()


def test_keep_is_told_which_alerts_the_receiver_was_sent_in_this_episode(outbox: Outbox) -> None:
    """A receiver's filter learns whether it was sent the alert since it last fired: not at
    first, yes for its later changes and its resolve, not after a new firing; an alert the
    filter left out was not sent."""
    asked: list[tuple[str, str, bool]] = []

    def keep(record: AlertRecord, told: bool) -> bool:
        asked.append((record.severity, record.state.value, told))
        return record.severity == "critical" or told

    created = []
    for changed in (
        event(),
        event(severity="warning"),
        event(status="resolved"),
        event(severity="warning"),
        event(),
    ):
        observe(outbox, changed, T0)
        created.append(outbox.queue.group(URL, T0, 0.0, one_each, keep))
    assert created == [1, 1, 1, 0, 1]
    assert asked == [
        ("critical", "firing", False),
        ("warning", "firing", True),
        ("warning", "resolved", True),
        ("warning", "firing", False),
        ("critical", "firing", False),
    ]


def test_what_waits_under_a_raw_url_moves_to_the_receiver_key(tmp_path: Path) -> None:
    """Rows keyed by a webhook URL (version 2) move to the receiver's key: queued alerts (one
    already queued under the new key keeps its place) and deliveries of every state."""
    key = "http://127.0.0.1:9/…#0123456789abcdef"
    old = Outbox.in_dir(tmp_path, urls=[URL])
    observe(old, event("a1"), T0)
    observe(old, event("a2"), T0)
    assert old.queue.group(URL, T0 + 1, 0.0, one_each) == 2
    observe(old, event("a3"), T0 + 2)
    old.close()
    box = Outbox.in_dir(tmp_path, urls=[key])
    observe(box, event("a3", status="resolved"), T0 + 3)  # a3 now queued under both keys
    assert (
        box.queue.move_receiver_rows(URL, key) == 2
    )  # the deliveries; a3's old queue row is dropped
    assert {d.url for d in box.queue.deliveries()} == {key}
    assert box.queue.move_receiver_rows(URL, key) == 0
    assert box.queue.group(key, T0 + 10, 0.0, one_each) == 1  # a3, once
    assert box.queue.depth().pending == 3
    box.close()


def test_an_alert_queued_under_both_keys_keeps_its_earlier_window_when_moved(
    tmp_path: Path,
) -> None:
    """An alert queued while firing under a receiver's earlier key, and queued again under its
    new key once resolved, keeps the earlier window's start and peak when the rows move: the
    receiver, which never heard of it, gets its resolve (it fired while the window was open)
    rather than nothing."""
    base = receiver_from("critical")
    key = "http://127.0.0.1:9/…#0123456789abcdef"
    old = Outbox.in_dir(tmp_path, urls=[URL])
    observe(old, event("brief"), T0)
    old.close()
    box = Outbox.in_dir(tmp_path, urls=[key])
    try:
        observe(box, event("brief", "resolved", severity="warning"), T0 + 1)
        box.queue.move_receiver_rows(URL, key)
        keep = keep_for(dataclasses.replace(base, key=key))
        assert box.queue.group(key, T0 + 2, 0.0, _states, keep) == 1
        assert [d.body for d in box.queue.deliveries()] == [b"brief resolved"]
    finally:
        box.close()


def _together(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
    """A payload builder: every alert in one webhook body."""
    return build_payloads(records, max_alerts=10, external_url="http://bridge")


def _sent(body: bytes) -> list[tuple[str, str]]:
    """Each alert of a webhook body: its id and status."""
    return [(a["labels"]["alert_id"], a["status"]) for a in json.loads(body)["alerts"]]


def test_stale_alerts_leave_a_delivery_that_keeps_its_id_and_place(outbox: Outbox) -> None:
    """``withhold`` takes the stale alerts out of a pending delivery, which keeps its id and its
    place ahead of later ones; they go into a delivery of their own in state stale, with the
    reason; once every alert of it is stale, the delivery itself becomes stale."""
    queue = outbox.queue
    observe(outbox, event("a"), T0)
    observe(outbox, event("b"), T0)
    assert queue.group(URL, T0 + 1, 0.5, _together) == 1
    observe(outbox, event("c"), T0 + 2)
    assert queue.group(URL, T0 + 3, 0.5, _together) == 1
    first = queue.next_due(URL, T0 + 3)
    assert first is not None
    left, withheld = queue.withhold(first.id, {"b"}, T0 + 4, "stale: newer elsewhere")
    assert left is not None
    assert withheld == 1
    assert (left.id, left.alert_ids, _sent(left.body)) == (first.id, ("a",), [("a", "firing")])
    assert queue.next_due(URL, T0 + 4) == left
    [stale] = queue.deliveries(DeliveryState.STALE.value)
    assert (stale.alert_ids, stale.last_error, stale.finished_at) == (
        ("b",),
        "stale: newer elsewhere",
        T0 + 4,
    )
    assert _sent(stale.body) == [("b", "firing")]
    assert json.loads(stale.body)["commonLabels"]["alert_id"] == "b"
    assert queue.withhold(first.id, {"a"}, T0 + 5, "stale: newer elsewhere") == (None, 1)
    # No longer pending: nothing more is left out, nor counted.
    assert queue.withhold(first.id, {"a"}, T0 + 6, "stale: newer elsewhere") == (None, 0)
    due = queue.next_due(URL, T0 + 5)
    assert due is not None
    assert due.alert_ids == ("c",)
    assert queue.count(DeliveryState.STALE.value) == 2
    assert queue.depth().pending == 1


# What an attempt's outcome makes of a delivery in each state as it finishes (one left out as
# stale, or dead-lettered, meanwhile): finish_attempt's table.
_FINISHED = {
    ("pending", "delivered"): "delivered",
    ("pending", "pending"): "pending",
    ("pending", "dead"): "dead",
    ("stale", "delivered"): "delivered",
    ("stale", "pending"): "stale",
    ("stale", "dead"): "stale",
    ("dead", "delivered"): "delivered",
    ("dead", "pending"): "dead",
    ("dead", "dead"): "dead",
    ("delivered", "delivered"): "delivered",
    ("delivered", "pending"): "delivered",
    ("delivered", "dead"): "delivered",
}


@pytest.mark.parametrize(("before", "outcome"), sorted(_FINISHED))
def test_an_attempts_outcome_moves_a_delivery_as_the_transition_table_says(
    outbox: Outbox, before: str, outcome: str
) -> None:
    """An attempt the receiver took makes its delivery delivered whatever became of it while
    in flight; a failed one moves a pending delivery only, and leaves another's state and last
    error as they were, its attempt counted."""
    insert_deliveries(outbox, [(URL, ["a"], before, None if before == "pending" else T0)])
    [delivery] = outbox.queue.deliveries()
    with outbox.database.transaction() as db:
        db.execute("UPDATE deliveries SET last_error = 'then'")
    error = None if outcome == "delivered" else "HTTP 503"
    status = 200 if outcome == "delivered" else 503
    left, _ = outbox.queue.finish_attempt(
        delivery.id,
        state=DeliveryState(outcome),
        next_attempt_at=T0 + 2,
        status=status,
        error=error,
        now=T0 + 1,
    )
    expected = DeliveryState(_FINISHED[before, outcome])
    [after] = outbox.queue.deliveries()
    assert (left, after.state, after.attempts, after.last_status) == (expected, expected, 1, status)
    moved = before == "pending" or outcome == "delivered"
    assert after.last_error == (error if moved else "then")


@settings(max_examples=100, deadline=None)
@given(
    states=st.lists(st.sampled_from([state.value for state in DeliveryState]), max_size=30),
    retried=st.integers(0, 5),
)
def test_the_depth_counts_what_the_query_before_version_11_counted(
    states: list[str], retried: int
) -> None:
    """Whatever the deliveries' states (some dead letters retried since), the depth counts the
    pending and dead ones as the query that read every delivery (before version 11) did."""
    outbox = Outbox(":memory:")
    try:
        insert_deliveries(outbox, [(URL, ["a"], state, T0) for state in states])
        outbox.dead_letters.retry(T0, [d.id for d in outbox.queue.deliveries("dead")][:retried])
        with outbox.database.read() as db:
            before = dict(db.execute(DEPTH_BEFORE[1], {"delivered": "delivered"}).fetchall())
        depth = outbox.queue.depth()
        assert (depth.pending, depth.dead) == (before.get("pending", 0), before.get("dead", 0))
    finally:
        outbox.close()


def test_the_depth_reads_no_delivery_but_those_waiting(outbox: Outbox) -> None:
    """The depth, read every second, counts the pending and dead deliveries by an index of
    the deliveries by state, never reading the day of delivered ones (86 000)."""
    insert_deliveries(outbox, [(URL, ["a"], state.value, T0) for state in DeliveryState])
    [_, deliveries] = query_plans(outbox, outbox.queue.depth)
    assert len(deliveries) == 1, deliveries
    assert deliveries[0].startswith("SEARCH deliveries USING COVERING INDEX "), deliveries
    assert deliveries[0].endswith(" (state=?)"), deliveries


# Alert ids, some inside others' JSON text ("a" in "ab") or written with escapes.
_ALERT_IDS = ("a", "ab", "é", 'say "hi"', "a,b", "back\\slash")
_STATES = tuple(state.value for state in DeliveryState)
# Deliveries, each (alert ids: none, one repeated…, when it was made: few times, so many tie
# and are ordered by id, state); a delivery's id does not follow the order they were made.
_DELIVERIES = st.lists(
    st.tuples(
        st.lists(st.sampled_from(_ALERT_IDS), max_size=3),
        st.integers(0, 3).map(float),
        st.sampled_from(_STATES),
    ),
    max_size=20,
)
# Changes made once they are all in, each (which delivery, what): its alerts changed (as
# ``withhold`` changes them), an attempt that finds the wall clock set back (its time moved
# earlier), moved to another receiver key, deleted (as the prune deletes).
_CHANGES = st.lists(
    st.tuples(
        st.integers(0, 19),
        st.one_of(
            st.tuples(st.just("alerts"), st.lists(st.sampled_from(_ALERT_IDS), max_size=2)),
            st.tuples(st.just("clock back"), st.integers(-1, 2).map(float)),
            st.tuples(st.just("moved"), st.just("another-key")),
            st.tuples(st.just("deleted"), st.none()),
        ),
    ),
    max_size=8,
)


def _made(outbox: Outbox, deliveries: Sequence[tuple[list[str], float, str]]) -> list[str]:
    """Insert ``deliveries`` in order (their triggers fire as ever); their ids."""
    ids = [f"d{n * 37 % 101:03}" for n in range(len(deliveries))]
    with outbox.database.transaction() as db:
        db.executemany(
            "INSERT INTO deliveries (id, url, body, alert_ids, created_at, next_attempt_at,"
            " state) VALUES (?, ?, x'7b7d', ?, ?, 0, ?)",
            [
                (delivery_id, URL, json.dumps(alert_ids), created_at, state)
                for delivery_id, (alert_ids, created_at, state) in zip(ids, deliveries, strict=True)
            ],
        )
    return ids


def _change(outbox: Outbox, delivery_id: str, what: str, value: object) -> None:
    """Make one of ``_CHANGES`` to the delivery of ``delivery_id``."""
    with outbox.database.transaction() as db:
        if what == "alerts":
            db.execute(
                "UPDATE deliveries SET alert_ids = ? WHERE id = ?", (json.dumps(value), delivery_id)
            )
        elif what == "clock back":
            outbox.queue.finish_attempt(
                delivery_id, state=DeliveryState.PENDING, next_attempt_at=0.0, status=503,
                error=None, now=float(value),  # type: ignore[arg-type]
            )  # fmt: skip
        elif what == "moved":
            db.execute("UPDATE deliveries SET url = ? WHERE id = ?", (value, delivery_id))
        else:
            db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))


@settings(max_examples=300, deadline=None)
@given(deliveries=_DELIVERIES, changes=_CHANGES)
@example(  # more than the page lists: the newest 50, ties by id
    [(["a"], float(n % 3), "delivered") for n in range(60)], [(0, ("deleted", None))]
)
def test_an_alerts_deliveries_are_those_the_query_before_version_12_found(
    deliveries: list[tuple[list[str], float, str]], changes: list[tuple[int, tuple[str, object]]]
) -> None:
    """On any outbox (deliveries of alerts with escapes, repeated or inside another's id, made at
    the same moment, some changed, moved or deleted since), an alert's page lists the very
    deliveries, in the same order, that the query reading every delivery (before version 12)
    found; and ``carried`` holds each delivery's alerts, none of one changed or deleted since."""
    outbox = Outbox(":memory:")
    try:
        ids = _made(outbox, deliveries)
        for n, (what, value) in changes if ids else ():
            _change(outbox, ids[n % len(ids)], what, value)
        for alert_id in (*_ALERT_IDS, "never sent"):
            with outbox.database.read() as db:
                before = [
                    str(row["id"])
                    for row in db.execute(
                        OF_ALERT_BEFORE, {"alert_id": alert_id, "needle": json.dumps(alert_id)}
                    )
                ]
            assert [d.id for d in outbox.queue.of_alert(alert_id)[0]] == before, alert_id
        with outbox.database.read() as db:
            carried = {tuple(row) for row in db.execute("SELECT * FROM carried")}
            carrying = db.execute(
                "SELECT sent.value, deliveries.created_at, deliveries.id"
                " FROM deliveries, json_each(deliveries.alert_ids) AS sent"
            )
            assert carried == {tuple(row) for row in carrying}
    finally:
        outbox.close()


def test_an_alerts_page_reads_no_delivery_but_its_newest(outbox: Outbox) -> None:
    """An alert's page (refreshed every few seconds while open) finds its newest deliveries by
    the alert's key in ``carried``, in order, each by its id: it never reads the day of
    deliveries (86 000) nor sorts them."""
    insert_deliveries(outbox, [(URL, ["a", "b"], "delivered", T0)] * 3)
    plans = query_plans(outbox, lambda: outbox.queue.of_alert("a"))
    deliveries = plans[0]
    assert len(deliveries) == 2, plans
    assert deliveries[0] == "SEARCH carried USING PRIMARY KEY (alert_id=?)", plans
    assert deliveries[1].startswith("SEARCH deliveries USING "), plans
    assert deliveries[1].endswith(" (id=?)"), plans


def test_an_attempt_taken_drops_no_other_deliverys_notification_that_reads_the_same(
    outbox: Outbox,
) -> None:
    """An alert left out of every pending delivery while the first is in flight (as a replica
    takes the lease up), a later one telling the same of it: once the receiver takes the
    attempt, only the stale delivery split off from the first goes; the later ones, whole
    deliveries of their own or split off from one, stay stale with their ids."""
    queue = outbox.queue
    observe(outbox, event("a"), T0)
    observe(outbox, event("b"), T0)
    queue.group(URL, T0, 0.0, _together)
    observe(outbox, event("a", severity="warning"), T0 + 1)
    queue.group(URL, T0 + 1, 0.0, _together)
    for alert_id in "ac":  # a critical again: told as the first tells it
        observe(outbox, event(alert_id), T0 + 2)
    queue.group(URL, T0 + 2, 0.0, _together)
    observe(outbox, event("a", severity="warning"), T0 + 3)
    observe(outbox, event("a"), T0 + 4)  # critical again, alone
    queue.group(URL, T0 + 4, 0.0, _together)
    sent = queue.next_due(URL, T0 + 4)
    assert sent is not None
    assert sent.alert_ids == ("a", "b")
    assert queue.withhold_everywhere({"a"}, T0 + 5, "stale: newer elsewhere") == 4
    before = {d.id: d for d in queue.deliveries("stale")}
    queue.finish_attempt(
        sent.id, state=DeliveryState.DELIVERED, next_attempt_at=T0 + 6, status=200, error=None,
        now=T0 + 6, sent=sent,
    )  # fmt: skip
    after = {d.id: d for d in queue.deliveries("stale")}
    assert len(before) - len(after) == 1
    [gone] = set(before) - set(after)
    assert before[gone].body == split_body(sent.body, ["a"])[1]
    assert len(after) == 3
    assert sum(d.body == before[gone].body for d in after.values()) == 2


@pytest.mark.parametrize("eased", [True, False])
@pytest.mark.parametrize("outcome", [DeliveryState.DELIVERED, DeliveryState.PENDING])
def test_an_attempt_queues_again_what_it_told_that_another_replica_changed_meanwhile(
    outbox: Outbox, eased: bool, outcome: DeliveryState
) -> None:
    """An alert left out of a delivery in flight as the replica takes the lease up, another
    replica having changed it meanwhile (adopted here), is queued again for the receiver once
    the attempt ends, taken or failed (its answer maybe lost), so the receiver hears the
    alert's state now after the older one; one left out as it stands (the same change, whose
    note another replica took over) is not."""
    queue = outbox.queue
    observe(outbox, event("a"), T0)
    observe(outbox, event("b"), T0)
    queue.group(URL, T0, 0.0, _together)
    sent = queue.next_due(URL, T0)
    assert sent is not None
    kept = {r.alert_id: r for r in map(outbox.alerts.get, "ab") if r is not None}
    if eased:
        kept["a"] = dataclasses.replace(kept["a"], severity="warning")
    queue.withhold(sent.id, {"a"}, T0 + 1, "stale: newer elsewhere")
    outbox.alerts.adopt_open_alerts(kept, T0 + 1)
    _, told_again = queue.finish_attempt(
        sent.id, state=outcome, next_attempt_at=T0 + 2, status=None, error="timed out",
        now=T0 + 2, sent=sent,
    )  # fmt: skip
    assert told_again == int(eased)  # what the sink counts (exesdb_webhook_renotified_total)
    if outcome is DeliveryState.PENDING:  # what was not left out goes again first
        [retried] = queue.deliveries("pending")
        queue.finish_attempt(
            retried.id, state=DeliveryState.DELIVERED, next_attempt_at=T0 + 2, status=200,
            error=None, now=T0 + 2, sent=retried,
        )  # fmt: skip
    assert queue.group(URL, T0 + 2, 0.0, _together) == int(eased)
    if eased:
        [again] = queue.deliveries("pending")
        [told] = json.loads(again.body)["alerts"]
        assert (told["labels"]["alert_id"], told["labels"]["severity"]) == ("a", "warning")


# Withholds made while the first of two pending deliveries is in flight, in order, each (the
# first or the second, the alerts left out of it): some, all, or none it still holds.
_WITHHOLDS = st.lists(
    st.tuples(st.sampled_from((0, 1)), st.sets(st.sampled_from("abc"), min_size=1)), max_size=5
)


@settings(max_examples=200, deadline=None)
@given(withholds=_WITHHOLDS)
@example([(1, {"a"}), (0, {"a"}), (0, {"b"}), (1, {"b"})])  # the same alert out of both
def test_an_attempt_taken_gives_back_what_was_withheld_from_it_alone(
    withholds: list[tuple[int, set[str]]],
) -> None:
    """Whatever is left out of a delivery in flight, and of one behind it carrying some of the
    same alerts, when the receiver takes the attempt the first is delivered holding what was
    sent, the stale deliveries split off from it are gone, those split off from the other stay,
    and what each receiver took and each delivery carries follows the rows."""
    outbox = Outbox(":memory:", urls=[URL])
    try:
        for alert_id in "abc":
            observe(outbox, event(alert_id), T0)
        outbox.queue.group(URL, T0, 0.0, _together)
        for alert_id in "ab":  # eased: the same alerts, told otherwise, in a delivery behind
            observe(outbox, event(alert_id, severity="warning"), T0 + 1)
        outbox.queue.group(URL, T0 + 1, 0.0, _together)
        sent, behind = sorted(outbox.queue.deliveries("pending"), key=lambda d: d.created_at)
        split_off: dict[str, int] = {}  # each stale delivery: which it was split off from
        for which, alert_ids in withholds:
            before = {d.id for d in outbox.queue.deliveries("stale")}
            outbox.queue.withhold((sent, behind)[which].id, alert_ids, T0 + 2, "stale: newer")
            for stale in outbox.queue.deliveries("stale"):
                if stale.id not in before and stale.id not in (sent.id, behind.id):
                    split_off[stale.id] = which
        outbox.queue.finish_attempt(
            sent.id, state=DeliveryState.DELIVERED, next_attempt_at=T0 + 3, status=200,
            error=None, now=T0 + 3, sent=sent,
        )  # fmt: skip
        [taken] = outbox.queue.deliveries(ids=[sent.id])
        assert (taken.state, taken.body, taken.alert_ids) == (
            DeliveryState.DELIVERED,
            sent.body,
            sent.alert_ids,
        )
        left_stale = {d.id for d in outbox.queue.deliveries("stale")} - {behind.id}
        assert left_stale == {d for d, which in split_off.items() if which == 1}
        with outbox.database.read() as db:
            carried = {
                tuple(row) for row in db.execute("SELECT alert_id, delivery_id FROM carried")
            }
            carrying = db.execute(
                "SELECT sent.value, deliveries.id FROM deliveries, json_each(alert_ids) AS sent"
            )
            assert carried == {tuple(row) for row in carrying}
            took = {tuple(row) for row in db.execute("SELECT alert_id, delivery FROM taken")}
            delivered = db.execute(
                "SELECT sent.value, deliveries.rowid FROM deliveries, json_each(alert_ids) AS sent"
                " WHERE state = 'delivered'"
            )
            assert took == {tuple(row) for row in delivered}
    finally:
        outbox.close()
