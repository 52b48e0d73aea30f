"""The open-alert index: every change made in Redis (fenced by the lease) before the outbox, and
each crash point between the two never loses a notification nor sends one twice (a note taken
over that its outbox had stored is left out of it)."""

from __future__ import annotations

import heapq
import json
import math
import random
import sqlite3
import tracemalloc
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.bus import StateChange
from bridge.errors import TransportError
from bridge.sinks.alerts import index
from bridge.sinks.alerts.alert_store import RESOLVES_REMEMBERED
from bridge.sinks.alerts.index import AlertIndex
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import Acknowledgement, AlertState, Escalated, HistoryEvent
from bridge.sinks.alerts.thread import DbThread
from bridge.sinks.alerts.transitions import Plan, on_event
from tests.sinks.alerts.helpers import T0, boxes, db, event, observe, returns
from tests.sinks.alerts.test_payload import record

__all__ = ["boxes", "db"]  # the fixtures, imported for the tests below


class Store:
    """What Redis keeps for the work queue: the records (None until written or once lost) and
    each replica's notes."""

    def __init__(self) -> None:
        self.records: dict[str, bytes] | None = None
        self.notes: dict[str, dict[str, bytes]] = {}
        self.taken: dict[str, dict[str, bytes]] = {}  # each replica's notes taken over
        self.holder = "a"


class State:
    """One replica's view of a ``Store`` (``SharedState``); ``crash_on_forget`` stands for a
    SIGKILL after the outbox stored a change and before the note went, ``lose_reply`` for a
    connection lost after Redis took a change and before its answer came."""

    def __init__(self, store: Store, node: str) -> None:
        self.store = store
        self.node = node
        self.crash_on_forget = False
        self.lose_reply = False
        self.adopted_before_forget: State | None = None  # its adopt runs as this one forgets

    async def load(self, name: str) -> dict[str, bytes] | None:
        return None if self.store.records is None else dict(self.store.records)

    async def read(self, name: str, keys: Collection[str]) -> dict[str, bytes] | None:
        records = self.store.records
        return None if records is None else {key: records[key] for key in keys if key in records}

    async def holds(self, name: str) -> bool:
        return bool(self.store.records)

    async def commit(self, name: str, change: StateChange) -> bool:
        if self.store.holder != self.node:
            return False
        if change.restore and self.store.records:
            return False
        records = {} if self.store.records is None else self.store.records
        records.update(change.put)
        for key in change.remove:
            records.pop(key, None)
        self.store.records = records
        if change.note is not None:
            self.store.notes.setdefault(self.node, {})[change.note[0]] = change.note[1]
        if self.lose_reply:
            raise TransportError("connection lost after Redis took the change")
        return True

    async def notes(self, name: str) -> dict[str, bytes]:
        return dict(self.store.notes.get(self.node, {}))

    async def forget(self, name: str, note_ids: Collection[str]) -> set[str]:
        if self.crash_on_forget:
            raise TransportError("killed before the note went")
        if self.adopted_before_forget is not None:
            self.store.holder = self.adopted_before_forget.node
            await self.adopted_before_forget.adopt(name)
        gone = set()
        for note_id in note_ids:
            if self.store.notes.get(self.node, {}).pop(note_id, None) is None:
                gone.add(note_id)
            else:
                self.store.taken.get(self.node, {}).pop(note_id, None)
        return gone

    async def taken_over(self, name: str) -> dict[str, bytes]:
        return dict(self.store.taken.get(self.node, {}))

    async def settle(self, name: str, note_ids: Collection[str]) -> None:
        for note_id in note_ids:
            self.store.taken.get(self.node, {}).pop(note_id, None)

    async def adopt(self, name: str) -> int:
        if self.store.holder != self.node:
            raise TransportError("no longer holds the lease")
        mine = self.store.notes.setdefault(self.node, {})
        moved = 0
        for node, notes in self.store.notes.items():
            if node != self.node:
                mine.update(notes)
                self.store.taken.setdefault(node, {}).update(notes)
                moved += len(notes)
                notes.clear()
        return moved


def replica(
    store: Store, outbox: Outbox, db: DbThread, node: str = "a", state: State | None = None
) -> AlertIndex:
    """The index as replica ``node`` sees it (through ``state``, when the test holds it)."""
    return AlertIndex(
        state or State(store, node),
        alerts=outbox.alerts,
        queue=outbox.queue,
        db=db,
        clock=lambda: T0 + 100,
        limit=100,
    )


def test_a_record_and_a_plan_survive_encoding() -> None:
    """What encode writes, decode reads back the same (a record, a note's plan with the history
    entry of each step), but the time of the alert's last event, which Redis does not carry."""
    original = record(
        state=AlertState.ACKNOWLEDGED,
        ack_by="ops",
        ack_at=T0 + 1,
        last_seen=T0,
        source="backup-job",
        details=(("metadata_lag", "12"),),
    )
    assert index.decode(index.encode(original)) == original
    fired = on_event(None, event("x", source="s", details=(("metadata_k", "v"),)), T0)
    seen = on_event(fired.record, event("x"), T0 + 1)  # no history entry
    plan = Plan("p1", T0 + 1, (fired, seen), refused=2)
    decoded = index.decode_plan(index.encode_plan(plan))
    assert fired.record is not None
    assert fired.record.event_at == T0
    unstamped = tuple(
        replace(step, record=replace(step.record, event_at=None))
        for step in plan.steps
        if step.record is not None
    )
    assert decoded == replace(plan, steps=unstamped)
    assert [step.entry for step in decoded.steps] == [fired.entry, None]
    assert fired.entry is not None


def test_a_record_without_source_or_details_is_kept_as_an_earlier_version_kept_it() -> None:
    """A record with no source and no details is encoded without either key, as the version
    before them wrote it (so a replica of that version still reads it), and decodes back."""
    fields = json.loads(index.encode(record()))
    assert "source" not in fields
    assert "details" not in fields
    decoded = index.decode(json.dumps(fields).encode())
    assert (decoded.source, decoded.details) == (None, ())


def test_a_records_source_and_details_survive_encoding() -> None:
    """A SystemAlert's source and metadata annotations are kept in Redis and read back."""
    kept = record(source="backup-job", details=(("metadata_stream", "orders"),))
    fields = json.loads(index.encode(kept))
    assert fields["source"] == "backup-job"
    assert index.decode(index.encode(kept)) == kept


async def test_each_change_is_kept_in_redis_fenced_by_the_lease(boxes, db: DbThread) -> None:
    """Open alerts are put in the index, resolved ones removed; a replica that lost the lease
    stores nothing, here or there, and says so (TransportError)."""
    store = Store()
    a = replica(store, boxes["a"], db)
    await a.change(boxes["a"].alerts.plan, [event("one"), event("two")], T0)
    assert store.records is not None
    assert sorted(store.records) == ["one", "two"]
    await a.change(boxes["a"].alerts.plan, [event("one", status="resolved")], T0 + 1)
    assert sorted(store.records) == ["two"]
    assert store.notes["a"] == {}
    store.holder = "b"
    with pytest.raises(TransportError, match="no longer holds"):
        await a.change(boxes["a"].alerts.plan, [event("three")], T0 + 2)
    assert boxes["a"].alerts.get("three") is None
    assert sorted(store.records) == ["two"]


async def test_a_crash_after_redis_took_a_change_notifies_it_once(boxes, db: DbThread) -> None:
    """SIGKILL between Redis and the outbox: started again, the replica stores the change from
    its note and queues its notification once; the next holder, finding the alert open in
    Redis, does not notify it again, and resolves it."""
    store = Store()
    boxes["a"].alerts.crash = True
    with pytest.raises(RuntimeError):
        await replica(store, boxes["a"], db).change(boxes["a"].alerts.plan, [event()], T0)
    assert boxes["a"].alerts.get("node_failure:n1") is None
    assert store.records is not None
    assert list(store.records) == ["node_failure:n1"]
    boxes["a"].alerts.crash = False
    again = replica(store, boxes["a"], db)
    assert await again.catch_up() == 1
    assert boxes["a"].queue.depth().queued == 1
    detail = boxes["a"].alerts.detail("node_failure:n1")
    assert detail is not None
    assert [entry.event for entry in detail.history] == [HistoryEvent.FIRED]
    assert await again.catch_up() == 0
    assert boxes["a"].queue.depth().queued == 1
    store.holder = "b"
    b = replica(store, boxes["b"], db, "b")
    await b.take_up()
    await b.change(boxes["b"].alerts.plan, [event()], T0 + 5)  # the same alert again: not notified
    assert boxes["b"].queue.depth().queued == 0
    applied = await b.change(boxes["b"].alerts.plan, [event(status="resolved")], T0 + 6)
    assert [r.state for r in applied.changed] == [AlertState.RESOLVED]
    assert boxes["b"].queue.depth().queued == 1
    assert store.records == {}


async def test_a_crash_after_the_outbox_stored_a_change_stores_nothing_twice(
    boxes, db: DbThread
) -> None:
    """SIGKILL after the outbox stored a change, before its note went: the note found at the
    next start changes nothing (the outbox remembers the plans it stored)."""
    store = Store()
    state = State(store, "a")
    state.crash_on_forget = True
    a = replica(store, boxes["a"], db, state=state)
    await a.change(boxes["a"].alerts.plan, [event()], T0)
    assert len(store.notes["a"]) == 1
    assert boxes["a"].queue.depth().queued == 1
    again = replica(store, boxes["a"], db)
    assert await again.catch_up() == 0
    assert boxes["a"].queue.depth().queued == 1
    assert store.notes["a"] == {}


async def test_a_note_redis_could_not_drop_is_dropped_at_the_next_change(
    boxes, db: DbThread
) -> None:
    """The outbox stored a change and Redis could not drop its note (unreachable for a moment):
    the next change drops it first, so a later holder takes over no note already notified."""
    store = Store()
    state = State(store, "a")
    state.crash_on_forget = True
    a = replica(store, boxes["a"], db, state=state)
    await a.change(boxes["a"].alerts.plan, [event()], T0)
    assert len(store.notes["a"]) == 1
    state.crash_on_forget = False
    await a.change(boxes["a"].alerts.plan, [event("other")], T0 + 1)
    assert store.notes["a"] == {}
    store.holder = "b"
    await replica(store, boxes["b"], db, "b").take_up()
    assert boxes["b"].queue.depth().queued == 0
    assert boxes["a"].queue.depth().queued == 2


async def test_a_change_retried_after_the_outbox_failed_is_stored_once(boxes, db: DbThread) -> None:
    """Redis took a resolve and the outbox failed to store it (database locked, disk full): the
    retried batch finds the change already made, the alert is resolved and notified once, and
    no note is left for a later start to store again."""
    store = Store()
    a = replica(store, boxes["a"], db)
    await a.change(boxes["a"].alerts.plan, [event()], T0)
    boxes["a"].alerts.crash = True
    with pytest.raises(RuntimeError):
        await a.change(boxes["a"].alerts.plan, [event(status="resolved")], T0 + 1)
    boxes["a"].alerts.crash = False
    await a.change(boxes["a"].alerts.plan, [event(status="resolved")], T0 + 2)
    assert store.notes["a"] == {}
    assert await replica(store, boxes["a"], db).catch_up() == 0
    resolved = boxes["a"].alerts.detail("node_failure:n1")
    assert resolved is not None
    assert resolved.alert.state is AlertState.RESOLVED
    assert [entry.event for entry in resolved.history] == [
        HistoryEvent.FIRED,
        HistoryEvent.RESOLVED,
    ]


async def test_a_change_whose_answer_was_lost_is_not_made_twice(boxes, db: DbThread) -> None:
    """Redis took a firing and the connection went before its answer: the retried batch stores
    the change Redis holds and notifies the firing once."""
    store = Store()
    state = State(store, "a")
    a = replica(store, boxes["a"], db, state=state)
    state.lose_reply = True
    with pytest.raises(TransportError):
        await a.change(boxes["a"].alerts.plan, [event()], T0)
    state.lose_reply = False
    await a.change(boxes["a"].alerts.plan, [event()], T0 + 1)
    assert store.notes["a"] == {}
    assert await replica(store, boxes["a"], db).catch_up() == 0
    fired = boxes["a"].alerts.detail("node_failure:n1")
    assert fired is not None
    assert [entry.event for entry in fired.history] == [HistoryEvent.FIRED]
    assert boxes["a"].queue.depth().queued == 1


async def test_the_next_holder_takes_up_the_open_alerts_and_resolves_them(
    boxes, db: DbThread
) -> None:
    """A holder fires and acknowledges alerts and is gone without a word; the next takes them
    up (nothing notified), closes silently one it had open that another holder resolved, and
    resolves the rest when their resolve comes."""
    store = Store()
    a = replica(store, boxes["a"], db)
    await a.change(boxes["a"].alerts.plan, [event("on"), event("acked"), event("stale")], T0)
    await a.change(boxes["a"].alerts.plan, [index_ack("acked")], T0 + 1)
    boxes["b"].alerts.apply([event("stale")], T0 - 50)  # b held the lease before, long ago
    await a.change(boxes["a"].alerts.plan, [event("stale", status="resolved")], T0 + 2)
    store.holder = "b"
    b = replica(store, boxes["b"], db, "b")
    queued = boxes["b"].queue.depth().queued
    assert await b.take_up() == 3
    on = boxes["a"].alerts.get("on")
    assert on is not None
    assert boxes["b"].alerts.get("on") == replace(on, event_at=None)  # Redis has none
    taken = boxes["b"].alerts.detail("on")
    assert taken is not None
    assert [entry.event for entry in taken.history] == [HistoryEvent.TAKEN_OVER]
    acked = boxes["a"].alerts.get("acked")
    assert acked is not None
    assert boxes["b"].alerts.get("acked") == replace(acked, event_at=None)
    stale = boxes["b"].alerts.get("stale")
    assert stale is not None
    assert stale.state is AlertState.RESOLVED
    assert boxes["b"].queue.depth().queued == queued
    applied = await b.change(
        boxes["b"].alerts.plan,
        [event("on", status="resolved"), event("acked", status="resolved")],
        T0,
    )
    assert sorted(r.alert_id for r in applied.changed) == ["acked", "on"]
    assert boxes["b"].queue.depth().queued == queued + 2


async def test_taking_up_says_how_many_alerts_of_its_outbox_it_updated(
    boxes, db: DbThread, caplog: pytest.LogCaptureFixture
) -> None:
    """The next holder taking up an open alert its outbox lacked logs that it updated 1 alert(s)
    of its outbox: no verb left to disagree with the count ("1 differed ... and were")."""
    store = Store()
    await replica(store, boxes["a"], db).change(boxes["a"].alerts.plan, [event("on")], T0)
    store.holder = "b"
    with caplog.at_level("INFO", logger="bridge.sinks.alerts.index"):
        assert await replica(store, boxes["b"], db, "b").take_up() == 1
    assert caplog.messages[-1] == (
        "alerts: took the open alerts kept in Redis as this replica's, updating 1 alert(s) of"
        " its own outbox that differed"
    )


async def test_the_next_holder_takes_over_a_crashed_holders_note_and_notifies_it_once(
    boxes, db: DbThread
) -> None:
    """SIGKILL between Redis and the outbox, and the holder never comes back: the next holder
    takes its note over with the lease and queues the firing, then resolves it; the crashed
    replica, should it start again after all, finds no note and notifies nothing twice."""
    store = Store()
    boxes["a"].alerts.crash = True
    with pytest.raises(RuntimeError):
        await replica(store, boxes["a"], db).change(boxes["a"].alerts.plan, [event()], T0)
    boxes["a"].alerts.crash = False
    store.holder = "b"
    b = replica(store, boxes["b"], db, "b")
    await b.take_up()
    assert store.notes == {"a": {}, "b": {}}
    assert boxes["b"].queue.depth().queued == 1
    fired = boxes["b"].alerts.detail("node_failure:n1")
    assert fired is not None
    assert [entry.event for entry in fired.history] == [HistoryEvent.FIRED]
    applied = await b.change(boxes["b"].alerts.plan, [event(status="resolved")], T0 + 5)
    assert [r.state for r in applied.changed] == [AlertState.RESOLVED]
    assert await replica(store, boxes["a"], db).catch_up() == 0
    assert boxes["a"].queue.depth().queued == 0


@pytest.mark.parametrize("restarted", [True, False], ids=["restarted", "next holder"])
async def test_an_escalation_a_crash_cut_off_is_announced_when_its_note_is_stored(
    boxes, db: DbThread, restarted: bool
) -> None:
    """SIGKILL between Redis and the outbox while escalating: whoever stores the note (the
    replica started again, or the next holder) hands the step to ``escalated`` (AlertEscalation
    is published from there), once; a note of a firing hands over nothing."""
    store = Store()
    a = replica(store, boxes["a"], db)
    await a.change(boxes["a"].alerts.plan, [event()], T0)
    boxes["a"].alerts.crash = True
    with pytest.raises(RuntimeError):
        await a.change(boxes["a"].alerts.plan_escalations, T0 + 100, 60.0)
    boxes["a"].alerts.crash = False
    node = "a" if restarted else "b"
    store.holder = node
    announced: list[list[Escalated]] = []
    again = AlertIndex(
        State(store, node),
        alerts=boxes[node].alerts,
        queue=boxes[node].queue,
        db=db,
        clock=lambda: T0 + 100,
        limit=100,
        escalated=announced.append,
    )
    await again.take_up()
    assert [
        [(e.alert.alert_id, e.from_level, e.to_level) for e in steps] for steps in announced
    ] == [[("node_failure:n1", "level1", "level2")]]
    assert await again.catch_up() == 0
    assert len(announced) == 1


async def test_a_note_overtaken_by_another_holder_notifies_nothing_stale(
    boxes, db: DbThread
) -> None:
    """A crashed replica restarts and finds its note after another holder resolved the alert
    the note fired (the note was not taken over): the firing is not sent late (the receivers
    heard the resolve)."""
    store = Store()
    boxes["a"].alerts.crash = True
    with pytest.raises(RuntimeError):
        await replica(store, boxes["a"], db).change(boxes["a"].alerts.plan, [event()], T0)
    boxes["a"].alerts.crash = False
    store.records = {}  # another holder resolved it
    assert await replica(store, boxes["a"], db).catch_up() == 0
    assert boxes["a"].queue.depth().queued == 0


async def test_a_replica_without_the_lease_takes_over_no_note(boxes, db: DbThread) -> None:
    """Taking up the open alerts without the lease (it went on meanwhile) fails and leaves the
    other replicas' notes where they are."""
    store = Store()
    boxes["a"].alerts.crash = True
    with pytest.raises(RuntimeError):
        await replica(store, boxes["a"], db).change(boxes["a"].alerts.plan, [event()], T0)
    store.holder = "c"
    with pytest.raises(TransportError):
        await replica(store, boxes["b"], db, "b").take_up()
    assert len(store.notes["a"]) == 1
    assert boxes["b"].queue.depth().queued == 0


async def test_redis_that_lost_the_open_alerts_is_given_ours(boxes, db: DbThread) -> None:
    """Taking the lease over a Redis that lost its data (nothing kept, ever): the new holder's
    own open alerts are put back whole."""
    store = Store()
    boxes["a"].alerts.apply([event("mine"), event("gone")], T0)
    observe(boxes["a"], event("gone", status="resolved"), T0 + 1)
    assert await replica(store, boxes["a"], db).take_up() == 0
    assert store.records is not None
    assert sorted(store.records) == ["mine"]


def index_ack(alert_id: str):
    """An acknowledgement by ops."""
    from bridge.sinks.alerts.records import Acknowledgement

    return Acknowledgement(alert_id, "ops")


async def test_an_alert_another_holder_notified_since_is_stale_on_the_replica_before(
    boxes, db: DbThread
) -> None:
    """A replica's notifications of an alert are stale once Redis keeps the alert in a state
    its outbox never stored (the next holder resolved it, or changed its severity), not while
    Redis keeps what it stored last (the alert only seen again, or acknowledged); a Redis that
    lost its data judges none stale."""
    store = Store()
    a = replica(store, boxes["a"], db)
    await a.change(boxes["a"].alerts.plan, [event("one"), event("two"), event("three")], T0)
    store.holder = "b"
    b = replica(store, boxes["b"], db, "b")
    await b.take_up()
    plan = boxes["b"].alerts.plan
    await b.change(plan, [event("one", status="resolved"), event("two")], T0 + 5)
    await b.change(plan, [Acknowledgement("two", "ops"), event("three", severity="error")], T0 + 6)
    assert await a.stale(["one", "two", "three", "four"]) == {"one", "three"}
    assert await b.stale(["one", "two", "three"]) == set()
    store.records = None
    assert await a.stale(["one", "three"]) == set()


@pytest.mark.parametrize("stored_before", [True, False], ids=["stalled", "catching-up"])
async def test_a_note_taken_over_just_before_its_drop_is_left_out_here(
    boxes, db: DbThread, stored_before: bool
) -> None:
    """Another replica takes the lease and this one's note over just before this one drops it
    (it stalled past the lease after storing its change, or it stores the note as it catches
    up, started again): this one finds the note gone and leaves the notification out, and the
    other queues it: once."""
    store = Store()
    a_state = State(store, "a")
    a = replica(store, boxes["a"], db, state=a_state)
    if not stored_before:
        boxes["a"].alerts.crash = True
        with pytest.raises(RuntimeError):
            await a.change(boxes["a"].alerts.plan, [event()], T0)
        boxes["a"].alerts.crash = False
    a_state.adopted_before_forget = State(store, "b")
    if stored_before:
        await a.change(boxes["a"].alerts.plan, [event()], T0)
    else:
        assert await a.catch_up() == 1
    assert boxes["a"].queue.depth().queued == 0
    assert store.taken == {"a": {}}
    await replica(store, boxes["b"], db, "b").take_up()
    assert boxes["b"].queue.depth().queued == 1


async def test_a_note_taken_over_whose_leaving_out_failed_is_left_out_at_the_next_check(
    boxes, db: DbThread
) -> None:
    """This replica finds its note taken over as it drops it (it stalled past the lease) but
    its outbox fails to leave the notification out then (the disk full a moment): the change
    fails, and the next check of a delivery (or the retried change) leaves it out, rather than
    the notification going out beside the other replica's."""
    store = Store()
    a_state = State(store, "a")
    a = replica(store, boxes["a"], db, state=a_state)
    a_state.adopted_before_forget = State(store, "b")
    withdraw = boxes["a"].alerts.withdraw
    failures = [sqlite3.OperationalError("database or disk is full")]

    def failing(*args: Any, **kwargs: Any) -> int:
        if failures:
            raise failures.pop()
        return withdraw(*args, **kwargs)

    boxes["a"].alerts.withdraw = failing
    with pytest.raises(sqlite3.OperationalError):
        await a.change(boxes["a"].alerts.plan, [event()], T0)
    assert boxes["a"].queue.depth().queued == 1
    assert await a.stale([event().alert_id]) == set()
    assert boxes["a"].queue.depth().queued == 0
    assert store.taken == {"a": {}}


class Dated(State):
    """A ``State`` that keeps the dates (``index.DATES``) apart from the open alerts, as Redis
    does, changed alone or along with a change of them."""

    def __init__(self, store: Store, node: str) -> None:
        super().__init__(store, node)
        self.dates: dict[str, bytes] = {}

    async def load(self, name: str) -> dict[str, bytes] | None:
        return dict(self.dates) if name == index.DATES else await super().load(name)

    async def commit(self, name: str, change: StateChange) -> bool:
        if self.store.holder != self.node:
            return False
        if name != index.DATES and not await super().commit(name, change):
            return False
        for dates in [change] if name == index.DATES else change.along.values():
            self.dates.update(dates.put)
            for key in dates.remove:
                self.dates.pop(key, None)
        return True


# The alerts of the returns of nodes n0, n1, n2 and n5 (``returns``).
N0, N1, N2, N5 = (f"node_failure:n{i}" for i in (0, 1, 2, 5))


async def test_the_resolves_of_unknown_alerts_kept_at_the_cap_go_oldest_first(
    boxes, db: DbThread
) -> None:
    """At the cap, a batch of resolves of unknown alerts forgets the oldest of those kept and of
    its own (one older than all kept is not written), counted; a resolve kept that a newer one
    of its alert replaces leaves its place to them."""
    store = Store()
    state = Dated(store, "a")
    a = replica(store, boxes["a"], db, state=state)
    plan = boxes["a"].alerts.plan
    await a.change(plan, returns(range(RESOLVES_REMEMBERED), T0 - 20), T0, remember_for=300.0)
    batch = [
        event(N5, "resolved", at=datetime.fromtimestamp(T0 - 1, UTC)),  # moves n5 up
        event("older", "resolved", at=datetime.fromtimestamp(T0 - 30, UTC)),
        event("newer", "resolved", at=datetime.fromtimestamp(T0 - 1, UTC)),
        event("newest", "resolved", at=datetime.fromtimestamp(T0, UTC)),
    ]
    applied = await a.change(plan, batch, T0 + 1, remember_for=300.0)
    assert applied.forgotten == 3  # older, n0 and n1
    assert len(state.dates) == RESOLVES_REMEMBERED
    assert [n in state.dates for n in ("older", N0, N1, N2, N5, "newer", "newest")] == [
        False,
        False,
        False,
        True,
        True,
        True,
        True,
    ]
    assert state.dates[N5] == b"+" + repr(T0 - 1).encode()
    applied = await a.change(plan, returns(range(1), T0 + 1), T0 + 2, remember_for=300.0)
    assert (applied.forgotten, N2 in state.dates) == (1, False)


async def test_a_resolve_of_an_unknown_alert_is_kept_in_redis_a_day(boxes, db: DbThread) -> None:
    """On Redis a resolve of an unknown alert is kept a day, not the replay window (a down that
    waited that long in a spool cut off from Redis, signed again as it is written, is still
    judged by it), then dropped with a later change, not counted as forgotten: its time ran
    out, it was not forgotten before it at the cap."""
    store = Store()
    state = Dated(store, "a")
    a = replica(store, boxes["a"], db, state=state)
    plan = boxes["a"].alerts.plan
    await a.change(plan, returns(range(1), T0 - 1), T0, remember_for=300.0)
    later = returns(range(1, 2), T0 + 86_000)  # n1, a day on less 400 s
    applied = await a.change(plan, later, T0 + 86_000, remember_for=300.0)
    assert (sorted(state.dates), applied.forgotten) == ([N0, N1], 0)
    down = [event(N0, at=datetime.fromtimestamp(T0 - 2, UTC))]
    stale = await a.change(plan, down, T0 + 86_001, dates=a.dates)
    assert (stale.changed, stale.stale) == ([], 1)
    applied = await a.change(
        plan, returns(range(2, 3), T0 + 90_000), T0 + 90_000, remember_for=300.0
    )
    assert (sorted(state.dates), applied.forgotten) == ([N1, N2], 0)


# The index's horizons (bridge/sinks/alerts/index.py): a date is kept a day, and those kept
# longer are dropped at most once an hour.
DAY = 86_400.0
HOUR = 3_600.0
SMALL_CAP = 50


class CountedId(str):
    """An alert id that counts how often it is hashed (``hashes``, across all of them): each
    look-up of an alert in a dict or a set, so that a change's work is counted by the alerts it
    looks at, not timed."""

    hashes = 0

    def __hash__(self) -> int:
        CountedId.hashes += 1
        return str.__hash__(self)


def resolves_of(dated: dict[str, float], now: float) -> Callable[[], Plan]:
    """A planner of the resolves of unknown alerts ``dated`` (alert id: date), its ids
    ``CountedId``s, stored at ``now``."""
    plan = Plan(
        id=f"p{now}",
        now=now,
        resolves=tuple((CountedId(a), at, 0.0) for a, at in dated.items()),
    )
    return lambda: plan


async def hashes_of(a: AlertIndex, planner: Callable[[], Plan]) -> tuple[int, int]:
    """How many resolves the change of ``planner`` forgot, and how many alert ids it hashed."""
    before = CountedId.hashes
    applied = await a.change(planner)
    return applied.forgotten, CountedId.hashes - before


async def test_a_resolve_at_the_cap_neither_copies_nor_looks_at_all_those_kept(
    boxes, db: DbThread
) -> None:
    """With ``RESOLVES_REMEMBERED`` resolves of unknown alerts kept, each further one forgets the
    oldest (counted) without a copy of those kept (a fraction of the 200 KB and more one takes)
    and after looking at a few alerts, not at each of the 10 000 (as a scan would, even one that
    copies nothing)."""
    state = Dated(Store(), "a")
    a = replica(Store(), boxes["a"], db, state=state)
    kept = {f"n{i}": T0 - 20 + i / 1000 for i in range(RESOLVES_REMEMBERED)}
    await a.change(resolves_of(kept, T0))
    tracemalloc.start()
    try:
        await a.change(resolves_of({"newest": T0}, T0 + 1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64_000
    for i in range(1, 5):
        forgotten, hashes = await hashes_of(a, resolves_of({f"new{i}": T0 + i}, T0 + 1 + i))
        assert hashes < 100
        assert (forgotten, f"n{i}" in state.dates, f"new{i}" in state.dates) == (1, False, True)
    assert (len(state.dates), "n0" in state.dates, "newest" in state.dates) == (
        RESOLVES_REMEMBERED,
        False,
        True,
    )


async def test_resolves_moved_again_and_again_leave_no_more_to_go_through_than_those_kept(
    boxes, db: DbThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolves of unknown alerts resolved anew 100 times (40 of the 50 kept at a cap of 50,
    each time to a date still older than the other 10) leave a change at the cap to look at
    about as many alerts as are kept, not at the 4 000 dates they had on the way."""
    monkeypatch.setattr(index, "RESOLVES_REMEMBERED", SMALL_CAP)
    a = replica(Store(), boxes["a"], db, state=Dated(Store(), "a"))
    newer = {f"s{i}": T0 - 100 + i for i in range(10)}
    await a.change(resolves_of(newer | {f"m{i}": T0 - 1000 + i / 1000 for i in range(40)}, T0))
    for move in range(1, 101):
        moved = {f"m{i}": T0 - 1000 + move + i / 1000 for i in range(40)}
        assert (await hashes_of(a, resolves_of(moved, T0 + move)))[0] == 0
    forgotten, hashes = await hashes_of(a, resolves_of({"new": T0}, T0 + 200))
    assert (forgotten, "m0" in a.dates, "m1" in a.dates) == (1, False, True)
    assert hashes < 1_000


def kept_after(
    kept: dict[str, float], pruned_at: float, resolves: dict[str, float], now: float
) -> tuple[dict[str, float], set[str]]:
    """The reference: the resolves of unknown alerts kept once ``resolves`` are (each newer than
    its alert's date kept), and those of them and of ``kept`` forgotten at the cap, worked out
    the simple way: those older than a day dropped when an hour went by since the last drop, then
    the oldest of all the rest beyond ``SMALL_CAP`` forgotten."""
    old = {a for a, at in kept.items() if at < now - DAY} if now >= pruned_at + HOUR else set()
    rest = {a: at for a, at in kept.items() if a not in old and a not in resolves} | resolves
    excess = len(rest) - SMALL_CAP
    forgotten = set(heapq.nsmallest(excess, rest, key=rest.__getitem__)) if excess > 0 else set()
    return {a: at for a, at in rest.items() if a not in forgotten}, forgotten


async def test_the_resolves_kept_at_the_cap_are_those_a_copy_of_them_all_would_keep(
    boxes, db: DbThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through 150 runs of 30 random changes of resolves of unknown alerts at a cap of 50 (some
    delivered again, a tenth refused by Redis, dates a day old dropped), the index keeps and
    forgets what sorting a copy of them all would, some of them kept again at the date they had
    before they were dropped."""
    monkeypatch.setattr(index, "RESOLVES_REMEMBERED", SMALL_CAP)
    rng = random.Random(20261207)
    kept_again = sum([await random_changes(rng, boxes["a"], db) for _ in range(150)])
    assert kept_again > 0


async def random_changes(rng: random.Random, outbox: Outbox, db: DbThread) -> int:
    """30 random changes of resolves of unknown alerts through a new index, each checked against
    ``kept_after``; how many resolves were kept again at the date they had when dropped."""
    store = Store()
    state = Dated(store, "a")
    a = replica(store, outbox, db, state=state)
    model: dict[str, float] = {}
    pruned_at, now = -math.inf, T0
    sent: list[tuple[str, float]] = []
    dropped: dict[str, float] = {}  # the date each alert dropped had then
    kept_again = 0
    # Half the runs: a few alerts resolved anew at each change (their dates move, stale entries
    # pile up: the heap made anew), then a flood of others, newer, that forgets them first at
    # the cap. The others: a flood, dates up to two days old, some delivered again (forgotten
    # at the cap, or dropped at the hour, then kept again).
    moving = rng.choice([0, 15])
    for change in range(30):
        if change < moving:
            alerts, spread, again, draws = 8, 30.0, 0.0, 24
        else:
            alerts, spread, again, draws = 200, 600.0 if moving else 2 * DAY, 0.25, 12
        now += rng.choice([60.0, 4_000.0])
        batch: dict[str, float] = {}
        for _ in range(rng.randrange(1, draws + 1)):
            if sent and rng.random() < again:
                alert_id, at = rng.choice(sent)  # delivered again
            else:
                alert_id, at = f"n{rng.randrange(alerts)}", now - rng.uniform(0, spread)
                sent.append((alert_id, at))
            batch.setdefault(alert_id, at)
        resolves = {a: at for a, at in batch.items() if a not in model or at > model[a]}
        planner = resolves_of(batch, now)
        if resolves and rng.random() < 0.1:
            store.holder = "b"  # Redis refuses it: nothing changes
            with pytest.raises(TransportError):
                await a.change(planner)
            store.holder = "a"
            assert a.dates == model
            continue
        applied = await a.change(planner)
        forgotten: set[str] = set()  # none written, none dropped, without resolves
        if resolves:
            before = model
            model, forgotten = kept_after(model, pruned_at, resolves, now)
            pruned_at = now if now >= pruned_at + HOUR else pruned_at
            kept_again += sum(
                1 for k, at in model.items() if k not in before and dropped.get(k) == at
            )
            dropped.update((k, at) for k, at in before.items() if k not in model)
        assert applied.forgotten == len(forgotten)
        assert a.dates == model
        assert state.dates == {k: b"+" + repr(at).encode() for k, at in model.items()}
    return kept_again
