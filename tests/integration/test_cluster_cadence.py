"""Replicas of different health intervals on a real redis-server: each times the other's silence
by the other's interval, so neither is found down between two messages, and real silence is;
and one that missed another's restart at a longer interval finds it down once, not for ever."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bridge.messages import NodeHealth, NodeLifecycle
from tests.cluster.helpers import Clock, Replica
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.test_cluster_keys import announced, introduced, on_redis
from tests.integration.test_redis_faults import Partition
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]  # the fixture, imported for the tests below

SLOW_MS = 3_000
FAST_MS = 500
STEP = 0.25  # seconds of the shared clock between two ticks of the replicas
RECORDED = ("ex_esdb_lifecycle", "ex_esdb_health", "ex_esdb_alerts")  # what a Replica records
# What a monitor hears: any message of a node on these is a sign of life of it.
HEARD = ("ex_esdb_lifecycle", "ex_esdb_health")


def lifecycle_from(listener: Replica, sender: Replica) -> list[str]:
    """The ids of the NodeLifecycle messages ``sender`` published that ``listener`` heard."""
    return [
        e.id
        for e in listener.heard
        if e.node == sender.monitor.node and isinstance(e.payload, NodeLifecycle)
    ]


def published(replica: Replica) -> float:
    """The NodeLifecycle messages ``replica`` published (joined, heartbeats, announcements)."""
    value = replica.bridge.registry.get_sample_value(
        "exesdb_bus_published_total",
        {"pubsub": "ex_esdb_lifecycle", "tag": NodeLifecycle.TAG},
    )
    return value or 0.0


async def heard_through(replicas: list[Replica]) -> None:
    """Wait until each replica has heard back all it published, and each the others' latest."""

    def through() -> bool:
        for sender in replicas:
            own = lifecycle_from(sender, sender)
            if len(own) != published(sender):
                return False
            for listener in replicas:
                if own and own[-1] not in lifecycle_from(listener, sender):
                    return False
        return True

    await async_wait_until(through, 10, "every replica's lifecycle messages heard by all")
    for replica in replicas:
        await replica.settle()


def sent(replica: Replica, instances: tuple[str, ...] = RECORDED) -> float:
    """Every message ``replica`` published on ``instances`` (those a Replica records)."""
    return sum(
        sample.value
        for metric in replica.bridge.registry.collect()
        for sample in metric.samples
        if sample.name == "exesdb_bus_published_total" and sample.labels["pubsub"] in instances
    )


def own(replica: Replica) -> list[str]:
    """The ids of the messages ``replica`` published that it heard back, in order."""
    return [e.id for e in replica.heard if e.node == replica.monitor.node]


async def heard_all(replicas: list[Replica], since: dict[str, int]) -> None:
    """Wait until each replica has heard back all it published, and each the others' all it
    published past its first ``since[node]``."""

    def through() -> bool:
        for sender in replicas:
            ids = own(sender)
            if len(ids) != sent(sender):
                return False
            news = ids[since[sender.monitor.node] :]
            for listener in replicas:
                if not set(news) <= {e.id for e in listener.heard}:
                    return False
        return True

    await async_wait_until(through, 10, "every replica's messages heard by all")
    for replica in replicas:
        await replica.settle()


async def test_replicas_of_different_intervals_find_no_false_down_and_real_silence(
    redis_server: Callable[[], RedisServer],
) -> None:
    """On a Redis bus, a replica at 3 s and one at 500 ms started after it announce no down
    over six of the slow one's intervals, each hearing all the other says; the slow one then
    silent (its loop stopped), its last message a ClusterHealth after its last heartbeat, the
    fast one finds it down three of its 3 s intervals after that message, within a step of the
    shared clock."""
    server = redis_server()
    clock = Clock()
    replicas: list[Replica] = []
    try:
        slow = await on_redis(server, clock, "bridge-slow", interval_ms=SLOW_MS)
        replicas.append(slow)
        fast = await on_redis(server, clock, "bridge-fast", interval_ms=FAST_MS)
        replicas.append(fast)

        # When the slow replica last said anything the fast one hears, on the shared clock: its
        # heartbeats, and each ClusterHealth it publishes (when a period of Redis's clock began
        # since the fast one's last), which the fast one takes as a sign of life as well.
        slow_said = clock.now

        async def step(ticking: list[Replica]) -> None:
            nonlocal slow_said
            clock.forward(STEP)
            before = sent(slow, HEARD)
            for replica in ticking:
                await replica.naps.tick()
            # Everything, not only the NodeLifecycle: each message is heard on the clock of
            # the step it was published in.
            await heard_all(replicas, since)
            if sent(slow, HEARD) > before:
                slow_said = clock.now

        await introduced(slow, fast)
        # Counted from here, once each heard all its own back: what each published before the
        # other read the streams is never heard there.
        await async_wait_until(
            lambda: all(len(own(r)) == sent(r) for r in replicas), 10, "each heard its own back"
        )
        since = {r.monitor.node: len(own(r)) for r in replicas}
        # A replica that ticked before its Redis link was up gives every node fresh intervals
        # on its next tick: that tick first.
        await step(replicas)
        began = clock.now
        while clock.now - began < 6 * SLOW_MS / 1000:
            await step(replicas)
        # Its last message a ClusterHealth, a step after its last heartbeat: the period's claim
        # let go, the slow one (ticking first) takes it. It asks Redis again only once the
        # period it last found claimed (its own 3 s at most, on Redis's clock) is over.
        await asyncio.sleep(SLOW_MS / 1000)  # that period over, on Redis's clock: not a wait
        with server.client() as client:
            client.delete("exesdb:cluster:health")
        await step(replicas)
        assert slow_said == clock.now, "the slow replica published nothing at its last tick"
        for replica in replicas:
            for node in ("bridge-slow", "bridge-fast"):
                assert announced(replica, node, "down") == []

        limit = 3 * SLOW_MS / 1000
        while not announced(fast, "bridge-slow", "down"):
            assert clock.now - slow_said <= limit, "the silent replica not found down in time"
            await step([fast])
        assert limit < clock.now - slow_said <= limit + STEP
    finally:
        for replica in replicas:
            await replica.monitor.aclose()
            await replica.bridge.aclose()


OLD_MS = 1_000  # the restarted node's interval before its restart
NEW_MS = 10_000  # and after it
REJOIN_STEP = 0.5  # seconds of the shared clock between two ticks, in the restart's test


async def test_a_replica_that_missed_a_nodes_restart_at_a_longer_interval_finds_it_down_once(
    redis_server: Callable[[], RedisServer],
) -> None:
    """On a Redis bus, a 500 ms replica is cut off while a node at 1 s restarts at 10 s, the
    restart's lifecycle entries trimmed from the stream before it reads them: it finds the node
    down once, three of its old intervals after its first NodeHealth; the node, hearing that,
    says its interval at its next tick and is back within two steps, not found down over four
    of its new intervals; silent then, it is found down three of them on, within a step."""
    server = redis_server()
    clock = Clock()
    partition = Partition(server.port)
    replicas: list[Replica] = []
    try:
        fast = await on_redis(server, clock, "bridge-fast", interval_ms=FAST_MS, url=partition.url)
        replicas.append(fast)
        node = await on_redis(server, clock, "bridge-node", interval_ms=OLD_MS)
        replicas.append(node)
        # A start's joined may be written before the other replica reads the stream: once both
        # read, a heartbeat of each (due after a second) is heard by the other.
        await async_wait_until(
            lambda: all(r.bridge.bus.readiness() is None for r in replicas), 10, "both reading"
        )
        clock.forward(OLD_MS / 1000)
        for replica in replicas:
            await replica.naps.tick()
        await async_wait_until(
            lambda: all(r.monitor.health().total_nodes == 2 for r in replicas),
            10,
            "each replica hearing the other",
        )
        await heard_through(replicas)  # the fast one has the node's 1 s declared
        # And every message each published heard back before the cut (a tick's ClusterHealth
        # among them): one heard only after the heal was written before the restarted node's
        # reader found the streams' ends, so it would never reach that node.
        await heard_all(replicas, {r.monitor.node: len(own(r)) for r in replicas})

        partition.cut()
        await node.monitor.aclose()
        await node.bridge.aclose()
        node = await on_redis(server, clock, "bridge-node", interval_ms=NEW_MS)
        replicas[1] = node
        await async_wait_until(lambda: own(node), 10, "the node's start joined written")
        # As EXESDB_REDIS_STREAM_MAXLEN trims a backlog: the node's left and joined are gone
        # before the cut-off replica reads them.
        with server.client() as client:
            client.xtrim("exesdb:bus:ex_esdb_lifecycle", maxlen=0, approximate=False)
        partition.heal()
        since = {r.monitor.node: len(own(r)) for r in replicas}
        await async_wait_until(
            lambda: fast.bridge.bus.readiness() is None, 10, "the fast replica reconnected"
        )

        node_said = health_said = -float("inf")  # the node's last message, its last NodeHealth
        down_at: float | None = None
        back_at: float | None = None

        async def step(ticking: list[Replica]) -> None:
            nonlocal node_said, health_said, down_at, back_at
            clock.forward(REJOIN_STEP)
            before = sent(node)
            if node in ticking and clock.now - health_said >= NEW_MS / 1000:
                # Its health collector's NodeHealth, heard before its tick: it sends no heartbeat.
                node.bridge.bus.publish("health", NodeHealth(node="bridge-node", status="healthy"))
                health_said = clock.now
                await heard_all(replicas, since)
            for replica in ticking:
                await replica.naps.tick()
            await heard_all(replicas, since)
            if sent(node) > before:
                node_said = clock.now
            if down_at is None and announced(fast, "bridge-node", "down"):
                down_at = clock.now
            if back_at is None and announced(fast, "bridge-node", "reconnected"):
                back_at = clock.now

        began = clock.now
        while clock.now - began < 4 * NEW_MS / 1000 or clock.now != health_said:
            await step(replicas)
        assert len(announced(fast, "bridge-node", "down")) == 1
        assert down_at is not None
        assert back_at is not None
        assert back_at - down_at <= 2 * REJOIN_STEP  # its answer, not its next NodeHealth
        assert len(announced(fast, "bridge-node", "reconnected")) == 1

        limit = 3 * NEW_MS / 1000
        while len(announced(fast, "bridge-node", "down")) == 1:
            assert clock.now - node_said <= limit, "the silent node not found down in time"
            await step([fast])
        assert limit < clock.now - node_said <= limit + REJOIN_STEP
    finally:
        for replica in replicas:
            await replica.monitor.aclose()
            await replica.bridge.aclose()
        partition.close()
