"""Replay protection (SPEC section 3; the original has none).

A message is refused when its timestamp is further than the window from now, or when its id was
already accepted inside the window. The id memory is bounded: when it is full the oldest id is
forgotten and the accepted window shrinks to the newest timestamp forgotten that way, so a replay
of a forgotten id (whose timestamp is that old or older) is still refused as expired.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from enum import Enum

__all__ = ["ReplayGuard", "ReplayVerdict"]


class ReplayVerdict(Enum):
    """What the guard says about one message."""

    FRESH = "fresh"
    EXPIRED = "expired"
    REPLAYED = "replayed"


class ReplayGuard:
    """Remembers accepted message ids for the replay window, in bounded memory."""

    __slots__ = ("_capacity", "_clock", "_floor", "_order", "_seen", "_window")

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
        # id -> message timestamp, plus the ids in acceptance order: a float per id and a deque
        # slot take far less memory than an OrderedDict entry holding a tuple (it is forgotten
        # ``window`` after its timestamp, so that need not be stored).
        self._seen: dict[str, float] = {}
        self._order: deque[str] = deque()
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
        return self._judge(message_id, timestamp, self._clock())

    def check(self, message_id: str, timestamp: float) -> ReplayVerdict:
        """Judge one message and, when fresh, remember its id."""
        now = self._clock()
        verdict = self._judge(message_id, timestamp, now)
        if verdict is ReplayVerdict.FRESH:
            self._remember(message_id, timestamp, now)
        return verdict

    def check_all(self, messages: Sequence[tuple[str, float]]) -> tuple[int, ReplayVerdict] | None:
        """Judge a batch at one instant: all or nothing.

        None (and every id remembered) when each message is fresh and no id repeats within the
        batch; else the index and verdict of the first that is not, and nothing is remembered.
        """
        now = self._clock()
        judge = self._judge
        batch: set[str] = set()
        for index, (message_id, timestamp) in enumerate(messages):
            verdict = judge(message_id, timestamp, now)
            if verdict is ReplayVerdict.FRESH and message_id in batch:
                verdict = ReplayVerdict.REPLAYED
            if verdict is not ReplayVerdict.FRESH:
                return index, verdict
            batch.add(message_id)
        remember = self._remember
        for message_id, timestamp in messages:
            remember(message_id, timestamp, now)
        return None

    def forget(self, message_ids: Iterable[str]) -> None:
        """Forget ids remembered for messages that were then not taken after all (their
        sender is told to send them again); a later copy is then fresh."""
        for message_id in message_ids:
            self._seen.pop(message_id, None)

    def _judge(self, message_id: str, timestamp: float, now: float) -> ReplayVerdict:
        if abs(now - timestamp) > self._window or timestamp <= self._floor:
            return ReplayVerdict.EXPIRED
        self._forget_expired(now)
        if message_id in self._seen:
            return ReplayVerdict.REPLAYED
        return ReplayVerdict.FRESH

    def _remember(self, message_id: str, timestamp: float, now: float) -> None:
        self._seen[message_id] = timestamp
        self._order.append(message_id)
        if len(self._order) > self._capacity:
            evicted_ts = self._seen.pop(self._order.popleft(), None)
            if evicted_ts is not None and evicted_ts + self._window >= now:
                self._floor = max(self._floor, evicted_ts)

    def _forget_expired(self, now: float) -> None:
        # Acceptance order is nearly timestamp order; stopping at the first live entry keeps
        # this O(1) amortized, and the capacity bound holds regardless.
        order, seen, window = self._order, self._seen, self._window
        while order:
            timestamp = seen.get(order[0])
            if timestamp is not None and timestamp + window >= now:
                break
            seen.pop(order.popleft(), None)  # None: forgotten earlier (see ``forget``)
