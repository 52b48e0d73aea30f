"""The dates an alert batch is judged by: the replicas' shared clock and the queue's hand-over.

With a coordinator, an event is dated never later than now by the clock the replicas share (the
coordinator's: Redis's ``TIME``, or the process's own on the in-process bus), not this replica's
own (``transitions.event_date``), its difference from this replica's measured again once a
minute, at a batch. A resolve of an unknown alert is remembered for the replay window from when
every message not yet handled was taken in (``AlertStore.plan``'s ``arrived_after``, which the
in-process bus's store reads; on Redis the index keeps them): when the sink's queue last handed
over all it held, that batch handled since, however long a message then waits in the queue.
"""

from __future__ import annotations

import math
import time
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


@dataclass(frozen=True, slots=True)
class Dates:
    """What a batch's changes are applied with besides now (``AlertStates.apply``): ``latest``,
    the shared clock's now, that no event is dated past (None without a coordinator); and
    ``arrived_after``, when every message not yet handled was taken in by at the latest."""

    latest: float | None = None
    arrived_after: float | None = None


class BatchDates:
    """The dates of the alert sink's batches: by ``coordinator``'s clock when there is one, and
    by when its queue last handed over all it held (``clock``: Unix seconds; ``monotonic``
    times the shared clock's measures)."""

    __slots__ = ("_arrived_after", "_clock", "_shared")

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
        # When the sink's queue last handed over all it held, that batch handled since: every
        # message not yet handled was taken in after it (see handle).
        self._arrived_after = -math.inf

    async def handle(self, queued: int, handle: Callable[[], Awaitable[None]]) -> None:
        """Run ``handle`` on a batch handed over with ``queued`` messages left in the queue."""
        # Read as the batch is handed over, before any wait: nothing left queued, every message
        # taken in until now is in this batch or one handled before (AlertStore.plan's
        # arrived_after, from once this batch is handled).
        taken_at = self._clock() if queued == 0 else None
        await handle()
        if taken_at is not None:
            self._arrived_after = max(self._arrived_after, taken_at)

    async def dates(self) -> Dates:
        """The dates a batch's changes are applied with now: with a coordinator, its clock's
        now (measured again first when due, waiting half a second at most for it)."""
        shared = self._shared
        if shared is None:
            return Dates(arrived_after=self._arrived_after)
        await shared.look(within=_SHARED_CLOCK_WAIT_SECONDS)
        return Dates(latest=shared.unix_time(), arrived_after=self._arrived_after)
