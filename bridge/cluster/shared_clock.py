"""The clock the cluster monitor dates its announcements by: the coordinator's, Redis's on Redis.

A node's ``down`` and its ``reconnected`` may be announced by different replicas, and the alert
stage takes a ``node_failure`` resolve dated before the down it follows as stale: by their own
clocks, a replica behind by more than the outage would leave the alert open. So each replica
dates them by the shared store's clock (``Coordinator.unix_time``: Redis's ``TIME``), as its
own wall clock plus their difference, measured with one round trip once an interval.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import datetime

from bridge.bus import Coordinator
from bridge.errors import TransportError
from bridge.messages import utc_from_seconds

__all__ = ["SharedClock"]


class SharedClock:
    """This replica's wall clock set to the coordinator's, the difference looked at again
    every ``every`` seconds (by ``clock``), or ``retry`` seconds after a look that failed."""

    __slots__ = (
        "_clock",
        "_coordinator",
        "_every",
        "_next",
        "_offset",
        "_retry",
        "_wall_clock",
        "measured",
    )

    def __init__(
        self,
        coordinator: Coordinator,
        *,
        every: float,
        retry: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._coordinator = coordinator
        self._every = every
        self._retry = retry
        self._clock = clock
        self._wall_clock = wall_clock
        self._offset = 0.0  # the coordinator's clock less this replica's: none until looked at
        self._next = -math.inf
        self.measured = False
        """Whether a look has had the coordinator's answer: until then this is the replica's
        own clock."""

    async def look(self, within: float | None = None) -> None:
        """Measure the difference again, if ``every`` seconds passed since the last look: one
        round trip, its middle taken as the moment the coordinator read its clock. One that
        fails (Redis unreachable, or refusing it: said by the bus) keeps the last difference,
        and is tried again at the first look ``retry`` seconds later (the next, by default: a
        refusal told ends as soon as it is granted; alert batches, far more frequent than the
        monitor's ticks, would each wait on a Redis that does not answer). ``within``: seconds
        the round trip may take before it counts as failed."""
        now = self._clock()
        if now < self._next:
            return
        before = self._wall_clock()
        try:
            async with asyncio.timeout(within):
                shared = await self._coordinator.unix_time()
        except (TransportError, TimeoutError):
            self._next = now + self._retry
            return
        self._offset = shared - (before + self._wall_clock()) / 2
        self._next = now + self._every
        self.measured = True

    def unix_time(self) -> float:
        """Now by the coordinator's clock, in Unix seconds."""
        return self._wall_clock() + self._offset

    def now(self) -> datetime:
        """Now by the coordinator's clock: a message's ``timestamp``."""
        return utc_from_seconds(self.unix_time())
