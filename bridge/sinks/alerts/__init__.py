"""The alert sink: alerts from the bus become signed, durable Alertmanager-format webhooks.

Pipeline: ``sources`` (messages → alert events) → ``transitions`` (the alert state machine, pure
functions over ``records``) → ``outbox`` (one SQLite file: ``alert_store``, the per-receiver
``queue``, ``dead_letters`` and ``retention`` over one ``database``) → ``payload`` (webhook
format v4) → ``delivery`` (per-URL senders with retries), beside ``escalation`` and
``alertmanager``; ``sink`` wires them into a bridge component (``wiring`` makes its parts,
``startup`` and ``shutdown`` start and stop it, ``intake`` is its bus handler, ``reports`` tells
each webhook attempt), with ``admin`` (its HTTP routes), ``states`` (where each change of
alert states is made), ``index`` (the open alerts kept in Redis for the next work-queue holder),
``housekeeping`` (escalation, expiry, renotification, pruning) and ``metrics`` (its
self-metrics).

Each name is imported from its module when first asked for (``bridge.exports``): ``exesdb-bridge
outbox`` opens the outbox without the sink, its senders (aiohttp) or the bus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.exports import lazy_exports

if TYPE_CHECKING:
    from bridge.sinks.alerts.delivery import (
        AttemptResult,
        DeliveryWorker,
        Outcome,
        RetryPolicy,
        WebhookSender,
        classify,
        parse_retry_after,
    )
    from bridge.sinks.alerts.outbox import Outbox
    from bridge.sinks.alerts.payload import alert_url, build_payloads, fingerprint, webhook_body
    from bridge.sinks.alerts.records import (
        AlertDetail,
        AlertRecord,
        AlertState,
        Delivery,
        DeliveryState,
        HistoryEntry,
        HistoryEvent,
        OutboxDepth,
    )
    from bridge.sinks.alerts.sink import AlertSink, alert_sink
    from bridge.sinks.alerts.sources import AlertEvent, alert_event, meets

__all__ = [
    "AlertDetail",
    "AlertEvent",
    "AlertRecord",
    "AlertSink",
    "AlertState",
    "AttemptResult",
    "Delivery",
    "DeliveryState",
    "DeliveryWorker",
    "HistoryEntry",
    "HistoryEvent",
    "Outbox",
    "OutboxDepth",
    "Outcome",
    "RetryPolicy",
    "WebhookSender",
    "alert_event",
    "alert_sink",
    "alert_url",
    "build_payloads",
    "classify",
    "fingerprint",
    "meets",
    "parse_retry_after",
    "webhook_body",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "delivery": (
            "AttemptResult",
            "DeliveryWorker",
            "Outcome",
            "RetryPolicy",
            "WebhookSender",
            "classify",
            "parse_retry_after",
        ),
        "outbox": ("Outbox",),
        "payload": ("alert_url", "build_payloads", "fingerprint", "webhook_body"),
        "records": (
            "AlertDetail",
            "AlertRecord",
            "AlertState",
            "Delivery",
            "DeliveryState",
            "HistoryEntry",
            "HistoryEvent",
            "OutboxDepth",
        ),
        "sink": ("AlertSink", "alert_sink"),
        "sources": ("AlertEvent", "alert_event", "meets"),
    },
)
