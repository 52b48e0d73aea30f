"""The cluster monitor while a state key's swap is in flight: what is heard meanwhile and a stop
meanwhile lose no announcement."""

from __future__ import annotations

import asyncio

from bridge.bus import LocalCoordinator
from bridge.messages import NodeLifecycle
from tests.cluster.helpers import Clock, Replica


class GatedCoordinator(LocalCoordinator):
    """A local coordinator whose swaps, once ``hold`` is set, take effect and then wait until
    the test opens the gate before answering (as a swap on Redis whose answer is on its way)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.hold = False
        self.waiting = asyncio.Event()
        self.gate = asyncio.Event()

    async def swap(self, key: str, value: str, ttl_ms: int) -> str | None:
        previous = await super().swap(key, value, ttl_ms)
        if self.hold:
            self.hold = False
            self.waiting.set()
            await self.gate.wait()
        return previous


async def tick_held_in_a_swap(replica: Replica, coordinator: GatedCoordinator, clock: Clock) -> int:
    """The loop's tick announcing app-1 down, woken and waiting in its swap of the state key;
    the naps taken before it."""
    await replica.hear("app-1")
    clock.advance(3.5)
    coordinator.hold = True
    taken = await replica.naps.wake()
    await asyncio.wait_for(coordinator.waiting.wait(), 5)
    return taken


async def test_a_node_heard_during_its_down_announcement_is_announced_reconnected(
    make_replica, clock: Clock
) -> None:
    """A node heard again while the swap of its down transition is in flight ends up up, with
    every down it was announced matched by a reconnected (its node_failure alert resolves)."""
    coordinator = GatedCoordinator(clock)
    replica = await make_replica("bridge-1", coordinator)
    taken = await tick_held_in_a_swap(replica, coordinator, clock)
    await replica.hear("app-1")
    coordinator.hold = False
    coordinator.gate.set()
    await replica.naps.napped_since(taken)
    await replica.tick()
    await replica.tick()
    downs = replica.published(NodeLifecycle, event="down")
    returns = replica.published(NodeLifecycle, event="reconnected")
    assert len(downs) == len(returns)
    assert await coordinator.swap("cluster:node:app-1", "up", 60_000) == "up"


async def test_a_stop_during_a_down_announcement_still_publishes_what_the_key_says(
    make_replica, clock: Clock
) -> None:
    """A stop while the monitor's own tick waits for a swap's answer lets that announcement
    finish: the down swapped into the shared key is published before the monitor's left."""
    coordinator = GatedCoordinator(clock)
    replica = await make_replica("bridge-1", coordinator)
    await tick_held_in_a_swap(replica, coordinator, clock)
    closing = asyncio.create_task(replica.monitor.aclose())
    await asyncio.sleep(0)  # one turn of the loop: the stop takes its first step
    coordinator.gate.set()
    await asyncio.wait_for(closing, 5)
    await replica.settle()
    assert await coordinator.swap("cluster:node:app-1", "down", 60_000) == "down"
    assert [m.node for m in replica.published(NodeLifecycle, event="down")] == ["app-1"]
    assert replica.published(NodeLifecycle, event="left", node="bridge-1")
