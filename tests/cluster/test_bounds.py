"""The cluster monitor's bounds: silent nodes forgotten, eviction at the cap, membership messages
of bounded size, and many downs in one interval alerted as one."""

from __future__ import annotations

import json
import logging

import pytest

from bridge.bus import Envelope, LocalCoordinator
from bridge.cluster import ALERTS_PER_INTERVAL, LISTED_NODES
from bridge.messages import (
    AlertAck,
    ClusterHealth,
    ClusterMembership,
    NodeHealth,
    NodeLifecycle,
    SystemAlert,
)
from bridge.settings import Settings
from bridge.sinks.alerts.sources import alert_events
from tests.cluster.helpers import Clock, Replica, envelope
from tests.sinks.prometheus_support import sample, translate

FORGET_MS = 10_000  # ten intervals


def said(envelope: Envelope) -> NodeLifecycle:
    """The NodeLifecycle ``envelope`` carries."""
    assert isinstance(envelope.payload, NodeLifecycle)
    return envelope.payload


def lifecycle(replica: Replica, event: str) -> list[Envelope]:
    """The NodeLifecycle envelopes with ``event`` that ``replica`` published."""
    return [
        e
        for e in replica.heard
        if e.node == replica.monitor.node
        and isinstance(e.payload, NodeLifecycle)
        and e.payload.event == event
    ]


async def test_a_down_node_silent_past_the_forget_time_is_forgotten_and_announced_left(
    make_replica, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A node down and silent for EXESDB_NODE_FORGET_MS is no longer tracked, is counted and
    logged, and is announced left, which resolves its node_failure alert."""
    replica = await make_replica("bridge-1", forget_ms=FORGET_MS)
    await replica.hear("app-1")
    clock.advance(3.5)
    await replica.tick()
    assert [said(e).node for e in lifecycle(replica, "down")] == ["app-1"]
    clock.advance(9.9)
    await replica.tick()
    assert replica.monitor.health().total_nodes == 2  # still tracked, down
    caplog.set_level(logging.WARNING, "bridge.cluster")
    clock.advance(0.2)
    await replica.tick()
    assert replica.monitor.health().total_nodes == 1  # only this bridge
    assert replica.forgotten("silent") == 1
    assert "forgot 1 node(s) down and silent for EXESDB_NODE_FORGET_MS (10s): app-1" in caplog.text
    [left] = lifecycle(replica, "left")
    assert (said(left).node, said(left).metadata) == (
        "app-1",
        {"forgotten": "silent", "detected_by": "bridge-1"},
    )
    [resolved] = alert_events(left)
    assert (resolved.alert_id, resolved.status) == ("node_failure:app-1", "resolved")
    await replica.tick()
    assert len(lifecycle(replica, "left")) == 1


async def test_a_forgotten_node_heard_again_is_a_new_member(make_replica, clock: Clock) -> None:
    """After being forgotten, a node heard again is tracked and announced node_added (its alert
    already resolved on left), not reconnected."""
    replica = await make_replica("bridge-1", forget_ms=FORGET_MS)
    await replica.hear("app-1")
    await replica.tick()
    clock.advance(3.5)
    await replica.tick()
    clock.advance(10.5)
    await replica.tick()
    await replica.hear("app-1")
    await replica.tick()
    health = replica.monitor.health()
    assert (health.healthy_nodes, health.total_nodes) == (2, 2)
    assert lifecycle(replica, "reconnected") == []
    added = replica.published(ClusterMembership, event="node_added")
    assert [m.affected_nodes for m in added] == [["app-1"], ["app-1"]]


async def test_replicas_sharing_a_coordinator_announce_a_forgotten_node_once(
    make_replica, clock: Clock
) -> None:
    """Every replica forgets the silent node; one of them announces it left."""
    shared = LocalCoordinator(clock)
    replicas = [await make_replica(f"bridge-{n}", shared, forget_ms=FORGET_MS) for n in range(3)]
    for replica in replicas:
        await replica.hear("app-1")
    clock.advance(3.5)
    for replica in replicas:
        await replica.tick()
    clock.advance(10.5)
    for replica in replicas:
        for other in replicas:
            await replica.hear(other.monitor.node)
        await replica.tick()
    assert all(r.monitor.health().total_nodes == 3 for r in replicas)  # the bridges only
    assert sum(len(lifecycle(r, "left")) for r in replicas) == 1


async def test_at_the_cap_the_longest_silent_node_makes_room_for_a_new_one(
    make_replica, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """With the cap reached, a node heard for the first time is tracked (and later declared
    down); the node silent longest goes, never the bridge itself, counted and logged."""
    replica = await make_replica("bridge-1", max_nodes=4)
    for name in ("app-1", "app-2", "app-3"):
        clock.advance(0.1)
        await replica.hear(name)
    clock.advance(0.1)
    await replica.hear("app-1")  # app-2 is now the longest silent besides bridge-1 itself
    caplog.set_level(logging.WARNING, "bridge.cluster")
    await replica.hear("app-4")
    await replica.tick()
    assert replica.monitor.health().total_nodes == 4
    assert replica.forgotten("evicted") == 1
    assert "evicted 1 longest-silent node(s) to track new ones (at most 4 nodes): app-2" in (
        caplog.text
    )
    clock.advance(3.5)
    await replica.hear("bridge-1")
    await replica.tick()
    assert "app-4" in [said(e).node for e in lifecycle(replica, "down")]


def node_failure_events(replica: Replica, node: str) -> list[str]:
    """The statuses of the node_failure alert of ``node`` that ``replica``'s announcements
    stand for, in order."""
    return [
        event.status
        for e in replica.heard
        if e.node == replica.monitor.node
        for event in alert_events(e)
        if event.alert_id == f"node_failure:{node}"
    ]


async def go_down(replica: Replica, clock: Clock, names: list[str]) -> None:
    """``names`` heard, then silent for 3.5 intervals: down and announced."""
    await replica.hear_all(names)
    await replica.tick()
    clock.advance(3.5)
    await replica.hear(replica.monitor.node)
    await replica.tick()


async def test_an_evicted_down_node_keeps_its_alert_open_until_it_is_heard_again(
    make_replica, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Evicting a down node at the cap announces nothing: its node_failure stays open (memory
    pressure resolves no outage), counted and logged, until the node is heard again, tracked as
    new, and announced reconnected, which resolves it."""
    replica = await make_replica("bridge-1", max_nodes=2)
    await go_down(replica, clock, ["app-1"])
    assert node_failure_events(replica, "app-1") == ["firing"]
    caplog.set_level(logging.WARNING, "bridge.cluster")
    await replica.hear("app-2")  # evicts app-1, the longest silent
    await replica.tick()
    assert replica.forgotten("evicted") == 1
    assert (
        "evicted 1 down node(s) at the cap; their alerts stay open until they are heard again: "
        "app-1" in caplog.text
    )
    for _ in range(3):
        clock.advance(1.0)
        await replica.hear_all(["bridge-1", "app-2"])
        await replica.tick()
    assert lifecycle(replica, "left") == []
    assert node_failure_events(replica, "app-1") == ["firing"]
    clock.advance(1.0)
    await replica.hear("app-1", NodeHealth(node="app-1", status="healthy"))  # no "joined"
    await replica.tick()
    assert [said(e).node for e in lifecycle(replica, "reconnected")] == ["app-1"]
    assert node_failure_events(replica, "app-1") == ["firing", "resolved"]


class SwapRecorder(LocalCoordinator):
    """The lone bridge's coordinator, recording each swap: key, value, and what it said before."""

    def __init__(self, clock: Clock, *, max_keys: int) -> None:
        super().__init__(clock, max_keys=max_keys)
        self.swaps: list[tuple[str, str, str | None]] = []

    async def swap(self, key: str, value: str, ttl_ms: int) -> str | None:
        previous = await super().swap(key, value, ttl_ms)
        self.swaps.append((key, value, previous))
        return previous


async def test_an_evicted_down_nodes_return_resolves_its_alert_though_its_state_key_is_gone(
    make_replica, clock: Clock
) -> None:
    """A lone bridge whose coordinator let the down node's state key go (a flood of names set
    newer ones) still announces the node reconnected when heard again: the monitor remembers
    the nodes it evicted down."""
    coordinator = SwapRecorder(clock, max_keys=10)
    replica = await make_replica("bridge-1", coordinator, max_nodes=3)
    await go_down(replica, clock, ["app-1"])
    for n in range(10):  # new names, two a tick: each evicts the longest silent
        await replica.hear_all([f"flood-{n}a", f"flood-{n}b"])
        await replica.tick()
    await replica.hear("app-1", NodeHealth(node="app-1", status="healthy"))
    await replica.tick()
    assert coordinator.swaps[-1] == ("cluster:node:app-1", "up", None)  # its key was gone
    assert [said(e).node for e in lifecycle(replica, "reconnected")] == ["app-1"]
    assert node_failure_events(replica, "app-1") == ["firing", "resolved"]


async def test_replicas_that_evicted_a_down_node_announce_its_return_once(
    make_replica, clock: Clock
) -> None:
    """Replicas sharing a coordinator each evict the down node without a word; heard again, it
    is announced reconnected by one of them, which resolves its alert."""
    shared = LocalCoordinator(clock)
    replicas = [await make_replica(f"bridge-{n}", shared, max_nodes=2) for n in range(2)]
    for replica in replicas:
        await replica.hear("app-1")
    clock.advance(3.5)
    for replica in replicas:
        await replica.hear(replica.monitor.node)
        await replica.tick()
    assert sum(len(lifecycle(r, "down")) for r in replicas) == 1
    for replica in replicas:
        await replica.hear("app-2")
        await replica.tick()
    assert sum(r.forgotten("evicted") for r in replicas) == 2
    assert sum(len(lifecycle(r, "left")) for r in replicas) == 0
    for replica in replicas:
        await replica.hear("app-1", NodeHealth(node="app-1", status="healthy"))
        await replica.tick()
    [back] = [e for r in replicas for e in lifecycle(r, "reconnected")]
    [resolved] = alert_events(back)
    assert (resolved.alert_id, resolved.status) == ("node_failure:app-1", "resolved")


async def test_evicted_grouped_downs_keep_their_grouped_alert_open_until_they_are_heard_again(
    make_replica, clock: Clock
) -> None:
    """Nodes of a grouped down alert evicted at the cap are not back: the grouped alert is not
    resolved while they are away, nor are the others' own alerts; once its nodes are heard
    again, it is."""
    names = [f"app-{n:02d}" for n in range(ALERTS_PER_INTERVAL + 2)]
    replica = await make_replica("bridge-1", max_nodes=len(names) + 1)
    await go_down(replica, clock, names)
    [grouped] = replica.published(SystemAlert)
    assert isinstance(grouped, SystemAlert)
    members = [
        said(e).node
        for e in lifecycle(replica, "down")
        if said(e).metadata.get("grouped") == grouped.alert_id
    ]
    assert len(members) == 2
    await replica.hear_all([f"new-{n:02d}" for n in range(len(names))])  # every app- evicted
    for _ in range(3):
        clock.advance(1.0)
        await replica.tick()
    assert replica.forgotten("evicted") == len(names)
    assert replica.published(AlertAck) == []
    assert lifecycle(replica, "left") == []
    await replica.hear_all(members)
    await replica.tick()
    [ack] = replica.published(AlertAck)
    assert isinstance(ack, AlertAck)
    assert ack.alert_id == grouped.alert_id
    assert sorted(said(e).node for e in lifecycle(replica, "reconnected")) == sorted(members)


async def test_an_evicted_grouped_down_is_forgotten_after_the_forget_time_as_a_tracked_one_is(
    make_replica, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A node evicted down is remembered for EXESDB_NODE_FORGET_MS, then forgotten as a tracked
    down node is: logged, announced left, and the grouped alert it is in resolves."""
    names = [f"app-{n:02d}" for n in range(ALERTS_PER_INTERVAL + 2)]
    replica = await make_replica("bridge-1", max_nodes=len(names) + 1, forget_ms=FORGET_MS)
    await go_down(replica, clock, names)
    [grouped] = replica.published(SystemAlert)
    assert isinstance(grouped, SystemAlert)
    members = [
        said(e).node
        for e in lifecycle(replica, "down")
        if said(e).metadata.get("grouped") == grouped.alert_id
    ]
    await replica.hear_all([f"new-{n:02d}" for n in range(len(names))])
    await replica.tick()
    assert replica.published(AlertAck) == []
    assert lifecycle(replica, "left") == []
    caplog.set_level(logging.WARNING, "bridge.cluster")
    clock.advance(FORGET_MS / 1000)
    await replica.hear_all([f"new-{n:02d}" for n in range(len(names))])
    await replica.tick()
    assert f"forgot {len(names)} node(s) down and silent for EXESDB_NODE_FORGET_MS" in caplog.text
    assert sorted(said(e).node for e in lifecycle(replica, "left")) == sorted(names)
    [ack] = replica.published(AlertAck)
    assert isinstance(ack, AlertAck)
    assert ack.alert_id == grouped.alert_id
    assert members


async def test_past_its_bound_an_evicted_down_node_is_not_remembered_and_its_alert_stays_open(
    make_replica, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The evicted down nodes remembered are at most as many as the nodes tracked, the earliest
    kept: one more is logged, announced nothing, and its alert stays open."""
    replica = await make_replica("bridge-1", max_nodes=2)
    caplog.set_level(logging.WARNING, "bridge.cluster")
    for name in ("app-1", "app-2", "app-3", "app-4"):
        await go_down(replica, clock, [name])  # each evicts the one before
    assert replica.forgotten("evicted") == 3
    assert (
        "cannot remember 1 more node(s) evicted down (at most 2): their alerts stay open, even "
        "once they are heard again unless their state key still says down: app-3" in caplog.text
    )
    assert lifecycle(replica, "left") == []
    assert node_failure_events(replica, "app-3") == ["firing"]


async def test_farewells_wait_no_more_than_the_nodes_tracked_and_the_rest_are_counted(
    make_replica, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Down nodes forgotten faster than farewells go out keep at most max_nodes waiting: the
    earliest are announced left, the later ones are given up, logged and counted."""
    replica = await make_replica("bridge-1", max_nodes=5, per_tick=1, forget_ms=FORGET_MS)
    caplog.set_level(logging.WARNING, "bridge.cluster")
    for round_ in range(6):  # each round: two new nodes go down, the two before are forgotten
        await replica.hear_all([f"app-{round_}a", f"app-{round_}b"])
        clock.advance(FORGET_MS / 1000 + 3.5)
        await replica.hear("bridge-1")
        await replica.tick()
    assert replica.farewells_dropped() == 1
    assert "gave up announcing 1 forgotten down node(s) as left, 5 already waiting: app-4b" in (
        caplog.text
    )
    for _ in range(5):
        await replica.tick()
    left = [said(e).node for e in lifecycle(replica, "left")]
    assert left == [f"app-{n}{x}" for n in range(5) for x in "ab"][:9]


async def test_a_farewell_the_bus_refuses_is_announced_on_a_later_tick(
    make_replica, clock: Clock
) -> None:
    """A forgotten down node's left refused by the bus (its buffer full) is not lost with its
    state key set: it is announced on a later tick, once, and resolves the node's alert."""
    replica = await make_replica("bridge-1", forget_ms=FORGET_MS)
    await go_down(replica, clock, ["app-1"])
    clock.advance(FORGET_MS / 1000)
    replica.transport.refuse = True
    await replica.tick()
    assert replica.forgotten("silent") == 1
    assert lifecycle(replica, "left") == []
    replica.transport.refuse = False
    await replica.tick()
    await replica.tick()
    assert [said(e).node for e in lifecycle(replica, "left")] == ["app-1"]
    assert node_failure_events(replica, "app-1") == ["firing", "resolved"]


HOUR_MS = 3_600_000


async def forgotten_first_by_a_dead_replica(
    make_replica, clock: Clock, names: list[str]
) -> tuple[Replica, LocalCoordinator]:
    """A replica that finds ``names`` down, then forgets them after another replica swapped
    their state keys to forgotten and died before publishing their left (the keys say
    announced; nothing was)."""
    shared = LocalCoordinator(clock)
    replica = await make_replica("bridge-1", shared, forget_ms=FORGET_MS)
    await go_down(replica, clock, names)
    for name in names:
        await shared.swap(f"cluster:node:{name}", "forgotten", HOUR_MS)
    clock.advance(FORGET_MS / 1000)
    return replica, shared


async def test_a_left_whose_winner_died_before_publishing_is_announced_an_interval_on(
    make_replica, clock: Clock
) -> None:
    """A forgotten down node's left another replica won the swap for and never published is
    announced by this one once an interval passes without hearing it, once, marked unheard:
    its node_failure alert resolves."""
    replica, _ = await forgotten_first_by_a_dead_replica(make_replica, clock, ["app-1"])
    await replica.tick()
    assert replica.forgotten("silent") == 1
    assert lifecycle(replica, "left") == []
    for _ in range(3):
        clock.advance(1.1)
        await replica.tick()
    [left] = lifecycle(replica, "left")
    assert said(left).node == "app-1"
    assert said(left).metadata == {
        "forgotten": "silent",
        "detected_by": "bridge-1",
        "unheard": True,
    }
    assert node_failure_events(replica, "app-1") == ["firing", "resolved"]


async def test_a_left_heard_from_the_replica_that_forgot_the_node_first_is_not_said_again(
    make_replica, clock: Clock
) -> None:
    """A left heard from the replica that won the swap, before this one forgets the node or
    within an interval after, is left to it."""
    replica, _ = await forgotten_first_by_a_dead_replica(make_replica, clock, ["app-1", "app-2"])
    winner = {"forgotten": "silent", "detected_by": "bridge-2"}
    await replica.hear(
        "bridge-2", NodeLifecycle(node="app-1", event="left", cluster_size=1, metadata=winner)
    )
    await replica.tick()
    assert replica.forgotten("silent") == 2
    await replica.hear(
        "bridge-2", NodeLifecycle(node="app-2", event="left", cluster_size=1, metadata=winner)
    )
    for _ in range(3):
        clock.advance(1.1)
        await replica.tick()
    assert lifecycle(replica, "left") == []


async def test_a_node_back_before_its_unheard_left_is_announced_reconnected(
    make_replica, clock: Clock
) -> None:
    """A node heard again while its left, won by a replica that died, waits to be heard is
    announced reconnected (an interval on, as a return whose winner is not heard), not left:
    its node_failure alert resolves."""
    replica, _ = await forgotten_first_by_a_dead_replica(make_replica, clock, ["app-1"])
    await replica.tick()
    await replica.hear("app-1", NodeHealth(node="app-1", status="healthy"))
    for _ in range(3):
        clock.advance(1.1)
        await replica.hear("app-1", NodeHealth(node="app-1", status="healthy"))
        await replica.tick()
    assert [said(e).node for e in lifecycle(replica, "reconnected")] == ["app-1"]
    assert lifecycle(replica, "left") == []
    assert node_failure_events(replica, "app-1") == ["firing", "resolved"]


class KeyLosingCoordinator(LocalCoordinator):
    """The lone bridge's coordinator, with a key the test can have lost (pushed out by a flood
    of newer names): its next swap finds nothing before it."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.lost: set[str] = set()

    async def swap(self, key: str, value: str, ttl_ms: int) -> str | None:
        previous = await super().swap(key, value, ttl_ms)
        if key in self.lost:
            self.lost.discard(key)
            return None
        return previous


async def test_a_forgotten_node_heard_before_its_farewell_goes_out_is_announced_back(
    make_replica, clock: Clock
) -> None:
    """A node forgotten down whose left still waits its turn (farewells go out per_tick a tick)
    and that is heard meanwhile, its state key gone, is announced reconnected, which resolves
    its alert, rather than added with its alert left open."""
    coordinator = KeyLosingCoordinator(clock)
    replica = await make_replica("bridge-1", coordinator, per_tick=1, forget_ms=FORGET_MS)
    await replica.hear_all(["app-1", "app-2"])
    await replica.tick()
    await replica.tick()  # one node_added a tick
    clock.advance(3.5)
    await replica.hear(replica.monitor.node)
    await replica.tick()
    await replica.tick()  # one down a tick
    assert node_failure_events(replica, "app-2") == ["firing"]
    clock.advance(FORGET_MS / 1000)
    await replica.tick()  # both forgotten: app-1's left goes out, app-2's waits
    assert [said(e).node for e in lifecycle(replica, "left")] == ["app-1"]
    coordinator.lost.add("cluster:node:app-2")
    await replica.hear("app-2", NodeHealth(node="app-2", status="healthy"))
    await replica.tick()
    assert [said(e).node for e in lifecycle(replica, "reconnected")] == ["app-2"]
    assert node_failure_events(replica, "app-2") == ["firing", "resolved"]
    assert [said(e).node for e in lifecycle(replica, "left")] == ["app-1"]


async def test_membership_messages_name_only_the_changed_nodes_whatever_the_cluster_size(
    make_replica, clock: Clock
) -> None:
    """1 000 new nodes make node_added messages of at most LISTED_NODES names with the count of
    active nodes, and one ClusterHealth for the tick, not one list of everybody per node."""
    replica = await make_replica("bridge-1")
    names = [f"app-{n:04d}" for n in range(1_000)]
    health_before = len(replica.published(ClusterHealth))
    await replica.hear_all(names)
    await replica.tick()
    added = replica.published(ClusterMembership, event="node_added")
    assert sorted(name for m in added for name in m.affected_nodes) == names
    assert len(added) == 1_000 // LISTED_NODES
    assert all(m.active_nodes == m.affected_nodes for m in added)
    assert {m.total_nodes for m in added} == {1_001}
    # One for the changes, at most one more for the interval's regular refresh.
    assert len(replica.published(ClusterHealth)) - health_before <= 2


async def test_cluster_health_names_a_bounded_share_of_many_degraded_nodes_and_counts_them_all(
    make_replica, clock: Clock
) -> None:
    """10 000 degraded nodes with 255-character names make a ClusterHealth far below the bus's
    size limit (EXESDB_MAX_BODY_BYTES), naming LISTED_NODES of them, and the Prometheus sink's
    exesdb_cluster_nodes gauges count all of them."""
    replica = await make_replica("bridge-1", max_nodes=10_001)  # this bridge and the 10 000
    names = [f"{n:05d}-".ljust(255, "x") for n in range(10_000)]
    replica.bridge.bus.publish_verified(
        [envelope(name, NodeHealth(node=name, status="degraded")) for name in names]
    )
    await replica.settle()

    def healths() -> list[Envelope]:
        return [e for e in replica.heard if isinstance(e.payload, ClusterHealth)]

    before = len(healths())
    await replica.tick()
    assert len(healths()) > before  # heard: a message past the size limit is refused unread
    latest = healths()[-1]
    assert isinstance(latest.payload, ClusterHealth)
    assert latest.payload.degraded_nodes == names[:LISTED_NODES]
    # The list is cut: its count goes with it (the unhealthy list, whole, has none).
    payload = json.loads(latest.to_bytes())["payload"]
    assert payload["degraded_count"] == 10_000
    assert "unhealthy_count" not in payload
    assert len(latest.to_bytes()) < Settings.model_fields["max_body_bytes"].default / 10
    store = translate(latest)
    assert {
        state: sample(store, "exesdb_cluster_nodes", state=state)
        for state in ("healthy", "degraded", "unhealthy", "down", "total")
    } == {"healthy": 1, "degraded": 10_000, "unhealthy": 0, "down": 0, "total": 10_001}


async def test_a_flood_of_transitions_reaches_the_bus_in_slices(make_replica, clock: Clock) -> None:
    """At most 1 000 transitions are announced per tick; the rest follow on the next ticks."""
    replica = await make_replica("bridge-1")
    await replica.hear_all([f"app-{n:04d}" for n in range(1_500)])
    await replica.tick()

    def added() -> int:
        return sum(len(m.affected_nodes) for m in replica.published(ClusterMembership))

    assert added() == 1_000
    await replica.tick()
    assert added() == 1_500


async def test_many_downs_in_one_interval_make_a_few_alerts_and_one_grouped_alert(
    make_replica, clock: Clock
) -> None:
    """Past ALERTS_PER_INTERVAL downs within one interval, the others are marked grouped: the
    alert stage derives no alert from them, and one SystemAlert node_failure counts them."""
    replica = await make_replica("bridge-1")
    names = [f"app-{n:03d}" for n in range(200)]
    await replica.hear_all(names)
    await replica.tick()
    clock.advance(3.5)
    await replica.tick()
    downs = lifecycle(replica, "down")
    assert sorted(said(e).node for e in downs) == names
    alerts = [event for e in downs for event in alert_events(e)]
    assert len(alerts) == ALERTS_PER_INTERVAL
    assert {(a.alertname, a.status, a.severity) for a in alerts} == {
        ("node_failure", "firing", "critical")
    }
    [grouped] = [e for e in replica.heard if isinstance(e.payload, SystemAlert)]
    payload = grouped.payload
    assert isinstance(payload, SystemAlert)
    assert payload.title == f"{200 - ALERTS_PER_INTERVAL} nodes are down"
    assert payload.metadata["nodes_down"] == 200 - ALERTS_PER_INTERVAL
    assert len(payload.metadata["nodes"]) == 20
    assert "and 170 more" in payload.description
    marked = {said(e).metadata.get("grouped") for e in downs} - {None}
    assert marked == {payload.alert_id}
    [event] = alert_events(grouped)
    assert (event.alertname, event.severity, event.alert_id) == (
        "node_failure",
        "critical",
        payload.alert_id,
    )


async def test_grouped_alerts_go_out_at_most_once_per_interval(make_replica, clock: Clock) -> None:
    """More downs soon after a grouped alert wait for the interval to pass and go out together
    in the next one; a lone down an interval later has an alert of its own again."""
    replica = await make_replica("bridge-1")
    await replica.hear_all([f"a-{n:02d}" for n in range(20)])
    clock.advance(1.0)
    await replica.hear_all([f"b-{n:02d}" for n in range(30)])
    await replica.tick()
    clock.advance(2.5)  # the a- nodes are silent for 3.5 intervals, the b- ones for 2.5
    await replica.tick()

    def grouped() -> list[str]:
        return [m.title for m in replica.published(SystemAlert)]

    assert grouped() == ["10 nodes are down"]
    clock.advance(0.7)
    await replica.hear("c-1")
    await replica.tick()
    assert len(lifecycle(replica, "down")) == 50
    assert grouped() == ["10 nodes are down"]  # the b- downs wait: one went out 0.7 ago
    clock.advance(0.4)
    await replica.tick()
    assert grouped() == ["10 nodes are down", "30 nodes are down"]
    clock.advance(3.5)
    await replica.tick()
    [lone] = [e for e in lifecycle(replica, "down") if said(e).node == "c-1"]
    assert "grouped" not in said(lone).metadata


async def test_a_storm_of_downs_stays_grouped_until_three_intervals_pass_without_one(
    make_replica, clock: Clock
) -> None:
    """Once past the per-interval budget, downs that keep coming (each within an interval of
    the last three) are all grouped, however long it goes on: ten alerts of their own in all, and a
    grouped alert at most once per interval."""
    replica = await make_replica("bridge-1")
    await replica.hear_all([f"a-{n:02d}" for n in range(20)])
    for wave in range(1, 5):
        clock.advance(0.4)
        await replica.hear_all([f"w{wave}-{n}" for n in range(5)])
    await replica.tick()
    clock.advance(1.5)  # the a- nodes go down, then a wave every 0.4 intervals
    await replica.tick()
    for _ in range(4):
        clock.advance(0.4)
        await replica.tick()
    clock.advance(0.7)
    await replica.tick()
    downs = lifecycle(replica, "down")
    assert len(downs) == 40
    assert sum("grouped" not in said(e).metadata for e in downs) == ALERTS_PER_INTERVAL
    assert [m.title for m in replica.published(SystemAlert)] == [
        "10 nodes are down",
        "15 nodes are down",
        "5 nodes are down",
    ]


async def test_each_storm_of_downs_is_counted_once_when_it_begins(
    make_replica, clock: Clock
) -> None:
    """exesdb_cluster_down_storms_total counts storms, not downs: none for downs within the
    per-interval budget, one when a storm begins however long it lasts, and one more for a
    storm after three intervals without a down."""
    replica = await make_replica("bridge-1")
    await replica.hear_all([f"few-{n}" for n in range(ALERTS_PER_INTERVAL)])
    await replica.tick()
    clock.advance(3.5)
    await replica.tick()
    assert replica.storms() == 0
    for wave in range(3):  # a storm whose downs keep coming, an interval apart
        await replica.hear_all([f"s1-{wave}-{n}" for n in range(30)])
        clock.advance(1.0)
    clock.advance(0.5)  # each wave found down a tick (an interval) after the one before
    for _ in range(3):
        await replica.tick()
        clock.advance(1.0)
    assert len(lifecycle(replica, "down")) == ALERTS_PER_INTERVAL + 90
    assert replica.storms() == 1
    clock.advance(3.5)  # three intervals without a down: the next flood is a new storm
    await replica.hear_all([f"s2-{n}" for n in range(30)])
    clock.advance(3.5)
    await replica.tick()
    assert len(lifecycle(replica, "down")) == ALERTS_PER_INTERVAL + 120
    assert replica.storms() == 2


async def test_a_node_heard_after_a_storm_was_found_gets_its_own_alert_however_late_it_is_announced(
    make_replica, clock: Clock
) -> None:
    """Storms are timed by when downs are found, not announced: a node first heard just after a
    flood's downs were found, silent itself three intervals later, has a node_failure alert of
    its own though the flood's announcements (held back here by a refusing bus) go out with it."""
    replica = await make_replica("bridge-1")
    flood = [f"flood-{n:02d}" for n in range(30)]
    await replica.hear_all(flood)
    await replica.tick()
    clock.advance(3.5)
    replica.transport.refuse = True  # found down, but not announced
    await replica.tick()
    assert replica.monitor.health().healthy_nodes == 1  # the flood is down: only this bridge up
    await replica.hear("late")
    for _ in range(3):
        clock.advance(1.0)
        await replica.tick()
    assert lifecycle(replica, "down") == []
    replica.transport.refuse = False
    clock.advance(0.5)  # late silent for 3.5 intervals: found down with the flood's backlog
    await replica.tick()
    downs = {said(e).node: said(e).metadata for e in lifecycle(replica, "down")}
    assert sorted(downs) == sorted([*flood, "late"])
    assert "grouped" not in downs["late"]
    assert sum("grouped" not in meta for meta in downs.values()) == ALERTS_PER_INTERVAL + 1
    [late] = [e for e in lifecycle(replica, "down") if said(e).node == "late"]
    [alert] = alert_events(late)
    assert (alert.alertname, alert.alert_id) == ("node_failure", "node_failure:late")


async def test_a_grouped_alert_resolves_once_every_node_it_stands_for_is_back_or_forgotten(
    make_replica, clock: Clock
) -> None:
    """The replica that raised a grouped alert publishes an AlertAck resolving it once the last
    of its nodes is heard again or forgotten, and not while one of them is still down."""
    replica = await make_replica("bridge-1", forget_ms=FORGET_MS)
    names = [f"app-{n:02d}" for n in range(30)]
    await replica.hear_all(names)
    await replica.tick()
    clock.advance(3.5)
    await replica.tick()
    [grouped] = replica.published(SystemAlert)
    assert isinstance(grouped, SystemAlert)
    members = [
        said(e).node
        for e in lifecycle(replica, "down")
        if said(e).metadata.get("grouped") == grouped.alert_id
    ]
    assert len(members) == 30 - ALERTS_PER_INTERVAL
    await replica.hear_all(members[1:])  # back, all but one
    clock.advance(1.0)
    await replica.tick()
    assert replica.published(AlertAck) == []
    clock.advance(FORGET_MS / 1000)  # the last one is forgotten: no longer down either
    await replica.tick()
    [ack] = replica.published(AlertAck)
    assert isinstance(ack, AlertAck)
    assert ack.alert_id == grouped.alert_id
    assert ack.resolution == "all 20 nodes are back, have left or are forgotten"
    clock.advance(1.0)
    await replica.tick()
    assert len(replica.published(AlertAck)) == 1


async def test_a_grouped_alert_whose_nodes_all_return_before_it_goes_out_is_never_raised(
    make_replica, clock: Clock
) -> None:
    """Grouped downs waiting for the next interval's grouped alert, all heard again before it is
    due, raise no alert and resolve none."""
    replica = await make_replica("bridge-1")
    await replica.hear_all([f"a-{n:02d}" for n in range(20)])
    clock.advance(1.0)
    late = [f"b-{n:02d}" for n in range(30)]
    await replica.hear_all(late)
    await replica.tick()
    clock.advance(2.5)
    await replica.tick()
    clock.advance(0.7)
    await replica.tick()  # the b- downs are announced; their alert waits for the interval
    assert [m.title for m in replica.published(SystemAlert)] == ["10 nodes are down"]
    await replica.hear_all(late)
    clock.advance(0.4)
    await replica.tick()
    assert [m.title for m in replica.published(SystemAlert)] == ["10 nodes are down"]
    assert replica.published(AlertAck) == []


async def test_a_down_node_is_reported_down_until_heard_again_or_forgotten(
    make_replica, clock: Clock
) -> None:
    """down_nodes() names each node the monitor holds down with the seconds since it was found
    so, until the node is heard again or forgotten after EXESDB_NODE_FORGET_MS."""
    replica = await make_replica("bridge-1", forget_ms=FORGET_MS)
    await replica.hear("app-1")
    await replica.hear("app-2")
    assert replica.monitor.down_nodes() == {}
    clock.advance(3.5)
    await replica.tick()
    assert replica.monitor.down_nodes() == {"app-1": 0.0, "app-2": 0.0}
    clock.advance(2)
    await replica.hear("app-2")
    assert replica.monitor.down_nodes() == {"app-1": 2.0}
    clock.advance(8.1)  # app-1 down for 10.1 s, past the forget time
    await replica.hear("app-2")
    await replica.tick()
    assert replica.monitor.down_nodes() == {}


class RefreshCounter(LocalCoordinator):
    """The lone bridge's coordinator, recording each batch of keys refreshed (and the values
    they are set to where missing), and losing its data when the test says."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.batches: list[list[str]] = []
        self.values: list[dict[str, str | None]] = []
        self.losses = 0

    @property
    def data_losses(self) -> int:
        return self.losses

    async def refresh(self, keys, ttl_ms: int) -> None:
        self.batches.append(sorted(keys))
        self.values.append(dict(keys))
        await super().refresh(keys, ttl_ms)


async def test_state_keys_of_tracked_nodes_are_refreshed_in_one_batch_every_half_forget_time(
    make_replica, clock: Clock
) -> None:
    """The monitor refreshes the state keys of the nodes it tracks in one batch, no more often
    than every half EXESDB_NODE_FORGET_MS; a node evicted since is not among them."""
    coordinator = RefreshCounter(clock)
    replica = await make_replica("bridge-1", coordinator, forget_ms=FORGET_MS, max_nodes=3)
    await replica.hear_all(["app-1", "app-2"])
    for _ in range(4):  # four intervals, less than half the forget time
        clock.advance(1)
        await replica.hear_all(["app-1", "app-2"])
        await replica.tick()
    assert coordinator.batches == []
    await replica.hear("app-3")  # evicts app-1, the longest silent
    clock.advance(1)
    await replica.hear_all(["app-2", "app-3"])
    await replica.tick()
    assert coordinator.batches == [
        ["cluster:node:app-2", "cluster:node:app-3", "cluster:node:bridge-1"]
    ]
    clock.advance(1)
    await replica.tick()
    assert len(coordinator.batches) == 1


async def test_a_data_loss_found_refreshes_the_state_keys_at_once_with_what_was_announced(
    make_replica, clock: Clock
) -> None:
    """Once the coordinator finds its store lost its data, the next tick refreshes the state
    keys of the nodes tracked, before half EXESDB_NODE_FORGET_MS, a missing one set to the
    transition announced last (none for this replica's own, which the others announce); the
    tick after refreshes nothing."""
    coordinator = RefreshCounter(clock)
    replica = await make_replica("bridge-1", coordinator, forget_ms=FORGET_MS)
    await replica.hear_all(["app-1", "app-2"])
    await replica.tick()
    clock.advance(3.5)
    await replica.hear("app-1")
    await replica.tick()  # app-2 announced down
    assert coordinator.values == []
    coordinator.losses = 1
    clock.advance(0.5)
    await replica.tick()
    assert coordinator.values == [
        {"cluster:node:app-1": "up", "cluster:node:app-2": "down", "cluster:node:bridge-1": None}
    ]
    clock.advance(0.5)
    await replica.tick()
    assert len(coordinator.values) == 1
