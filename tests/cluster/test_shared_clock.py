"""The shared clock: the coordinator's time, looked at once in a while, never at every call."""

from __future__ import annotations

import asyncio

from bridge.bus import LocalCoordinator
from bridge.cluster.shared_clock import SharedClock
from bridge.errors import TransportError


class _Unreachable(LocalCoordinator):
    """A coordinator whose store answers nothing: each look at its clock fails."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    async def unix_time(self) -> float:
        self.asked += 1
        raise TransportError("Redis at redis://127.0.0.1:1 could not read its clock (TIME)")


def test_a_failed_look_given_a_retry_is_not_tried_again_at_every_call_but_a_moment_later() -> None:
    """While the store does not answer, the looks of one moment of a clock given ``retry`` (the
    alert stage's) ask it once (each would wait on the client's connect timeout), and ask again
    once ``retry`` passed; the clock meanwhile is this replica's own."""
    now = [100.0]
    coordinator = _Unreachable()
    clock = SharedClock(
        coordinator, every=60.0, retry=1.0, clock=lambda: now[0], wall_clock=lambda: 5.0
    )

    async def looks(count: int) -> None:
        for _ in range(count):
            await clock.look()

    asyncio.run(looks(5))
    assert coordinator.asked == 1
    assert clock.unix_time() == 5.0
    now[0] += 1.0
    asyncio.run(looks(5))
    assert coordinator.asked == 2


def test_a_failed_look_is_tried_again_at_the_next_one_by_default() -> None:
    """A clock without ``retry`` (the cluster monitor's, looked at once a tick) asks a store
    that failed again at the very next look, at the same moment too: a refusal granted since
    ends at once."""
    coordinator = _Unreachable()
    clock = SharedClock(coordinator, every=0.2, clock=lambda: 0.0)
    for _ in range(4):
        asyncio.run(clock.look())
    assert coordinator.asked == 4


class _Silent(LocalCoordinator):
    """A coordinator whose store takes the question and never answers."""

    async def unix_time(self) -> float:
        await asyncio.Event().wait()  # nothing ever answers
        raise AssertionError("unreachable")


def test_a_look_given_a_time_limit_ends_by_then_keeping_the_last_difference() -> None:
    """A look with ``within`` gives up on a store that never answers by then, the clock left
    as it was (this replica's own), rather than holding its caller (an alert batch) for good."""
    clock = SharedClock(_Silent(), every=60.0, wall_clock=lambda: 5.0)

    async def look() -> None:
        await asyncio.wait_for(clock.look(within=0.05), 10)

    asyncio.run(look())
    assert clock.unix_time() == 5.0
