"""Where the alert sink changes alert states: the outbox, or on Redis the open-alert index too.

On the in-process bus each change (a batch's events and acknowledgements, the escalations and
expiries housekeeping finds due) is one outbox transaction. On Redis (an ``AlertIndex`` given)
each is planned on the outbox, made in the open-alert index first and then stored
(``bridge.sinks.alerts.index``), so that the next work-queue holder takes the open alerts up.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge.errors import TransportError
from bridge.sinks.alerts.alert_store import AlertStore, escalations, resolutions
from bridge.sinks.alerts.index import AlertIndex
from bridge.sinks.alerts.records import Acknowledgement, AlertRecord, Applied, Escalated
from bridge.sinks.alerts.sources import AlertEvent
from bridge.sinks.alerts.thread import DbThread
from bridge.sinks.alerts.transitions import Effect, Plan, on_ack

__all__ = ["Acknowledged", "AlertStates"]

_logger = logging.getLogger(__name__)


class AlertStates:
    """The alert sink's changes of alert states, each made where it belongs (see the module
    docstring), and the wait before stale health alerts expire.

    ``stale_after`` is how long a health condition alert no reading keeps up lasts (its series'
    life on ``/metrics``); it is counted from the sink's start (or its taking the work queue)
    too, plus the hold (``hold_seconds``): the readings come anew, and keep an alert up only
    once held anew (pending). ``remember_for``: how long a resolve of an unknown alert is
    remembered (``AlertStore.plan``; the replay window) on the in-process bus; on Redis it is
    kept with the index's dates instead, as long as those (``AlertIndex.change``).
    """

    def __init__(
        self,
        alerts: AlertStore,
        *,
        db: DbThread,
        index: AlertIndex | None,
        max_open: int,
        resolve_after: float,
        stale_after: float,
        hold_seconds: float,
        remember_for: float,
        holding: Callable[[], bool],
        monotonic: Callable[[], float],
    ) -> None:
        self._alerts = alerts
        self._db = db
        self._index = index
        self._max_open = max_open
        self._resolve_after = resolve_after
        self._stale_after = stale_after
        self._hold_seconds = hold_seconds
        self._remember_for = remember_for
        self._holding = holding
        self._monotonic = monotonic
        self._started_at: float | None = None

    async def take_up(self) -> bool:
        """On taking the work-queue lease: the open alerts kept in Redis become ours; True when
        there were any. The stale wait starts afresh."""
        self._started_at = None  # the holds wait afresh here: so does the stale wait (expire)
        return self._index is not None and bool(await self._index.take_up())

    async def catch_up(self) -> None:
        """After a restart on Redis: store what Redis took before a crash and the outbox did not
        (until done; Redis unreachable, at the next call)."""
        if self._index is not None and not self._index.caught_up:
            with contextlib.suppress(TransportError):
                await self._index.catch_up()

    async def stale(self, alert_ids: Sequence[str]) -> set[str] | None:
        """Those of ``alert_ids`` whose newest notification is another replica's (on Redis,
        ``AlertIndex.stale``; never on the in-process bus); None when it cannot be told now."""
        if self._index is None:
            return set()
        return await self._index.stale(alert_ids)

    async def apply(
        self,
        changes: Sequence[AlertEvent | Acknowledgement],
        now: float,
        latest: float | None = None,
        arrived_after: float | None = None,
    ) -> Applied:
        """Apply a batch's events and acknowledgements (new alerts beyond ``max_open`` refused),
        their dates capped at ``latest``, taken in after ``arrived_after`` (``AlertStore.apply``;
        the in-process bus's alone: on Redis the index keeps the resolves)."""
        if self._index is None:
            return await self._db.call(
                self._alerts.apply,
                changes,
                now,
                max_open=self._max_open,
                latest=latest,
                remember_for=self._remember_for,
                arrived_after=arrived_after,
            )
        return await self._index.change(
            self._alerts.plan,
            changes,
            now,
            max_open=self._max_open,
            latest=latest,
            dates=self._index.dates,
            remember_for=self._remember_for,
        )

    async def escalate(self, now: float, after_seconds: float) -> list[Escalated]:
        """Move the alerts due up one level (``Escalator``'s ``escalate``)."""
        if self._index is None:
            return await self._db.call(self._alerts.escalate_due, now, after_seconds)
        planned: list[Plan] = []

        def plan(now: float, after_seconds: float) -> Plan:
            planned.append(self._alerts.plan_escalations(now, after_seconds))
            return planned[-1]

        applied = await self._index.change(plan, now, after_seconds)
        return escalations(planned[-1], applied) if planned else []

    async def expire(self, now: float) -> list[AlertRecord]:
        """Resolve the alerts nothing kept up within ``EXESDB_ALERT_RESOLVE_TIMEOUT_MS``, and
        the stale health alerts once the sink has run long enough; those resolved."""
        # How long this sink has run (held the work queue) is measured on the monotonic clock:
        # a wall clock set back would hold the stale wait back by as much.
        up = self._monotonic()
        if self._started_at is None:
            self._started_at = up
        up_long_enough = up - self._started_at >= self._stale_after + self._hold_seconds
        stale = self._stale_after if up_long_enough else None
        if self._index is None:
            return await self._db.call(
                self._alerts.resolve_expired, now, self._resolve_after, stale
            )
        applied = await self._index.change(
            self._alerts.plan_expiries, now, self._resolve_after, stale
        )
        return resolutions(applied)

    async def acknowledge(self, ack: Acknowledgement, now: float) -> Acknowledged:
        """Store ``ack`` (on Redis only while ``holding()``: this replica holds the work
        queue); the alert as it stands after it, whether to announce it, whether it was stored.

        On the in-process bus an alert acknowledged already, or resolved, is returned as it is,
        not to be announced, and so, on Redis too, is one an ack names another episode of
        (``starts_at``) at the holder. On Redis any other replica returns the alert as the
        holder will make it from the AlertAck, to be announced whatever its own copy says (that
        may be stale), and not stored: so is one at the holder that Redis did not take.
        """
        if self._index is None:
            # One call on the database thread, read and store: another acknowledgement of the
            # alert between the two would have both announced.
            return await self._db.call(self._acknowledged, ack, now)
        current = await self._db.call(self._alerts.get, ack.alert_id)
        holding = self._holding()
        if holding and current is not None and ack.starts_at not in (None, current.started):
            # For an episode that ended: the holder's copy is current, so it changes nothing
            # and is not announced (the admin API answers 409 another_episode).
            return Acknowledged(current, announce=False, stored=True)
        record = on_ack(current, ack, now).record
        stored = False
        if record is not None and holding:
            try:
                await self._index.change(self._alerts.plan, [ack], now)
                stored = True
            except TransportError as exc:
                _logger.warning("alerts: the acknowledgement waits for the holder: %s", exc)
        return Acknowledged(record, announce=record is not None, stored=stored)

    def _acknowledged(self, ack: Acknowledgement, now: float) -> Acknowledged:
        """``acknowledge`` on the in-process bus, on the database thread."""
        current = self._alerts.get(ack.alert_id)
        if current is None or on_ack(current, ack, now).effect is Effect.NONE:
            # Unknown, or acknowledged or resolved already: a retry of an ack committed to a file
            # since gone finds it done there, so answered for only while the file is at its path.
            self._alerts.held_still()
            return Acknowledged(current, announce=False, stored=True)
        record = self._alerts.acknowledge(
            ack.alert_id, ack.ack_by, now, ack_note=ack.ack_note, resolution=ack.resolution
        )
        return Acknowledged(record, announce=True, stored=True)


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """What ``AlertStates.acknowledge`` made of an acknowledgement: the alert as it stands
    after it (None when unknown), whether to announce it (publish its AlertAck), and whether
    this replica stored it (on Redis, one it did not store reaches the work-queue holder only
    through that AlertAck)."""

    record: AlertRecord | None
    announce: bool
    stored: bool
