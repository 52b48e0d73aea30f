"""Handing the open alerts over to the next work-queue holder, and taking them over from the last.

On the Redis bus the alert states live with the work-queue lease holder: only it escalates and
auto-resolves. A graceful stop leaves its open alerts with the transport's ``HandOver`` for the
next holder, so that their resolve (or escalation) finds them there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Final

from bridge.bus import HandOver
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import AlertRecord, AlertState
from bridge.sinks.alerts.thread import DbThread

__all__ = ["NAME", "decode", "encode", "hand_over", "take_over"]

_logger = logging.getLogger(__name__)

NAME: Final = "alerts"
"""What the alert stage's records are left under."""


def encode(record: AlertRecord) -> bytes:
    """One record as the transport keeps it: JSON of its fields."""
    fields = dataclasses.asdict(record)
    fields["state"] = record.state.value
    return json.dumps(fields).encode()


def decode(raw: bytes) -> AlertRecord:
    """The record ``encode`` made; ValueError, TypeError or KeyError when it is malformed."""
    fields = json.loads(raw)
    fields["state"] = AlertState(fields["state"])
    return AlertRecord(**fields)


async def hand_over(to: HandOver, *, outbox: Outbox, db: DbThread, limit: int) -> int:
    """Leave the open alerts (at most ``limit`` of each open state) for the next holder;
    returns how many."""
    records = [
        record
        for state in (AlertState.FIRING, AlertState.ACKNOWLEDGED)
        for record in await db.call(outbox.alerts, state.value, limit)
    ]
    await to.hand_over(NAME, {record.alert_id: encode(record) for record in records})
    return len(records)


async def take_over(source: HandOver, *, outbox: Outbox, db: DbThread) -> int:
    """Import the open alerts the previous holder left; returns how many replaced ours.

    A malformed record is logged and skipped: the others still count.
    """
    records: list[AlertRecord] = []
    for raw in (await source.take_over(NAME)).values():
        try:
            records.append(decode(raw))
        except (ValueError, TypeError, KeyError):
            _logger.warning("alerts: a handed-over alert record is malformed; skipped")
    if not records:
        return 0
    taken = await db.call(outbox.import_alerts, records)
    _logger.info("alerts: took over %d of %d open alert(s)", taken, len(records))
    return taken
