"""The SQLite outbox: alert state transitions, grouping, attempts, dead letters, durability."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.sinks.alerts.outbox import HISTORY_KEPT, Outbox
from bridge.sinks.alerts.records import (
    AlertRecord,
    AlertState,
    DeliveryState,
    HistoryEntry,
    HistoryEvent,
)
from bridge.sinks.alerts.sources import AlertEvent
from bridge.sinks.alerts.tables import connect
from tests.sinks.alerts.helpers import T0, observe, stored

URL = "http://127.0.0.1:9/hook"
AT = datetime.fromtimestamp(T0, UTC)


def event(
    alert_id: str = "node_failure:n1", status: str = "firing", **changes: object
) -> AlertEvent:
    """An alert event with sensible defaults."""
    base = AlertEvent(
        alert_id=alert_id,
        alertname="node_failure",
        status="firing",
        severity="critical",
        category="system",
        node="n1",
        title="node n1 is down",
        description="silent",
        requires_ack=True,
        at=AT,
    )
    return replace(base, status=status, **changes)  # type: ignore[arg-type]


def one_each(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
    """A payload builder: one delivery per alert, the body being the alert id."""
    return [(r.alert_id.encode(), [r.alert_id]) for r in records]


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    """An outbox with one webhook URL."""
    box = Outbox.in_dir(tmp_path / "state", urls=[URL])
    yield box
    box.close()


def test_database_is_wal_and_fsyncs_every_commit(outbox: Outbox) -> None:
    """The file uses the WAL journal, and its connections synchronous=FULL."""
    plain = sqlite3.connect(outbox.path)
    assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plain.close()
    db = connect(outbox.path)  # how the outbox (and the CLI) open the file
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db.close()


RECORD_FIELDS = [field.name for field in fields(AlertRecord)]


def columns(path: Path) -> list[str]:
    """The alerts table's columns, in order."""
    db = sqlite3.connect(path)
    try:
        return [row[1] for row in db.execute("PRAGMA table_info(alerts)")]
    finally:
        db.close()


def test_the_alerts_table_holds_the_record_fields_in_order(outbox: Outbox) -> None:
    """Each column of the alerts table is the AlertRecord field of the same position."""
    assert columns(outbox.path) == RECORD_FIELDS


def seed(path: Path, statement: str, params: Sequence[object] = ()) -> None:
    """Write a row into the outbox file through a connection of our own (committed at once)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(statement, params)
    finally:
        db.close()


def test_firing_twice_notifies_once(outbox: Outbox) -> None:
    """An alert already firing at the same severity is not queued again."""
    assert observe(outbox, event(), T0) is not None
    assert observe(outbox, event(), T0 + 1) is None
    assert outbox.depth().queued == 1


def test_severity_change_renotifies_and_keeps_the_start(outbox: Outbox) -> None:
    """A firing alert whose severity changes is notified again with its original start."""
    observe(outbox, event(severity="warning"), T0)
    changed = observe(outbox, event(severity="critical"), T0 + 5)
    assert changed is not None
    assert changed.severity == "critical"
    assert changed.starts_at == T0


def test_resolve_of_unknown_alert_is_ignored(outbox: Outbox) -> None:
    """A condition clearing that never fired (or fired below the filter) sends nothing."""
    assert observe(outbox, event(status="resolved"), T0) is None
    assert outbox.depth().queued == 0


def test_life_cycle_firing_acknowledged_resolved(outbox: Outbox) -> None:
    """Firing, then acknowledged, then resolved by the condition clearing."""
    observe(outbox, event(), T0)
    acked = outbox.acknowledge("node_failure:n1", "ops", T0 + 10, ack_note="looking")
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
    assert outbox.acknowledge("nope", "ops", T0) is None


def test_acknowledging_with_a_resolution_resolves_and_notifies(outbox: Outbox) -> None:
    """An ack carrying a resolution ends the alert and queues the resolve notification."""
    observe(outbox, event(), T0)
    outbox.group(URL, T0, 0.0, one_each)
    done = outbox.acknowledge("node_failure:n1", "ops", T0 + 1, resolution="rebooted")
    assert done is not None
    assert done.state is AlertState.RESOLVED
    assert outbox.depth().queued == 1


def test_refiring_after_resolve_starts_a_new_episode(outbox: Outbox) -> None:
    """A resolved alert that fires again is firing at level1 with no acknowledgement."""
    observe(outbox, event(), T0)
    outbox.acknowledge("node_failure:n1", "ops", T0 + 1)
    observe(outbox, event(status="resolved"), T0 + 2)
    again = observe(outbox, event(), T0 + 3)
    assert again is not None
    assert (again.state, again.level, again.ack_by) == (AlertState.FIRING, 1, None)


def test_grouping_waits_for_the_window_then_takes_everything(outbox: Outbox) -> None:
    """Queued alerts become deliveries only once the oldest waited the group window."""
    observe(outbox, event("a"), T0)
    observe(outbox, event("b"), T0 + 0.2)
    assert outbox.group(URL, T0 + 0.4, 0.5, one_each) == 0
    assert outbox.next_wake(URL, 0.5) == T0 + 0.5
    assert outbox.group(URL, T0 + 0.5, 0.5, one_each) == 2
    assert outbox.depth().queued == 0
    due = outbox.next_due(URL, T0 + 0.5)
    assert due is not None
    assert due.body == b"a"


def test_attempts_retry_dead_letter_and_manual_retry(outbox: Outbox) -> None:
    """A delivery keeps its id and body across attempts, dead-letters, and comes back on retry
    due at once, with a fresh deadline and the attempts made so far still counted."""
    observe(outbox, event(), T0)
    outbox.group(URL, T0, 0.0, one_each)
    first = outbox.next_due(URL, T0)
    assert first is not None
    outbox.finish_attempt(
        first.id,
        state=DeliveryState.PENDING,
        next_attempt_at=T0 + 2,
        status=503,
        error="HTTP 503",
        now=T0,
    )
    assert outbox.next_due(URL, T0 + 1) is None
    second = outbox.next_due(URL, T0 + 2)
    assert second is not None
    assert (second.id, second.body, second.attempts) == (first.id, first.body, 1)
    outbox.finish_attempt(
        first.id,
        state=DeliveryState.DEAD,
        next_attempt_at=T0 + 2,
        status=400,
        error="HTTP 400",
        now=T0 + 2,
    )
    assert outbox.depth().dead == 1
    assert outbox.next_due(URL, T0 + 100) is None
    assert outbox.retry(T0 + 200, ["other"]) == 0
    assert outbox.retry(T0 + 200) == 1
    revived = outbox.next_due(URL, T0 + 200)
    assert revived is not None
    assert (revived.id, revived.attempts, revived.created_at) == (first.id, 2, T0 + 200)
    assert [d.id for d in outbox.deliveries(ids=[first.id, "other"])] == [first.id]
    assert outbox.deliveries(ids=[]) == []


def test_a_wall_clock_set_back_holds_no_queued_alert_or_retry_back(outbox: Outbox) -> None:
    """After the wall clock is set back an hour, a retry planned before the jump is due at
    once, not an hour on, and alerts queued before it are grouped at once (their wait is
    over); the retries planned after the jump, and the alerts queued after it, wait their
    time."""
    hour = 3600.0

    def attempted(delivery_id: str, state: DeliveryState, now: float, then: float) -> None:
        outbox.finish_attempt(
            delivery_id, state=state, next_attempt_at=then, status=503, error=None, now=now
        )

    observe(outbox, event("a"), T0)
    assert outbox.group(URL, T0 + 1, 0.5, one_each) == 1
    first = outbox.next_due(URL, T0 + 1)
    assert first is not None
    attempted(first.id, DeliveryState.PENDING, T0 + 1, T0 + 3)
    observe(outbox, event("b"), T0 + 2)
    assert outbox.next_due(URL, T0 + 2) is None  # the clock steady: the retry waits
    assert outbox.group(URL, T0 + 2.1, 0.5, one_each) == 0
    back = T0 - hour
    due = outbox.next_due(URL, back)
    assert due is not None
    assert due.id == first.id
    attempted(first.id, DeliveryState.PENDING, back, back + 2)
    assert outbox.next_due(URL, back + 1) is None  # its backoff, on this clock
    assert outbox.next_due(URL, back + 2) is not None
    attempted(first.id, DeliveryState.DELIVERED, back + 2, back + 2)
    assert outbox.group(URL, back + 2, 0.5, one_each) == 1  # b, queued before the jump
    observe(outbox, event("c"), back + 3)
    assert outbox.group(URL, back + 3.1, 0.5, one_each) == 0  # c, queued after it, waits


def test_a_receivers_deliveries_go_out_in_the_order_they_were_made(outbox: Outbox) -> None:
    """A later delivery waits behind an earlier one whose retry is not due yet, and the worker
    is told to wake when that retry is due (not at once, which would spin)."""
    observe(outbox, event(), T0)
    outbox.group(URL, T0, 0.0, one_each)
    firing = outbox.next_due(URL, T0)
    assert firing is not None
    outbox.finish_attempt(
        firing.id,
        state=DeliveryState.PENDING,
        next_attempt_at=T0 + 10,
        status=503,
        error="HTTP 503",
        now=T0,
    )
    observe(outbox, event(status="resolved"), T0 + 1)
    assert outbox.group(URL, T0 + 1, 0.0, one_each) == 1
    assert outbox.next_due(URL, T0 + 1) is None
    assert outbox.next_wake(URL, 0.0) == T0 + 10
    again = outbox.next_due(URL, T0 + 10)
    assert again is not None
    assert again.id == firing.id


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
        created.append(outbox.group(URL, T0, 0.0, one_each, keep))
    assert created == [1, 1, 1, 0, 1]
    assert asked == [
        ("critical", "firing", False),
        ("warning", "firing", True),
        ("warning", "resolved", True),
        ("warning", "firing", False),
        ("critical", "firing", False),
    ]


def test_an_alert_taken_over_from_another_holder_counts_as_told_to_every_receiver(
    outbox: Outbox, tmp_path: Path
) -> None:
    """An open alert adopted from the holders' record (Redis) was perhaps sent to any receiver
    by the holder before: each hears its later changes, below its filter too."""
    other = Outbox.in_dir(tmp_path / "other", urls=[URL])
    observe(other, event(), T0)
    [kept] = other.alerts()
    other.close()
    assert outbox.adopt_open_alerts({kept.alert_id: kept}, T0 + 1) == 1
    observe(outbox, event(severity="warning"), T0 + 2)
    assert outbox.group(URL, T0 + 2, 0.0, one_each, lambda r, told: told) == 1


def test_an_alert_open_here_too_counts_as_told_once_taken_over(
    outbox: Outbox, tmp_path: Path
) -> None:
    """An alert this replica holds open from before (a warning) but another holder changed
    (critical, paged) counts as told to every receiver when the lease comes back."""
    observe(outbox, event(severity="warning"), T0)
    other = Outbox.in_dir(tmp_path / "other", urls=[URL])
    observe(other, event(), T0 + 1)
    [kept] = other.alerts()
    other.close()
    assert outbox.adopt_open_alerts({kept.alert_id: kept}, T0 + 2) == 1
    observe(outbox, event(status="resolved"), T0 + 3)
    assert outbox.group(URL, T0 + 3, 0.0, one_each, lambda r, told: told) == 1


def test_everything_survives_reopening(tmp_path: Path) -> None:
    """A new Outbox on the same directory sees the alerts, queue and deliveries."""
    box = Outbox.in_dir(tmp_path, urls=[URL])
    observe(box, event("a"), T0)
    observe(box, event("b"), T0)
    box.group(URL, T0, 0.0, one_each)
    observe(box, event("c"), T0 + 1)
    box.close()
    box.close()  # idempotent
    again = Outbox.in_dir(tmp_path, urls=[URL])
    assert {a.alert_id for a in again.alerts()} == {"a", "b", "c"}
    depth = again.depth()
    assert (depth.queued, depth.pending, depth.dead) == (1, 2, 0)
    again.close()


def test_escalation_steps_one_level_per_period_up_to_level3(outbox: Outbox) -> None:
    """An unacknowledged requires_ack alert climbs one level per period and stops at level3."""
    observe(outbox, event(), T0)
    observe(outbox, event("quiet", requires_ack=False), T0)
    assert outbox.escalate_due(T0 + 59, 60) == []
    [step] = outbox.escalate_due(T0 + 60, 60)
    assert (step.from_level, step.to_level) == ("level1", "level2")
    assert step.alert.labels["escalation_level"] == "level2"
    [step] = outbox.escalate_due(T0 + 120, 60)
    assert step.to_level == "level3"
    assert outbox.escalate_due(T0 + 1000, 60) == []


def test_acknowledged_alerts_do_not_escalate(outbox: Outbox) -> None:
    """Acknowledging stops escalation."""
    observe(outbox, event(), T0)
    outbox.acknowledge("node_failure:n1", "ops", T0 + 1)
    assert outbox.escalate_due(T0 + 1000, 60) == []


def test_prune_forgets_old_delivered_and_resolved(outbox: Outbox) -> None:
    """Delivered deliveries and resolved alerts past their keep time are removed; dead ones stay."""
    observe(outbox, event("a"), T0)
    observe(outbox, event("b"), T0)
    outbox.group(URL, T0, 0.0, one_each)
    a, b = outbox.next_due(URL, T0), None
    assert a is not None
    outbox.finish_attempt(
        a.id, state=DeliveryState.DELIVERED, next_attempt_at=T0, status=200, error=None, now=T0
    )
    b = outbox.next_due(URL, T0)
    assert b is not None
    outbox.finish_attempt(
        b.id, state=DeliveryState.DEAD, next_attempt_at=T0, status=400, error="HTTP 400", now=T0
    )
    observe(outbox, event("a", status="resolved"), T0)
    outbox.group(URL, T0, 0.0, one_each)
    assert outbox.prune(T0 + 100, delivered_for=50, resolved_for=50) >= 2
    assert sorted(d.state for d in outbox.deliveries()) == [
        DeliveryState.DEAD,
        DeliveryState.PENDING,
    ]
    assert {a.alert_id for a in outbox.alerts()} == {"b"}


def test_a_batch_is_one_transaction_all_or_nothing(outbox: Outbox) -> None:
    """apply() commits a whole batch at once: a failure midway leaves none of it stored."""
    broken = event("bad", alertname=None)  # NOT NULL violated when stored
    with pytest.raises(sqlite3.IntegrityError):
        outbox.apply([event("ok1"), event("ok2"), broken], T0)
    assert outbox.alerts() == []
    applied = outbox.apply([event("ok1"), event("ok2"), event("ok1", "resolved")], T0)
    assert [r.alert_id for r in applied.changed] == ["ok1", "ok2"]
    assert stored(outbox, "ok1").state is AlertState.RESOLVED  # type: ignore[union-attr]


def test_new_alerts_beyond_max_open_are_refused(outbox: Outbox) -> None:
    """Past max_open open alerts new ones are refused; a resolve frees a place."""
    applied = outbox.apply([event(f"a{n}") for n in range(4)], T0, max_open=3)
    assert (len(applied.changed), applied.refused) == (3, 1)
    applied = outbox.apply([event("a0", "resolved"), event("a3")], T0 + 1, max_open=3)
    assert (len(applied.changed), applied.refused) == (2, 0)


def test_event_alerts_resolve_after_the_timeout_unless_they_need_ack(outbox: Outbox) -> None:
    """Unseen event alerts resolve; requires_ack ones after their ack; conditions never."""
    outbox.apply(
        [
            event("ev", auto_resolve=True, requires_ack=False),
            event("ack-me", auto_resolve=True, requires_ack=True),
            event("condition", auto_resolve=False, requires_ack=False),
        ],
        T0,
    )
    assert outbox.resolve_expired(T0 + 299, 300) == []
    [resolved] = outbox.resolve_expired(T0 + 300, 300)
    assert (resolved.alert_id, resolved.ends_at) == ("ev", T0 + 300)
    outbox.acknowledge("ack-me", "ops", T0 + 400)
    assert outbox.resolve_expired(T0 + 600, 300) == []
    assert [r.alert_id for r in outbox.resolve_expired(T0 + 700, 300)] == ["ack-me"]
    assert stored(outbox, "condition").state is AlertState.FIRING  # type: ignore[union-attr]
    assert outbox.active_counts() == {"critical": 1}


def test_a_version_1_file_gains_the_new_columns(tmp_path: Path) -> None:
    """An outbox written by the first schema opens, keeps its alerts and takes new fields."""
    path = tmp_path / "alerts.sqlite3"
    db = sqlite3.connect(path)
    old_schema = _v1_schema()
    db.executescript(old_schema)
    db.execute(
        "INSERT INTO alerts VALUES ('old', 'x', 'warning', 'system', 'n1', 't', 'd', 0,"
        " 'firing', 1, 1.0, 1.0, NULL, 1.0, NULL, NULL, NULL, NULL)"
    )
    db.commit()
    db.close()
    box = Outbox(path)
    try:
        assert columns(path) == RECORD_FIELDS  # the new columns come last, as in a new file
        assert stored(box, "old").auto_resolve is False  # type: ignore[union-attr]
        box.apply([event("new", auto_resolve=True)], T0)
        assert stored(box, "new").auto_resolve is True  # type: ignore[union-attr]
    finally:
        box.close()


def _v1_schema() -> str:
    """The alerts table as the first released schema wrote it."""
    return """
    CREATE TABLE alerts (
        alert_id TEXT PRIMARY KEY,
        alertname TEXT NOT NULL,
        severity TEXT NOT NULL,
        category TEXT NOT NULL,
        node TEXT NOT NULL,
        title TEXT NOT NULL,
        description TEXT NOT NULL,
        requires_ack INTEGER NOT NULL,
        state TEXT NOT NULL,
        level INTEGER NOT NULL,
        starts_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        ends_at REAL,
        level_since REAL NOT NULL,
        ack_by TEXT,
        ack_note TEXT,
        ack_at REAL,
        resolution TEXT
    );
    """


# What each earlier version's file held beyond the one before it (version 1: ``_v1_schema``
# and the queues), and the user_version it read.
_V1_QUEUES = """
CREATE TABLE queued (
    url TEXT NOT NULL, alert_id TEXT NOT NULL, queued_at REAL NOT NULL,
    PRIMARY KEY (url, alert_id)
);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, body BLOB NOT NULL, alert_ids TEXT NOT NULL,
    created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
    state TEXT NOT NULL, last_status INTEGER, last_error TEXT, finished_at REAL
);
"""
_V2_COLUMNS = """
ALTER TABLE alerts ADD COLUMN auto_resolve INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN last_seen REAL;
"""
_V3_HISTORY = """
CREATE TABLE history (alert_id TEXT NOT NULL, at REAL NOT NULL, event TEXT NOT NULL,
    detail TEXT NOT NULL);
INSERT INTO history VALUES ('old', 1.0, 'fired', 'warning on n1');
"""
_V4_META = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
INSERT INTO meta VALUES ('receiver_secret', x'00112233445566778899aabbccddeeff');
"""
_V5_PLANS = """
CREATE TABLE plans (id TEXT PRIMARY KEY, stored_at REAL NOT NULL);
"""
# Version 1 never set user_version (0, as a new file).
_EARLIER_VERSIONS = [
    (0, _V1_QUEUES),
    (2, _V2_COLUMNS),
    (3, _V3_HISTORY),
    (4, _V4_META),
    (5, _V5_PLANS),
]
CURRENT_VERSION = 6
ALL_TABLES = frozenset({"alerts", "queued", "deliveries", "history", "meta", "plans", "told"})


def schema(path: Path) -> tuple[int, frozenset[str]]:
    """The file's user_version and its tables."""
    db = sqlite3.connect(path)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        names = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return int(version), frozenset(row[0] for row in names)
    finally:
        db.close()


def _earlier_file(path: Path, upto: int) -> int:
    """An outbox file as the ``upto``-th earlier version (0: version 1) left it, holding an open
    alert, it queued for ``URL`` and a pending delivery of it; returns its user_version."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.executescript(_v1_schema())
        for _, script in _EARLIER_VERSIONS[: upto + 1]:
            db.executescript(script)
        db.execute(
            "INSERT INTO alerts (alert_id, alertname, severity, category, node, title,"
            " description, requires_ack, state, level, starts_at, updated_at, ends_at,"
            " level_since) VALUES ('old', 'x', 'warning', 'system', 'n1', 't', 'd', 0, 'firing',"
            " 1, 1.0, 1.0, NULL, 1.0)"
        )
        db.execute("INSERT INTO queued VALUES (?, 'old', 1.0)", (URL,))
        db.execute(
            "INSERT INTO deliveries (id, url, body, alert_ids, created_at, next_attempt_at, state)"
            " VALUES ('d-old', ?, x'7b7d', '[\"old\"]', 1.0, 1.0, 'pending')",
            (URL,),
        )
        version = _EARLIER_VERSIONS[upto][0]
        db.execute(f"PRAGMA user_version={version}")
        return version
    finally:
        db.close()


@pytest.mark.parametrize(
    "upto",
    range(len(_EARLIER_VERSIONS)),
    ids=[f"version {max(v, 1)}" for v, _ in _EARLIER_VERSIONS],
)
def test_a_file_of_any_earlier_version_is_upgraded_to_the_current_one(
    tmp_path: Path, upto: int
) -> None:
    """A file of each earlier version opens at the current one with every table, keeps what it
    held (alert, queue, delivery, history, receiver secret; one made once when it had none),
    and stores plans once and their history."""
    path = tmp_path / "alerts.sqlite3"
    version = _earlier_file(path, upto)
    box = Outbox(path, urls=[URL])
    try:
        assert columns(path) == RECORD_FIELDS  # the new columns come last, as in a new file
        assert schema(path) == (CURRENT_VERSION, ALL_TABLES)
        old = box.alert("old")
        assert old is not None
        assert old.state is AlertState.FIRING
        assert old.auto_resolve is False
        assert box.depth() == box.depth().__class__(1, 1, 0)
        kept_history = [e.event for e in box.detail("old").history]  # type: ignore[union-attr]
        assert kept_history == ([HistoryEvent.FIRED] if version >= 3 else [])
        plan = box.plan([event("new", auto_resolve=True), event("old", status="resolved")], T0)
        assert sorted(r.alert_id for r in box.commit(plan).changed) == ["new", "old"]
        assert box.commit(plan).changed == []  # stored once
        assert box.alert("new").auto_resolve is True  # type: ignore[union-attr]
        assert [e.event for e in box.detail("new").history] == [HistoryEvent.FIRED]  # type: ignore[union-attr]
        secret = box.receiver_secret
        if version >= 4:
            assert secret == bytes.fromhex("00112233445566778899aabbccddeeff")
        else:
            assert len(secret) == 32
    finally:
        box.close()
    again = Outbox(path)
    assert again.receiver_secret == secret
    again.close()


def test_a_new_file_starts_at_the_current_version(tmp_path: Path) -> None:
    """A file made afresh has the current version and every table of it."""
    box = Outbox.in_dir(tmp_path)
    box.close()
    assert schema(box.path) == (CURRENT_VERSION, ALL_TABLES)


def test_orphaned_work_is_dead_lettered_and_stays_retryable(tmp_path: Path) -> None:
    """Work for an unconfigured URL goes dead with a reason and stays retryable."""
    gone = "http://127.0.0.1:9/gone"
    box = Outbox.in_dir(tmp_path, urls=[gone])
    box.apply([event("q1"), event("p1")], T0)
    box.close()
    seed(box.path, "DELETE FROM queued WHERE alert_id = 'p1'")
    seed(
        box.path,
        "INSERT INTO deliveries (id, url, body, alert_ids, created_at, next_attempt_at, state)"
        " VALUES ('d-p1', ?, x'7b7d', '[\"p1\"]', ?, ?, 'pending')",
        (gone, T0, T0),
    )
    box = Outbox.in_dir(tmp_path, urls=[URL])
    try:
        assert box.dead_letter_orphans(T0 + 1, one_each) == 2
        assert box.depth() == box.depth().__class__(0, 0, 2)
        dead = box.deliveries(DeliveryState.DEAD.value)
        assert {d.alert_ids for d in dead} == {("q1",), ("p1",)}
        assert all("EXESDB_WEBHOOK_URLS" in (d.last_error or "") for d in dead)
        assert box.dead_letter_orphans(T0 + 2, one_each) == 0
        assert box.retry(T0 + 3) == 2
    finally:
        box.close()


def test_what_waits_under_a_raw_url_moves_to_the_receiver_key(tmp_path: Path) -> None:
    """Rows keyed by a webhook URL (version 2) move to the receiver's key: queued alerts (one
    already queued under the new key keeps its place) and deliveries of every state."""
    key = "http://127.0.0.1:9/…#0123456789abcdef"
    old = Outbox.in_dir(tmp_path, urls=[URL])
    observe(old, event("a1"), T0)
    observe(old, event("a2"), T0)
    assert old.group(URL, T0 + 1, 0.0, one_each) == 2
    observe(old, event("a3"), T0 + 2)
    old.close()
    box = Outbox.in_dir(tmp_path, urls=[key])
    observe(box, event("a3", status="resolved"), T0 + 3)  # a3 now queued under both keys
    assert box.move_receiver_rows(URL, key) == 2  # the deliveries; a3's old queue row is dropped
    assert {d.url for d in box.deliveries()} == {key}
    assert box.move_receiver_rows(URL, key) == 0
    assert box.group(key, T0 + 10, 0.0, one_each) == 1  # a3, once
    assert box.depth().pending == 3
    box.close()


# -- an alert's detail (its page) --


def test_detail_tells_the_history_in_order(outbox: Outbox) -> None:
    """Fired, escalated, acknowledged and resolved are recorded with their times, in order."""
    observe(outbox, event(), T0)
    observe(outbox, event(), T0 + 1)  # seen again: nothing to record
    outbox.escalate_due(T0 + 60, 60)
    outbox.acknowledge("node_failure:n1", "ops", T0 + 70, ack_note="rebooting")
    observe(outbox, event(status="resolved"), T0 + 80)
    detail = outbox.detail("node_failure:n1")
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
    outbox.group(URL, T0, 0.0, one_each)
    observe(outbox, event("a1", severity="warning"), T0 + 5)  # queued again, not yet grouped
    detail = outbox.detail("a1")
    assert detail is not None
    assert [d.alert_ids for d in detail.deliveries] == [("a1",)]
    assert detail.waiting == ((URL, T0 + 5),)
    outbox.group(URL, T0 + 5, 0.0, one_each)
    again = outbox.detail("a1")
    assert again is not None
    assert [d.created_at for d in again.deliveries] == [T0 + 5, T0]
    assert again.waiting == ()
    assert outbox.detail("unknown") is None


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
    outbox.prune(T0 + 1000, delivered_for=10_000, resolved_for=500)
    assert outbox.detail("old") is None
    db = sqlite3.connect(outbox.path)
    try:
        assert db.execute("SELECT COUNT(*) FROM history WHERE alert_id = 'old'").fetchone() == (0,)
    finally:
        db.close()
    flapping = outbox.detail("flapping")
    assert flapping is not None
    assert len(flapping.history) == HISTORY_KEPT
    assert flapping.history[-1] == HistoryEntry(T0 + 1000, HistoryEvent.FIRED, "critical on n1")


def test_dead_letters_are_forgotten_once_older_than_their_keep_time(outbox: Outbox) -> None:
    """A delivery dead-lettered longer ago than the keep time is deleted; a younger dead letter,
    a pending and a delivered one stay (and their alerts)."""
    for alert_id in ("old", "young", "pending", "done"):
        observe(outbox, event(alert_id), T0)
    outbox.group(URL, T0, 0.0, one_each)
    died = {"old": T0, "young": T0 + 500}
    finished = {"done": DeliveryState.DELIVERED}
    for delivery in outbox.deliveries():
        [alert_id] = delivery.alert_ids
        if alert_id in died:
            state, at = DeliveryState.DEAD, died[alert_id]
        elif alert_id in finished:
            state, at = finished[alert_id], T0
        else:
            continue
        outbox.finish_attempt(
            delivery.id, state=state, next_attempt_at=at, status=401, error="HTTP 401", now=at
        )
    assert outbox.forget_dead_letters(T0 + 1000, older_than=600) == 1
    left = {d.alert_ids[0]: d.state for d in outbox.deliveries()}
    assert left == {
        "young": DeliveryState.DEAD,
        "pending": DeliveryState.PENDING,
        "done": DeliveryState.DELIVERED,
    }
    assert outbox.depth().dead == 1
    assert len(outbox.alerts()) == 4


def test_a_receiver_sent_an_alert_before_version_6_hears_of_its_later_changes(
    tmp_path: Path,
) -> None:
    """A version 5 file's open alert that a receiver has a delivery of counts as told to it
    once upgraded, so its resolve reaches a receiver whose filter would now leave it out."""
    path = tmp_path / "alerts.sqlite3"
    assert _earlier_file(path, 4) == 5  # 'old', a warning, in a pending delivery for URL
    box = Outbox(path, urls=[URL])
    try:
        observe(box, event("old", status="resolved"), T0)

        def critical_only(record: AlertRecord, told: bool) -> bool:
            return told or record.severity == "critical"

        assert box.group(URL, T0, 0.0, one_each, critical_only) == 1
        assert box.depth().pending == 2  # the firing waiting since version 5, then its resolve
    finally:
        box.close()


def test_the_outbox_and_its_state_dir_are_readable_by_the_bridges_user_only(
    tmp_path: Path,
) -> None:
    """The state dir is made 0700 and the outbox file (alert bodies, the receiver keys' secret)
    and its WAL and shared-memory files 0600, under the usual umask of 022."""
    umask = os.umask(0o022)
    try:
        box = Outbox.in_dir(tmp_path / "state", urls=[URL])
    finally:
        os.umask(umask)
    try:
        assert observe(box, event(), T0) is not None
        made = sorted((tmp_path / "state").iterdir())
        assert {path.name for path in made} >= {"alerts.sqlite3", "alerts.sqlite3-wal"}
        assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
        for path in made:
            assert path.stat().st_mode & 0o777 == 0o600, path.name
    finally:
        box.close()


def test_an_outbox_file_an_earlier_version_left_readable_is_made_private(tmp_path: Path) -> None:
    """A 0644 outbox file (and WAL file) from before is set to 0600 when it is opened."""
    box = Outbox.in_dir(tmp_path, urls=[URL])
    observe(box, event(), T0)
    box.close()
    for name in ("alerts.sqlite3", "alerts.sqlite3-wal"):
        if (tmp_path / name).exists():
            (tmp_path / name).chmod(0o644)
    box = Outbox.in_dir(tmp_path, urls=[URL])
    try:
        assert (tmp_path / "alerts.sqlite3").stat().st_mode & 0o777 == 0o600
    finally:
        box.close()
