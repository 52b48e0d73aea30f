"""Replicas of different health intervals on a real redis-server: each times the other's silence
by the other's interval, so neither is found down between two messages, and real silence is."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.messages import NodeLifecycle
from tests.cluster.helpers import Clock, Replica
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.test_cluster_keys import announced, on_redis
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]  # the fixture, imported for the test below

SLOW_MS = 3_000
FAST_MS = 500
STEP = 0.25  # seconds of the shared clock between two ticks of the replicas


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


async def test_replicas_of_different_intervals_find_no_false_down_and_real_silence(
    redis_server: Callable[[], RedisServer],
) -> None:
    """On a Redis bus, a replica at 3 s and one at 500 ms started after it announce no down
    over six of the slow one's intervals, each hearing all the other says; the slow one then
    silent (its loop stopped), the fast one finds it down three of its 3 s intervals on,
    within a step of the shared clock."""
    server = redis_server()
    clock = Clock()
    replicas: list[Replica] = []
    try:
        slow = await on_redis(server, clock, "bridge-slow", interval_ms=SLOW_MS)
        replicas.append(slow)
        fast = await on_redis(server, clock, "bridge-fast", interval_ms=FAST_MS)
        replicas.append(fast)

        slow_said = clock.now  # when the slow replica last published, on the shared clock

        async def step(ticking: list[Replica]) -> None:
            nonlocal slow_said
            clock.forward(STEP)
            before = published(slow)
            for replica in ticking:
                await replica.naps.tick()
            await heard_through(replicas)
            if published(slow) > before:
                slow_said = clock.now

        await async_wait_until(
            lambda: all(r.monitor.health().total_nodes == 2 for r in replicas),
            10,
            "each replica hearing the other",
        )
        # A replica that ticked before its Redis link was up gives every node fresh intervals
        # on its next tick: that tick first.
        await step(replicas)
        began = clock.now
        while clock.now - began < 6 * SLOW_MS / 1000:
            await step(replicas)
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
