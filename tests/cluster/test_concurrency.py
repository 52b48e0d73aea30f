"""The cluster monitor while a state key's swap is in flight: what is heard meanwhile, a stop
meanwhile and the death of the replica that won it lose no announcement."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from bridge.bus import LocalCoordinator
from bridge.messages import NodeHealth, NodeLifecycle
from tests.cluster.helpers import Clock, Replica
from tests.support import each_turn_until


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


def waits_on_a_future(task: asyncio.Task[None]) -> bool:
    """Whether ``task`` is suspended on a future (the monitor's stop: on the ticks under way),
    not in a coroutine it awaits nor for a turn of the loop (``asyncio.sleep(0)``'s generator)."""
    coroutine = task.get_coro()
    if not inspect.iscoroutine(coroutine):
        return False
    awaited = coroutine.cr_await
    return inspect.getcoroutinestate(coroutine) == inspect.CORO_SUSPENDED and not (
        inspect.iscoroutine(awaited) or inspect.isgenerator(awaited)
    )


async def tick_held_in_a_swap(replica: Replica, coordinator: GatedCoordinator, clock: Clock) -> int:
    """The loop's tick announcing app-1 down, woken and waiting in its swap of the state key;
    the naps taken before it."""
    await replica.hear("app-1")
    clock.advance(3.5)
    return await held_in_a_swap(replica, coordinator)


async def held_in_a_swap(replica: Replica, coordinator: GatedCoordinator) -> int:
    """The loop's next tick woken and waiting in its swap of a state key; the naps taken
    before it."""
    coordinator.hold = True
    taken = await replica.naps.wake()
    await asyncio.wait_for(coordinator.waiting.wait(), 5)
    return taken


async def heard_healthy_in_the_swap(replica: Replica, coordinator: GatedCoordinator) -> None:
    """app-1 heard healthy while the next tick waits in its swap (of app-1's left), then the
    tick let through and done."""
    taken = await held_in_a_swap(replica, coordinator)
    await replica.hear("app-1", NodeHealth(node="app-1", status="healthy"))
    coordinator.gate.set()
    await replica.naps.napped_since(taken)


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
    await each_turn_until(lambda: waits_on_a_future(closing), 5, "the stop waiting on the tick")
    coordinator.gate.set()
    await asyncio.wait_for(closing, 5)
    await replica.settle()
    assert await coordinator.swap("cluster:node:app-1", "down", 60_000) == "down"
    assert [m.node for m in replica.published(NodeLifecycle, event="down")] == ["app-1"]
    assert replica.published(NodeLifecycle, event="left", node="bridge-1")


class LateHealthCoordinator(GatedCoordinator):
    """A gated coordinator that says when a tick reached its last step (the claim of the
    period's ClusterHealth): the tick's own publishing is done once that wait is over."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.health_claimed = asyncio.Event()

    async def once_per_period(self, key: str, period_ms: int) -> bool:
        claimed = await super().once_per_period(key, period_ms)
        self.health_claimed.set()
        return claimed


async def test_a_stop_cut_short_by_its_deadline_still_says_left_and_nothing_after_it(
    make_replica, clock: Clock
) -> None:
    """A stop whose deadline passes while the monitor's tick waits on a swap that does not
    answer (Redis paused) still publishes this node's left, so the others do not find it
    silent and call it down; when that tick ends, nothing of this node's own (membership,
    cluster health, heartbeat) follows the left, only the announcement it was making."""
    coordinator = LateHealthCoordinator(clock)
    replica = await make_replica("bridge-1", coordinator)
    await tick_held_in_a_swap(replica, coordinator, clock)
    coordinator.health_claimed.clear()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(replica.monitor.aclose(), 0.05)  # the bridge's stop deadline
    await replica.settle()
    assert replica.published(NodeLifecycle, event="left", node="bridge-1")
    said = len(replica.heard)
    coordinator.gate.set()
    await asyncio.wait_for(coordinator.health_claimed.wait(), 5)
    await replica.settle()
    after_left = [e.payload for e in replica.heard[said:] if e.node == "bridge-1"]
    assert after_left == replica.published(NodeLifecycle, event="down", node="app-1")


async def _down_claimed_by_a_dead_replica(
    make_replica, clock: Clock
) -> tuple[Replica, LocalCoordinator]:
    """A replica that saw app-1 go silent after another replica swapped its state key to down
    and died before publishing (the key says announced; nothing was)."""
    shared = LocalCoordinator(clock)
    replica = await make_replica("bridge-1", shared)
    await replica.hear("app-1")
    clock.advance(3.5)
    await shared.swap("cluster:node:app-1", "down", 60_000)
    await replica.tick()
    return replica, shared


async def test_a_down_whose_winner_died_before_publishing_is_announced_an_interval_on(
    make_replica, clock: Clock
) -> None:
    """A down another replica won the swap for and never published is announced by this one
    once an interval passes without hearing it, once."""
    replica, _ = await _down_claimed_by_a_dead_replica(make_replica, clock)
    assert replica.published(NodeLifecycle, event="down", node="app-1") == []
    clock.advance(1.1)
    await replica.tick()
    clock.advance(1.1)
    await replica.tick()
    downs = replica.published(NodeLifecycle, event="down", node="app-1")
    assert len(downs) == 1
    assert isinstance(downs[0], NodeLifecycle)
    assert downs[0].metadata["unheard"] is True


async def test_a_down_heard_from_the_replica_that_won_its_swap_is_not_announced_again(
    make_replica, clock: Clock
) -> None:
    """A down whose winner is heard announcing it within the interval is left to it."""
    replica, _ = await _down_claimed_by_a_dead_replica(make_replica, clock)
    await replica.hear("bridge-2", NodeLifecycle(node="app-1", event="down", cluster_size=2))
    clock.advance(1.1)
    await replica.tick()
    assert replica.published(NodeLifecycle, event="down", node="app-1") == []


async def test_a_return_whose_winner_died_before_publishing_is_announced_reconnected(
    make_replica, clock: Clock
) -> None:
    """A node that comes back (heard only through its NodeHealth) after the replica that won
    the swap of its return died before publishing it is announced reconnected by another, so
    its node_failure alert resolves."""
    shared = LocalCoordinator(clock)
    replica = await make_replica("bridge-1", shared)
    await replica.hear("app-1")
    clock.advance(3.5)
    await replica.tick()
    assert len(replica.published(NodeLifecycle, event="down", node="app-1")) == 1
    await shared.swap("cluster:node:app-1", "up", 60_000)  # the dead winner's swap
    health = NodeHealth(node="app-1", status="healthy")
    await replica.hear("app-1", health)
    await replica.tick()
    assert replica.published(NodeLifecycle, event="reconnected", node="app-1") == []
    clock.advance(1.1)
    await replica.hear("app-1", health)
    await replica.tick()
    assert len(replica.published(NodeLifecycle, event="reconnected", node="app-1")) == 1


async def test_a_replica_that_could_not_hear_waits_an_interval_more_before_announcing_for_another(
    make_replica, clock: Clock
) -> None:
    """A replica cut off from the bus past the interval it gives another replica's down
    announcement waits one more once it hears again (the announcement is on its way to it)."""
    replica, _ = await _down_claimed_by_a_dead_replica(make_replica, clock)
    replica.transport.reason = "Redis at redis://x is unreachable"
    clock.advance(1.1)
    await replica.tick()
    replica.transport.reason = None
    await replica.tick()
    assert replica.published(NodeLifecycle, event="down", node="app-1") == []
    await replica.hear("bridge-2", NodeLifecycle(node="app-1", event="down", cluster_size=2))
    clock.advance(1.1)
    await replica.tick()
    assert replica.published(NodeLifecycle, event="down", node="app-1") == []


async def test_a_forgotten_node_heard_during_the_swap_of_its_left_is_announced_back_not_left(
    make_replica, clock: Clock
) -> None:
    """A node forgotten down and heard again while the swap of its left is in flight is
    announced reconnected, not left: shown back as soon as it is, its node_failure resolved."""
    coordinator = GatedCoordinator(clock)
    replica = await make_replica("bridge-1", coordinator, forget_ms=10_000)
    await replica.hear("app-1")
    clock.advance(3.5)
    await replica.tick()
    assert len(replica.published(NodeLifecycle, event="down", node="app-1")) == 1
    clock.advance(10)  # EXESDB_NODE_FORGET_MS: the next tick forgets it and swaps its left
    await heard_healthy_in_the_swap(replica, coordinator)
    health = NodeHealth(node="app-1", status="healthy")
    for _ in range(3):
        clock.advance(1.1)
        await replica.hear("app-1", health)
        await replica.tick()
    assert replica.published(NodeLifecycle, event="left", node="app-1") == []
    assert len(replica.published(NodeLifecycle, event="reconnected", node="app-1")) == 1
    assert await coordinator.swap("cluster:node:app-1", "up", 60_000) == "up"


async def test_a_left_heard_during_the_swap_of_a_forgotten_nodes_left_is_not_said_again(
    make_replica, clock: Clock
) -> None:
    """A forgotten node's left heard from the replica that forgot it first while this one's
    swap of its key to forgotten is in flight (or its farewell waits its turn) is left to that
    one: not announced again, unheard, an interval on."""
    coordinator = GatedCoordinator(clock)
    replica = await make_replica("bridge-1", coordinator, forget_ms=10_000)
    await replica.hear("app-1")
    clock.advance(3.5)
    await replica.tick()
    assert len(replica.published(NodeLifecycle, event="down", node="app-1")) == 1
    clock.advance(10)  # EXESDB_NODE_FORGET_MS: the next tick forgets it and swaps its left
    await coordinator.swap("cluster:node:app-1", "forgotten", 3_600_000)  # bridge-2 forgot it
    taken = await held_in_a_swap(replica, coordinator)
    winner = {"forgotten": "silent", "detected_by": "bridge-2"}
    await replica.hear(
        "bridge-2", NodeLifecycle(node="app-1", event="left", cluster_size=1, metadata=winner)
    )
    coordinator.gate.set()
    await replica.naps.napped_since(taken)
    assert replica.forgotten("silent") == 1
    for _ in range(3):
        clock.advance(1.1)
        await replica.tick()
    assert replica.published(NodeLifecycle, event="left", node="app-1") == []


async def test_a_node_whose_left_was_heard_back_before_its_farewell_went_is_a_new_member(
    make_replica, clock: Clock
) -> None:
    """A node forgotten down after its left was heard from the replica that forgot it first,
    and heard again while its farewell waits its turn (a swap before it in flight), is back as
    a new member: its node_failure resolved with that left, it is not announced reconnected,
    unheard, an interval on."""
    coordinator = GatedCoordinator(clock)
    replica = await make_replica("bridge-1", coordinator, forget_ms=10_000)
    await replica.hear("app-1")
    clock.advance(3.5)
    await replica.hear("app-2")
    await replica.tick()
    assert len(replica.published(NodeLifecycle, event="down", node="app-1")) == 1
    await coordinator.swap("cluster:node:app-1", "forgotten", 3_600_000)  # bridge-2 forgot it
    winner = {"forgotten": "silent", "detected_by": "bridge-2"}
    await replica.hear(
        "bridge-2", NodeLifecycle(node="app-1", event="left", cluster_size=1, metadata=winner)
    )
    # EXESDB_NODE_FORGET_MS: the next tick forgets app-1, and announces app-2 down first.
    clock.advance(10)
    await heard_healthy_in_the_swap(replica, coordinator)
    health = NodeHealth(node="app-1", status="healthy")
    assert replica.forgotten("silent") == 1
    for _ in range(3):
        clock.advance(1.1)
        await replica.hear("app-1", health)
        await replica.tick()
    assert replica.published(NodeLifecycle, event="left", node="app-1") == []
    assert replica.published(NodeLifecycle, event="reconnected", node="app-1") == []
