"""Health conditions that wait ``EXESDB_ALERT_FOR_MS`` before they alert, as Prometheus's ``for:``.

The alert stage derives node and component health alerts from every NodeHealth and
ComponentHealth it sees, whoever sent it: this bridge's health collector, the demo, other nodes
through ingest or the Redis bus. So the wait lives here, once for every path: a status read as
degraded or unhealthy becomes an alert only once the readings have shown it, unbroken, for the
hold time (measured by the readings' own timestamps, one dated after the bridge's clock taken as
read now), at the worst status held that long. A
healthy reading ends the wait; an ``unknown`` one says nothing either way. Messages that are
alerts already (SystemAlert, MetricAlert, ...) are their sender's verdict and never wait here.

The wait is kept in memory: after a restart, or when another replica takes the work queue over,
a condition waits afresh. Readings further apart than ``forget_after`` start it afresh too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Final

from bridge.hold import Hold

__all__ = ["PendingConditions"]

_LEVEL: Final = {"degraded": 1, "unhealthy": 2}
_HELD: Final = ("degraded", "unhealthy")


class PendingConditions:
    """The health conditions waiting for their hold time, by alert id."""

    __slots__ = ("_clock", "_hold")

    def __init__(
        self,
        for_seconds: float,
        *,
        forget_after: float,
        max_conditions: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._hold = Hold(for_seconds, forget_after=forget_after, max_keys=max_conditions)
        self._clock = clock

    def __len__(self) -> int:
        """Conditions read as degraded or unhealthy at their latest reading."""
        return len(self._hold)

    def __contains__(self, alert_id: str) -> bool:
        """Whether the condition of ``alert_id`` is among them (``__len__``)."""
        return alert_id in self._hold

    def waiting(self) -> int:
        """Conditions read as degraded or unhealthy that have not lasted long enough yet."""
        return self._hold.waiting()

    @property
    def for_seconds(self) -> float:
        """The hold time."""
        return self._hold.for_seconds

    def held(self, alert_id: str, status: str, at: datetime) -> str | None:
        """The status to alert on for a reading of ``status`` at ``at``: ``degraded`` or
        ``unhealthy`` once held that long, None while it waits; other statuses as read."""
        level = _LEVEL.get(status)
        if level is None:
            if status == "healthy":
                self._hold.clear(alert_id)
            return status
        # A sender whose clock runs ahead would otherwise start the wait in the future: every
        # reading after it, dated right, would wait until then, and the condition never alert.
        held = self._hold.observe(alert_id, level, min(at.timestamp(), self._clock()))
        return _HELD[held - 1] if held else None

    def forget_older_than(self, now: float) -> int:
        """Forget conditions not read for ``forget_after`` seconds before ``now``."""
        return self._hold.forget_older_than(now)
