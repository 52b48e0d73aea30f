"""What each webhook attempt tells: the self-metrics, the operation record, a NotificationStatus.

A delivery worker reports each attempt once its outcome is stored: it is counted
(``exesdb_webhook_deliveries_total`` and the attempt's seconds), recorded as a
``webhook.delivery`` operation when the bridge records them, and told on the bus as one
``NotificationStatus`` per alert it carried; the housekeeping loop is woken to refresh the depth
gauges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from bridge.messages import Message, NotificationStatus
from bridge.operations import OperationRecorder
from bridge.receiver_keys import receiver_label
from bridge.redaction import safe_url
from bridge.sinks.alerts.delivery import AttemptResult
from bridge.sinks.alerts.metrics import AlertMetrics, DeliveryResult
from bridge.sinks.alerts.records import Delivery, DeliveryState

__all__ = ["AttemptReports", "Publish"]

Publish = Callable[[str, Message], Any]

# The NotificationStatus ``status`` of each attempt result.
_NOTIFICATION_STATUS: Final = {
    DeliveryResult.DELIVERED: "delivered",
    DeliveryResult.REJECTED: "bounced",
    DeliveryResult.RETRY: "failed",
    DeliveryResult.EXPIRED: "failed",
    DeliveryResult.STALE: "failed",
}
# What becomes of a delivery after a failed attempt, as its NotificationStatus says.
_THEN: Final = {
    DeliveryState.DEAD: "dead-lettered",
    DeliveryState.STALE: "left out as stale while in flight, not retried",
}


class AttemptReports:
    """Reports webhook attempts (``report``, a ``DeliveryWorker``'s ``report``): counted in
    ``metrics``, recorded by ``recorder`` when there is one, published with ``publish`` and
    then ``changed`` called (the depth gauges)."""

    __slots__ = ("_changed", "_metrics", "_publish", "_recorder")

    def __init__(
        self,
        metrics: AlertMetrics,
        *,
        recorder: OperationRecorder | None,
        publish: Publish,
        changed: Callable[[], None],
    ) -> None:
        self._metrics = metrics
        self._recorder = recorder
        self._publish = publish
        self._changed = changed

    def report(
        self, delivery: Delivery, result: AttemptResult, state: DeliveryState, attempt: int
    ) -> None:
        """Tell what attempt number ``attempt`` of ``delivery`` came to (``result``), the
        delivery now in ``state``."""
        outcome = DeliveryResult.of(result, state)
        self._metrics.attempted(outcome, result.seconds)
        if self._recorder is not None:
            self._recorder.record("webhook.delivery", result.seconds, result.ok)
        reason = None
        if not result.ok:
            then = _THEN.get(state, "will retry")
            reason = f"{result.error}; {then}"
        # As before receiver keys: the origin and a path marker (url_file receivers: the key).
        key = delivery.url
        recipient = safe_url(key) if "://" in key else receiver_label(key)
        for alert_id in delivery.alert_ids:
            self._publish(
                "notification_status",
                NotificationStatus(
                    alert_id=alert_id,
                    delivery_method="webhook",
                    recipient=recipient,
                    status=_NOTIFICATION_STATUS[outcome],
                    error_reason=reason,
                    attempts=attempt,
                ),
            )
        self._changed()
