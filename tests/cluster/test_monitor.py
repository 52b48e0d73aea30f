"""The cluster monitor: heartbeats, silent nodes, returns, quorum, one announcement per change."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict

from bridge.app import Bridge
from bridge.bus import LocalCoordinator
from bridge.cluster import cluster_monitor
from bridge.errors import TransportError
from bridge.messages import (
    ClusterHealth,
    ClusterMembership,
    LogEntry,
    NodeHealth,
    NodeLifecycle,
)
from bridge.sinks.alerts.sources import alert_events
from tests.cluster.helpers import Clock, envelope
from tests.support import async_wait_until, make_settings, undated_health_from_ahead


async def test_a_bridge_announces_itself_as_joined_at_start(make_replica) -> None:
    """The first thing a monitor publishes is NodeLifecycle joined for its own node, declaring
    its health interval in metadata.interval_ms."""
    replica = await make_replica("bridge-1")
    joined = replica.published(NodeLifecycle, event="joined", node="bridge-1")
    assert len(joined) == 1
    assert joined[0].metadata == {"interval_ms": 1_000}


async def test_the_loop_ticks_after_each_nap_of_a_quarter_interval(
    make_replica, clock: Clock
) -> None:
    """Between ticks the loop naps through the injected sleep for a quarter of the health
    interval, and each nap ended is one more tick (here: the silent node found down)."""
    replica = await make_replica("bridge-1")
    await replica.hear("app-1")
    clock.advance(3.5)
    await replica.tick()
    assert [m.node for m in replica.published(NodeLifecycle, event="down")] == ["app-1"]
    await replica.tick()
    assert replica.naps.lengths == [0.25, 0.25, 0.25]


async def test_a_stop_while_the_loop_naps_ends_it_with_no_further_tick(
    make_replica, clock: Clock
) -> None:
    """A stop between ticks cuts the nap short: the monitor says left, and ticks no more."""
    replica = await make_replica("bridge-1")
    await replica.hear("app-1")
    await async_wait_until(lambda: replica.naps.napping, what="the loop napping")
    clock.advance(3.5)
    await asyncio.wait_for(replica.monitor.aclose(), 5)
    await replica.settle()
    assert replica.published(NodeLifecycle, event="left", node="bridge-1")
    assert replica.published(NodeLifecycle, event="down") == []
    assert replica.naps.taken == 1


async def test_a_node_silent_for_three_intervals_is_down_with_membership_and_health(
    make_replica, clock: Clock
) -> None:
    """Silence past three intervals publishes down, node_removed and ClusterHealth, once."""
    replica = await make_replica("bridge-1")
    await replica.hear("app-1")
    await replica.hear("app-2")
    clock.advance(2.9)
    await replica.hear("app-2")
    await replica.tick()
    assert replica.published(NodeLifecycle, event="down") == []
    clock.advance(0.2)  # app-1 now silent for 3.1 intervals
    await replica.tick()
    down = replica.published(NodeLifecycle, event="down")
    assert [m.node for m in down] == ["app-1"]
    assert down[0].cluster_size == 2
    removed = replica.published(ClusterMembership, event="node_removed")
    # The change and the count of active nodes, not the list of them.
    assert [(m.affected_nodes, m.active_nodes, m.total_nodes) for m in removed] == [
        (["app-1"], [], 2)
    ]
    health = replica.published(ClusterHealth)[-1]
    assert (health.status, health.healthy_nodes, health.total_nodes, health.quorum_status) == (
        "degraded",
        2,
        3,
        "available",
    )
    await replica.tick()
    clock.advance(5)
    await replica.hear("app-2")
    await replica.tick()
    assert len(replica.published(NodeLifecycle, event="down")) == 1


async def test_a_returning_node_is_reconnected_and_added_again(make_replica, clock: Clock) -> None:
    """A down node heard again publishes reconnected, node_added and a healthy ClusterHealth."""
    replica = await make_replica("bridge-1")
    await replica.hear("app-1")
    clock.advance(3.5)
    await replica.tick()
    assert [m.node for m in replica.published(NodeLifecycle, event="down")] == ["app-1"]
    await replica.hear("app-1")
    await replica.tick()
    assert [m.node for m in replica.published(NodeLifecycle, event="reconnected")] == ["app-1"]
    added = replica.published(ClusterMembership, event="node_added")
    assert (added[-1].affected_nodes, added[-1].active_nodes, added[-1].total_nodes) == (
        ["app-1"],
        ["app-1"],
        2,
    )
    health = replica.published(ClusterHealth)[-1]
    assert (health.status, health.healthy_nodes, health.total_nodes) == ("healthy", 2, 2)


def started(node: str) -> NodeLifecycle:
    """``node``'s own joined at its start (no heartbeat), declaring the tests' interval."""
    return NodeLifecycle(node=node, event="joined", cluster_size=1, metadata={"interval_ms": 1_000})


async def test_a_restart_within_the_limit_raises_nothing_and_a_slower_one_is_down_meanwhile(
    make_replica, clock: Clock
) -> None:
    """A node whose restart (its joined at start) comes before three of its intervals pass is
    announced nothing: no down, no membership change, no node_failure; one that restarts later
    was down meanwhile, as any silent node, and is announced back."""
    replica = await make_replica("bridge-1")
    await replica.hear("app-1", started("app-1"))
    await replica.tick()
    first = len(replica.heard)  # its node_added
    clock.advance(2.5)  # crashed after its start, restarted within its limit
    await replica.tick()
    await replica.hear("app-1", started("app-1"))
    for _ in range(4):
        clock.advance(0.5)
        await replica.tick()
        await replica.hear("app-1")
    since = replica.heard[first:]
    assert [e for e in since if isinstance(e.payload, ClusterMembership)] == []
    assert [m.event for m in replica.published(NodeLifecycle, node="app-1")] == []
    assert [a for e in replica.heard for a in alert_events(e) if a.status == "firing"] == []
    clock.advance(3.5)  # crashed again, restarted past its limit
    await replica.tick()
    await replica.hear("app-1", started("app-1"))
    await replica.tick()
    assert [m.event for m in replica.published(NodeLifecycle, node="app-1")] == [
        "down",
        "reconnected",
    ]
    statuses = [(a.alert_id, a.status) for e in replica.heard for a in alert_events(e)]
    firing = statuses.index(("node_failure:app-1", "firing"))
    assert ("node_failure:app-1", "resolved") in statuses[firing:]


async def test_replicas_sharing_a_coordinator_announce_each_change_once(
    make_replica, clock: Clock
) -> None:
    """Three replicas that all see a node go silent and return publish one down and one
    reconnected between them."""
    shared = LocalCoordinator(clock)
    replicas = [await make_replica(f"bridge-{n}", shared) for n in range(3)]
    for replica in replicas:
        await replica.hear("app-1")
    clock.advance(3.5)
    for replica in replicas:
        for other in replicas:
            await replica.hear(other.monitor.node)
        await replica.tick()
    assert sum(len(r.published(NodeLifecycle, event="down")) for r in replicas) == 1
    assert sum(len(r.published(ClusterMembership, event="node_removed")) for r in replicas) == 1
    for replica in replicas:
        await replica.hear("app-1")
        await replica.tick()
    assert sum(len(r.published(NodeLifecycle, event="reconnected")) for r in replicas) == 1


async def test_quorum_is_lost_when_most_known_nodes_are_down(make_replica, clock: Clock) -> None:
    """With two of three nodes silent, ClusterHealth says quorum lost and unhealthy."""
    replica = await make_replica("bridge-1")
    await replica.hear("app-1")
    await replica.hear("app-2")
    clock.advance(3.5)
    await replica.tick()
    health = replica.published(ClusterHealth)[-1]
    assert (health.status, health.quorum_status, health.healthy_nodes, health.total_nodes) == (
        "unhealthy",
        "lost",
        1,
        3,
    )
    assert replica.published(ClusterMembership)[-1].quorum_status == "lost"


async def test_node_health_decides_healthy_degraded_and_unhealthy_counts(
    make_replica, clock: Clock
) -> None:
    """ClusterHealth counts up nodes by their latest NodeHealth status."""
    replica = await make_replica("bridge-1")
    await replica.hear("app-1", NodeHealth(node="app-1", status="degraded"))
    await replica.hear("app-2", NodeHealth(node="app-2", status="unhealthy"))
    health = replica.monitor.health()
    assert (health.healthy_nodes, health.degraded_nodes, health.unhealthy_nodes) == (
        1,
        ["app-1"],
        ["app-2"],
    )
    assert health.status == "degraded"


class ClusterHealthBeforeCounts(BaseModel):
    """ClusterHealth as the release before ``degraded_count``/``unhealthy_count`` read it (commit
    d30a432): every message model there forbids fields it does not know."""

    model_config = ConfigDict(extra="forbid")

    timestamp: str
    status: str
    healthy_nodes: int
    total_nodes: int
    degraded_nodes: list[str] = []
    unhealthy_nodes: list[str] = []
    quorum_status: str = "available"


async def test_a_small_clusters_health_is_read_by_a_replica_of_the_release_before_the_counts(
    make_replica, clock: Clock
) -> None:
    """While no list is cut, ClusterHealth's payload leaves the counts out, so a replica still on
    the previous release (its models forbid unknown fields) takes it during a rolling upgrade."""
    replica = await make_replica("bridge-1")
    await replica.hear("app-1", NodeHealth(node="app-1", status="degraded"))
    await replica.hear("app-2", NodeHealth(node="app-2", status="unhealthy"))
    await replica.hear_all([f"app-{n}" for n in range(3, 120)])
    await replica.tick()
    published = [
        e for e in replica.heard if e.node == "bridge-1" and isinstance(e.payload, ClusterHealth)
    ]
    assert published
    payload = json.loads(published[-1].to_bytes())["payload"]
    assert "degraded_count" not in payload
    assert "unhealthy_count" not in payload
    old = ClusterHealthBeforeCounts.model_validate(payload)
    assert (old.degraded_nodes, old.unhealthy_nodes, old.total_nodes) == (["app-1"], ["app-2"], 120)


async def test_a_nodes_health_readings_count_as_hearing_it(make_replica, clock: Clock) -> None:
    """A tracked node's NodeHealth keeps it up as a heartbeat does and sets its health, the
    latest reading of a batch deciding."""
    replica = await make_replica("bridge-1")
    await replica.hear_all(["app-1", "app-2"])
    clock.advance(2)
    replica.bridge.bus.publish_verified(
        [
            envelope("app-1", NodeHealth(node="app-1", status="unhealthy")),
            envelope("app-1", NodeHealth(node="app-1", status="degraded")),
            envelope("app-2", NodeHealth(node="app-2", status="healthy")),
        ]
    )
    await replica.settle()
    clock.advance(2)  # four intervals since the heartbeats, two since the readings
    await replica.tick()
    assert replica.published(NodeLifecycle, event="down") == []
    health = replica.monitor.health()
    assert (health.healthy_nodes, health.degraded_nodes, health.unhealthy_nodes) == (
        2,
        ["app-1"],
        [],
    )


async def test_a_message_that_fails_is_counted_and_the_rest_of_its_batch_heard(
    make_replica,
) -> None:
    """A message the monitor fails on is counted in exesdb_sink_errors_total{subscriber=
    "cluster"}; the messages after it in its batch are still heard."""
    replica = await make_replica("bridge-1")
    await replica.hear("app-1")
    # A message whose payload is not what its tag says: hearing it fails.
    wrong = msgspec.structs.replace(
        envelope("app-1", NodeHealth(node="app-1", status="healthy")),
        payload=LogEntry(level="info", message="m", module="x", node="app-1"),
    )
    replica.bridge.bus.publish_verified(
        [wrong, envelope("app-1", NodeHealth(node="app-1", status="unhealthy"))]
    )
    await replica.settle()
    errors = replica.bridge.registry.get_sample_value(
        "exesdb_sink_errors_total", {"subscriber": "cluster"}
    )
    assert errors == 1.0
    assert replica.monitor.health().unhealthy_nodes == ["app-1"]


async def test_a_replica_cut_off_from_the_bus_declares_nobody_down(
    make_replica, clock: Clock
) -> None:
    """While the bus is not ready silence proves nothing; after it returns nodes get a fresh
    three intervals."""
    replica = await make_replica("bridge-1")
    await replica.hear("app-1")
    replica.transport.reason = "Redis at redis://x is unreachable"
    clock.advance(10)
    await replica.tick()
    replica.transport.reason = None
    await replica.tick()
    assert replica.monitor.health().healthy_nodes == 2
    clock.advance(2)
    await replica.tick()
    assert replica.published(NodeLifecycle, event="down") == []
    clock.advance(1.5)
    await replica.tick()
    assert [m.node for m in replica.published(NodeLifecycle, event="down")] == ["app-1"]


async def test_a_replica_that_did_not_run_declares_nobody_down_on_waking(
    make_replica, clock: Clock
) -> None:
    """A nap that overran (the process stopped by SIGSTOP, its event loop busy) is no silence of
    the others: what they said meanwhile is still to be heard, so nobody is down on waking; a
    node silent for three intervals after that still is."""
    replica = await make_replica("bridge-1", nap_clock=clock)
    await replica.hear("app-1")
    clock.advance(5)
    await replica.tick()
    assert replica.published(NodeLifecycle, event="down") == []
    await replica.hear("app-1")  # what it said while this replica did not run
    for _ in range(6):
        clock.advance(0.5)
        await replica.tick()
    assert replica.published(NodeLifecycle, event="down") == []
    clock.advance(0.5)
    await replica.tick()
    assert [m.node for m in replica.published(NodeLifecycle, event="down")] == ["app-1"]


async def test_the_heartbeat_is_skipped_while_the_node_health_says_it_is_alive(
    make_replica, clock: Clock
) -> None:
    """A NodeHealth from this node within the interval replaces the heartbeat; without one a
    heartbeat (NodeLifecycle joined, metadata.heartbeat, and the interval) is published every
    interval."""
    replica = await make_replica("bridge-1")
    clock.advance(0.5)
    await replica.hear("bridge-1", NodeHealth(node="bridge-1", status="healthy"))
    clock.advance(0.6)
    await replica.tick()
    assert len(replica.published(NodeLifecycle, event="joined")) == 1
    clock.advance(1.1)
    await replica.tick()
    beats = replica.published(NodeLifecycle, event="joined")
    assert len(beats) == 2
    assert beats[-1].metadata == {"heartbeat": True, "interval_ms": 1_000}
    clock.advance(1.1)
    await replica.tick()
    assert len(replica.published(NodeLifecycle, event="joined")) == 3


async def test_a_node_that_left_is_forgotten_without_being_down(make_replica, clock: Clock) -> None:
    """A node announcing left is no longer tracked, so its silence is no failure."""
    replica = await make_replica("bridge-1")
    await replica.hear("app-1")
    await replica.hear("app-1", NodeLifecycle(node="app-1", event="left", cluster_size=1))
    clock.advance(5)
    await replica.tick()
    assert replica.monitor.health().total_nodes == 1
    assert replica.published(NodeLifecycle, event="down") == []


async def test_a_down_announcement_about_another_node_does_not_count_as_hearing_it(
    make_replica, clock: Clock
) -> None:
    """Liveness comes from the publishing node: a peer's NodeLifecycle down about app-1 does
    not make app-1 look alive."""
    replica = await make_replica("bridge-1")
    await replica.hear("app-1")
    clock.advance(3.5)
    await replica.hear("bridge-2", NodeLifecycle(node="app-1", event="down", cluster_size=2))
    await replica.tick()
    assert [m.node for m in replica.published(NodeLifecycle, event="down")] == ["app-1"]


async def test_closing_announces_left(make_replica) -> None:
    """A graceful stop publishes NodeLifecycle left for this node."""
    replica = await make_replica("bridge-1")
    await replica.monitor.aclose()
    await replica.settle()
    assert len(replica.published(NodeLifecycle, event="left", node="bridge-1")) == 1


async def test_closing_says_this_node_leaves_not_that_a_node_left(
    make_replica, caplog: pytest.LogCaptureFixture
) -> None:
    """The bridge's own stop is logged as its stopping, not as a node that left the cluster."""
    caplog.set_level(logging.INFO, "bridge.cluster")
    replica = await make_replica("bridge-1")
    await replica.hear("app-1")
    await replica.hear("app-1", NodeLifecycle(node="app-1", event="left", cluster_size=1))
    await replica.monitor.aclose()
    await replica.settle()
    assert "stopping: this node (bridge-1) leaves the cluster" in caplog.text
    assert "node app-1 left the cluster" in caplog.text
    assert "node bridge-1 left" not in caplog.text


async def test_a_left_under_this_nodes_name_from_another_process_is_not_called_its_stop(
    make_replica, caplog: pytest.LogCaptureFixture
) -> None:
    """A `left` under this bridge's own EXESDB_NODE heard while it runs (another process
    sharing the name stopped) is logged as that, not as this bridge stopping."""
    caplog.set_level(logging.INFO, "bridge.cluster")
    replica = await make_replica("bridge-1")
    await replica.hear("bridge-1", NodeLifecycle(node="bridge-1", event="left", cluster_size=1))
    assert "stopping: this node" not in caplog.text
    assert (
        "another process running as this node (bridge-1) left the cluster while this one runs:"
        " two processes share EXESDB_NODE" in caplog.text
    )


async def test_a_left_under_this_nodes_name_sent_before_it_started_is_an_earlier_runs(
    make_replica, caplog: pytest.LogCaptureFixture
) -> None:
    """A `left` under this bridge's own EXESDB_NODE made before this process started (an
    earlier run's stop, written to Redis late from its spool, its envelope signed again with a
    fresh ts after the wait) is no process sharing the name: no warning, and this node stays in
    the cluster."""
    caplog.set_level(logging.INFO, "bridge.cluster")
    replica = await make_replica("bridge-1")
    await replica.hear("bridge-1")
    assert replica.monitor.health().total_nodes == 1
    earlier = datetime.now(UTC) - timedelta(minutes=3)
    left = NodeLifecycle(node="bridge-1", event="left", cluster_size=1, timestamp=earlier)
    await replica.hear("bridge-1", left)  # the envelope's ts now
    assert "two processes share EXESDB_NODE" not in caplog.text
    assert "a left of this node (bridge-1) made at " in caplog.text
    assert replica.monitor.health().total_nodes == 1


async def test_a_left_under_this_nodes_name_in_the_millisecond_it_started_is_another_process(
    make_replica, caplog: pytest.LogCaptureFixture
) -> None:
    """A `left` under this bridge's own EXESDB_NODE dated the very millisecond this process
    started (a message is dated to the millisecond, the start finer) is no earlier run's: it
    is told as another process sharing the name."""
    caplog.set_level(logging.INFO, "bridge.cluster")
    second = int(datetime.now(UTC).timestamp())
    replica = await make_replica("bridge-1", wall_clock=lambda: second + 0.0007)
    dated = datetime.fromtimestamp(second, UTC)
    await replica.hear(
        "bridge-1", NodeLifecycle(node="bridge-1", event="left", cluster_size=1, timestamp=dated)
    )
    assert "two processes share EXESDB_NODE" in caplog.text
    assert "a left of this node (bridge-1) made at " not in caplog.text


async def test_a_refused_down_announcement_stays_pending_and_the_state_key_is_restored(
    make_replica, clock: Clock
) -> None:
    """When the bus refuses the down announcement (e.g. a full Redis buffer), the shared state
    key is put back and the transition stays pending: the next tick announces it, once."""
    coordinator = LocalCoordinator(clock)
    replica = await make_replica("bridge-1", coordinator)
    await replica.hear("app-1")
    clock.advance(3.5)
    replica.transport.refuse = True
    await replica.tick()
    assert await coordinator.swap("cluster:node:app-1", "up", 60_000) != "down"
    replica.transport.refuse = False
    await replica.tick()
    assert [m.node for m in replica.published(NodeLifecycle, event="down")] == ["app-1"]
    await replica.tick()
    assert len(replica.published(NodeLifecycle, event="down")) == 1


async def test_the_bridges_monitor_takes_its_interval_and_forget_time_from_the_settings() -> None:
    """The monitor a bridge builds from EXESDB_HEALTH_BROADCAST_INTERVAL (100 ms) and
    EXESDB_NODE_FORGET_MS (200 ms), on the real clock, finds a silent node down and then forgets
    it within seconds, not the defaults' minutes and day."""
    settings = make_settings(EXESDB_HEALTH_BROADCAST_INTERVAL="100", EXESDB_NODE_FORGET_MS="200")
    bridge = Bridge(settings, registry=CollectorRegistry(), components=[cluster_monitor])
    await bridge.start(serve_http=False)
    try:
        # A bridge's heartbeat at the same interval (declared: one not known yet is given 90 s).
        beat = NodeLifecycle(
            node="app-1",
            event="joined",
            cluster_size=1,
            metadata={"heartbeat": True, "interval_ms": 100},
        )
        bridge.bus.publish_verified([envelope("app-1", beat)])

        def forgotten() -> float | None:
            return bridge.registry.get_sample_value(
                "exesdb_cluster_nodes_forgotten_total", {"reason": "silent"}
            )

        await async_wait_until(lambda: forgotten() == 1, 10, "app-1 down, then forgotten")
    finally:
        await bridge.aclose()


class FaultyCoordinator(LocalCoordinator):
    """The lone bridge's coordinator, whose swaps, refreshes and ClusterHealth claims raise
    what the test sets: ``fault`` (None: they work); ``losses`` its data losses."""

    fault: Exception | None = None
    losses = 0

    @property
    def data_losses(self) -> int:
        return self.losses

    async def refresh(self, keys, ttl_ms: int) -> None:
        if self.fault is not None:
            raise self.fault
        await super().refresh(keys, ttl_ms)

    async def swap(self, key: str, value: str, ttl_ms: int) -> str | None:
        if self.fault is not None:
            raise self.fault
        return await super().swap(key, value, ttl_ms)

    async def once_per_period(self, key: str, period_ms: int) -> bool:
        if self.fault is not None:
            raise self.fault
        return await super().once_per_period(key, period_ms)


async def test_a_fault_of_the_bridges_own_in_a_tick_is_logged_with_its_traceback_once(
    make_replica, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """An announcement, a refresh of the state keys or a ClusterHealth claim failing with
    anything but a TransportError (a bug) is logged as an error with its traceback, once while
    it repeats, and its recovery said; Redis unreachable (TransportError) stays a debug line,
    the bus saying why."""
    coordinator = FaultyCoordinator(clock)
    replica = await make_replica("bridge-1", coordinator)
    await replica.hear("app-1")
    caplog.set_level(logging.INFO, "bridge.cluster")
    coordinator.fault = TransportError("Redis at redis://r:6379 unreachable")
    clock.advance(3.5)
    await replica.tick()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    coordinator.fault = KeyError("app-1")
    coordinator.losses += 1  # Redis lost its data: the state keys are refreshed at once
    for _ in range(3):
        clock.advance(1)
        await replica.tick()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.levelno, r.getMessage()) for r in errors] == [
        (
            logging.ERROR,
            "cluster announcement failed (a fault of the bridge's own): tried again each tick",
        ),
        (
            logging.ERROR,
            "refreshing the cluster state keys failed (a fault of the bridge's own): tried again"
            " each tick",
        ),
        (
            logging.ERROR,
            "the periodic ClusterHealth failed (a fault of the bridge's own): tried again each"
            " tick",
        ),
    ]
    assert all(r.exc_info is not None and r.exc_info[0] is KeyError for r in errors)
    caplog.clear()
    coordinator.fault = None
    clock.advance(1)
    await replica.tick()
    assert [r.getMessage() for r in caplog.records if "works again" in r.getMessage()] == [
        "cluster announcement works again",
        "refreshing the cluster state keys works again",
        "the periodic ClusterHealth works again",
    ]
    assert [m.node for m in replica.published(NodeLifecycle, event="down")] == ["app-1"]


async def test_a_health_left_undated_by_a_node_whose_clock_is_ahead_is_a_sign_of_its_life(
    make_replica,
) -> None:
    """A NodeHealth without ``timestamp`` from a node whose clock is 200 s ahead of the bridge's
    (within the replay window) tracks the node: its default is the bridge's decode time, no
    sign that it was made long before it was sent."""
    replica = await make_replica("bridge-1")
    replica.bridge.bus.publish_verified([undated_health_from_ahead("app-1", "healthy")])
    await replica.settle()
    assert replica.monitor.health().total_nodes == 2


async def test_a_heartbeat_dated_by_redis_from_a_replica_whose_clock_is_ahead_is_a_sign_of_life(
    make_replica,
) -> None:
    """A bridge dates its NodeLifecycle by Redis's clock and its envelope's ``ts`` by its own:
    a heartbeat just made by a replica whose clock is 200 s ahead of Redis's (within the replay
    window) tracks that replica, though its ``ts`` is 200 s past its ``timestamp``."""
    replica = await make_replica("bridge-1")  # its clock is Redis's: no coordinator to differ
    made = datetime.now(UTC)
    heartbeat = NodeLifecycle(
        node="bridge-2",
        event="joined",
        cluster_size=2,
        metadata={"heartbeat": True, "interval_ms": 1_000},
        timestamp=made,
    )
    sent = envelope("bridge-2", heartbeat).restamped(made + timedelta(seconds=200))
    replica.bridge.bus.publish_verified([sent])
    await replica.settle()
    assert replica.monitor.health().total_nodes == 2


async def test_a_heartbeat_made_minutes_before_it_was_sent_is_no_sign_of_life(
    make_replica,
) -> None:
    """A heartbeat made 200 s ago (by Redis's clock and by its ``ts``), held through an outage
    and signed again, does not track its node."""
    replica = await make_replica("bridge-1")
    sent_at = datetime.now(UTC)
    heartbeat = NodeLifecycle(
        node="bridge-2",
        event="joined",
        cluster_size=2,
        metadata={"heartbeat": True, "interval_ms": 1_000},
        timestamp=sent_at - timedelta(seconds=200),
    )
    replica.bridge.bus.publish_verified([envelope("bridge-2", heartbeat).restamped(sent_at)])
    await replica.settle()
    assert replica.monitor.health().total_nodes == 1
