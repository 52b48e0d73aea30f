"""An acknowledgement's AlertAck on the bus: stored durably where only it tells the lease holder.

On Redis a replica without the work-queue lease stores no acknowledgement itself, nor does the
holder whose change Redis did not take: the AlertAck it publishes is then all that tells the
holder, so it is answered only once that AlertAck is safe from a crash of this replica
(``Bus.publish_durably``: in the spool on disk, which a restart sends again), as ingest answers
202. Anywhere else (the in-process bus, the holder) the ack is stored here first, and the
AlertAck goes as ``Bus.publish`` sends any message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from bridge.bus import Bus, Durability
from bridge.errors import TransportError
from bridge.messages import AlertAck
from bridge.sinks.alerts.records import Acknowledgement
from bridge.sinks.alerts.states import Acknowledged

__all__ = ["AckAnnouncer"]

# Why an acknowledgement whose AlertAck the bus refused is stored nowhere (TransportError).
_NOT_HOLDING: Final = "this replica does not hold the work-queue lease, so stores none of it"
_HOLDER_FAILED: Final = (
    "Redis did not take its change (should it have, unanswered, a retry finds it made)"
)
# How long an acknowledgement stored nowhere here waits for its AlertAck to be stored (on
# Redis, the spool's fsync), as ingest waits for a batch.
_STORE_SECONDS: Final = 10.0
_SLOW: Final = f"not stored within {_STORE_SECONDS:g} s"
# What fills up while Redis does not take what ``publish_durably`` stores.
_SPOOL_FILLS: Final = (
    "the spool, EXESDB_REDIS_SPOOL_BYTES, fills while Redis is unreachable or stalled"
)


class AckAnnouncer:
    """Publishes the AlertAck of each acknowledgement made through the admin API."""

    __slots__ = ("_bus", "_holding")

    def __init__(self, bus: Bus, holding: Callable[[], bool]) -> None:
        """``holding()``: whether this replica holds the work-queue lease (always, in
        process)."""
        self._bus = bus
        self._holding = holding

    async def announce(self, ack: Acknowledgement, made: Acknowledged) -> None:
        """Publish ``ack``'s AlertAck (``made``: what ``AlertStates.acknowledge`` made of it,
        an alert to announce); raises ``TransportError`` when it was stored nowhere here (at a
        replica without the lease, or the holder whose change Redis did not take) and the bus
        could not store its AlertAck durably (the spool full, or its disk failing)."""
        holding = self._holding()
        # For the episode acknowledged: the one its maker saw, else where this replica's alerts
        # are current the one it stored the ack on. Looping back (the bus, the work queue)
        # after the alert fired anew, the AlertAck changes nothing.
        started = ack.starts_at
        if started is None and holding and made.record is not None:
            started = made.record.started
        announced = AlertAck(
            alert_id=ack.alert_id,
            ack_by=ack.ack_by,
            ack_note=ack.ack_note,
            resolution=ack.resolution,
            alert_starts_at=started,
        )
        # Published whatever the integration switch says: switched off, an ack answered as
        # made at a replica without the lease would be lost.
        if made.stored:
            self._bus.publish("alert_acknowledged", announced)
            return
        # Answered as made while it waited in memory (Redis unreachable), it would be lost to a
        # crash of this replica, and the alert go on firing and escalating.
        published, stored = await self._bus.publish_durably(
            "alert_acknowledged", announced, _STORE_SECONDS
        )
        if stored is not Durability.COMMITTED:
            refused = published.reason or _SLOW
            fills = _SPOOL_FILLS if stored is Durability.FULL else None
            raise TransportError(
                f"{_HOLDER_FAILED if holding else _NOT_HOLDING}, and the bus refused the"
                f" AlertAck that tells the lease holder: {refused}"
                + (f"; {fills}" if fills else "")
            )
