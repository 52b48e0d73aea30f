"""Escalation: a ``requires_ack`` alert nobody acknowledged moves level1 → level2 → level3.

Each step waits ``EXESDB_ESCALATION_AFTER_MS`` from the previous one, publishes AlertEscalation
and queues a new notification whose labels carry ``escalation_level``. Acknowledging (or the
condition resolving) stops it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.messages import AlertEscalation
from bridge.sinks.alerts.records import Escalated

__all__ = ["Escalator"]


class Escalator:
    """Finds the alerts due for escalation and announces each step."""

    def __init__(
        self,
        *,
        escalate: Callable[[float, float], Awaitable[list[Escalated]]],
        after_seconds: float,
        publish: Callable[[str, AlertEscalation], Any],
        notify: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``escalate(now, after_seconds)`` moves the alerts due up one level (the outbox's
        ``escalate_due``, or through the open-alert index on Redis)."""
        self.after_seconds = after_seconds
        self._escalate = escalate
        self._publish = publish
        self._notify = notify
        self._clock = clock

    async def tick(self) -> list[Escalated]:
        """Escalate what is due now; returns the steps taken."""
        steps = await self._escalate(self._clock(), self.after_seconds)
        self.announce(steps)
        return steps

    def announce(self, steps: list[Escalated]) -> None:
        """Publish AlertEscalation for each step taken and wake the deliveries (also for the
        steps a catch-up stored on Redis, whose announcement a crash cut off)."""
        for step in steps:
            self._publish(
                "alert_escalated",
                AlertEscalation(
                    alert_id=step.alert.alert_id,
                    from_level=step.from_level,
                    to_level=step.to_level,
                    escalation_reason=(
                        f"not acknowledged within {self.after_seconds:g}s at {step.from_level}"
                    ),
                ),
            )
        if steps:
            self._notify()
