"""The dates an alert batch is judged by: the replicas' shared clock and the queue's hand-over.

With a coordinator, an event is dated never later than now by the clock the replicas share (the
coordinator's: Redis's ``TIME``, or the process's own on the in-process bus), not this replica's
own (``transitions.event_date``), its difference from this replica's measured again once a
minute, at a batch. A resolve of an unknown alert is remembered for the replay window from when
every message not yet handled was taken in (``AlertStore.plan``'s ``arrived_after``, which the
in-process bus's store reads; on Redis the index keeps them): when the sink's queue was handed a
batch after which it took in all those, every message taken in before it handled since, however
long a message then waits in the queue. Told by the queue's count of the messages it took in
(``BatchSubscription.mark``), not only when it last handed over all it held: a queue that never
empties (a flood it cannot keep up with) would keep that date where it last did, the resolves
past their window, and count them forgotten at the cap.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from bridge.bus import Coordinator
from bridge.cluster.shared_clock import SharedClock

__all__ = ["BatchDates", "Dates"]

# How often the difference between this replica's clock and the shared store's (Redis's) is
# measured again, at the next batch: clocks drift apart by milliseconds a day.
_SHARED_CLOCK_SECONDS: Final = 60.0
# How long a batch waits for that measure: a Redis slow to answer leaves the last one in force;
# one that failed is taken again at a batch a second later at the soonest, not at every batch.
_SHARED_CLOCK_WAIT_SECONDS: Final = 0.5
_SHARED_CLOCK_RETRY_SECONDS: Final = 1.0
# The hand-overs remembered while messages stay queued (``BatchDates.handle``): a queue that
# never empties hands over a batch each time its handler is done, hundreds before a message
# taken in at the first is handled only when batches are a few messages each.
_HANDED_KEPT: Final = 1_024


@dataclass(frozen=True, slots=True)
class Dates:
    """What a batch's changes are applied with besides now (``AlertStates.apply``): ``latest``,
    the shared clock's now, that no event is dated past (None without a coordinator); and
    ``arrived_after``, a date every message not yet handled was taken in after (a lower bound:
    none of them was taken in before it)."""

    latest: float | None = None
    arrived_after: float | None = None


class BatchDates:
    """The dates of the alert sink's batches: by ``coordinator``'s clock when there is one, and
    by when every message its queue holds was taken in after (``clock``: Unix seconds;
    ``monotonic`` times the shared clock's measures)."""

    __slots__ = ("_arrived_after", "_clock", "_handed", "_shared")

    def __init__(
        self,
        coordinator: Coordinator | None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._shared = (
            None
            if coordinator is None
            else SharedClock(
                coordinator,
                every=_SHARED_CLOCK_SECONDS,
                retry=_SHARED_CLOCK_RETRY_SECONDS,
                clock=monotonic,
                wall_clock=clock,
            )
        )
        # Every message not yet handled was taken in after this (see handle).
        self._arrived_after = -math.inf
        # The batches handed over since, each as (how many messages the queue had taken in by
        # then, when), counts rising: once the messages up to one's count are handled, every
        # message left was taken in after it. As many at most as messages wait, or as batches
        # failed in a row; the oldest dropped beyond _HANDED_KEPT (the date then moves on at
        # the next one's: later, never too soon).
        self._handed: deque[tuple[int, float]] = deque(maxlen=_HANDED_KEPT)

    async def handle(self, mark: int, queued: int, handle: Callable[[], Awaitable[None]]) -> None:
        """Run ``handle`` on a batch handed over when the queue had taken in ``mark`` messages
        (``BatchSubscription.mark``), ``queued`` of them left in it: the batch's last is
        ``mark - queued``."""
        # Read as the batch is handed over, before any wait: a message numbered past ``mark``
        # is taken in after now.
        handed = self._handed
        if handed and handed[-1][0] == mark:
            # None taken in since the last hand-over (a batch tried again, or the next of
            # those the queue held already): now bounds the same messages, and later.
            handed.pop()
        handed.append((mark, self._clock()))
        await handle()
        # Handled: every message up to the batch's last (AlertStore.plan's arrived_after).
        last = mark - queued
        while handed and handed[0][0] <= last:
            self._arrived_after = max(self._arrived_after, handed.popleft()[1])

    async def dates(self) -> Dates:
        """The dates a batch's changes are applied with now: with a coordinator, its clock's
        now (measured again first when due, waiting half a second at most for it)."""
        shared = self._shared
        if shared is None:
            return Dates(arrived_after=self._arrived_after)
        await shared.look(within=_SHARED_CLOCK_WAIT_SECONDS)
        return Dates(latest=shared.unix_time(), arrived_after=self._arrived_after)
