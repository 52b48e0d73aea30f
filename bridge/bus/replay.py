"""Replay protection (docs/messages.md#envelope; the original has none).

A message is refused when its timestamp is further than the window from now, or when its id was
already accepted inside the window. The id memory is bounded: when it is full the oldest id is
forgotten and the accepted window shrinks to the newest timestamp forgotten that way, so a replay
of a forgotten id (whose timestamp is that old or older) is still refused as expired. An id dated
ahead of now (a sender's clock ahead, within the window) waits apart, in timestamp order, until
now reaches its timestamp: forgetting it early would lift that floor above now and refuse every
current message.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from itertools import repeat, starmap
from typing import Final

__all__ = ["ReplayGuard", "ReplayVerdict", "outside_window"]


# The decimals an offset is told with at most (a microsecond).
_MOST_DECIMALS: Final = 6


def outside_window(behind: float, window_seconds: float) -> str:
    """A time refused for the window, told by how far and which way it is off the clock:
    ``behind`` seconds (negative: ahead), as in ``75 s ahead of the bridge's clock, outside its
    replay window of 60 s (EXESDB_REPLAY_WINDOW_MS)``; to as many decimals as it takes not to
    read as the window itself (60.3 s, not 60 s of a window of 60 s). Ingest's refusal of a
    signature's ``t`` and the verifier's of an envelope's ``ts`` both say it."""
    off = abs(behind)
    for decimals in range(_MOST_DECIMALS + 1):
        shown = f"{off:.{decimals}f}"
        if float(shown) > window_seconds:
            break
    way = "behind" if behind > 0 else "ahead of"
    return (
        f"{shown} s {way} the bridge's clock, outside its replay window of {window_seconds:g} s"
        " (EXESDB_REPLAY_WINDOW_MS)"
    )


class ReplayVerdict(Enum):
    """What the guard says about one message."""

    FRESH = "fresh"
    EXPIRED = "expired"
    REPLAYED = "replayed"


class ReplayGuard:
    """Remembers accepted message ids for the replay window, in bounded memory."""

    __slots__ = (
        "_ahead",
        "_capacity",
        "_clock",
        "_floor",
        "_generation",
        "_order",
        "_seen",
        "_span",
        "_stamps",
        "_window",
    )

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
        # The ids, plus the ids in acceptance order with their timestamps beside them: a set
        # looks an id up in one probe of its table where a dict of id -> timestamp takes two
        # (its index, then its entries), and with 200 000 ids both miss the cache (it is
        # forgotten ``window`` after its timestamp, so that need not be stored). Every id in
        # ``_order`` was dated at or before the time it went in; the ids dated ahead wait in
        # ``_ahead``, a heap by timestamp, and join ``_order`` once now reaches them
        # (``_catch_up``).
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self._stamps: deque[float] = deque()
        self._ahead: list[tuple[float, str]] = []
        self._floor = float("-inf")
        self._generation = 0
        # The timestamps last judged, with their oldest and newest: min() and max() of a batch
        # of 1 000 take some 20 us, and check_batch needs them again for the same batch.
        self._span: tuple[Sequence[float], float, float] = ((), 0.0, 0.0)

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

    def expiry(self, timestamp: float) -> tuple[float, float | None]:
        """Why ``timestamp`` is expired now: how far it is behind now (negative: ahead), and
        the floor when the window holds it and the floor refuses it (a copy of an id the full
        memory forgot), else None: the window refuses it, or nothing does."""
        now = self._clock()
        behind = now - timestamp
        if abs(behind) <= self._window and timestamp <= self._floor:
            return behind, self._floor
        return behind, None

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

    def check_batch(
        self,
        message_ids: Sequence[str],
        timestamps: Sequence[float],
        judged_at: int | None = None,
    ) -> tuple[int, ReplayVerdict] | None:
        """Judge a batch (its ids, and its timestamps in the same order) at one instant: all or
        nothing.

        None (and every id remembered) when each message is fresh and no id repeats within the
        batch; else the index and verdict of the first that is not, and nothing is remembered.
        ``judged_at``: the ``generation`` at which ``judge_batch`` found this very batch fresh.
        While no id has been remembered since, its ids need not be looked up again (only their
        times are checked against the window, now).
        """
        now = self._clock()
        if judged_at == self._generation and message_ids:
            self._forget_expired(now)
            oldest, newest = self._measure(timestamps)
            failure = (
                None
                if self._in_window(oldest, newest, now)
                else self._first_stale(message_ids, timestamps, now)
            )
        else:
            failure = self._judge_batch(message_ids, timestamps, now)
        spanned, _, newest = self._span
        self._span = ((), 0.0, 0.0)
        if failure is None and message_ids:
            self._seen.update(message_ids)
            if spanned is timestamps and newest <= now:
                self._order.extend(message_ids)
                self._stamps.extend(timestamps)
            else:
                for message_id, timestamp in zip(message_ids, timestamps, strict=True):
                    self._add(message_id, timestamp, now)
            self._generation += 1
            self._evict(now)
        return failure

    def judge_batch(
        self, message_ids: Sequence[str], timestamps: Sequence[float]
    ) -> tuple[int, ReplayVerdict] | None:
        """``check_batch`` without remembering any id."""
        self._span = ((), 0.0, 0.0)  # measured afresh: only check_batch sees it again
        return self._judge_batch(message_ids, timestamps, self._clock())

    def _judge_batch(
        self, message_ids: Sequence[str], timestamps: Sequence[float], now: float
    ) -> tuple[int, ReplayVerdict] | None:
        if not message_ids:
            return None
        self._forget_expired(now)
        # The set operations run in C.
        if (
            self._in_window(*self._measure(timestamps), now)
            and len(set(message_ids)) == len(message_ids)
            and self._seen.isdisjoint(message_ids)
        ):
            return None
        return self._first_stale(message_ids, timestamps, now)

    def _measure(self, timestamps: Sequence[float]) -> tuple[float, float]:
        # The oldest and newest of ``timestamps``, kept for the same list's next look.
        spanned, oldest, newest = self._span
        if spanned is not timestamps:
            oldest, newest = min(timestamps), max(timestamps)
            self._span = (timestamps, oldest, newest)
        return oldest, newest

    def _in_window(self, oldest: float, newest: float, now: float) -> bool:
        # Rounding keeps subtraction monotonic, so |now - t| is largest at the oldest or the
        # newest timestamp: those two stand for the batch.
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

    def remembered(self) -> tuple[list[tuple[str, float]], float]:
        """The ids remembered now, each with its timestamp (oldest accepted first), and the
        floor: what ``restore`` takes to remember them again in another process."""
        now = self._clock()
        self._forget_expired(now)
        held = list(zip(self._order, self._stamps, strict=True))
        held.extend((message_id, timestamp) for timestamp, message_id in sorted(self._ahead))
        return held, self._floor

    def restore(self, held: Iterable[tuple[str, float]], floor: float) -> int:
        """Remember again what ``remembered`` gave (those still inside the window); the
        floor rises to ``floor`` while it is. Returns how many ids were taken."""
        now = self._clock()
        taken = 0
        for message_id, timestamp in held:
            if self._judge(message_id, timestamp, now) is ReplayVerdict.FRESH:
                self._remember(message_id, timestamp, now)
                taken += 1
        if floor + self._window >= now:
            self._floor = max(self._floor, floor)
        return taken

    def holds(self, message_id: str) -> bool:
        """Whether ``message_id`` is remembered now, whatever the timestamp of a copy of it (one
        past the window is judged expired before its id is looked at)."""
        self._forget_expired(self._clock())
        return message_id in self._seen

    def forget(self, message_ids: Iterable[str]) -> None:
        """Forget ids remembered for messages that were then not taken after all (their
        sender is told to send them again); a later copy is then fresh."""
        gone = self._seen.intersection(message_ids)
        if not gone:
            return
        self._seen -= gone
        waiting = gone.intersection(message_id for _, message_id in self._ahead)
        if waiting:
            self._ahead = [entry for entry in self._ahead if entry[1] not in waiting]
            heapq.heapify(self._ahead)
            gone -= waiting
        # The rest are in _order, among its newest (remembered moments ago): look from the back,
        # so that eviction counts only the ids still remembered.
        order, stamps, kept = self._order, self._stamps, []
        while gone and order:
            message_id, timestamp = order.pop(), stamps.pop()
            if message_id in gone:
                gone.discard(message_id)
            else:
                kept.append((message_id, timestamp))
        for message_id, timestamp in reversed(kept):
            order.append(message_id)
            stamps.append(timestamp)

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
        self._seen.add(message_id)
        self._add(message_id, timestamp, now)
        self._generation += 1
        self._evict(now)

    def _add(self, message_id: str, timestamp: float, now: float) -> None:
        if timestamp <= now:
            self._order.append(message_id)
            self._stamps.append(timestamp)
        else:
            heapq.heappush(self._ahead, (timestamp, message_id))

    def _catch_up(self, now: float) -> None:
        # Ids whose time has come join the others, in timestamp order.
        ahead, order, stamps = self._ahead, self._order, self._stamps
        while ahead and ahead[0][0] <= now:
            timestamp, message_id = heapq.heappop(ahead)
            order.append(message_id)
            stamps.append(timestamp)

    def _evict(self, now: float) -> None:
        # Past the capacity, forget the oldest ids; the floor rises to their newest timestamp
        # still inside the window. A batch's worth at once: the pops run in C. Every id in
        # _order is dated at or before now, so the floor stays at or below now; only when the
        # ids dated ahead fill the whole memory must the earliest of them go, and the floor pass
        # now (what the memory cannot hold is refused rather than let in twice).
        self._catch_up(now)
        order = self._order
        excess = len(order) + len(self._ahead) - self._capacity
        if excess <= 0:
            return
        popped = min(excess, len(order))
        self._seen.difference_update(starmap(order.popleft, repeat((), popped)))
        stamps = list(starmap(self._stamps.popleft, repeat((), popped)))
        while len(stamps) < excess:
            timestamp, message_id = heapq.heappop(self._ahead)
            self._seen.remove(message_id)
            stamps.append(timestamp)
        newest = max(stamps)
        if newest + self._window >= now:
            self._floor = max(self._floor, newest)

    def _forget_expired(self, now: float) -> None:
        # Acceptance order is nearly timestamp order; stopping at the first live entry keeps
        # this O(1) amortized, and the capacity bound holds regardless.
        self._catch_up(now)
        order, stamps, seen, window = self._order, self._stamps, self._seen, self._window
        while stamps and stamps[0] + window < now:
            seen.remove(order.popleft())
            stamps.popleft()
