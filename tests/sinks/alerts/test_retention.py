"""What the outbox forgets: delivered deliveries, resolved alerts, history, old dead letters."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.outbox_before import FORGET_DELIVERED_BEFORE, STALE_BEFORE
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import (
    DeliveryState,
    HistoryEntry,
    HistoryEvent,
)
from bridge.sinks.alerts.retention import HISTORY_KEPT
from bridge.sinks.alerts.tables import connect
from tests.sinks.alerts.helpers import (
    T0,
    URL,
    event,
    insert_deliveries,
    observe,
    one_each,
    query_plans,
)


def test_prune_forgets_old_delivered_and_resolved(outbox: Outbox) -> None:
    """Delivered deliveries and resolved alerts past their keep time are removed; dead ones stay."""
    observe(outbox, event("a"), T0)
    observe(outbox, event("b"), T0)
    outbox.queue.group(URL, T0, 0.0, one_each)
    a, b = outbox.queue.next_due(URL, T0), None
    assert a is not None
    outbox.queue.finish_attempt(
        a.id, state=DeliveryState.DELIVERED, next_attempt_at=T0, status=200, error=None, now=T0
    )
    b = outbox.queue.next_due(URL, T0)
    assert b is not None
    outbox.queue.finish_attempt(
        b.id, state=DeliveryState.DEAD, next_attempt_at=T0, status=400, error="HTTP 400", now=T0
    )
    observe(outbox, event("a", status="resolved"), T0)
    outbox.queue.group(URL, T0, 0.0, one_each)
    assert outbox.retention.prune(T0 + 100, delivered_for=50, resolved_for=50) >= 2
    assert sorted(d.state for d in outbox.queue.deliveries()) == [
        DeliveryState.DEAD,
        DeliveryState.PENDING,
    ]
    assert {a.alert_id for a in outbox.alerts.find()} == {"b"}


def test_prune_keeps_a_delivered_delivery_a_day_and_a_resolved_alert_a_week(
    outbox: Outbox,
) -> None:
    """By default a delivered delivery goes once a day old, a resolved alert once a week old."""
    observe(outbox, event("a"), T0)
    observe(outbox, event("a", status="resolved"), T0)
    outbox.queue.group(URL, T0, 0.0, one_each)
    for delivery in outbox.queue.deliveries():
        outbox.queue.finish_attempt(
            delivery.id,
            state=DeliveryState.DELIVERED,
            next_attempt_at=T0,
            status=200,
            error=None,
            now=T0,
        )
    day, week = 86_400.0, 7 * 86_400.0
    assert outbox.retention.prune(T0 + day - 1) == 0
    assert outbox.retention.prune(T0 + day + 1) == 1
    assert outbox.retention.prune(T0 + week - 1) == 0
    assert outbox.retention.prune(T0 + week + 1) == 1
    assert outbox.alerts.find() == []


@pytest.fixture
def unsent(tmp_path: Path) -> Iterator[Outbox]:
    """An outbox without webhook URLs: nothing waits to be sent, so nothing holds off pruning."""
    box = Outbox.in_dir(tmp_path / "unsent")
    yield box
    box.close()


def test_prune_keeps_history_bounded(unsent: Outbox) -> None:
    """A pruned alert's history goes with it; a flapping one keeps its newest HISTORY_KEPT."""
    outbox = unsent
    observe(outbox, event("old"), T0)
    observe(outbox, event("old", status="resolved"), T0 + 1)
    for n in range(HISTORY_KEPT):  # fired and resolved: two entries each
        observe(outbox, event("flapping"), T0 + 100 + 2 * n)
        observe(outbox, event("flapping", status="resolved"), T0 + 101 + 2 * n)
    observe(outbox, event("flapping"), T0 + 1000)
    outbox.retention.prune(T0 + 1000, delivered_for=10_000, resolved_for=500)
    assert outbox.alerts.detail("old") is None
    db = sqlite3.connect(outbox.path)
    try:
        assert db.execute("SELECT COUNT(*) FROM history WHERE alert_id = 'old'").fetchone() == (0,)
    finally:
        db.close()
    flapping = outbox.alerts.detail("flapping")
    assert flapping is not None
    assert len(flapping.history) == HISTORY_KEPT
    assert flapping.history[-1] == HistoryEntry(T0 + 1000, HistoryEvent.FIRED, "critical on n1")


def test_dead_letters_are_forgotten_once_older_than_their_keep_time(outbox: Outbox) -> None:
    """A delivery dead-lettered longer ago than the keep time is deleted; a younger dead letter,
    a pending and a delivered one stay (and their alerts)."""
    for alert_id in ("old", "young", "pending", "done"):
        observe(outbox, event(alert_id), T0)
    outbox.queue.group(URL, T0, 0.0, one_each)
    died = {"old": T0, "young": T0 + 500}
    finished = {"done": DeliveryState.DELIVERED}
    for delivery in outbox.queue.deliveries():
        [alert_id] = delivery.alert_ids
        if alert_id in died:
            state, at = DeliveryState.DEAD, died[alert_id]
        elif alert_id in finished:
            state, at = finished[alert_id], T0
        else:
            continue
        outbox.queue.finish_attempt(
            delivery.id, state=state, next_attempt_at=at, status=401, error="HTTP 401", now=at
        )
    assert outbox.retention.forget_dead_letters(T0 + 1000, older_than=600) == 1
    left = {d.alert_ids[0]: d.state for d in outbox.queue.deliveries()}
    assert left == {
        "young": DeliveryState.DEAD,
        "pending": DeliveryState.PENDING,
        "done": DeliveryState.DELIVERED,
    }
    assert outbox.queue.depth().dead == 1
    assert len(outbox.alerts.find()) == 4


def test_the_delivery_that_supersedes_a_dead_letter_is_kept_as_long_as_the_dead_letter(
    outbox: Outbox,
) -> None:
    """A day on, prune forgets the deliveries taken, but the last the receiver took of each
    alert of a dead letter after it: the dead letter stays superseded (not a dead letter needing
    a person again once a day has passed); once it is forgotten, so is that delivery."""

    def finish(state: DeliveryState, at: float) -> str:
        [delivery] = outbox.queue.deliveries("pending")
        outbox.queue.finish_attempt(
            delivery.id, state=state, next_attempt_at=at, status=None, error=None, now=at
        )
        return delivery.id

    observe(outbox, event("a1"), T0)
    outbox.queue.group(URL, T0, 0.0, one_each)
    dead = finish(DeliveryState.DEAD, T0)
    made = []
    for n, (alert_id, severity) in enumerate((("a1", "warning"), ("a2", "critical"))):
        observe(outbox, event(alert_id, severity=severity), T0 + 10 + n)
        outbox.queue.group(URL, T0 + 10 + n, 0.0, one_each)
        made.append(finish(DeliveryState.DELIVERED, T0 + 10 + n))
    superseding, other = made
    assert outbox.dead_letters.superseded([dead]) == {dead}
    outbox.retention.prune(T0 + 86_400 + 20)
    assert {d.id for d in outbox.queue.deliveries()} == {dead, superseding}
    assert outbox.dead_letters.superseded([dead]) == {dead}
    assert outbox.dead_letters.superseded_count() == 1
    assert outbox.retention.forget_dead_letters(T0 + 86_400 + 20, older_than=86_400) == 1
    outbox.retention.prune(T0 + 86_400 + 20)
    assert outbox.queue.deliveries() == []
    assert other not in {d.id for d in outbox.queue.deliveries()}


def test_of_the_stale_deliveries_after_a_dead_letter_the_latest_of_its_alert_is_kept(
    outbox: Outbox,
) -> None:
    """A day on, prune forgets the stale deliveries made after a dead letter of their alert to
    their receiver but the latest of that alert (it alone supersedes the dead letter, which
    stays superseded), and those a later delivery of their alert, still pending, follows; the
    pending one and the dead letter stay."""
    day = 86_400.0
    insert_deliveries(
        outbox,
        [
            (URL, ["a"], "dead", T0),
            (URL, ["a"], "stale", T0),
            (URL, ["a"], "stale", T0 + 1),  # the latest of 'a': kept
            (URL, ["b"], "dead", T0),
            (URL, ["b"], "stale", T0),
            (URL, ["b"], "pending", None),  # tells the receiver of 'b' after the stale one
        ],
    )
    made = {(d.alert_ids, d.state, d.finished_at): d.id for d in outbox.queue.deliveries()}
    dead_a, dead_b = made[("a",), DeliveryState.DEAD, T0], made[("b",), DeliveryState.DEAD, T0]
    assert outbox.dead_letters.superseded([dead_a, dead_b]) == {dead_a}
    assert outbox.retention.prune(T0 + day + 2) == 2
    assert {d.id for d in outbox.queue.deliveries()} == {
        dead_a,
        made[("a",), DeliveryState.STALE, T0 + 1],
        dead_b,
        made[("b",), DeliveryState.PENDING, None],
    }
    assert outbox.dead_letters.superseded([dead_a, dead_b]) == {dead_a}


_STATES = tuple(state.value for state in DeliveryState)
_RECEIVERS = ("r0", "r1")
# Deliveries, each (receiver, alert ids: none, one repeated, one written with escapes, state,
# finished at: none, or one of four hours): few, to few receivers, so that an alert's
# deliveries to a receiver fall before, between and after its dead letters.
_DELIVERIES = st.lists(
    st.tuples(
        st.sampled_from(_RECEIVERS),
        st.lists(st.sampled_from(("a", "é", 'say "hi"')), max_size=3),
        st.sampled_from(_STATES),
        st.none() | st.integers(0, 3).map(float),
    ),
    max_size=12,
)
# Changes made once they are all in, each (which of them, its new state or None: deleted, its
# new receiver): a dead letter retried and taken, one taken moved to another key, one forgotten.
_CHANGES = st.lists(
    st.tuples(
        st.integers(0, 11), st.none() | st.sampled_from(_STATES), st.sampled_from(_RECEIVERS)
    ),
    max_size=6,
)


def _ids(db: sqlite3.Connection) -> set[str]:
    return {str(row[0]) for row in db.execute("SELECT id FROM deliveries")}


@settings(max_examples=300, deadline=None)
@given(deliveries=_DELIVERIES, changes=_CHANGES, cutoff=st.integers(0, 4))
@example(  # the last of two taken after the dead letter is kept, the first not
    [("r0", ["a"], "dead", 0.0), ("r0", ["a"], "delivered", 0.0), ("r0", ["a"], "delivered", 0.0)],
    [],
    1,
)
@example(  # one taken before the dead letter alone does not supersede it
    [("r0", ["a"], "delivered", 0.0), ("r0", ["a"], "dead", 0.0)], [], 1
)
@example(  # a dead letter of an alert never taken (no last delivery: NULL) keeps nothing
    [("r0", ["a"], "delivered", 0.0), ("r0", ["é"], "dead", 0.0)], [], 1
)
@example(  # a stale one after a dead letter of its alert is kept, as it supersedes it
    [("r0", ["a"], "dead", 0.0), ("r0", ["a"], "stale", 0.0), ("r1", ["a"], "stale", 0.0)], [], 1
)
@example(  # of two stale ones after it, the latest alone is kept: it supersedes it
    [("r0", ["a"], "dead", 0.0), ("r0", ["a"], "stale", 0.0), ("r0", ["a"], "stale", 0.0)], [], 1
)
@example(  # a stale one followed by a pending one of its alert supersedes nothing
    [("r0", ["a"], "dead", 0.0), ("r0", ["a", "é"], "stale", 0.0), ("r0", ["a"], "pending", None)],
    [],
    1,
)
def test_prune_forgets_the_deliveries_the_query_before_version_11_forgot(
    deliveries: list[tuple[str, list[str], str, float | None]],
    changes: list[tuple[int, str | None, str]],
    cutoff: int,
) -> None:
    """On any outbox (deliveries in every state to a few receivers, some changed or deleted
    since, alerts repeated or never taken), prune forgets the very deliveries the query that
    read every delivery (before version 11) forgot, but each stale one made after a dead letter
    to its receiver of one of its alerts that is the latest delivery of that alert to that
    receiver, and leaves as many dead letters superseded."""
    outbox = Outbox(":memory:")
    reference = connect(":memory:")
    try:
        insert_deliveries(outbox, deliveries)
        with outbox.database.transaction() as db:
            rowids = [int(row[0]) for row in db.execute("SELECT rowid FROM deliveries")]
            for n, state, url in changes if rowids else ():
                row = {"rowid": rowids[n % len(rowids)], "state": state, "url": url}
                if state is None:
                    db.execute("DELETE FROM deliveries WHERE rowid = :rowid", row)
                else:
                    db.execute(
                        "UPDATE deliveries SET state = :state, url = :url WHERE rowid = :rowid", row
                    )
        with outbox.database.read() as db:
            db.backup(reference)
        superseded = outbox.dead_letters.superseded_count()
        rows = reference.execute(
            "SELECT rowid, id, url, state, alert_ids, finished_at FROM deliveries ORDER BY rowid"
        ).fetchall()
        kept_stale = {
            later[1]
            for later in rows
            if later[3] == "stale" and later[5] is not None and later[5] < cutoff
            and any(
                dead[3] == "dead" and dead[2] == later[2] and dead[0] < later[0]
                and alert_id in json.loads(dead[4])
                and not any(
                    newer[2] == later[2] and newer[0] > later[0]
                    and alert_id in json.loads(newer[4])
                    for newer in rows
                )
                for dead in rows
                for alert_id in json.loads(later[4])
            )
        }  # fmt: skip
        params = {**{state: state for state in _STATES}, "before": float(cutoff)}
        gone = reference.execute(FORGET_DELIVERED_BEFORE, params).rowcount
        gone += reference.execute(STALE_BEFORE, params).rowcount
        assert outbox.retention.prune(float(cutoff), delivered_for=0.0) == gone - len(kept_stale)
        with outbox.database.read() as db:
            assert _ids(db) == _ids(reference) | kept_stale
        assert outbox.dead_letters.superseded_count() == superseded
    finally:
        reference.close()
        outbox.close()


def test_prune_reads_no_delivery_but_those_it_forgets_and_the_dead_letters(
    outbox: Outbox,
) -> None:
    """The hourly prune finds the old delivered and stale deliveries by an index, the dead
    letters by the index of them alone, the last delivery taken of each of their alerts by a
    lookup, and the deliveries carrying the alert of a stale one kept for a dead letter by the
    alert's key: no whole table scanned, however many deliveries the receivers took (86 000 a
    day)."""
    insert_deliveries(
        outbox,
        [(URL, ["a1"], "dead", T0), (URL, ["a1"], "delivered", T0), (URL, ["a2"], "stale", T0)],
    )
    plans = query_plans(
        outbox,
        lambda: outbox.retention.prune(T0 + 100, delivered_for=50),
        ("DELETE FROM deliveries",),
    )
    assert len(plans) == 2, plans  # the delivered, the stale
    for plan in plans:
        made = {line.split()[1] for line in plan if line.startswith("MATERIALIZE ")}
        for line in plan:
            words = line.split()
            if words[0] not in ("SCAN", "SEARCH") or "VIRTUAL TABLE" in line:
                continue
            if words[1] in made or words[1] == "taken":
                continue
            # A delivery read is one of those it forgets (a stale one with its alert ids, to
            # keep those made after a dead letter of them), a dead letter, or one carrying the
            # alert of such a stale one (its key in carried, then the delivery by its id).
            assert (
                line.endswith(" USING INDEX dead_letters")
                or line == "SEARCH carried USING PRIMARY KEY (alert_id=?)"
                or line == "SEARCH newer USING INDEX sqlite_autoindex_deliveries_1 (id=?)"
                or (
                    line.startswith(
                        ("SEARCH deliveries USING COVERING INDEX ", "SEARCH later USING INDEX ")
                    )
                    and line.endswith(" AND finished_at<?)")
                )
            ), plans
    assert any(line.startswith("SEARCH taken USING PRIMARY KEY") for line in plans[0]), plans
