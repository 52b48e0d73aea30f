"""A batch's alert changes the outbox could not store, kept and stored again until it can.

On the in-process bus nothing hands a failed batch back (on Redis the work queue does), and much
of what the sink takes is said once: the cluster monitor's node ``down``, an AlertAck, a
SystemAlert ingest took. So while the outbox refuses a batch (its disk full, an I/O error, the
file locked), the sink's handler keeps the batch's changes and stores them again, after 0.5 s
doubling up to 5 s, until the outbox takes them. The handler does not return meanwhile, so
what arrives after waits in the sink's own bounded queue (``EXESDB_ALERT_QUEUE_SIZE`` messages,
``EXESDB_BUS_QUEUE_BYTES`` bytes: beyond it the bus drops and counts, and this says so in the
log), in order behind the kept batch; the other subscribers' queues are their own and go on. A
changes' transaction that failed stored none of them, so storing them again stores nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from bridge.backoff import Backoff
from bridge.sinks.alerts.delivery import Sleep
from bridge.sinks.alerts.records import Acknowledgement, Applied
from bridge.sinks.alerts.sources import AlertEvent

__all__ = ["KeptChanges"]

_logger = logging.getLogger(__name__)

# One process trying its own file again: no herd to spread, so no jitter.
_AGAIN: Final = Backoff(base=0.5, cap=5.0, jitter=0.0)

Changes = Sequence[AlertEvent | Acknowledgement]
Apply = Callable[[Changes, float], Awaitable[Applied]]


class KeptChanges:
    """Stores a batch's changes with ``apply``, keeping them while the outbox refuses them
    (see the module docstring).

    ``dropped`` reads how many messages the sink's queue has dropped so far (full), so that
    drops while a batch is kept are logged, not only counted; ``on_error`` counts each failed
    try (``exesdb_sink_errors_total{subscriber="alerts"}``); ``on_fault`` is told True while a
    batch is kept, False once it is stored (or given up).
    """

    __slots__ = (
        "_apply",
        "_clock",
        "_dropped",
        "_fault",
        "_kept",
        "_on_error",
        "_on_fault",
        "_queue_size",
        "_sleep",
        "_wake",
    )

    def __init__(
        self,
        apply: Apply,
        *,
        clock: Callable[[], float],
        sleep: Sleep,
        dropped: Callable[[], int],
        queue_size: int,
        on_error: Callable[[], None],
        on_fault: Callable[[bool], None],
    ) -> None:
        self._apply = apply
        self._clock = clock
        self._sleep = sleep
        self._dropped = dropped
        self._queue_size = queue_size
        self._on_error = on_error
        self._on_fault = on_fault
        self._wake = asyncio.Event()  # never set: each try waits its whole delay
        self._fault: str | None = None
        self._kept = 0

    @property
    def unready(self) -> str | None:
        """Why the alerts are not ready while a batch is kept (None when none is)."""
        if self._fault is None:
            return None
        return (
            f"the alert outbox cannot store alerts ({self._fault}): a batch of {self._kept}"
            " message(s) is kept in memory until it can, what arrives meanwhile waits in the"
            " alert sink's queue"
        )

    async def store(self, changes: Changes, messages: int) -> Applied:
        """Store ``changes`` (made of ``messages`` bus messages), trying again until the outbox
        takes them; cancelled meanwhile (the sink stopping), they are lost, and said to be; an
        error other than the outbox refusing them for now ends the keeping and is raised."""
        failures = 0
        dropped_before = told_drops = self._dropped()
        try:
            while True:
                try:
                    applied = await self._apply(changes, self._clock())
                except sqlite3.OperationalError as exc:  # full, I/O error, locked, read-only
                    failures += 1
                    self._on_error()
                    told_drops = self._keep(exc, failures, messages, dropped_before, told_drops)
                    await self._sleep(_AGAIN.delay(failures), self._wake)
                    continue
                break
        except asyncio.CancelledError:
            if failures:
                _logger.error(
                    "alerts: stopped with a batch of %d message(s) the outbox could not store"
                    " (%s): lost",
                    messages,
                    self._fault,
                )
            raise
        finally:
            # However the kept batch ends (stored, lost at a stop, or given up on another
            # error, which the subscription logs and counts), it is kept no longer: readiness
            # and ingest's refusal would otherwise stay as they were for good.
            if failures:
                self._fault = None
                self._on_fault(False)
        if failures:
            dropped = self._dropped() - dropped_before
            _logger.log(
                logging.WARNING if dropped else logging.INFO,
                "alerts: the outbox stored the batch of %d message(s) kept since it could not,"
                " after %d failed attempt(s); %d message(s) arriving meanwhile were dropped"
                ' (counted in exesdb_bus_dropped_total{subscriber="alerts"})',
                messages,
                failures,
                dropped,
            )
        return applied

    def _keep(
        self, exc: Exception, failures: int, messages: int, dropped_before: int, told: int
    ) -> int:
        """Note a failed try: logged (with its traceback) at the first, or when the fault
        changes, and drops since the last look told; the drops counted so far."""
        fault = f"{type(exc).__name__}: {exc}"
        if failures == 1 or fault != self._fault:
            _logger.error(
                "alerts: the outbox cannot store a batch of %d message(s) (%s): kept in memory"
                " and stored again once it can",
                messages,
                fault,
                exc_info=exc,
            )
        self._fault, self._kept = fault, messages
        self._on_fault(True)
        dropped = self._dropped()
        if dropped > told:
            _logger.warning(
                "alerts: the alert sink's queue is full (EXESDB_ALERT_QUEUE_SIZE=%d, or its"
                " bytes: EXESDB_BUS_QUEUE_BYTES) while the outbox cannot store: %d message(s)"
                " dropped so far, counted in"
                ' exesdb_bus_dropped_total{subscriber="alerts"}',
                self._queue_size,
                dropped - dropped_before,
            )
        return dropped
