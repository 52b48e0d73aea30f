"""Replay protection (SPEC section 3; the original has none).

A message is refused when its timestamp is further than the window from now, or when its id was
already accepted inside the window. The id memory is bounded: when it is full the oldest id is
forgotten and the accepted window shrinks to the newest timestamp forgotten that way, so a replay
of a forgotten id (whose timestamp is that old or older) is still refused as expired.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum

__all__ = ["ReplayGuard", "ReplayVerdict"]


class ReplayVerdict(Enum):
    """What the guard says about one message."""

    FRESH = "fresh"
    EXPIRED = "expired"
    REPLAYED = "replayed"


class ReplayGuard:
    """Remembers accepted message ids for the replay window, in bounded memory."""

    __slots__ = ("_capacity", "_clock", "_floor", "_seen", "_window")

    def __init__(
        self,
        window_seconds: float,
        capacity: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._window = window_seconds
        self._capacity = capacity
        self._clock = clock
        # id -> (message timestamp, forget-after), in acceptance order.
        self._seen: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._floor = float("-inf")

    def empty_copy(self) -> ReplayGuard:
        """A guard with the same window, capacity and clock that remembers nothing yet."""
        return ReplayGuard(self._window, self._capacity, self._clock)

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def floor(self) -> float:
        """Timestamps at or below this are refused because their ids may have been forgotten."""
        return self._floor

    def seen(self, message_id: str, timestamp: float) -> ReplayVerdict:
        """Judge one message without remembering it."""
        now = self._clock()
        if abs(now - timestamp) > self._window or timestamp <= self._floor:
            return ReplayVerdict.EXPIRED
        self._forget_expired(now)
        if message_id in self._seen:
            return ReplayVerdict.REPLAYED
        return ReplayVerdict.FRESH

    def check(self, message_id: str, timestamp: float) -> ReplayVerdict:
        """Judge one message and, when fresh, remember its id."""
        verdict = self.seen(message_id, timestamp)
        if verdict is not ReplayVerdict.FRESH:
            return verdict
        now = self._clock()
        self._seen[message_id] = (timestamp, timestamp + self._window)
        if len(self._seen) > self._capacity:
            _, (evicted_ts, forget_after) = self._seen.popitem(last=False)
            if forget_after >= now:
                self._floor = max(self._floor, evicted_ts)
        return ReplayVerdict.FRESH

    def _forget_expired(self, now: float) -> None:
        # Acceptance order is nearly timestamp order; stopping at the first live entry keeps
        # this O(1) amortized, and the capacity bound holds regardless.
        seen = self._seen
        while seen:
            first = next(iter(seen.values()))
            if first[1] >= now:
                break
            seen.popitem(last=False)
