"""A stateful fuzz of the alert outbox: whatever fires, resolves and fires again while receivers
fail, time out, take attempts whose answers are lost, and (as a replica takes the work-queue
lease up) have notifications left out of an attempt in flight, once every receiver is back and
the queue drained each receiver's last word on each alert is its state, as its filters allow."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bridge.receivers import Receiver, resolve_receivers
from bridge.sinks.alerts.delivery import keep_for
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.payload import alerts_told, build_payloads
from bridge.sinks.alerts.records import AlertRecord, AlertState, Delivery, DeliveryState
from bridge.sinks.alerts.sources import meets
from tests.sinks.alerts.helpers import T0, event, observe

_ALERTS = ("a", "b")
_SEVERITIES = ("warning", "critical")
# An attempt's outcome as the receiver and the outbox each see it: taken or not, and recorded as.
_OUTCOMES = (
    (True, DeliveryState.DELIVERED),
    (False, DeliveryState.PENDING),  # failed, retried
    (False, DeliveryState.DEAD),  # the deadline passed
    (True, DeliveryState.PENDING),  # taken, the answer lost: retried
    (True, DeliveryState.DEAD),  # taken, the answer lost past the deadline
)
_STEPS = st.lists(
    st.tuples(
        # Weighted by repeats; an outbox retry by hand, rare, puts dead letters back.
        st.sampled_from(
            ("fire",) * 2 + ("resolve", "group") + ("attempt",) * 3 + ("renotify", "retry")
        ),
        st.integers(0, 2),
        st.integers(0, len(_OUTCOMES) - 1),
        st.integers(0, 7),  # which alerts of an attempt in flight are left out (bits)
    ),
    min_size=20,
    max_size=60,
)


def _receivers() -> dict[str, Receiver]:
    """Three receivers: every alert and resolve, critical ones only, no resolves."""
    [base], _ = resolve_receivers(
        ["http://127.0.0.1:9/hook"],
        None,
        secret=None,
        timeout=7.0,
        max_alerts=2,
        min_severity="info",
    )
    return {
        "all": dataclasses.replace(base, key="all"),
        "critical": dataclasses.replace(base, key="critical", min_severity="critical"),
        "no-resolves": dataclasses.replace(base, key="no-resolves", send_resolved=False),
    }


def _build(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
    """The bridge's payloads, two alerts each (siblings split a group)."""
    return build_payloads(records, max_alerts=2, external_url="http://bridge")


class _World:
    """One outbox, its receivers and what each receiver was last told of each alert."""

    def __init__(self, lease_take_ups: bool) -> None:
        self.receivers = _receivers()
        self.keep = {key: keep_for(receiver) for key, receiver in self.receivers.items()}
        self.box = Outbox(":memory:", urls=list(self.receivers))
        self.heard: dict[str, dict[str, str]] = {key: {} for key in self.receivers}
        # Of each receiver, the alerts it is owed a resolve of, told of them or not: ever open
        # at or above its min_severity (docs/alerts.md, Filters: an alert is judged by its most
        # severe state in a window, held or not; one that fired and resolved in it is sent its
        # resolve alone).
        self.owed: dict[str, set[str]] = {key: set() for key in self.receivers}
        self.now = T0
        self.lease_take_ups = lease_take_ups

    def state(self, alert_id: str) -> str | None:
        """The alert's state as a webhook tells it (None: never fired)."""
        record = self.box.alerts.get(alert_id)
        if record is None:
            return None
        return "resolved" if record.state is AlertState.RESOLVED else "firing"

    def take(self, key: str, body: bytes) -> None:
        """The receiver of ``key`` takes ``body``."""
        for alert_id, (status, _) in alerts_told(body).items():
            self.heard[key][alert_id] = status

    def attempt(self, key: str, outcome: int, left_out: int) -> None:
        """The receiver's oldest pending delivery, vetted as its worker vets it, sent once."""
        due = self.box.queue.next_due(key, self.now + 3600)
        if due is not None and not self.receivers[key].send_resolved:
            gone = [a for a in due.alert_ids if self.state(a) == "resolved"]
            due = self.box.queue.withhold(due.id, gone, self.now, "stale")[0] if gone else due
        if due is None:
            return
        if self.lease_take_ups:
            alert_ids = {a for i, a in enumerate(_ALERTS) if left_out >> i & 1}
            if left_out >> len(_ALERTS) & 1:
                self.resolve_elsewhere(due, alert_ids)
            else:
                self.take_lease_up(due, alert_ids)
        taken, state = _OUTCOMES[outcome]
        if taken:
            self.take(key, due.body)
        self.box.queue.finish_attempt(
            due.id, state=state, next_attempt_at=self.now, status=200 if taken else None,
            error=None if state is DeliveryState.DELIVERED else "timed out", now=self.now,
            sent=due,
        )  # fmt: skip
        self.check_rows()

    def take_lease_up(self, sent: Delivery, alert_ids: set[str]) -> None:
        """Leave ``alert_ids`` out of every notification waiting while ``sent`` is in flight,
        as a replica taking the lease up leaves out those whose note another replica took
        over: that one sends them (to each receiver the latest waiting of each), and the
        receivers count as told of the open ones (``adopt_open_alerts``)."""
        pending = self.box.queue.deliveries("pending")  # newest first
        with self.box.database.read() as db:
            waiting = [
                tuple(map(str, row)) for row in db.execute("SELECT url, alert_id FROM queued")
            ]
        # Of sent's receiver, only alerts whose latest notification is sent's: an older one
        # reaching it after the newer is what docs/redis.md says remains.
        later = {a for d in pending if d.url == sent.url and d.id != sent.id for a in d.alert_ids}
        later |= {a for url, a in waiting if url == sent.url}
        left_out = alert_ids.intersection(sent.alert_ids).difference(later)
        if not left_out:
            return
        for delivery in reversed(pending):
            told = alerts_told(delivery.body)
            self.heard[delivery.url].update({a: told[a][0] for a in left_out if a in told})
        for url, alert_id in waiting:
            record = self.box.alerts.get(alert_id)
            if alert_id in left_out and record is not None and self.keep[url](record, True):
                self.heard[url][alert_id] = self.state(alert_id) or ""
        self.box.queue.withhold_everywhere(left_out, self.now, "stale: taken over")
        self.box.queue.tell_all(a for a in left_out if self.state(a) == "firing")

    def resolve_elsewhere(self, sent: Delivery, alert_ids: set[str]) -> None:
        """While ``sent`` is in flight, another replica resolved those of ``alert_ids`` it
        fires and told every receiver so (it counts each told of the alerts it adopted); this
        one, taking the lease up, leaves every notification of theirs waiting out and adopts
        the open alerts Redis keeps."""
        resolved = {a for a in alert_ids.intersection(sent.alert_ids) if self.state(a) == "firing"}
        if not resolved:
            return
        for key, receiver in self.receivers.items():  # each counted told as it took them up
            if receiver.send_resolved:
                self.heard[key].update({a: "resolved" for a in resolved})
        self.box.queue.withhold_everywhere(resolved, self.now, "stale: newer elsewhere")
        kept = {
            a: record
            for a in _ALERTS
            if a not in resolved and (record := self.box.alerts.get(a)) is not None and record.open
        }
        self.box.alerts.adopt_open_alerts(kept, self.now)

    def check_rows(self) -> None:
        """Which deliveries carry each alert, and what each receiver took, follow the rows."""
        with self.box.database.read() as db:
            pairs = "SELECT sent.value, {} FROM deliveries, json_each(alert_ids) AS sent"
            carried = set(map(tuple, db.execute("SELECT alert_id, delivery_id FROM carried")))
            assert carried == set(map(tuple, db.execute(pairs.format("deliveries.id"))))
            taken = set(map(tuple, db.execute("SELECT alert_id, delivery FROM taken")))
            delivered = pairs.format("deliveries.rowid") + " WHERE state = 'delivered'"
            assert taken == set(map(tuple, db.execute(delivered)))

    def owe(self, alert_id: str) -> None:
        """Each receiver whose filters take ``alert_id`` as it stands, open, is owed its end."""
        record = self.box.alerts.get(alert_id)
        if record is not None and record.open:
            for key, owed in self.owed.items():
                if self.keep[key](record, False):
                    owed.add(alert_id)

    def step(self, kind: str, which: int, outcome: int, left_out: int) -> None:
        """One drawn step (``_STEPS``), a little later than the last."""
        self.now += 1 + which
        keys = list(self.receivers)
        if kind == "fire":
            severity = _SEVERITIES[outcome % 2]
            alert_id = _ALERTS[which % len(_ALERTS)]
            observe(self.box, event(alert_id, severity=severity, requires_ack=False), self.now)
            self.owe(alert_id)
        elif kind == "resolve":
            alert_id = _ALERTS[which % len(_ALERTS)]
            self.owe(alert_id)
            observe(self.box, event(alert_id, status="resolved"), self.now)
        elif kind == "group":  # every receiver's window closes
            for key in keys:
                self.box.queue.group(key, self.now, 0.0, _build, self.keep[key])
        elif kind == "attempt":
            self.attempt(keys[which], outcome, left_out)
        elif kind == "renotify":
            self.box.dead_letters.renotify(self.now, (0.0, 3.0, 30.0)[which])
        else:  # retry, leaving what a take-over left out since (``withhold``'s stale rows)
            left = [d.delivery_id for d in self.box.dead_letters.unretryable()]
            self.box.dead_letters.retry(self.now, leave=left)

    def drain(self) -> None:
        """Every receiver up: dead letters queued again, every window closed, all delivered."""
        for _ in range(10):
            self.now += 3600
            self.box.dead_letters.renotify(self.now, 0.0)
            for key in self.receivers:
                self.box.queue.group(key, self.now, 0.0, _build, self.keep[key])
                while self.box.queue.next_due(key, self.now) is not None:
                    self.attempt(key, 0, 0)
            depth = self.box.queue.depth()
            if not depth.queued and not depth.pending:
                return
        raise AssertionError(f"not drained: {self.box.queue.depth()}")

    def wrong(self) -> list[tuple[str, str, str, str | None]]:
        """(receiver, alert, its state, what the receiver last heard) where they disagree."""
        found = []
        for alert_id in _ALERTS:
            record = self.box.alerts.get(alert_id)
            if record is None:
                continue
            state = self.state(alert_id)
            for key, receiver in self.receivers.items():
                heard = self.heard[key].get(alert_id)
                if state == "firing" and meets(record.severity, receiver.min_severity):
                    right = heard == "firing"
                elif state == "resolved" and receiver.send_resolved:
                    owed = alert_id in self.owed[key]
                    right = heard == "resolved" if owed else heard in (None, "resolved")
                else:  # below its min_severity, or a resolve it does not take
                    right = True
                if not right:
                    found.append((key, alert_id, str(state), heard))
        return found


@settings(max_examples=100, deadline=None)
@given(steps=_STEPS, lease_take_ups=st.booleans())
@example(  # fired and resolved while its receiver's window was held: sent its resolve alone
    steps=[
        ("fire", 0, 1, 0),
        ("group", 0, 0, 0),
        ("attempt", 0, 1, 0),
        ("fire", 1, 0, 0),
        ("resolve", 1, 0, 0),
    ],
    lease_take_ups=False,
)
@example(  # critical, resolved, then a warning resolved, in a held window: a critical-only
    steps=[  # receiver is sent the resolve alone, judged by the window's most severe state
        ("fire", 1, 1, 0),
        ("group", 0, 0, 0),
        ("attempt", 1, 1, 0),
        ("fire", 0, 1, 0),
        ("resolve", 0, 0, 0),
        ("fire", 0, 0, 0),
        ("resolve", 0, 0, 0),
    ],
    lease_take_ups=False,
)
@example(  # resolved by another replica while a firing of it, left out, is in flight: taken
    steps=[("fire", 0, 1, 0), ("group", 0, 0, 0), ("attempt", 0, 0, 5)], lease_take_ups=True
)
@example(  # the same, the receiver's answer lost
    steps=[("fire", 0, 1, 0), ("group", 0, 0, 0), ("attempt", 0, 3, 5)], lease_take_ups=True
)
@example(  # a firing dead-lettered, retried by hand once another replica resolved it
    steps=[
        ("fire", 0, 1, 0),
        ("group", 0, 0, 0),
        ("attempt", 0, 2, 0),
        ("fire", 0, 0, 0),
        ("group", 0, 0, 0),
        ("attempt", 1, 1, 5),
        ("retry", 0, 0, 0),
    ],
    lease_take_ups=True,
)
@example(  # the same, no notification of it waiting here to be left out
    steps=[
        ("fire", 0, 1, 0),
        ("group", 0, 0, 0),
        ("attempt", 0, 2, 0),
        ("attempt", 1, 1, 5),
        ("retry", 0, 0, 0),
    ],
    lease_take_ups=True,
)
@example(  # a resolve dead-lettered while its alert, fired anew and resolved, waits
    steps=[
        ("fire", 0, 0, 0),
        ("group", 0, 0, 0),
        ("resolve", 0, 0, 0),
        ("group", 0, 0, 0),
        ("attempt", 0, 0, 0),
        ("fire", 0, 0, 0),
        ("resolve", 0, 0, 0),
        ("attempt", 0, 2, 0),
    ],
    lease_take_ups=False,
)
def test_every_receiver_ends_up_told_each_alerts_state(
    steps: list[tuple[str, int, int, int]], lease_take_ups: bool
) -> None:
    """Once every receiver is back and the queue drained, each receiver's last word on each
    alert is its state (firing at or above its min_severity; resolved with send_resolved, or
    never heard of if never open at or above its min_severity), whatever failed, timed out, was
    held in a window or was left out as stale while in flight."""
    world = _World(lease_take_ups)
    try:
        for step in steps:
            world.step(*step)
        world.drain()
        assert world.wrong() == [], json.dumps(world.heard)
    finally:
        world.box.close()


def _check_superseded(box: Outbox) -> None:
    """The SQL (``superseded``, the gauge's count) and what ``retry`` and the start-up hint
    read (``unretryable``) agree on which dead letters are superseded, and a dead letter left
    for an alert ``left_out`` as stale is one whose latest later delivery of it is stale."""
    dead = [d.id for d in box.queue.deliveries("dead", None)]
    in_sql = box.dead_letters.superseded(dead)
    assert box.dead_letters.superseded_count() == len(in_sql)
    left = box.dead_letters.unretryable()
    assert {d.delivery_id for d in left if d.superseded} == in_sql
    hint = box.dead_letters.resend_hint()
    assert (f"{len(in_sql)} superseded" in hint) == bool(in_sql), hint
    latest = (
        "SELECT later.state FROM deliveries AS letter, carried"
        " JOIN deliveries AS later ON later.id = carried.delivery_id"
        " WHERE letter.id = :id AND carried.alert_id = :alert_id AND later.url = letter.url"
        " AND later.rowid > letter.rowid ORDER BY later.rowid DESC LIMIT 1"
    )
    with box.database.read() as db:
        for delivery in left:
            for alert_id in delivery.left_out:
                found = db.execute(latest, {"id": delivery.delivery_id, "alert_id": alert_id})
                assert found.fetchone()[0] == "stale", (delivery, alert_id)


@settings(max_examples=200, deadline=None)
@given(steps=_STEPS, lease_take_ups=st.booleans())
@example(  # a firing dead-lettered, its resolve taken since: superseded, --all leaves it
    steps=[
        ("fire", 0, 0, 0),
        ("group", 0, 0, 0),
        ("resolve", 0, 0, 0),
        ("group", 0, 0, 0),
        ("attempt", 0, 2, 0),
        ("attempt", 0, 0, 0),
    ],
    lease_take_ups=False,
)
@example(  # dead-lettered, its next notification left out by a take-over, then a newer one made
    steps=[
        ("fire", 1, 0, 0),
        ("group", 0, 0, 0),
        ("attempt", 0, 2, 0),
        ("fire", 1, 1, 0),
        ("group", 0, 0, 0),
        ("attempt", 0, 1, 2),
        ("fire", 1, 0, 0),
        ("group", 0, 0, 0),
    ],
    lease_take_ups=True,
)
def test_retry_and_the_gauge_agree_on_what_is_superseded(
    steps: list[tuple[str, int, int, int]], lease_take_ups: bool
) -> None:
    """After every step, the dead letters the gauge and `outbox list` count superseded are
    those `retry --all` leaves without failing and the start-up line counts, and none is left
    for a stale notification a newer delivery followed."""
    world = _World(lease_take_ups)
    try:
        for step in steps:
            world.step(*step)
            _check_superseded(world.box)
    finally:
        world.box.close()
