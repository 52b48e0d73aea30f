"""Log lines said at most once a minute for each kind, with how many went untold since."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Final

__all__ = ["LOG_EVERY", "LogThrottle"]

LOG_EVERY: Final = 60.0


class LogThrottle:
    """Whether a line of a kind may be logged now: not within ``every`` seconds of the last
    one of its kind (``clock``: monotonic seconds), the events meanwhile counted for the next."""

    __slots__ = ("_clock", "_every", "_logged", "_untold")

    def __init__(
        self, every: float = LOG_EVERY, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every = every
        self._clock = clock
        self._logged: dict[Hashable, float] = {}  # kind -> when last logged
        self._untold: dict[Hashable, int] = {}  # kind -> events not logged since

    def due(self, kind: Hashable = None, count: int = 1) -> int | None:
        """``count`` events of ``kind``: None when a line of it was logged within ``every``
        seconds (they are added to the untold), else how many went untold since that line (0
        at the first), the line to be logged now."""
        now = self._clock()
        last = self._logged.get(kind)
        if last is not None and now - last < self._every:
            self._untold[kind] = self._untold.get(kind, 0) + count
            return None
        self._logged[kind] = now
        return self._untold.pop(kind, 0)
