"""What of a due delivery still goes: notifications made stale since it was made are withheld.

A delivery worker asks ``DeliveryVetting`` before each attempt. On Redis, while this replica
does not hold the work-queue lease, the alerts whose newer notifications are another replica's
(``AlertIndex.stale``) are left out; to a receiver with ``send_resolved: false``, so are the
alerts that resolved since the delivery was made. What is left out goes into a delivery of its
own in state ``stale`` (``DeliveryQueue.withhold``), counted in ``exesdb_webhook_stale_total``
and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Final

from bridge.bus import WorkQueueLease
from bridge.sinks.alerts.alert_store import AlertStore
from bridge.sinks.alerts.index import STALE_REASON
from bridge.sinks.alerts.queue import DeliveryQueue
from bridge.sinks.alerts.records import AlertState, Delivery
from bridge.sinks.alerts.states import AlertStates
from bridge.sinks.alerts.thread import DbThread

__all__ = ["DeliveryVetting"]

_logger = logging.getLogger(__name__)

# How long a delivery due at start waits for Redis's first answer before it goes unchecked.
_FIRST_ANSWER_SECONDS: Final = 5.0
# The last error of a delivery made of notifications withheld from a receiver that takes no
# resolves.
_RESOLVED_REASON: Final = (
    "stale: these alerts resolved before this was delivered, and the receiver has"
    " send_resolved: false (it would never hear of the resolve)"
)


class DeliveryVetting:
    """The alert sink's check of a delivery before each attempt (``vet``, and
    ``without_resolved`` for a receiver with ``send_resolved: false``).

    ``lease`` is None on the in-process bus (every delivery goes as made); ``withheld`` counts
    the notifications left out, ``changed`` is told when some were (the depth gauges).
    """

    def __init__(
        self,
        *,
        states: AlertStates,
        alerts: AlertStore,
        queue: DeliveryQueue,
        db: DbThread,
        lease: WorkQueueLease | None,
        withheld: Callable[[int], None],
        changed: Callable[[], None],
        clock: Callable[[], float],
    ) -> None:
        self._states = states
        self._alerts = alerts
        self._queue = queue
        self._db = db
        self._lease = lease
        self._withheld = withheld
        self._changed = changed
        self._clock = clock

    async def vet(self, delivery: Delivery) -> Delivery | None:
        """``delivery`` without the alerts whose newer notifications are another replica's
        (``AlertIndex.stale``), asked of Redis while this replica does not hold the work-queue
        lease: while it does, none is (it left them out as it took the lease up, and no other
        replica changes alerts meanwhile). While Redis cannot tell (unreachable, NOPERM), the
        delivery goes as made: held back, it would wait as long as the outage lasts; just
        started, it waits up to ``_FIRST_ANSWER_SECONDS`` for Redis's first answer. None when
        none of it goes now."""
        lease = self._lease
        if lease is None or lease.leading:
            return delivery
        if not lease.reachable and (
            # Just started, Redis may not have answered yet: a moment's wait, rather than send
            # unchecked what another replica may have resolved meanwhile.
            not await lease.first_answer(_FIRST_ANSWER_SECONDS) or not lease.reachable
        ):
            return delivery  # not worth a read that would only time out first
        stale = await self._states.stale(delivery.alert_ids)
        if not stale:  # none, or Redis cannot tell now (None)
            # As it stands once checked: the check's catch-up may have left some of it out
            # (a change whose note another replica took over, and notifies).
            found = await self._db.call(self._queue.deliveries, "pending", ids=[delivery.id])
            return found[0] if found else None
        return await self._withhold(
            delivery,
            stale,
            STALE_REASON,
            logging.WARNING,
            "another replica notified newer states of those alerts while this one did not hold"
            " the lease (`exesdb-bridge outbox list --state stale` lists them)",
        )

    async def without_resolved(self, delivery: Delivery) -> Delivery | None:
        """``delivery``, to a receiver with ``send_resolved: false``, without the alerts that
        resolved since it was made (the receiver down meanwhile), then as ``vet`` leaves it;
        None when none of it goes. Told they fire, the receiver would never hear of the resolve
        and keep them firing; Alertmanager's next flush no longer holds them."""
        resolved = await self._db.call(_resolved_among, self._alerts, delivery.alert_ids)
        if not resolved:
            return await self.vet(delivery)
        left = await self._withhold(
            delivery,
            resolved,
            _RESOLVED_REASON,
            logging.INFO,
            "their alerts resolved before it was delivered, and the receiver has"
            " send_resolved: false",
        )
        return await self.vet(left) if left is not None else None

    async def _withhold(
        self, delivery: Delivery, alert_ids: Collection[str], reason: str, level: int, why: str
    ) -> Delivery | None:
        """``delivery`` without the notifications of ``alert_ids``, which go into a ``stale``
        delivery of their own whose last error is ``reason`` (``DeliveryQueue.withhold``);
        counted, logged at ``level`` saying ``why``, and ``changed`` told, when some were. None
        when none of it is left."""
        left, withheld = await self._db.call(
            self._queue.withhold, delivery.id, alert_ids, self._clock(), reason
        )
        if withheld:  # none when left out meanwhile (and counted then), or no longer pending
            self._withheld(withheld)
            _logger.log(
                level,
                "alerts: left %d notification(s) out of delivery %s: %s",
                withheld,
                delivery.id,
                why,
            )
            self._changed()
        return left


def _resolved_among(store: AlertStore, alert_ids: Sequence[str]) -> list[str]:
    """Those of ``alert_ids`` whose alert is resolved now (one pruned since is not judged)."""
    records = (store.get(alert_id) for alert_id in alert_ids)
    return [r.alert_id for r in records if r is not None and r.state is AlertState.RESOLVED]
