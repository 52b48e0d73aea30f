"""The alert sink: alerts from the bus become signed, durable Alertmanager-format webhooks.

Pipeline: ``sources`` (messages → alert events) → ``outbox`` (alert states and deliveries in
SQLite) → ``payload`` (webhook format v4) → ``delivery`` (per-URL senders with retries), beside
``escalation`` and ``alertmanager``; ``sink`` wires them into a bridge component.
"""

from __future__ import annotations

from bridge.sinks.alerts.delivery import (
    AttemptResult,
    DeliveryWorker,
    Outcome,
    RetryPolicy,
    WebhookSender,
    classify,
    parse_retry_after,
)
from bridge.sinks.alerts.outbox import (
    AlertRecord,
    AlertState,
    Delivery,
    DeliveryState,
    Outbox,
    OutboxDepth,
)
from bridge.sinks.alerts.payload import build_payloads, fingerprint, webhook_body
from bridge.sinks.alerts.sink import AlertSink, alert_sink
from bridge.sinks.alerts.sources import AlertEvent, alert_event, meets

__all__ = [
    "AlertEvent",
    "AlertRecord",
    "AlertSink",
    "AlertState",
    "AttemptResult",
    "Delivery",
    "DeliveryState",
    "DeliveryWorker",
    "Outbox",
    "OutboxDepth",
    "Outcome",
    "RetryPolicy",
    "WebhookSender",
    "alert_event",
    "alert_sink",
    "build_payloads",
    "classify",
    "fingerprint",
    "meets",
    "parse_retry_after",
    "webhook_body",
]
