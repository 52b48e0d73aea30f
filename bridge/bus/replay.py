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
from itertools import repeat, starmap
from typing import Final

__all__ = ["ReplayGuard", "ReplayVerdict"]

_NEVER: Final = float("-inf")


class ReplayVerdict(Enum):
    """What the guard says about one message."""

    FRESH = "fresh"
    EXPIRED = "expired"
    REPLAYED = "replayed"


class ReplayGuard:
    """Remembers accepted message ids for the replay window, in bounded memory."""

    __slots__ = ("_capacity", "_clock", "_floor", "_generation", "_order", "_seen", "_window")

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
        self._generation = 0

    def empty_copy(self) -> ReplayGuard:
        """A guard with the same window, capacity and clock that remembers nothing yet."""
        return ReplayGuard(self._window, self._capacity, self._clock)

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def generation(self) -> int:
        """Counts the times ids were remembered: a batch judged fresh at one generation holds no
        id remembered since while the generation is still the same."""
        return self._generation

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
        return self.check_batch([m for m, _ in messages], [t for _, t in messages])

    def check_batch(
        self,
        message_ids: Sequence[str],
        timestamps: Sequence[float],
        judged_at: int | None = None,
    ) -> tuple[int, ReplayVerdict] | None:
        """``check_all`` for a batch given as its ids and its timestamps.

        ``judged_at``: the ``generation`` at which ``judge_batch`` found this very batch fresh.
        While no id has been remembered since, its ids need not be looked up again (only their
        times are checked against the window, now).
        """
        now = self._clock()
        if judged_at == self._generation and message_ids:
            self._forget_expired(now)
            failure = (
                None
                if self._in_window(timestamps, now)
                else self._first_stale(message_ids, timestamps, now)
            )
        else:
            failure = self._judge_batch(message_ids, timestamps, now)
        if failure is None and message_ids:
            self._seen.update(zip(message_ids, timestamps, strict=True))
            self._order.extend(message_ids)
            self._generation += 1
            self._evict(now)
        return failure

    def judge_batch(
        self, message_ids: Sequence[str], timestamps: Sequence[float]
    ) -> tuple[int, ReplayVerdict] | None:
        """``check_batch`` without remembering any id."""
        return self._judge_batch(message_ids, timestamps, self._clock())

    def _judge_batch(
        self, message_ids: Sequence[str], timestamps: Sequence[float], now: float
    ) -> tuple[int, ReplayVerdict] | None:
        if not message_ids:
            return None
        self._forget_expired(now)
        # The set operations run in C.
        if (
            self._in_window(timestamps, now)
            and len(set(message_ids)) == len(message_ids)
            and self._seen.keys().isdisjoint(message_ids)
        ):
            return None
        return self._first_stale(message_ids, timestamps, now)

    def _in_window(self, timestamps: Sequence[float], now: float) -> bool:
        # Rounding keeps subtraction monotonic, so |now - t| is largest at the oldest or the
        # newest timestamp: those two stand for the batch.
        oldest, newest = min(timestamps), max(timestamps)
        return (
            abs(now - oldest) <= self._window
            and abs(now - newest) <= self._window
            and oldest > self._floor
        )

    def _first_stale(
        self, message_ids: Sequence[str], timestamps: Sequence[float], now: float
    ) -> tuple[int, ReplayVerdict] | None:
        # Something is stale: find the first, as judging one message at a time would.
        batch: set[str] = set()
        for index, (message_id, timestamp) in enumerate(zip(message_ids, timestamps, strict=True)):
            verdict = self._verdict(message_id, timestamp, now)
            if verdict is ReplayVerdict.FRESH and message_id in batch:
                verdict = ReplayVerdict.REPLAYED
            if verdict is not ReplayVerdict.FRESH:
                return index, verdict
            batch.add(message_id)
        return None

    def forget(self, message_ids: Iterable[str]) -> None:
        """Forget ids remembered for messages that were then not taken after all (their
        sender is told to send them again); a later copy is then fresh."""
        for message_id in message_ids:
            self._seen.pop(message_id, None)

    def _judge(self, message_id: str, timestamp: float, now: float) -> ReplayVerdict:
        self._forget_expired(now)
        return self._verdict(message_id, timestamp, now)

    def _verdict(self, message_id: str, timestamp: float, now: float) -> ReplayVerdict:
        # The expired ids forgotten at ``now`` already.
        if abs(now - timestamp) > self._window or timestamp <= self._floor:
            return ReplayVerdict.EXPIRED
        if message_id in self._seen:
            return ReplayVerdict.REPLAYED
        return ReplayVerdict.FRESH

    def _remember(self, message_id: str, timestamp: float, now: float) -> None:
        self._seen[message_id] = timestamp
        self._order.append(message_id)
        self._generation += 1
        self._evict(now)

    def _evict(self, now: float) -> None:
        # Past the capacity, forget the oldest ids; the floor rises to their newest timestamp
        # still inside the window. A batch's worth at once: the pops run in C.
        excess = len(self._order) - self._capacity
        if excess <= 0:
            return
        evicted = list(starmap(self._order.popleft, repeat((), excess)))
        # -inf: forgotten earlier (see ``forget``).
        newest = max(map(self._seen.pop, evicted, repeat(_NEVER)))
        if newest + self._window >= now:
            self._floor = max(self._floor, newest)

    def _forget_expired(self, now: float) -> None:
        # Acceptance order is nearly timestamp order; stopping at the first live entry keeps
        # this O(1) amortized, and the capacity bound holds regardless.
        order, seen, window = self._order, self._seen, self._window
        while order:
            timestamp = seen.get(order[0])
            if timestamp is not None and timestamp + window >= now:
                break
            seen.pop(order.popleft(), None)  # None: forgotten earlier (see ``forget``)
