"""The work queue's shared state on a real redis-server: fenced by the lease, notes per replica,
nothing dropped there before an outbox stored it."""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from bridge.backoff import Backoff
from bridge.bus import Durability, Envelope, StateChange, new_message_id
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.link import Link
from bridge.bus.redis.shared_state import RedisSharedState
from bridge.errors import TransportError
from bridge.messages import AlertAck, AlertEscalation, DebugTrace, Message, utc_now
from bridge.sinks.alerts.index import TAKEN_OVER_REASON, AlertIndex
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import Acknowledgement, AlertState, HistoryEvent
from bridge.sinks.alerts.thread import DbThread
from tests.integration.redis_proxy import Proxy
from tests.integration.servers.redis import RedisServer, redis_server
from tests.sinks.alerts.helpers import (
    T0,
    URL,
    CrashingOutbox,
    alert_bridge,
    boxes,
    db,
    event,
    one_each,
    stored,
    system_alert,
)
from tests.support import ADMIN_TOKEN, ManualClock, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["boxes", "db", "redis_server"]  # the fixtures, imported for the tests below

# The stalled change an acknowledgement at the holder waits out: 2 s (the default is 6 s), still
# well above the 1 s the bus's blocking reads wait, which are not to time out meanwhile.
TIMEOUT_MS = 2_000


@pytest.fixture
async def states(
    redis_server: Callable[[], RedisServer],
) -> AsyncIterator[tuple[RedisServer, RedisSharedState, RedisSharedState]]:
    """A server and two replicas' views of its shared state (consumers a:1 and b:1)."""
    server = redis_server()
    client = Redis.from_url(server.url)
    link = Link(server.url, client, Backoff(0.01, 0.1, 0.0))
    layout = Layout("exesdb")
    a = RedisSharedState(link, layout, consumer="a:1", node="a")
    b = RedisSharedState(link, layout, consumer="b:1", node="b")
    yield server, a, b
    await client.aclose()


def hold(server: RedisServer, consumer: str) -> None:
    """Make ``consumer`` the work-queue lease holder."""
    with server.client() as client:
        client.set("exesdb:bus:leader", consumer)


async def _stored_acknowledged(outbox: Outbox, alert_id: str) -> None:
    """Wait until ``alert_id`` is stored acknowledged in ``outbox`` (by the lease holder)."""

    def acknowledged() -> bool:
        found = stored(outbox, alert_id)
        return found is not None and found.state is AlertState.ACKNOWLEDGED

    await async_wait_until(acknowledged, 10, "the acknowledgement stored by the holder")


async def test_only_the_lease_holder_changes_the_records(states) -> None:
    """Nothing is kept before the first change (None); the holder's change is made whole, a
    replica without the lease changes nothing."""
    server, a, b = states
    assert await a.load("alerts") is None
    hold(server, "a:1")
    assert await a.commit("alerts", StateChange(put={"x": b"1", "y": b"2"}))
    assert not await b.commit("alerts", StateChange(put={"z": b"3"}, remove=["x"]))
    assert await b.load("alerts") == {"x": b"1", "y": b"2"}
    hold(server, "b:1")
    assert await b.commit("alerts", StateChange(put={"z": b"3"}, remove=["x", "y"]))
    assert await a.load("alerts") == {"z": b"3"}
    assert await b.commit("alerts", StateChange(remove=["z"]))
    assert await a.load("alerts") == {}  # empty, not lost
    assert not await a.commit("alerts", StateChange(put={"late": b"!"}))


async def test_records_of_other_names_go_along_with_a_change_all_or_nothing(states) -> None:
    """Records of other names carried along with a change are put and removed in its step, its
    note kept; refused (no lease), neither the change nor what it carries is made."""
    server, a, b = states
    hold(server, "a:1")
    dates = StateChange(put={"x": b"1.5", "y": b"2.5"})
    change = StateChange(put={"x": b"{}"}, note=("p1", b"plan"), along={"alerts:dates": dates})
    assert await a.commit("alerts", change)
    assert await a.load("alerts") == {"x": b"{}"}
    assert await a.load("alerts:dates") == {"x": b"1.5", "y": b"2.5"}
    assert await a.notes("alerts") == {"p1": b"plan"}
    dates = StateChange(put={"x": b"3.5"}, remove=["y"])
    later = StateChange(remove=["x"], along={"alerts:dates": dates})
    assert not await b.commit("alerts", later)
    assert await b.load("alerts") == {"x": b"{}"}
    assert await b.load("alerts:dates") == {"x": b"1.5", "y": b"2.5"}
    assert await a.commit("alerts", later)
    assert await a.load("alerts") == {}
    assert await a.load("alerts:dates") == {"x": b"3.5"}


async def test_notes_are_kept_per_replica_with_the_change(states) -> None:
    """A note goes in with its change; each replica reads and forgets only its own."""
    server, a, b = states
    hold(server, "a:1")
    assert await a.commit("alerts", StateChange(put={"x": b"1"}, note=("p1", b"plan one")))
    assert not await b.commit("alerts", StateChange(put={"y": b"2"}, note=("p2", b"two")))
    assert await a.notes("alerts") == {"p1": b"plan one"}
    assert await b.notes("alerts") == {}
    await a.forget("alerts", ["p1"])
    assert await a.notes("alerts") == {}


async def test_a_new_holder_finds_the_notes_through_their_index_whatever_else_redis_holds(
    states,
) -> None:
    """Taking over the other replicas' notes reads the set of nodes that kept some: once it
    is listed (a first take-over scanned for notes an earlier version kept), 20 000 unrelated
    keys add no command, and every note moves."""
    server, a, b = states
    hold(server, "b:1")
    assert await b.adopt("alerts") == 0
    hold(server, "a:1")
    assert await a.commit("alerts", StateChange(put={"x": b"1"}, note=("p1", b"plan one")))
    with server.client() as client:
        pipe = client.pipeline(transaction=False)
        for number in range(20_000):
            pipe.set(f"exesdb:state:alerts:notes-like:{number}", b"unrelated")
        pipe.execute()
        client.config_resetstat()
    hold(server, "b:1")
    assert await b.adopt("alerts") == 1
    assert await b.notes("alerts") == {"p1": b"plan one"}
    assert await a.notes("alerts") == {}
    with server.client() as client:
        stats = client.info("commandstats")
        assert {"cmdstat_scan", "cmdstat_keys"}.isdisjoint(stats), sorted(stats)
        assert set(client.smembers("exesdb:state:alerts:noted")) == {b"", b"b"}
    hold(server, "a:1")
    assert await a.adopt("alerts") == 1  # and back: the index follows the notes
    assert await a.notes("alerts") == {"p1": b"plan one"}


async def test_scripts_whose_pexpire_the_acl_refuses_are_told_naming_them(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """On an ACL user that may not run PEXPIRE, a change with its note and a take-over of
    another replica's notes (scripts that keep the notes with PEXPIRE) fail naming the script
    and the commands it runs, which Redis's words do not: counted, warned of once, and told as
    the link's trouble (readiness) until the change gets through once PEXPIRE is granted; each
    refused before it wrote anything, so the take-over finishes once granted."""
    server = redis_server()
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "bridge", "on", ">pw", "~*", "+@all", "-pexpire")
        admin.hset("exesdb:state:alerts:notes:b", "p0", b"b's plan")
        admin.sadd("exesdb:state:alerts:noted", "", "b")
    url = f"redis://bridge:pw@127.0.0.1:{server.port}/0"
    client = Redis.from_url(url)
    link = Link(url, client, Backoff(0.01, 0.1, 0.0))
    a = RedisSharedState(link, Layout("exesdb"), consumer="a:1", node="a")
    hold(server, "a:1")
    change = StateChange(put={"x": b"1"}, note=("p1", b"plan one"))
    committing = (
        "(a change of the work queue's alerts records, a script running GET, EXISTS, SET, HSET,"
        " HDEL, PEXPIRE and SADD)"
    )
    adopting = (
        "(the take-over of another replica's alerts notes, a script running GET, HGETALL, HSET,"
        " SREM, PEXPIRE, DEL and SADD)"
    )
    try:
        with pytest.raises(TransportError, match="can't run this command") as refused:
            await a.adopt("alerts")
        assert adopting in str(refused.value)
        for _ in range(2):
            with pytest.raises(TransportError, match="can't run this command") as refused:
                await a.commit("alerts", change)
            assert committing in str(refused.value)
        assert link.connection_errors == 3
        assert committing in (link.trouble() or "")
        warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warned) == 2, warned
        assert adopting in warned[0]
        assert committing in warned[1]
        with server.client() as admin:
            # Refused before anything was written: no half-moved note, no record without its note.
            assert admin.hgetall("exesdb:state:alerts:notes:b") == {b"p0": b"b's plan"}
            assert admin.smembers("exesdb:state:alerts:noted") == {b"", b"b"}
            assert not admin.exists("exesdb:state:alerts:notes:a")
            assert not admin.exists("exesdb:state:alerts", "exesdb:state:alerts:kept")
            admin.execute_command("ACL", "SETUSER", "bridge", "+pexpire")
        assert await a.adopt("alerts") == 1
        assert await a.notes("alerts") == {"p0": b"b's plan"}
        assert await a.commit("alerts", change)
        assert committing not in (link.trouble() or "")
    finally:
        await client.aclose()


async def test_a_refused_read_of_some_records_ends_with_the_next_such_read_whatever_its_size(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A read of some records that the ACL refuses (HMGET) is told until the next such read
    gets through once granted, however many records that one asks for."""
    server = redis_server()
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "bridge", "on", ">pw", "~*", "+@all", "-hmget")
    url = f"redis://bridge:pw@127.0.0.1:{server.port}/0"
    client = Redis.from_url(url)
    link = Link(url, client, Backoff(0.01, 0.1, 0.0))
    a = RedisSharedState(link, Layout("exesdb"), consumer="a:1", node="a")
    try:
        with pytest.raises(TransportError, match="NOPERM"):
            await a.read("alerts", ["x", "y", "z"])
        assert "NOPERM" in (link.trouble() or "")
        with server.client() as admin:
            admin.execute_command("ACL", "SETUSER", "bridge", "+hmget")
        assert await a.read("alerts", ["x"]) is None
        assert "NOPERM" not in (link.trouble() or "")
    finally:
        await client.aclose()


async def test_records_lost_with_redis_read_as_none_and_can_be_put_back_whole(states) -> None:
    """After Redis lost its data the records read as None (not empty); a restoring change puts
    them back whole."""
    server, a, _ = states
    hold(server, "a:1")
    assert await a.commit("alerts", StateChange(put={"old": b"1"}))
    with server.client() as client:
        client.flushall()
    assert await a.load("alerts") is None
    hold(server, "a:1")
    assert await a.commit("alerts", StateChange(put={"x": b"1"}, restore=True))
    assert await a.load("alerts") == {"x": b"1"}


async def test_records_whose_mark_was_evicted_are_read_and_never_dropped(states) -> None:
    """Records found without their ``kept`` mark (an eviction of that key alone) still read as
    the records, and a restoring change, which would put others in their place, is refused."""
    server, a, _ = states
    hold(server, "a:1")
    assert await a.commit("alerts", StateChange(put={"x": b"1"}))
    with server.client() as client:
        client.delete("exesdb:state:alerts:kept")
    assert await a.load("alerts") == {"x": b"1"}
    assert not await a.commit("alerts", StateChange(put={"mine": b"2"}, restore=True))
    assert await a.load("alerts") == {"x": b"1"}


async def _killed_between_redis_and_its_outbox(
    server: RedisServer, state: RedisSharedState, box: CrashingOutbox, db: DbThread
) -> None:
    """Replica a takes the lease and changes alert ``one``: its note goes to Redis, then its
    outbox fails to store the change (as if a were killed there), its crash left on."""
    hold(server, "a:1")
    box.alerts.crash = True
    with pytest.raises(RuntimeError):
        await _index(state, box, db).change(box.alerts.plan, [event("one")], T0)


def _index(state: RedisSharedState, outbox: Outbox, db: DbThread) -> AlertIndex:
    return AlertIndex(
        state, alerts=outbox.alerts, queue=outbox.queue, db=db, clock=lambda: T0 + 100, limit=100
    )


def _keys(server: RedisServer) -> tuple[set[bytes], set[bytes]]:
    """The open-alert ids in Redis and replica a's note ids."""
    with server.client() as client:
        return (
            set(client.hkeys("exesdb:state:alerts")),
            set(client.hkeys("exesdb:state:alerts:notes:a")),
        )


async def test_taking_the_lease_up_drops_nothing_in_redis_before_the_outbox_stored_it(
    states, db: DbThread, boxes: dict[str, CrashingOutbox]
) -> None:
    """On a real Redis: a holder killed between Redis and its outbox keeps its note there until
    its outbox, started again, stored the change (a take-up failing on the outbox leaves it);
    the next holder takes the open alerts up into its outbox and Redis keeps them, even with
    their ``kept`` mark evicted, so neither replica's take-up loses an open alert."""
    server, a_state, b_state = states
    a_box, b_box = boxes["a"], boxes["b"]
    await _killed_between_redis_and_its_outbox(server, a_state, a_box, db)
    assert _keys(server)[0] == {b"one"}
    assert len(_keys(server)[1]) == 1
    with pytest.raises(RuntimeError):
        await _index(a_state, a_box, db).take_up()  # the outbox fails again
    assert _keys(server)[0] == {b"one"}
    assert len(_keys(server)[1]) == 1  # the note waits for the outbox
    a_box.alerts.crash = False
    await _index(a_state, a_box, db).take_up()
    assert a_box.queue.depth().queued == 1  # stored, and notified once
    assert _keys(server) == ({b"one"}, set())
    await _index(a_state, a_box, db).change(a_box.alerts.plan, [event("two")], T0 + 1)
    with server.client() as client:
        client.delete("exesdb:state:alerts:kept")
    hold(server, "b:1")
    assert await _index(b_state, b_box, db).take_up() == 2
    for alert_id in ("one", "two"):
        record = a_box.alerts.get(alert_id)
        assert record is not None
        # The time of its last event stays with a: Redis does not carry it.
        assert b_box.alerts.get(alert_id) == replace(record, event_at=None)
    assert _keys(server)[0] == {b"one", b"two"}
    assert b_box.queue.depth().queued == 0  # the receivers heard of them from a


async def test_the_next_holder_takes_over_a_crashed_holders_notes_on_a_real_redis(
    states, db: DbThread, boxes: dict[str, CrashingOutbox]
) -> None:
    """A holder killed between Redis and its outbox never comes back: the next holder moves its
    note to its own with the lease, stores it and notifies the firing once; the killed
    replica, started again after all, finds no note; a replica without the lease moves none."""
    server, a_state, b_state = states
    a_box, b_box = boxes["a"], boxes["b"]
    await _killed_between_redis_and_its_outbox(server, a_state, a_box, db)
    assert len(_keys(server)[1]) == 1
    with pytest.raises(TransportError, match="no longer holds"):
        await b_state.adopt("alerts")  # a still holds the lease
    assert len(_keys(server)[1]) == 1
    hold(server, "b:1")
    await _index(b_state, b_box, db).take_up()
    assert b_box.queue.depth().queued == 1  # the firing, from b
    fired = b_box.alerts.detail("one")
    assert fired is not None
    assert [entry.event for entry in fired.history] == [HistoryEvent.FIRED]
    with server.client() as client:
        assert client.keys("exesdb:state:alerts:notes:*") == []
    a_box.alerts.crash = False
    assert await _index(a_state, a_box, db).catch_up() == 0
    assert a_box.queue.depth().queued == 0


class KilledBeforeTheDrop(RedisSharedState):
    """A replica's shared state as a SIGKILL after its outbox stored a change, before its note
    went, leaves it: the drop never reaches Redis."""

    async def forget(self, name: str, note_ids: Collection[str]) -> set[str]:
        raise TransportError("killed before the note went")


async def _killed_before_the_drop(server: RedisServer, box: CrashingOutbox, db: DbThread) -> None:
    """Replica a takes the lease and fires alert ``one``: Redis and its outbox take the change,
    and a is killed before its note goes."""
    hold(server, "a:1")
    client = Redis.from_url(server.url)
    link = Link(server.url, client, Backoff(0.01, 0.1, 0.0))
    killed = KilledBeforeTheDrop(link, Layout("exesdb"), consumer="a:1", node="a")
    try:
        await _index(killed, box, db).change(box.alerts.plan, [event("one")], T0)
    finally:
        await client.aclose()
    assert len(_keys(server)[1]) == 1
    assert box.queue.depth().queued == 1


@pytest.mark.parametrize("grouped", [False, True], ids=["in-its-window", "in-a-delivery"])
async def test_a_holder_killed_before_it_dropped_a_stored_note_does_not_send_it_again(
    states, db: DbThread, boxes: dict[str, CrashingOutbox], grouped: bool
) -> None:
    """On a real Redis: a holder killed after its outbox stored a firing, before its note went,
    and down past the lease: the next holder takes the note over and queues the firing; the
    killed replica, back, leaves its own notification of it out (waiting in its grouping window,
    or in a delivery for a receiver that was down: stale, saying why) before sending anything,
    so the firing goes out once; Redis keeps nothing of it after."""
    server, a_state, b_state = states
    a_box, b_box = boxes["a"], boxes["b"]
    await _killed_before_the_drop(server, a_box, db)
    if grouped:
        assert a_box.queue.group(URL, T0, 0.0, one_each) == 1
    hold(server, "b:1")
    await _index(b_state, b_box, db).take_up()
    assert b_box.queue.depth().queued == 1  # the firing, from b
    assert await _index(a_state, a_box, db).catch_up() == 0
    assert (a_box.queue.depth().queued, a_box.queue.depth().pending) == (0, 0)
    left_out = a_box.queue.deliveries("stale")
    assert [(d.alert_ids, d.last_error) for d in left_out] == (
        [(("one",), TAKEN_OVER_REASON)] if grouped else []
    )
    with server.client() as client:
        assert client.keys("exesdb:state:alerts:notes:*") == []
        assert client.keys("exesdb:state:alerts:adopted:*") == []


@pytest.mark.parametrize("standing_by", [True, False], ids=["standing-by", "taking-the-lease"])
async def test_a_note_taken_over_and_back_again_is_sent_once(
    states, db: DbThread, boxes: dict[str, CrashingOutbox], standing_by: bool
) -> None:
    """On a real Redis: a holder killed before it dropped a stored note; the next holder takes
    the note over and is killed before storing it; the first, back (standing by first, or
    taking the lease at once), takes the note back with the lease and sends the firing once,
    and the second, back, sends nothing of it."""
    server, a_state, b_state = states
    a_box, b_box = boxes["a"], boxes["b"]
    await _killed_before_the_drop(server, a_box, db)
    hold(server, "b:1")
    b_box.alerts.crash = True
    with pytest.raises(RuntimeError):
        await _index(b_state, b_box, db).take_up()
    if standing_by:
        await _index(a_state, a_box, db).catch_up()
        assert a_box.queue.depth().queued == 0  # b took it over
    hold(server, "a:1")
    await _index(a_state, a_box, db).take_up()
    assert a_box.queue.depth().queued == 1
    b_box.alerts.crash = False
    await _index(b_state, b_box, db).catch_up()
    assert b_box.queue.depth().queued == 0
    with server.client() as client:
        assert client.keys("exesdb:state:alerts:notes:*") == []
        assert client.keys("exesdb:state:alerts:adopted:*") == []


async def test_a_wall_clock_set_back_restarts_an_escalation_period_on_redis_too(
    tmp_path: Path, redis_server: Callable[[], RedisServer]
) -> None:
    """On the Redis bus, as in memory, a wall clock set back an hour restarts an unacknowledged
    alert's escalation period (kept in Redis too) from the jump: one step a period later."""
    server = redis_server()
    clock = ManualClock(T0)
    async with alert_bridge(
        tmp_path, clock=clock, EXESDB_BUS=server.url, EXESDB_ESCALATION_AFTER_MS="60000"
    ) as (bridge, sink, watcher):
        await async_wait_until(sink.holds_work_queue, what="the work-queue lease")
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: stored(sink.outbox, "a1"), what="the alert stored")
        clock.now -= 3600.0  # an NTP step, a VM resumed
        await sink.housekeeping.housekeep()
        restarted = stored(sink.outbox, "a1")
        assert restarted is not None
        assert (restarted.level, restarted.level_since) == (1, clock.now)
        clock.advance(60.0)
        await sink.housekeeping.housekeep()
        steps = await async_wait_until(lambda: watcher.of(AlertEscalation), what="announced")
        assert [(s.from_level, s.to_level) for s in steps] == [("level1", "level2")]
        escalated = stored(sink.outbox, "a1")
        assert escalated is not None
        assert escalated.level == 2


def passed_and_went_on(sink: Any, caplog: pytest.LogCaptureFixture) -> Callable[[], Any]:
    """A condition running one housekeeping pass of ``sink`` and then telling whether its
    escalation and expiry were told to go on again."""

    async def went_on() -> bool:
        await sink.housekeeping.housekeep()
        return "go on again" in caplog.text

    return went_on


async def test_escalation_and_expiry_waiting_out_an_outage_is_told_once_whatever_its_cause(
    tmp_path: Path, redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """An outage of Redis under the holder (cut off while it is down, then timing out while it
    is paused) is told once, with its first cause, and its end with how many passes failed."""
    server = redis_server()
    assert server.process is not None
    async with alert_bridge(tmp_path, EXESDB_BUS=server.url) as (bridge, sink, _):
        await async_wait_until(sink.holds_work_queue, what="the work-queue lease")
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: stored(sink.outbox, "a1"), what="a1 stored")
        # The passes below alone: a pass of the loop in flight across the restart (its answer
        # read once the test's loop runs again) would end the outage between them.
        await sink.housekeeping.aclose()
        with caplog.at_level("INFO", logger="bridge.sinks.alerts.housekeeping"):
            with server.client() as client:
                client.save()  # loaded by the start again: the lease and alerts kept
            server.stop()
            await sink.housekeeping.housekeep()
            server.start()
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                await sink.housekeeping.housekeep()  # timing out: the cause worded anew
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            await async_wait_until(
                passed_and_went_on(sink, caplog), 20, "escalation and expiry going on"
            )
    said = [r.getMessage() for r in caplog.records if "escalation and expiry" in r.getMessage()]
    assert len(said) == 2, said
    port = server.port
    assert said[0].startswith(
        f"alerts: escalation and expiry wait: Redis at redis://127.0.0.1:{port}/… could not"
    ), said
    assert "Timeout" not in said[0], said  # the outage's first cause, not its latest
    assert re.fullmatch(
        r"alerts: escalation and expiry go on again after (\d+) failed pass\(es\) in [\d.]+s",
        said[1],
    ), said


@pytest.mark.parametrize("lost", ["flushall", "deleted", "emptied"])
async def test_open_alerts_redis_lost_under_the_holder_are_put_back(
    tmp_path: Path, redis_server: Callable[[], RedisServer], lost: str
) -> None:
    """The open alerts kept in Redis, gone while the holder holds the lease (their hash deleted
    or evicted, with its mark or alone), are put back whole by the holder before its next change
    (an alert then, or a housekeeping pass), not left for the next holder to find missing; after
    FLUSHALL (the lease gone too) the holder takes its lease back and puts them back as it
    does after Redis lost its data."""
    server = redis_server()
    async with alert_bridge(tmp_path, EXESDB_BUS=server.url) as (bridge, sink, _):
        await async_wait_until(sink.holds_work_queue, what="the work-queue lease")
        for alert_id in ("a1", "a2"):
            bridge.bus.publish("disk_full", system_alert(alert_id))
        await async_wait_until(
            lambda: stored(sink.outbox, "a1") and stored(sink.outbox, "a2"), what="both stored"
        )
        with server.client() as client:
            assert set(client.hkeys("exesdb:state:alerts")) == {b"a1", b"a2"}
            if lost == "flushall":
                client.flushall()
            elif lost == "deleted":
                client.delete("exesdb:state:alerts", "exesdb:state:alerts:kept")
            else:
                client.delete("exesdb:state:alerts")
        expected = {b"a1", b"a2"}
        if lost != "flushall":  # one more alert, which made the hash anew with it alone
            bridge.bus.publish("disk_full", system_alert("a3"))
            expected.add(b"a3")

        def put_back() -> bool:
            with server.client() as client:
                return set(client.hkeys("exesdb:state:alerts")) == expected

        await async_wait_until(put_back, 10, "the open alerts back in Redis")


async def test_an_ack_at_a_replica_without_the_lease_reaches_the_holder_with_the_switch_off(
    tmp_path: Path, redis_server: Callable[[], RedisServer]
) -> None:
    """With the integration switch off (EXESDB_PUBSUB_INTEGRATION=false), an acknowledgement
    made at a replica without the work-queue lease still goes out as its AlertAck, which is how
    the holder hears of it: the alert is acknowledged once a holder takes the work queue, not
    left firing after an answer that said acknowledged."""
    server = redis_server()
    switched_off = alert_bridge(tmp_path, EXESDB_BUS=server.url, EXESDB_PUBSUB_INTEGRATION="false")
    async with switched_off as (bridge, sink, _):
        await async_wait_until(sink.holds_work_queue, what="the work-queue lease")
        bridge.bus.publish("disk_full", system_alert("a1", metadata={"requires_ack": True}))
        await async_wait_until(lambda: stored(sink.outbox, "a1"), what="the alert stored")
        hold(server, "b:1")  # another replica takes the lease: this one stands by
        await async_wait_until(lambda: not sink.holds_work_queue(), what="stepped down")
        record = await sink.acknowledge(Acknowledgement("a1", "ops"))
        assert record is not None
        assert record.state is AlertState.ACKNOWLEDGED  # as the answer says it
        with server.client() as client:
            client.delete("exesdb:bus:leader")  # that one gone: this one takes it back
        await async_wait_until(sink.holds_work_queue, what="the lease taken back")

        await _stored_acknowledged(sink.outbox, "a1")


@pytest.mark.parametrize(
    ("holding", "why"),
    [(False, "does not hold the work-queue lease"), (True, "Redis did not take its change")],
    ids=["without-the-lease", "holder"],
)
async def test_an_ack_stored_nowhere_whose_alertack_the_bus_cannot_take_is_answered_503(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    caplog: pytest.LogCaptureFixture,
    holding: bool,
    why: str,
) -> None:
    """An acknowledgement stored nowhere (at a replica without the work-queue lease, which
    stores none itself; at the holder, whose change Redis does not take) whose AlertAck the bus
    cannot store (Redis stalled, the spool on disk full) is answered 503 not_committed with
    Retry-After and why, logged once, not 200 as if acknowledged while the alert goes on firing;
    sent again once Redis is back, it is answered 200 and reaches the holder."""
    server = redis_server()
    proxy = await Proxy(server.port).start()
    try:
        bridge_of = alert_bridge(
            tmp_path,
            EXESDB_BUS=proxy.url,
            EXESDB_REDIS_SPOOL_BYTES=str(1024 * 1024),  # the least allowed
            EXESDB_REDIS_TIMEOUT_MS=str(TIMEOUT_MS),
        )
        async with bridge_of as (bridge, sink, _):
            await async_wait_until(sink.holds_work_queue, what="the work-queue lease")
            bridge.bus.publish("disk_full", system_alert("a1", metadata={"requires_ack": True}))
            await async_wait_until(lambda: stored(sink.outbox, "a1"), what="the alert stored")
            if not holding:
                hold(server, "b:1")  # another replica takes the lease: this one stands by
                await async_wait_until(lambda: not sink.holds_work_queue(), what="stepped down")
            proxy.stall()  # the writer's next command waits for an answer: the spool fills
            await _fill_spool(bridge)
            with caplog.at_level(logging.WARNING):
                # (At the holder each waits for the stalled change to time out.)
                refused = [await _ack(bridge) for _ in range(1 if holding else 2)]
            assert sink.holds_work_queue() is holding  # (the lease outlasts the stall)
            for status, headers, body in refused:
                assert (status, headers.get("Retry-After"), body.get("error")) == (
                    503,
                    "1",
                    "not_committed",
                ), body
                assert why in body["detail"]
                assert "refused the AlertAck" in body["detail"]
                assert "EXESDB_REDIS_SPOOL_BYTES" in body["detail"]
            said = [
                r.getMessage() for r in caplog.records if "could not be stored" in r.getMessage()
            ]
            assert len(said) == 1, said
            proxy.resume()

            def written() -> bool:
                return all(
                    bridge.registry.get_sample_value(name) == 0
                    for name in ("exesdb_redis_buffer_depth", "exesdb_redis_spool_bytes")
                )

            await async_wait_until(written, what="the buffer and the spool written")
            status, _headers, body = await _ack(bridge)
            assert (status, body["alert"]["state"]) == (200, "acknowledged"), body
            if not holding:
                with server.client() as client:
                    client.delete("exesdb:bus:leader")  # that one gone: this one takes it back
                await async_wait_until(sink.holds_work_queue, what="the lease taken back")

            await _stored_acknowledged(sink.outbox, "a1")
    finally:
        await proxy.aclose()


async def test_an_ack_at_the_holder_whose_change_redis_does_not_take_is_answered_once_spooled(
    tmp_path: Path, redis_server: Callable[[], RedisServer]
) -> None:
    """At the work-queue holder, an acknowledgement whose change Redis does not take (stalled)
    is answered 200 only once its AlertAck, then all that tells the holder, is in the spool on
    disk, as at a replica without the lease, not while it waits in memory (lost to a crash);
    Redis back, the holder stores it."""
    server = redis_server()
    proxy = await Proxy(server.port).start()
    try:
        bridge_of = alert_bridge(
            tmp_path, EXESDB_BUS=proxy.url, EXESDB_REDIS_TIMEOUT_MS=str(TIMEOUT_MS)
        )
        async with bridge_of as (bridge, sink, _):
            await async_wait_until(sink.holds_work_queue, what="the work-queue lease")
            bridge.bus.publish("disk_full", system_alert("a1", metadata={"requires_ack": True}))
            await async_wait_until(lambda: stored(sink.outbox, "a1"), what="the alert stored")
            spooled = bridge.registry.get_sample_value("exesdb_redis_spooled_total") or 0
            proxy.stall()  # the holder's change waits for an answer, then times out
            began = time.monotonic()
            status, _headers, body = await _ack(bridge)
            assert (status, body["alert"]["state"]) == (200, "acknowledged"), body
            # Answered once EXESDB_REDIS_TIMEOUT_MS ran out, not the default 6 s.
            assert TIMEOUT_MS / 1000 <= time.monotonic() - began < 5.0
            assert sink.holds_work_queue()  # (the lease outlasts the stall)
            kept = stored(sink.outbox, "a1")
            assert kept is not None
            assert kept.state is AlertState.FIRING  # stored nowhere here
            assert bridge.registry.get_sample_value("exesdb_redis_spooled_total") == spooled + 1
            proxy.resume()

            await _stored_acknowledged(sink.outbox, "a1")
    finally:
        await proxy.aclose()


async def _fill_spool(bridge: Any) -> None:
    """Fill ``bridge``'s spool (1 MiB) until it has no room for an AlertAck of alert a1: with
    batches of 16 DebugTraces of 8 kB, then one at a time, then AlertAcks of an alert of the
    same id length that no one knows, each stage until the spool refuses it."""
    pad = {"pad": "x" * 8000}
    stages: list[tuple[int, Message]] = [
        (16, DebugTrace(component="c", operation="op", node="n", trace_data=pad)),
        (1, DebugTrace(component="c", operation="op", node="n", trace_data=pad)),
        (1, AlertAck(alert_id="zz", ack_by="ops")),
    ]
    for count, payload in stages:
        for _ in range(200):  # bounded: 1 MiB takes fewer than 100 of any stage
            now = utc_now()
            batch = [
                Envelope(
                    new_message_id(),
                    payload.INSTANCE,
                    "alert_acknowledged" if isinstance(payload, AlertAck) else "diag",
                    payload.TAG,
                    bridge.bus.node,
                    now,
                    payload,
                    now.timestamp(),
                )
                for _ in range(count)
            ]
            _count, outcome = await bridge.bus.publish_verified_durably(batch, 10)
            if outcome is Durability.FULL:
                break
            assert outcome is Durability.COMMITTED, outcome
        else:
            raise AssertionError(f"the spool took 200 batches of {count} {payload.TAG}")


async def _ack(bridge: Any) -> tuple[int, dict[str, str], Any]:
    """POST ops' acknowledgement of alert a1 to ``bridge``; (status, headers, JSON body)."""
    host, port = bridge.address
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://{host}:{port}/v1/alerts/a1/ack",
            json={"ack_by": "ops"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as response,
    ):
        return response.status, dict(response.headers), await response.json()
