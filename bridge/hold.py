"""Prometheus's ``for:``: a condition counts only once it has held, unbroken, for a while.

A condition has levels (degraded = 1, unhealthy = 2; warning, critical), each held on its own: a
reading at level 2 keeps levels 1 and 2 going, a reading at level 1 breaks level 2, a reading at 0
breaks both. ``observe`` answers the highest level held for at least ``for_seconds``, so a single
spike never counts, and a spike to a higher level while a lower one holds counts only as the lower
one. Time comes with each reading (the reading's own timestamp), so nothing here reads a clock.
Readings further apart than ``forget_after`` start the condition afresh: a silence is not a hold.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Hold"]

_UNBOUNDED: Final = 2**62


@dataclass(slots=True)
class _Condition:
    since: list[float] = field(default_factory=list)  # since[l - 1]: when level l began
    last: float = 0.0


class Hold:
    """Which conditions have held at which level for ``for_seconds``, by key.

    At most ``max_keys`` conditions are followed; beyond, the one read longest ago is forgotten
    (it starts afresh at its next reading).
    """

    __slots__ = ("_conditions", "_forget_after", "_max_keys", "for_seconds")

    def __init__(
        self,
        for_seconds: float,
        *,
        forget_after: float = math.inf,
        max_keys: int = _UNBOUNDED,
    ) -> None:
        if for_seconds < 0:
            raise ValueError(f"for_seconds must be 0 or more, got {for_seconds}")
        self.for_seconds = for_seconds
        self._forget_after = forget_after
        self._max_keys = max_keys
        self._conditions: OrderedDict[Hashable, _Condition] = OrderedDict()

    def __len__(self) -> int:
        """Conditions followed now (at a level above 0 at their latest reading)."""
        return len(self._conditions)

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key`` is followed now (as ``__len__`` counts)."""
        return key in self._conditions

    def waiting(self) -> int:
        """Conditions whose latest reading has not held for ``for_seconds`` yet at any level."""
        return sum(
            1
            for condition in self._conditions.values()
            if condition.last - condition.since[0] < self.for_seconds
        )

    def observe(self, key: Hashable, level: int, at: float) -> int:
        """Record a reading of ``key`` at ``level`` (0: fine) taken at ``at`` (seconds);
        return the highest level it has held for ``for_seconds`` (0: none yet)."""
        if level <= 0:
            self._conditions.pop(key, None)
            return 0
        if self.for_seconds == 0:
            return level
        condition = self._conditions.get(key)
        if condition is None or at - condition.last > self._forget_after:
            condition = self._conditions[key] = _Condition()
            if len(self._conditions) > self._max_keys:
                self._conditions.popitem(last=False)
        self._conditions.move_to_end(key)
        condition.last = max(condition.last, at)
        del condition.since[level:]  # the levels above this reading are broken
        condition.since += [at] * (level - len(condition.since))
        held = 0
        for number, since in enumerate(condition.since, start=1):
            if at - since >= self.for_seconds:
                held = number
        return held

    def clear(self, key: Hashable) -> None:
        """Forget ``key``: the condition is over."""
        self._conditions.pop(key, None)

    def forget_older_than(self, now: float) -> int:
        """Forget conditions last read more than ``forget_after`` before ``now``; how many."""
        stale = [
            key
            for key, condition in self._conditions.items()
            if now - condition.last > self._forget_after
        ]
        for key in stale:
            del self._conditions[key]
        return len(stale)
