"""Dead letters: made after the last attempt or for a receiver gone, sent again on request, and
their open alerts queued again."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.outbox_before import STILL_UNTOLD_BEFORE
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.payload import alerts_told, build_payloads
from bridge.sinks.alerts.records import (
    AlertRecord,
    Delivery,
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
    seed,
)


def test_attempts_retry_dead_letter_and_manual_retry(outbox: Outbox) -> None:
    """A delivery keeps its id and body across attempts, dead-letters, and comes back on retry
    due at once, with a fresh deadline (from its retry time), the attempts made so far still
    counted and its creation time kept."""
    observe(outbox, event(), T0)
    first = first_attempt_failed(outbox, URL, one_each, T0 + 2, 503)
    assert outbox.queue.next_due(URL, T0 + 1) is None
    second = outbox.queue.next_due(URL, T0 + 2)
    assert second is not None
    assert (second.id, second.body, second.attempts) == (first.id, first.body, 1)
    outbox.queue.finish_attempt(
        first.id,
        state=DeliveryState.DEAD,
        next_attempt_at=T0 + 2,
        status=400,
        error="HTTP 400",
        now=T0 + 2,
    )
    assert outbox.queue.depth().dead == 1
    assert outbox.queue.next_due(URL, T0 + 100) is None
    assert len(outbox.dead_letters.retry(T0 + 200, ["other"])) == 0
    assert len(outbox.dead_letters.retry(T0 + 200)) == 1
    revived = outbox.queue.next_due(URL, T0 + 200)
    assert revived is not None
    assert (revived.id, revived.attempts, revived.created_at) == (first.id, 2, T0)
    assert (revived.retried_at, revived.deadline_from) == (T0 + 200, T0 + 200)
    assert [d.id for d in outbox.queue.deliveries(ids=[first.id, "other"])] == [first.id]
    assert outbox.queue.deliveries(ids=[]) == []


def _webhooks(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
    """One group of alerts as webhook payloads, as the sink makes them."""
    return build_payloads(records, max_alerts=50, external_url="https://bridge.example")


def test_a_dead_letter_is_retried_as_its_alerts_stand_now(outbox: Outbox) -> None:
    """A dead letter retried after its firing alert changed where this outbox made no delivery
    of the change (on Redis, another replica raised it to critical and told the receiver) tells
    that alert as it stands now, beside the others as they were, under a new delivery id, in
    its place in the receiver's order; one whose alerts did not change keeps its id and body."""
    observe(outbox, event("a", severity="warning"), T0)
    observe(outbox, event("b", severity="warning"), T0)
    outbox.queue.group(URL, T0, 0.0, _webhooks)
    [dead] = outbox.queue.deliveries()
    outbox.queue.finish_attempt(
        dead.id, state=DeliveryState.DEAD, next_attempt_at=T0, status=503, error="HTTP 503", now=T0
    )
    observe(outbox, event("c", severity="warning"), T0 + 1)
    outbox.queue.group(URL, T0 + 1, 0.0, _webhooks)
    [same] = outbox.queue.deliveries("pending")
    outbox.queue.finish_attempt(
        same.id,
        state=DeliveryState.DEAD,
        next_attempt_at=T0,
        status=503,
        error="HTTP 503",
        now=T0 + 1,
    )
    kept = {}
    for alert_id in "abc":
        record = outbox.alerts.get(alert_id)
        assert record is not None
        kept[alert_id] = record
    raised = dataclasses.replace(kept["a"], severity="critical", updated_at=T0 + 2)
    assert outbox.alerts.adopt_open_alerts({**kept, "a": raised}, T0 + 2) == 1
    assert outbox.queue.group(URL, T0 + 2, 0.0, _webhooks) == 0  # nothing notified here
    assert len(outbox.dead_letters.retry(T0 + 3)) == 2
    assert outbox.queue.deliveries(ids=[dead.id]) == []
    first = outbox.queue.next_due(URL, T0 + 3)
    assert first is not None
    assert first.id != dead.id
    assert (first.alert_ids, first.attempts, first.created_at) == (("a", "b"), 1, T0)
    told = json.loads(first.body)
    assert [e["labels"]["severity"] for e in told["alerts"]] == ["critical", "warning"]
    assert told["alerts"][0] == json.loads(_webhooks([raised])[0][0])["alerts"][0]
    assert told["alerts"][1] == json.loads(dead.body)["alerts"][1]
    assert (told["status"], told["commonLabels"].get("severity")) == ("firing", None)
    [left] = outbox.queue.deliveries(ids=[same.id])
    assert (left.state, left.body) == (DeliveryState.PENDING, same.body)


def test_a_retry_older_than_the_creation_time_does_not_start_the_deadline(
    outbox: Outbox,
) -> None:
    """A delivery retried, then retried again by a version that reset ``created_at`` (before
    ``retried_at`` existed), takes its deadline from the later of the two, not the stale retry:
    it is not dead-lettered at once."""
    observe(outbox, event(), T0)
    outbox.queue.group(URL, T0, 0.0, one_each)
    delivery = outbox.queue.next_due(URL, T0)
    assert delivery is not None
    older = dataclasses.replace(delivery, created_at=T0 + 500, retried_at=T0 + 200)
    assert older.deadline_from == T0 + 500
    newer = dataclasses.replace(delivery, created_at=T0, retried_at=T0 + 200)
    assert newer.deadline_from == T0 + 200


def test_orphaned_work_is_dead_lettered_and_stays_retryable(tmp_path: Path) -> None:
    """Work for an unconfigured URL goes dead with a reason and stays retryable."""
    gone = "http://127.0.0.1:9/gone"
    box = Outbox.in_dir(tmp_path, urls=[gone])
    box.alerts.apply([event("q1"), event("p1")], T0)
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
        assert box.dead_letters.add_orphans(T0 + 1, one_each) == 2
        assert box.queue.depth() == box.queue.depth().__class__(0, 0, 2)
        dead = box.queue.deliveries(DeliveryState.DEAD.value)
        assert {d.alert_ids for d in dead} == {("q1",), ("p1",)}
        assert all("EXESDB_WEBHOOK_URLS" in (d.last_error or "") for d in dead)
        assert box.dead_letters.add_orphans(T0 + 2, one_each) == 0
        assert len(box.dead_letters.retry(T0 + 3)) == 2
    finally:
        box.close()


# -- open alerts of dead letters, queued again --

HOUR = 3600.0
DAY = 24 * HOUR


def _attempt(outbox: Outbox, now: float, state: DeliveryState, status: int | None, error: str):
    """Group what waits for URL and make one attempt at its oldest pending delivery."""
    outbox.queue.group(URL, now, 0.0, one_each)
    delivery = outbox.queue.next_due(URL, now)
    assert delivery is not None
    outbox.queue.finish_attempt(
        delivery.id, state=state, next_attempt_at=now, status=status, error=error, now=now
    )
    return delivery


def _died(outbox: Outbox, alert_id: str, now: float, status: int | None = None):
    """``alert_id`` fires and its delivery dies: of the deadline (no answer), or answered
    ``status`` (a final answer)."""
    observe(outbox, event(alert_id, requires_ack=False), now)
    error = "cannot connect to 127.0.0.1:9" if status is None else f"HTTP {status}"
    return _attempt(outbox, now, DeliveryState.DEAD, status, error)


def test_an_open_alert_dead_lettered_is_queued_again_once_after_the_interval(
    outbox: Outbox,
) -> None:
    """A firing dead-lettered (the deadline passed) is queued again for its receiver, as it
    stands, the interval after it died, once: then only when its new delivery dies in turn."""
    _died(outbox, "a1", T0)
    assert outbox.dead_letters.renotify(T0 + HOUR - 1, HOUR) == {}
    assert outbox.dead_letters.renotify(T0 + HOUR, HOUR) == {URL: 1}
    assert outbox.dead_letters.renotify(T0 + HOUR + 1, HOUR) == {}  # waiting already
    again = _attempt(outbox, T0 + HOUR + 1, DeliveryState.DEAD, None, "timed out after 10s")
    assert again.alert_ids == ("a1",)
    assert outbox.dead_letters.renotify(T0 + 3 * HOUR, HOUR) == {URL: 1}  # that one's turn
    assert outbox.dead_letters.renotify(T0 + 5 * HOUR, HOUR) == {}  # each dead letter once
    assert outbox.queue.depth().queued == 1


def test_an_alert_dead_lettered_is_queued_again_at_once_when_its_receiver_is_back(
    outbox: Outbox,
) -> None:
    """Once the receiver takes a delivery made after the dead letter, the open alerts it held
    are queued again at once: the receiver is back."""
    _died(outbox, "a1", T0)
    observe(outbox, event("a2", requires_ack=False), T0 + 10)
    assert outbox.dead_letters.renotify(T0 + 10, HOUR) == {}  # a2 not taken yet
    _attempt(outbox, T0 + 10, DeliveryState.DELIVERED, 200, "")
    assert outbox.dead_letters.renotify(T0 + 11, HOUR) == {URL: 1}
    outbox.queue.group(URL, T0 + 11, 0.0, one_each)
    newest = outbox.queue.deliveries(DeliveryState.PENDING.value)
    assert [d.alert_ids for d in newest] == [("a1",)]


def test_an_alert_whose_delivery_was_refused_waits_for_the_interval_all_the_same(
    outbox: Outbox,
) -> None:
    """A dead letter with a final answer (400) is not queued again when the receiver takes a
    later delivery, which would send it at every delivery taken to be refused each time: it
    waits for the interval."""
    _died(outbox, "a1", T0, status=400)
    observe(outbox, event("a2", requires_ack=False), T0 + 10)
    _attempt(outbox, T0 + 10, DeliveryState.DELIVERED, 200, "")
    assert outbox.dead_letters.renotify(T0 + 11, HOUR) == {}
    assert outbox.dead_letters.renotify(T0 + HOUR, HOUR) == {URL: 1}


def test_only_open_alerts_the_dead_letter_last_told_of_are_queued_again(outbox: Outbox) -> None:
    """Of a dead letter's alerts, one resolved since, one in a later delivery and one waiting in
    a grouping window are not queued again; the one it last told of, still firing, is."""
    for alert_id in ("gone", "later", "waiting", "open"):
        observe(outbox, event(alert_id, requires_ack=False), T0)
    _attempt(outbox, T0, DeliveryState.DEAD, 503, "HTTP 503")  # one per alert: the first
    for _ in range(3):
        _attempt(outbox, T0, DeliveryState.DEAD, 503, "HTTP 503")
    observe(outbox, event("gone", status="resolved"), T0 + 1)
    observe(outbox, event("later", requires_ack=False, severity="warning"), T0 + 1)
    outbox.queue.group(URL, T0 + 1, 0.0, one_each)  # gone's resolve, later's warning
    observe(outbox, event("waiting", requires_ack=False, severity="warning"), T0 + 2)
    assert outbox.dead_letters.renotify(T0 + HOUR + 2, HOUR) == {URL: 1}
    waiting = {a for a in ("gone", "later", "waiting", "open") if outbox.queue.of_alert(a)[1]}
    assert waiting == {"waiting", "open"}


def _keep(record: AlertRecord, told: bool) -> bool:
    """A receiver with ``send_resolved``: every alert, a resolve of one it was told of."""
    return told or record.open


def _build(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
    """The bridge's payloads, as a receiver is sent them."""
    return build_payloads(records, max_alerts=50, external_url="http://b")


def _resolve_after_its_firing_was_taken(outbox: Outbox) -> Delivery:
    """The pending delivery of a1's resolve (at T0 + 1), the receiver having taken its firing."""
    observe(outbox, event("a1", requires_ack=False), T0)
    outbox.queue.group(URL, T0, 0.0, _build, _keep)
    [firing] = outbox.queue.deliveries("pending")
    outbox.queue.finish_attempt(
        firing.id, state=DeliveryState.DELIVERED, next_attempt_at=T0, status=200, error=None,
        now=T0,
    )  # fmt: skip
    observe(outbox, event("a1", status="resolved"), T0 + 1)
    outbox.queue.group(URL, T0 + 1, 0.0, _build, _keep)
    [resolve] = outbox.queue.deliveries("pending")
    return resolve


def test_a_resolve_dead_lettered_is_queued_again_for_the_receiver_that_was_told_it_fires(
    outbox: Outbox,
) -> None:
    """A resolve dead-lettered to a receiver that took the alert's firing is queued again for
    it, once, the interval after it died, and goes into its next delivery, its filters letting
    it through: left dead, the receiver would show the alert firing for good."""
    resolve = _resolve_after_its_firing_was_taken(outbox)
    outbox.queue.finish_attempt(
        resolve.id, state=DeliveryState.DEAD, next_attempt_at=T0 + 1, status=None,
        error="timed out after 10s", now=T0 + 1,
    )  # fmt: skip
    assert outbox.dead_letters.renotify(T0 + HOUR + 1, HOUR) == {URL: 1}
    assert outbox.dead_letters.renotify(T0 + 3 * HOUR, HOUR) == {}  # each dead letter once
    assert outbox.queue.group(URL, T0 + HOUR + 1, 0.0, _build, _keep) == 1
    [again] = outbox.queue.deliveries("pending")
    assert again.id != resolve.id
    assert alerts_told(again.body) == alerts_told(resolve.body)
    assert alerts_told(again.body)["a1"][0] == "resolved"


def test_a_resolve_dead_lettered_while_its_alert_fires_again_lets_the_next_resolve_go(
    outbox: Outbox,
) -> None:
    """A resolve dead-lettered while its alert, fired anew, waits in the grouping window (so it
    is not queued again) leaves the receiver told of the alert: the next resolve goes to it,
    which would otherwise be kept from it as from one never told, leaving it firing for good."""
    resolve = _resolve_after_its_firing_was_taken(outbox)
    observe(outbox, event("a1", requires_ack=False, severity="warning"), T0 + 2)  # waits
    outbox.queue.finish_attempt(
        resolve.id, state=DeliveryState.DEAD, next_attempt_at=T0 + 3, status=None,
        error="timed out after 10s", now=T0 + 3,
    )  # fmt: skip
    assert outbox.dead_letters.renotify(T0 + HOUR + 3, HOUR) == {}  # a1 waits already
    observe(outbox, event("a1", status="resolved"), T0 + HOUR + 4)
    assert outbox.queue.group(URL, T0 + HOUR + 4, 0.0, _build, _keep) == 1
    [again] = outbox.queue.deliveries("pending")
    assert alerts_told(again.body)["a1"][0] == "resolved"


def test_a_dead_letter_dated_after_now_is_due_at_once(outbox: Outbox) -> None:
    """A dead letter that died after ``now`` (the wall clock was set back since) is due at once,
    not as much later as the clock went back."""
    _died(outbox, "a1", T0)
    assert outbox.dead_letters.renotify(T0 - 3 * HOUR, HOUR) == {URL: 1}


def test_a_dead_letter_retried_by_hand_is_due_again_once_it_dies_anew(outbox: Outbox) -> None:
    """`outbox retry` clears when a dead letter's alerts were queued again, so that, dead anew,
    it is taken up again; its alert is not queued a third time, as the receiver took its
    re-notification since (kept, a day on, while the dead letter it supersedes is)."""
    dead = _died(outbox, "a1", T0)
    assert outbox.dead_letters.renotify(T0 + HOUR, HOUR) == {URL: 1}
    assert _renotified_at(outbox, dead.id) == T0 + HOUR
    _attempt(outbox, T0 + HOUR, DeliveryState.DELIVERED, 200, "")  # the receiver took it
    outbox.retention.prune(T0 + 2 * DAY)  # keeps it: it supersedes the dead letter
    assert len(outbox.dead_letters.retry(T0 + 2 * DAY, [dead.id])) == 1
    assert _renotified_at(outbox, dead.id) is None
    again = _attempt(outbox, T0 + 2 * DAY, DeliveryState.DEAD, None, "timed out after 10s")
    assert again.id == dead.id
    assert outbox.dead_letters.renotify(T0 + 2 * DAY + HOUR, HOUR) == {}
    assert _renotified_at(outbox, dead.id) == T0 + 2 * DAY + HOUR
    assert outbox.queue.of_alert("a1")[1] == ()


def _renotified_at(outbox: Outbox, delivery_id: str) -> float | None:
    """The ``renotified_at`` of a delivery, read through a connection of our own."""
    db = sqlite3.connect(outbox.path)
    try:
        row = db.execute("SELECT renotified_at FROM deliveries WHERE id = ?", (delivery_id,))
        return row.fetchone()[0]
    finally:
        db.close()


def test_a_call_takes_up_at_most_its_limit_of_dead_letters_the_next_the_rest(
    outbox: Outbox,
) -> None:
    """After a long outage many dead letters are due at once: each call takes up at most its
    limit of them, oldest first, so one transaction stays short; the next call takes the rest."""
    for n in range(5):
        _died(outbox, f"a{n}", T0 + n)
    assert outbox.dead_letters.renotify(T0 + HOUR + 5, HOUR, limit=2) == {URL: 2}
    assert [a for a in ("a0", "a1", "a2") if outbox.queue.of_alert(a)[1]] == ["a0", "a1"]
    assert outbox.dead_letters.renotify(T0 + HOUR + 5, HOUR, limit=2) == {URL: 2}
    assert outbox.dead_letters.renotify(T0 + HOUR + 5, HOUR, limit=2) == {URL: 1}
    assert outbox.queue.depth().queued == 5


def test_an_alert_id_with_non_ascii_characters_carried_by_a_later_delivery_is_not_queued_again(
    outbox: Outbox,
) -> None:
    """A dead letter of ``node_failure:köln-1`` whose alert a later delivery to the receiver
    carried is not its latest notification: it is not queued again (the ids are stored as
    json.dumps writes them, ``\\u00f6``, not as SQLite's json_quote would)."""
    _died(outbox, "node_failure:köln-1", T0)
    observe(outbox, event("node_failure:köln-1", requires_ack=False, severity="warning"), T0 + 1)
    _attempt(outbox, T0 + 1, DeliveryState.DELIVERED, 200, "")
    assert outbox.dead_letters.renotify(T0 + HOUR + 1, HOUR) == {}
    assert outbox.queue.of_alert("node_failure:köln-1")[1] == ()


def test_dead_letters_not_due_leave_a_calls_limit_to_those_due(outbox: Outbox) -> None:
    """Dead letters not due (refused with a final answer, the receiver back since) take none of
    a call's limit: the older ones due after them are taken up all the same."""
    for n in range(3):
        _died(outbox, f"refused{n}", T0, status=400)
    for n in range(2):
        _died(outbox, f"timed_out{n}", T0)
    observe(outbox, event("later", requires_ack=False), T0 + 10)
    _attempt(outbox, T0 + 10, DeliveryState.DELIVERED, 200, "")  # the receiver is back
    assert outbox.dead_letters.renotify(T0 + 11, HOUR, limit=2) == {URL: 2}
    waiting = [f"timed_out{n}" for n in range(2) if outbox.queue.of_alert(f"timed_out{n}")[1]]
    assert waiting == ["timed_out0", "timed_out1"]
    assert outbox.dead_letters.renotify(T0 + 12, HOUR, limit=2) == {}


def test_an_alert_refused_twice_in_a_row_with_a_final_answer_is_not_queued_again(
    outbox: Outbox,
) -> None:
    """A receiver that refuses an alert with a final answer (400) and then its re-notification
    so too is not sent it again every interval (a new dead letter each time, for a week): only
    a later notification of the alert, or one that died otherwise, makes it due again."""
    _died(outbox, "a1", T0, status=400)
    assert outbox.dead_letters.renotify(T0 + HOUR, HOUR) == {URL: 1}
    _attempt(outbox, T0 + HOUR, DeliveryState.DEAD, 400, "HTTP 400")
    assert outbox.dead_letters.renotify(T0 + 3 * HOUR, HOUR) == {}
    assert outbox.dead_letters.renotify(T0 + 30 * HOUR, HOUR) == {}
    assert outbox.queue.depth().dead == 2
    _died(outbox, "a2", T0 + 30 * HOUR, status=400)  # refused, then not
    assert outbox.dead_letters.renotify(T0 + 31 * HOUR, HOUR) == {URL: 1}
    _attempt(outbox, T0 + 31 * HOUR, DeliveryState.DEAD, None, "timed out after 10s")
    assert outbox.dead_letters.renotify(T0 + 32 * HOUR, HOUR) == {URL: 1}


def _together(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
    """A payload builder: one delivery of every alert waiting."""
    return [(b"together", [r.alert_id for r in records])]


def test_a_dead_letter_is_superseded_once_its_receiver_took_a_later_delivery_of_each_alert(
    outbox: Outbox,
) -> None:
    """A dead letter of a1 and a2 is superseded only once the receiver took a later delivery
    of a1 and one of a2 (a later one dead-lettered does not count); ``superseded`` and
    ``superseded_count`` say so in one query, as ``unretryable`` does alert by alert, a
    non-ASCII id included."""
    for alert_id in ("a1", "a2"):
        observe(outbox, event(alert_id, requires_ack=False), T0)
    outbox.queue.group(URL, T0, 0.0, _together)
    both = outbox.queue.next_due(URL, T0)
    assert both is not None
    assert both.alert_ids == ("a1", "a2")
    outbox.queue.finish_attempt(
        both.id, state=DeliveryState.DEAD, next_attempt_at=T0, status=None, error="x", now=T0
    )
    cologne = _died(outbox, "node_failure:köln-1", T0 + 1)
    letters = [both.id, cologne.id]

    def superseded() -> tuple[set[str], int, set[str]]:
        listed = {u.delivery_id for u in outbox.dead_letters.unretryable() if u.superseded}
        count = outbox.dead_letters.superseded_count()
        return outbox.dead_letters.superseded(letters), count, listed

    assert superseded() == (set(), 0, set())
    observe(outbox, event("a1", requires_ack=False, severity="warning"), T0 + 10)
    _attempt(outbox, T0 + 10, DeliveryState.DELIVERED, 200, "")  # a1 taken, a2 not
    observe(outbox, event("a2", requires_ack=False, severity="warning"), T0 + 20)
    later = _attempt(outbox, T0 + 20, DeliveryState.DEAD, None, "timed out")  # a2 died again
    letters.append(later.id)
    assert superseded() == (set(), 0, set())
    observe(outbox, event("node_failure:köln-1", requires_ack=False, severity="warning"), T0 + 30)
    _attempt(outbox, T0 + 30, DeliveryState.DELIVERED, 200, "")
    assert superseded() == ({cologne.id}, 1, {cologne.id})
    observe(outbox, event("a2", requires_ack=False), T0 + 40)
    _attempt(outbox, T0 + 40, DeliveryState.DELIVERED, 200, "")
    every = {both.id, cologne.id, later.id}
    assert superseded() == (every, 3, every)
    assert outbox.dead_letters.superseded([]) == set()


def test_a_dead_letter_whose_alerts_later_notification_was_left_out_as_stale_is_not_retried(
    outbox: Outbox,
) -> None:
    """A dead letter firing a1 and a2, a later notification of a1 left out as stale since
    (another replica took it over and told the receiver a newer state), is left by ``retry``
    unless forced, naming a1: sent again it would tell the receiver an older state last; once
    the receiver takes a later delivery of a1 from this outbox, that is what it last heard."""
    for alert_id in ("a1", "a2"):
        observe(outbox, event(alert_id, requires_ack=False), T0)
    outbox.queue.group(URL, T0, 0.0, _build, _keep)
    [letter] = outbox.queue.deliveries("pending")
    assert letter.alert_ids == ("a1", "a2")
    outbox.queue.finish_attempt(
        letter.id, state=DeliveryState.DEAD, next_attempt_at=T0, status=None, error="x", now=T0
    )
    observe(outbox, event("a1", requires_ack=False, severity="warning"), T0 + 10)
    outbox.queue.group(URL, T0 + 10, 0.0, _build, _keep)
    assert outbox.queue.withhold_everywhere({"a1"}, T0 + 20, "stale: taken over") == 1
    [left] = outbox.dead_letters.unretryable()
    assert (left.delivery_id, left.left_out, left.superseded) == (letter.id, ("a1",), False)
    assert outbox.dead_letters.unretryable(force=True) == []
    assert len(outbox.dead_letters.retry(T0 + 30, leave=[left.delivery_id])) == 0
    observe(outbox, event("a1", requires_ack=False), T0 + 40)
    outbox.queue.group(URL, T0 + 40, 0.0, _build, _keep)
    _attempt(outbox, T0 + 40, DeliveryState.DELIVERED, 200, "")
    assert outbox.dead_letters.unretryable() == []  # a2 untold, a1 taken firing as it tells


def test_a_dead_firing_of_an_alert_resolved_elsewhere_since_is_not_retried(
    outbox: Outbox,
) -> None:
    """A dead letter firing a1, which another replica resolved since (closed here without a
    notification as this one takes the lease up), nothing of a1 made or waiting for the
    receiver since, is left by ``retry`` unless forced: sent, it would leave a1 firing there
    for good; one whose resolve this outbox still sends after it is retried."""

    def died(alert_id: str, now: float) -> str:
        observe(outbox, event(alert_id, requires_ack=False), now)
        outbox.queue.group(URL, now, 0.0, _build, _keep)
        [firing] = outbox.queue.deliveries("pending")
        outbox.queue.finish_attempt(
            firing.id, state=DeliveryState.DEAD, next_attempt_at=now, status=None, error="x",
            now=now,
        )  # fmt: skip
        return firing.id

    letter = died("a1", T0)
    outbox.alerts.adopt_open_alerts({}, T0 + 10)
    [left] = outbox.dead_letters.unretryable()
    assert (left.delivery_id, left.resolved_untold) == (letter, ("a1",))
    assert outbox.dead_letters.unretryable(force=True) == []
    mine = died("a2", T0 + 20)
    observe(outbox, event("a2", status="resolved"), T0 + 30)  # its resolve waits
    assert outbox.dead_letters.unretryable([mine]) == []


def test_dead_letters_another_replica_told_newer_of_count_superseded_where_retry_leaves_them(
    outbox: Outbox,
) -> None:
    """A dead letter whose alert's later notification was left out as stale, and a dead firing
    of an alert resolved elsewhere since with nothing to follow, are superseded (the gauge's
    count, ``outbox list``'s test, ``retry --all`` leaving them quietly); a dead letter with an
    alert still to tell, or the dead resolve of an alert, is not."""

    def died(alert_ids: tuple[str, ...], now: float, status: str = "firing") -> str:
        for alert_id in alert_ids:
            observe(outbox, event(alert_id, requires_ack=False, status=status), now)
        outbox.queue.group(URL, now, 0.0, _build, _keep)
        [letter] = outbox.queue.deliveries("pending")
        outbox.queue.finish_attempt(
            letter.id, state=DeliveryState.DEAD, next_attempt_at=now, status=None, error="x",
            now=now,
        )  # fmt: skip
        return letter.id

    gone = died(("b1",), T0)
    outbox.alerts.adopt_open_alerts({}, T0 + 5)  # another replica resolved b1
    stale = died(("a1",), T0 + 10)
    still = died(("a2", "a3"), T0 + 10)
    for alert_id in ("a1", "a2"):
        observe(outbox, event(alert_id, requires_ack=False, severity="warning"), T0 + 20)
    outbox.queue.group(URL, T0 + 20, 0.0, _build, _keep)
    assert outbox.queue.withhold_everywhere({"a1", "a2"}, T0 + 30, "stale: taken over") == 2
    fired = died(("c1",), T0 + 40)
    told_resolved = died(("c1",), T0 + 50, status="resolved")
    assert outbox.dead_letters.superseded([gone, stale, still, fired, told_resolved]) == {
        gone,
        stale,
    }
    assert outbox.dead_letters.superseded_count() == 2
    left = {d.delivery_id: d.superseded for d in outbox.dead_letters.unretryable()}
    assert left == {gone: True, stale: True, still: False}
    assert outbox.dead_letters.unretryable([told_resolved, fired]) == []


def test_a_superseded_dead_letter_stays_so_once_moved_to_its_receivers_new_key(
    outbox: Outbox,
) -> None:
    """A dead letter and the later delivery that supersedes it, moved at start from the
    receiver's earlier key to its new one (``move_receiver_rows``), keep telling so there."""
    letter = _died(outbox, "a1", T0)
    observe(outbox, event("a1", requires_ack=False, severity="warning"), T0 + 10)
    _attempt(outbox, T0 + 10, DeliveryState.DELIVERED, 200, "")
    assert outbox.dead_letters.superseded([letter.id]) == {letter.id}
    assert outbox.queue.move_receiver_rows(URL, "receiver-key") == 2
    assert outbox.dead_letters.superseded([letter.id]) == {letter.id}
    assert outbox.dead_letters.superseded_count() == 1
    [kept] = outbox.dead_letters.unretryable([letter.id])
    assert (kept.receiver, kept.superseded) == ("receiver-key", True)


def test_counting_superseded_dead_letters_reads_no_delivery_but_the_dead_letters(
    outbox: Outbox,
) -> None:
    """The gauge's count of superseded dead letters (and ``outbox list``'s test of some) finds
    them by an index of the dead letters alone and looks each of their alerts up by an index:
    no whole table scanned, however many deliveries the receivers took (86 000 a day)."""
    letter = _died(outbox, "a1", T0)
    observe(outbox, event("a1", requires_ack=False, severity="warning"), T0 + 10)
    _attempt(outbox, T0 + 10, DeliveryState.DELIVERED, 200, "")
    with outbox.database.read() as db:
        partial = {
            str(row["name"])
            for row in db.execute("PRAGMA index_list(deliveries)")
            if row["partial"]
        }
    plans = query_plans(
        outbox,
        lambda: (
            outbox.dead_letters.superseded_count(),
            outbox.dead_letters.superseded([letter.id]),
        ),
    )
    assert len(plans) == 4  # those told later, then those of alerts resolved since; each call
    scans = [line for plan in plans for line in plan if line.startswith("SCAN ")]
    assert scans, plans  # json_each() of each dead letter's alerts at least
    for line in scans:
        assert "VIRTUAL TABLE" in line or any(
            line.endswith(f" INDEX {index}") for index in partial
        ), plans
    assert any(line.startswith("SEARCH ") for line in plans[0]), plans  # each alert's lookup
    # The count reads them by that index, not by another that would read their bodies too.
    assert any(line.startswith("SCAN letter ") for line in plans[0]), plans
    assert any(line.startswith("SCAN letter ") for line in plans[1]), plans


_OTHER = "http://127.0.0.1:9/other"
_GONE = "http://127.0.0.1:9/gone"  # not configured: its dead letters are never due
# Alert ids, some inside others' JSON text ("a" in "ab") or written with escapes.
_ALERT_IDS = ("a", "ab", "é", 'say "hi"', "a,b", "back\\slash")
# The last answer of a delivery: none (timed out), a final one (refused), one retried.
_ANSWERS = {
    "none": (None, "timed out after 10s"),
    "400": (400, "HTTP 400"),
    "503": (503, "HTTP 503"),
}
# Deliveries in the order made, each (receiver, alert ids: none, one repeated…, state, answer).
_RENOTIFIED_DELIVERIES = st.lists(
    st.tuples(
        st.sampled_from((URL, URL, _OTHER, _GONE)),
        st.lists(st.sampled_from(_ALERT_IDS), max_size=3),
        st.sampled_from(tuple(state.value for state in DeliveryState) + ("dead",) * 3),
        st.sampled_from(tuple(_ANSWERS)),
    ),
    max_size=16,
)
# Changes made once they are all in, each (which delivery, what): its alerts changed (as
# ``withhold`` changes them), moved to another receiver, deleted (as the prune deletes).
_RENOTIFIED_CHANGES = st.lists(
    st.tuples(
        st.integers(0, 15),
        st.one_of(
            st.tuples(st.just("alerts"), st.lists(st.sampled_from(_ALERT_IDS), max_size=2)),
            st.tuples(st.just("moved"), st.sampled_from((URL, _OTHER))),
            st.tuples(st.just("deleted"), st.none()),
        ),
    ),
    max_size=4,
)


def _renotify_outbox(
    deliveries: Sequence[tuple[str, list[str], str, str]],
    changes: Sequence[tuple[int, tuple[str, object]]],
    alerts: dict[str, str],
    queued: Sequence[tuple[str, str]],
) -> Outbox:
    """An outbox for URL and _OTHER holding ``alerts`` (id: firing or resolved), ``queued``
    (receiver, alert) and ``deliveries`` made in order (their triggers fire as ever), then
    ``changes`` made to them."""
    outbox = Outbox(":memory:", urls=[URL, _OTHER])
    for alert_id, state in alerts.items():
        observe(outbox, event(alert_id), T0)
        if state == "resolved":
            observe(outbox, event(alert_id, status="resolved"), T0 + 1)
    ids = [f"d{n * 37 % 101:03}" for n in range(len(deliveries))]
    with outbox.database.transaction() as db:
        db.execute("DELETE FROM queued")
        db.executemany(
            "INSERT OR IGNORE INTO queued (url, alert_id, queued_at) VALUES (?, ?, ?)",
            [(*q, T0) for q in queued],
        )
        db.executemany(
            "INSERT INTO deliveries (id, url, body, alert_ids, created_at, next_attempt_at,"
            " state, last_status, last_error, finished_at) VALUES (?, ?, x'7b7d', ?, ?, 0, ?, ?,"
            " ?, ?)",
            [
                (delivery_id, url, json.dumps(alert_ids), T0, state, *_ANSWERS[answer], T0)
                for delivery_id, (url, alert_ids, state, answer) in zip(
                    ids, deliveries, strict=True
                )
            ],
        )
        for n, (what, value) in changes if ids else ():
            delivery_id = ids[n % len(ids)]
            if what == "alerts":
                db.execute(
                    "UPDATE deliveries SET alert_ids = ? WHERE id = ?",
                    (json.dumps(value), delivery_id),
                )
            elif what == "moved":
                db.execute("UPDATE deliveries SET url = ? WHERE id = ?", (value, delivery_id))
            else:
                db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))
    return outbox


def _still_untold_before(outbox: Outbox) -> tuple[str, list[str]] | None:
    """The dead letter ``renotify`` takes up next (every one is due: see the test), and what the
    query before ``carried`` found still untold of its alerts; None when none is left."""
    with outbox.database.read() as db:
        letter = db.execute(
            "SELECT rowid, url, alert_ids, refused(last_status, last_error) AS refused"
            " FROM deliveries WHERE state = 'dead' AND renotified_at IS NULL AND url != ?"
            " ORDER BY rowid LIMIT 1",
            (_GONE,),
        ).fetchone()
        if letter is None:
            return None
        alert_ids = json.loads(letter["alert_ids"])
        params = {
            "url": letter["url"],
            "rowid": letter["rowid"],
            "alert_ids": letter["alert_ids"],
            "needles": json.dumps([json.dumps(alert_id) for alert_id in alert_ids]),
            "resolved": "resolved",
            "refused": letter["refused"],
            "dead": "dead",
        }
        return str(letter["url"]), [row[0] for row in db.execute(STILL_UNTOLD_BEFORE, params)]


def _queued(outbox: Outbox) -> set[tuple[str, str]]:
    """What waits in a grouping window: (receiver, alert)."""
    with outbox.database.read() as db:
        return {(row[0], row[1]) for row in db.execute("SELECT url, alert_id FROM queued")}


@settings(max_examples=300, deadline=None)
@given(
    deliveries=_RENOTIFIED_DELIVERIES,
    changes=_RENOTIFIED_CHANGES,
    alerts=st.dictionaries(st.sampled_from(_ALERT_IDS), st.sampled_from(("firing", "resolved"))),
    queued=st.lists(st.tuples(st.sampled_from((URL, _OTHER)), st.sampled_from(_ALERT_IDS))),
)
@example(  # refused twice in a row, the first time among other deliveries of the alert
    [
        (URL, ["a"], "dead", "400"),
        (_OTHER, ["a"], "dead", "400"),
        (URL, ["ab", "a"], "dead", "400"),
        (URL, ["ab"], "delivered", "none"),
        (URL, ["a", "a"], "dead", "400"),
    ],
    [],
    {"a": "firing", "ab": "firing"},
    [],
)
@example(  # refused, then not (an older refusal before: not the delivery before), then refused
    [
        (URL, ["a"], "dead", "400"),
        (URL, ["a"], "dead", "503"),
        (URL, ["a"], "dead", "400"),
        (URL, ["b"], "dead", "none"),
        (URL, ["b"], "dead", "400"),
        (URL, ["b"], "dead", "400"),
    ],
    [],
    {"a": "firing", "b": "firing"},
    [],
)
def test_renotify_queues_again_what_the_query_before_carried_found(
    deliveries: list[tuple[str, list[str], str, str]],
    changes: list[tuple[int, tuple[str, object]]],
    alerts: dict[str, str],
    queued: list[tuple[str, str]],
) -> None:
    """On any outbox (dead letters and other deliveries of alerts with escapes, repeated or
    inside another's id, to two receivers, refused or not, some changed, moved or deleted since;
    alerts firing, resolved or unknown, some waiting in a grouping window), ``renotify`` taking
    up one dead letter at a time queues again, for its receiver, the very alerts (as many, and
    how many it says) the query reading each delivery to the receiver since (before ``carried``)
    found still untold on the outbox as it stood then."""
    outbox = _renotify_outbox(deliveries, changes, alerts, queued)
    try:
        while (expected := _still_untold_before(outbox)) is not None:
            url, alert_ids = expected
            waiting = _queued(outbox)
            # Every dead letter is due: it died (T0) at or before now - after.
            assert outbox.dead_letters.renotify(T0 + HOUR, HOUR, limit=1) == (
                {url: len(alert_ids)} if alert_ids else {}
            )
            assert _queued(outbox) - waiting == {(url, alert_id) for alert_id in alert_ids}
        assert outbox.dead_letters.renotify(T0 + HOUR, HOUR) == {}
    finally:
        outbox.close()


def test_renotify_reads_no_delivery_but_those_of_the_dead_letters_alerts(outbox: Outbox) -> None:
    """Whether a dead letter's alert is in a later delivery to its receiver (and, refused, what
    the delivery before it was) is found from the alert's key in ``carried``, each delivery by
    its id: never by reading every delivery to the receiver since (a day holds 86 000)."""
    _died(outbox, "a1", T0, status=400)
    insert_deliveries(outbox, [(URL, ["a2"], "delivered", T0)] * 3)
    plans = query_plans(outbox, lambda: outbox.dead_letters.renotify(T0 + HOUR, HOUR))
    [untold] = [plan for plan in plans if any(" queued " in line for line in plan)]
    assert untold.count("SEARCH carried USING PRIMARY KEY (alert_id=?)") == 2, untold
    for line in untold:
        if line.startswith(("SCAN ", "SEARCH ")) and "VIRTUAL TABLE" not in line:
            assert line.endswith(
                (" (alert_id=?)", " (url=? AND alert_id=?)", " (id=?)", " (rowid=?)")
            ), untold


def test_dropping_more_dead_letters_than_sqlite_binds_variables_drops_them_all(
    outbox: Outbox,
) -> None:
    """``drop`` of the dead letters named (``outbox drop --receiver`` names every one of its
    receiver's, tens of thousands after a week of a mistyped URL) binds them as one value:
    past the variables SQLite allows a statement (32 766 as built by default) it drops them
    all."""
    died = [_died(outbox, f"a{n}", T0 + n).id for n in range(12)]
    with outbox.database.read() as db:
        db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)  # fewer than the ids named
    assert set(outbox.dead_letters.drop(died)) == set(died)
    assert outbox.queue.count(DeliveryState.DEAD.value) == 0


def test_superseded_among_more_dead_letters_than_sqlite_binds_variables(outbox: Outbox) -> None:
    """``superseded`` of the dead letters named (``outbox list --limit 0`` names every one,
    tens of thousands after a week of a mistyped URL) binds them as one value: past the
    variables SQLite allows a statement it still finds the one a later delivery superseded."""
    died = [_died(outbox, f"a{n}", T0 + n).id for n in range(12)]
    observe(outbox, event("a0", requires_ack=False, severity="warning"), T0 + 20)
    _attempt(outbox, T0 + 20, DeliveryState.DELIVERED, 200, "")  # a0 taken later
    with outbox.database.read() as db:
        db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)  # fewer than the ids named
    assert outbox.dead_letters.superseded(died) == {died[0]}
