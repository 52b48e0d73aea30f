"""The alert stage's bus handler: each batch's alert changes stored before it returns.

``take`` is the subscription's handler: it waits until the sink is ready, works out what a batch
changes (``sources.batch_changes``) and stores it (``states``) dated as ``batch_dates`` says. On
the in-process bus a batch the outbox refuses is kept and stored again (``kept``); on Redis the
work queue hands its frames back. What the caps refused or forgot is counted and told in the log
(``refusals``). HTTP ingest refuses a batch holding alerts (503 not_committed) while a batch is
kept or the outbox file is gone (``displaced``): taken, it would only wait in memory, lost to a
crash or to the next start, where the sender keeps it. A batch the outbox committed to a file
gone before a check found it (``OutboxDisplaced``) fails, and ingest is refused from then on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence, Set
from typing import Final

from bridge.bus import BatchSubscription, Envelope
from bridge.settings import Settings
from bridge.sinks.alerts.batch_dates import BatchDates
from bridge.sinks.alerts.database import OutboxDisplaced
from bridge.sinks.alerts.delivery import Sleep
from bridge.sinks.alerts.displaced import DisplacedOutbox
from bridge.sinks.alerts.kept import KeptChanges
from bridge.sinks.alerts.metrics import AlertMetrics
from bridge.sinks.alerts.pending import PendingConditions
from bridge.sinks.alerts.records import Acknowledgement, Applied
from bridge.sinks.alerts.refusals import RefusalLog
from bridge.sinks.alerts.sources import AlertEvent, batch_changes
from bridge.sinks.alerts.states import AlertStates

__all__ = ["BatchIntake"]

_logger = logging.getLogger(__name__)

# Ingest's answer to a batch holding alerts while the outbox cannot store one (KeptChanges).
_OUTBOX_REFUSING: Final = (
    "the alert outbox cannot store alerts now (its disk full, or failing): the batch is not"
    " taken; send it again"
)


class BatchIntake:
    """Takes ``subscription``'s batches in (see the module docstring) once ``ready`` is set.

    ``keep``: keep a batch the outbox refuses and store it again (the in-process bus), rather
    than let the error reach the bus (Redis). ``states`` and ``active_ids`` (the ids that may
    be open, ``AlertStore.maybe_active_ids``) are asked for at each batch: they exist once the
    sink started. ``outbox_displaced`` asks whether the outbox file is gone (``displaced``,
    checked by housekeeping); ``changed`` is called when a batch changed an alert; ``on_error``
    counts each failed try to store a kept batch.
    """

    __slots__ = (
        "_active_ids",
        "_changed",
        "_clock",
        "_dates",
        "_keep",
        "_kept_fault",
        "_links",
        "_metrics",
        "_min_severity",
        "_pending",
        "_ready",
        "_refusals",
        "_states",
        "_subscription",
        "displaced",
        "kept",
    )

    def __init__(
        self,
        subscription: BatchSubscription,
        settings: Settings,
        *,
        keep: bool,
        ready: asyncio.Event,
        dates: BatchDates,
        pending: PendingConditions,
        states: Callable[[], AlertStates],
        active_ids: Callable[[], Set[str]],
        metrics: AlertMetrics,
        refusals: RefusalLog,
        changed: Callable[[], None],
        outbox_displaced: Callable[[], Awaitable[str | None]],
        on_error: Callable[[], None],
        clock: Callable[[], float],
        sleep: Sleep,
    ) -> None:
        self._subscription = subscription
        self._keep = keep
        self._ready = ready
        self._dates = dates
        self._pending = pending
        self._states = states
        self._active_ids = active_ids
        self._metrics = metrics
        self._refusals = refusals
        self._changed = changed
        self._clock = clock
        # Origins whose links in a SystemAlert's metadata are shown whole (sources.details_of).
        self._links = frozenset(settings.alert_link_origins)
        self._min_severity = settings.webhook_min_severity
        # On the in-process bus a batch the outbox refuses is kept and stored again (on Redis
        # the work queue hands its frames back).
        self.kept = KeptChanges(
            self.apply,
            clock=clock,
            sleep=sleep,
            dropped=lambda: subscription.inbox.drops,
            queue_size=settings.alert_queue_size,
            on_error=on_error,
            on_fault=self._refuse_ingest,
        )
        self._kept_fault = False
        # An outbox file deleted or replaced under the bridge (its folder removed): checked
        # before each housekeeping pass.
        self.displaced = DisplacedOutbox(outbox_displaced, self._refusing)

    async def take(self, envelopes: Sequence[Envelope]) -> None:
        """Store what ``envelopes`` (a batch the subscription handed over) change."""
        subscription = self._subscription
        await self._dates.handle(
            subscription.mark, subscription.depth, lambda: self._take(envelopes)
        )

    async def apply(self, changes: Sequence[AlertEvent | Acknowledgement], now: float) -> Applied:
        """Store ``changes`` at ``now``, dated as the batch's dates say."""
        dates = await self._dates.dates()
        return await self._states().apply(changes, now, dates.latest, dates.arrived_after)

    async def _take(self, envelopes: Sequence[Envelope]) -> None:
        await self._ready.wait()  # messages may arrive between bus start and ours
        changes = batch_changes(
            envelopes,
            pending=self._pending,
            may_be_active=self._active_ids(),
            links=self._links,
            min_severity=self._min_severity,
        )
        if not changes:
            return
        try:
            if self._keep:
                applied = await self.kept.store(changes, len(envelopes))
            else:
                applied = await self.apply(changes, self._clock())
        except OutboxDisplaced as exc:
            # Committed to a file gone (its folder removed since the last housekeeping pass):
            # refused from now on, as the pass would have found, and this batch failed, not
            # kept (stored again, it would go to that file again): ingest answers 503, the
            # work queue hands its entries back.
            self.displaced.found(str(exc))
            raise
        if applied.refused:
            self._metrics.refused(applied.refused)
            self._refusals.refused(applied.refused)
        if applied.forgotten:
            self._metrics.resolves_forgotten(applied.forgotten)
            self._refusals.forgotten(applied.forgotten)
        if applied.stale:
            self._metrics.stale_events(applied.stale)
            _logger.debug(
                "alerts: %d event(s) sent before the event that last changed their alert left"
                " out as stale",
                applied.stale,
            )
        if applied.changed:
            self._changed()

    def _refuse_ingest(self, refusing: bool) -> None:
        self._kept_fault = refusing
        self._refusing()

    def _refusing(self) -> None:
        # While a batch is kept, ingest answers 503 not_committed to a batch holding alerts:
        # taken, it would only wait in memory, lost to a crash, where the sender keeps it. So
        # while the outbox file is gone: taken, it would be lost at the next start.
        kept = _OUTBOX_REFUSING if self._kept_fault else None
        self._subscription.refusing = self.displaced.problem or kept
