"""How long each node may stay silent: three of its own interval, declared or seen in its gaps.

What it means for users: docs/redis.md#cluster-membership.

A replica cannot take its own ``EXESDB_HEALTH_BROADCAST_INTERVAL`` for every node's: a node
publishing every 3 s heard by a replica at 500 ms would be found down, and back, between each
two of its messages. So each node's limit is ``MISSED_INTERVALS`` of its own interval, never
less than of the hearing replica's (whose ticks and pause check go by its own):

- declared: a bridge says its interval in the ``metadata`` of its NodeLifecycle ``joined``
  (``interval_ms``), at start and in each heartbeat (metadata is a free map: older replicas
  take it; a new field would be refused by their models);
- seen: a node that has declared nothing to this replica (it started before the replica, or
  is of an older version, or not a bridge) is timed by the gaps between its signs of life (its
  NodeHealth about itself, its ``joined``): the longest gap of this window or the one before,
  a window lasting the limit it gave, so one late message stretches the limit for two windows
  at most; a gap counts for no more than the limit it came within;
- not known yet (heard once, nothing declared): ``FIRST_INTERVAL``, time for its second
  message, so that a slow node's first message is not followed by a false down. So is a node
  back from down, declared or not, with no shorter a limit than it had: its silence may have
  been an outage or a slower pace (a restart with a longer interval, its ``joined`` missed
  here: trusting the old declaration would find it down after each message), and its next gap
  or declaration tells. A bridge that hears itself announced down says its interval again at
  its next tick (``bridge.cluster.monitor``);
- seen across downs: a node found down while not known yet (slower than that first limit) is
  timed by the gap across the down when it is heard again: for no more than the limit it broke
  (the limit triples: an outage's gap stretches no more), and whole when it is like the gap
  across its down before (within a factor of two: a steady pace, not an outage). So a steady
  node slower than 90 s that declares nothing is found down once or twice, then never between
  its messages, and still three of its intervals (three hours at the most) after it stops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["FIRST_INTERVAL", "INTERVAL_KEY", "MISSED_INTERVALS", "Cadence", "Pacing"]

# Health intervals a node may stay silent before it is down.
MISSED_INTERVALS: Final = 3
# Where a node's NodeLifecycle ``joined`` (and heartbeat) says its interval, in milliseconds.
INTERVAL_KEY: Final = "interval_ms"
# Seconds: the interval of a node not known yet, EXESDB_HEALTH_BROADCAST_INTERVAL's default (a
# cluster left at it finds such a node down when it did before).
FIRST_INTERVAL: Final = 30.0
# Seconds: a longer interval, declared or seen, counts as this, so no value or run of ever longer
# gaps keeps a silent node up for ever.
_LONGEST: Final = 3_600.0
_NEVER: Final = -math.inf


@dataclass(slots=True)
class Cadence:
    """One node's pace: how long it may stay silent, and what its gaps have shown so far."""

    limit: float  # seconds of silence that make it down
    declared: bool = False  # the limit is the node's own word: its gaps are not timed
    beat: float = _NEVER  # its last sign of life, the next gap's start (none after a lapse)
    peak: float = 0.0  # the longest gap of this window
    previous: float = 0.0  # the longest gap of the window before
    window_end: float = _NEVER
    missed: float = 0.0  # the gap across its last down, while its limit rests on such gaps

    def lapse(self) -> None:
        """The node was not heard for a while (down, or this replica cut off or not running):
        the gap across that is no sign of its pace, so the next one is timed from its next
        message."""
        self.beat = _NEVER


class Pacing:
    """The hearing replica's side: its own interval, under which no node's is taken."""

    __slots__ = ("_first", "_floor")

    def __init__(self, interval: float) -> None:
        self._floor = interval
        self._first = MISSED_INTERVALS * max(interval, FIRST_INTERVAL)

    def new(self) -> Cadence:
        """The pace of a node heard for the first time: not known yet."""
        return Cadence(self._first)

    def joined(self, cadence: Cadence, metadata: Mapping[str, object], *, start: bool) -> None:
        """The node's own ``joined``: at its ``start`` it may have a new interval (what was
        known of the old one is dropped); a heartbeat is a sign of life, and says it again."""
        declared = _declared(metadata)
        if start:
            cadence.declared = False
            self._unknown(cadence)
        if declared is not None:
            cadence.declared = True
            cadence.limit = MISSED_INTERVALS * max(self._floor, declared)

    def back(self, cadence: Cadence, now: float) -> None:
        """The node was found down and is heard again at ``now``: its silence may have been a
        slower pace as well as an outage, even if it declared its interval (it may have
        restarted with another, its ``joined`` missed here), so it is not known yet until its
        gaps or a new declaration tell, and its limit is no shorter than it was: a slow node is
        not found down again before its next message.

        The gap across the down is timed only when the node's pace was not known when it went
        silent (declared nothing, and no gap of it timed while up since its start or last
        return): then that gap is all there is to tell its pace by. It counts for no more than
        the limit it broke (an outage's stretches the limit threefold at most), unless it is
        like the gap across the down before (within a factor of two): a steady pace, taken
        whole. So a node slower than its limit is found down a few times at most, not at each
        of its messages."""
        limit = cadence.limit
        across = now - cadence.beat if self._guessed(cadence) else math.inf
        missed = cadence.missed
        cadence.declared = False
        self._unknown(cadence)
        cadence.limit = max(cadence.limit, limit)
        if across < math.inf:
            self._across(cadence, across, missed, limit, now)

    def _guessed(self, cadence: Cadence) -> bool:
        """Whether the node's limit is a guess: nothing declared, and no gap timed while it was
        up (only across downs, if any), since its start or last return."""
        if cadence.declared or cadence.beat == _NEVER:
            return False  # declared, or its last sign of life is not known (a lapse)
        return cadence.window_end == _NEVER or cadence.missed > 0

    def _across(
        self, cadence: Cadence, gap: float, missed: float, limit: float, now: float
    ) -> None:
        """Time ``gap``, from the node's last sign of life before a down to ``now``, ``missed``
        the gap across the down before (0: none), ``limit`` the limit it broke."""
        if missed / 2 <= gap <= 2 * missed:
            interval = max(gap, missed)  # its pace twice over: known now
        else:
            interval = min(gap, limit)  # maybe an outage: threefold at most
            cadence.missed = gap
        cadence.peak = min(interval, _LONGEST)
        cadence.limit = max(cadence.limit, self._limit(cadence))
        cadence.window_end = now + cadence.limit

    def _unknown(self, cadence: Cadence) -> None:
        cadence.beat = _NEVER
        cadence.peak = cadence.previous = cadence.missed = 0.0
        cadence.window_end = _NEVER
        cadence.limit = self._first

    def beat(self, cadence: Cadence, now: float) -> None:
        """A sign of life of a node that is up: the gap since the last one is timed."""
        if cadence.declared:
            return
        gap = now - cadence.beat  # infinite after a lapse: no gap to time
        cadence.beat = now
        # Most gaps change nothing: no longer than the window's longest, the window still open.
        if gap > cadence.peak or now >= cadence.window_end:
            self._timed(cadence, gap, now)

    def _timed(self, cadence: Cadence, gap: float, now: float) -> None:
        if gap == math.inf:
            return
        cadence.missed = 0.0  # a gap timed while up: its limit rests on no gap across a down
        gap = min(gap, cadence.limit)
        if now >= cadence.window_end:
            cadence.previous = cadence.peak
            cadence.peak = gap
            cadence.limit = self._limit(cadence)
            cadence.window_end = now + cadence.limit
        elif gap > cadence.peak:
            cadence.peak = gap
            cadence.limit = self._limit(cadence)

    def _limit(self, cadence: Cadence) -> float:
        interval = min(max(self._floor, cadence.peak, cadence.previous), _LONGEST)
        return MISSED_INTERVALS * interval


def _declared(metadata: Mapping[str, object]) -> float | None:
    """The interval ``metadata`` declares, in seconds; None when it declares none usable."""
    value = metadata.get(INTERVAL_KEY)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = value / 1000
    except OverflowError:  # an integer past any float's range: longer than the longest
        return _LONGEST
    if not seconds > 0:  # NaN too
        return None
    return min(seconds, _LONGEST)
