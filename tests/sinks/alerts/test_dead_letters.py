"""Dead letters: made after the last attempt or for a receiver gone, and sent again on request."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import (
    DeliveryState,
)
from tests.sinks.alerts.helpers import T0, URL, event, observe, one_each, seed


def test_attempts_retry_dead_letter_and_manual_retry(outbox: Outbox) -> None:
    """A delivery keeps its id and body across attempts, dead-letters, and comes back on retry
    due at once, with a fresh deadline (from its retry time), the attempts made so far still
    counted and its creation time kept."""
    observe(outbox, event(), T0)
    outbox.queue.group(URL, T0, 0.0, one_each)
    first = outbox.queue.next_due(URL, T0)
    assert first is not None
    outbox.queue.finish_attempt(
        first.id,
        state=DeliveryState.PENDING,
        next_attempt_at=T0 + 2,
        status=503,
        error="HTTP 503",
        now=T0,
    )
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
    assert outbox.dead_letters.retry(T0 + 200, ["other"]) == 0
    assert outbox.dead_letters.retry(T0 + 200) == 1
    revived = outbox.queue.next_due(URL, T0 + 200)
    assert revived is not None
    assert (revived.id, revived.attempts, revived.created_at) == (first.id, 2, T0)
    assert (revived.retried_at, revived.deadline_from) == (T0 + 200, T0 + 200)
    assert [d.id for d in outbox.queue.deliveries(ids=[first.id, "other"])] == [first.id]
    assert outbox.queue.deliveries(ids=[]) == []


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
        assert box.dead_letters.retry(T0 + 3) == 2
    finally:
        box.close()
