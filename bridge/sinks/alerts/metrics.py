"""The alert stage's self-metrics: delivery attempts, outbox depth, open alerts, refusals, posts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.messages import SEVERITIES
from bridge.sinks.alerts.alertmanager import PostResult
from bridge.sinks.alerts.delivery import AttemptResult, Outcome
from bridge.sinks.alerts.records import DeliveryState, OutboxDepth

__all__ = ["AlertMetrics", "DeliveryResult"]

# The dead-letters gauge's ``state``: whether a dead letter needs a person or is superseded
# (DeadLetters.superseded: its receiver heard of each of its alerts since, from this outbox or
# another replica's, or nothing is to follow those resolved since; retry leaves it).
_NEEDS_ACTION: Final = "needs_action"
_SUPERSEDED: Final = "superseded"
# The renotified counter's ``reason``: why alerts were queued for a receiver again.
_DEAD_LETTERED: Final = "dead_lettered"
_CHANGED_IN_FLIGHT: Final = "changed_in_flight"
_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class DeliveryResult(StrEnum):
    """What one delivery attempt came to: the ``result`` label of the deliveries counter."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"  # a final answer (4xx...): dead-lettered
    EXPIRED = "expired"  # still failing at the deadline: dead-lettered
    STALE = "stale"  # failed, its delivery left out as stale while in flight: not retried

    @classmethod
    def of(cls, result: AttemptResult, state: DeliveryState) -> DeliveryResult:
        """The result of an attempt that left its delivery in ``state``."""
        if result.outcome is Outcome.DELIVERED:
            return cls.DELIVERED
        if state is DeliveryState.STALE:
            return cls.STALE
        if result.outcome is Outcome.REJECTED:
            return cls.REJECTED
        return cls.EXPIRED if state is DeliveryState.DEAD else cls.RETRY


class AlertMetrics:
    """The alert stage's families, registered in ``registry``.

    ``depth`` and ``active`` are refreshed by the sink's housekeeping rather than read at
    scrape time, so that a scrape never waits on a SQLite fsync. ``active`` is shown only while
    ``holds_work_queue()``: on Redis the lease holder's outbox alone follows the cluster's open
    alerts (another replica's keeps what it had when it last held the lease), so every other
    replica shows 0 and the series sums over replicas.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        waiting: Callable[[], int] = lambda: 0,
        holds_work_queue: Callable[[], bool],
    ) -> None:
        self.depth = OutboxDepth(0, 0, 0)
        self.active: dict[str, int] = {}
        self.active_mark = 0  # AlertStore.count_mark when ``active`` was counted
        self._deliveries = Counter(
            "exesdb_webhook_deliveries",
            "Webhook delivery attempts, by result: delivered, retry, rejected (a final 4xx, "
            "dead-lettered), expired (deadline passed, dead-lettered) or stale (failed, its "
            "delivery left out as stale while in flight, not retried).",
            ["result"],
            registry=registry,
        )
        for result in DeliveryResult:
            self._deliveries.labels(result.value)
        self._latency = Histogram(
            "exesdb_webhook_delivery_seconds",
            "Duration of one webhook delivery attempt, whatever its outcome.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        Gauge(
            "exesdb_webhook_outbox_depth",
            "Alert notifications not yet delivered (in a grouping window or a pending delivery).",
            registry=registry,
        ).set_function(lambda: float(self.depth.queued + self.depth.pending))
        dead_letters = Gauge(
            "exesdb_webhook_dead_letters",
            "Dead-lettered webhook deliveries, by state: needs_action, or superseded when the "
            "receiver took a later delivery of each of their alerts, or another replica told it "
            "newer, or nothing is to follow those resolved since.",
            ["state"],
            registry=registry,
        )
        dead_letters.labels(_NEEDS_ACTION).set_function(
            lambda: float(self.depth.dead - self.depth.superseded)
        )
        dead_letters.labels(_SUPERSEDED).set_function(lambda: float(self.depth.superseded))
        self._renotified = Counter(
            "exesdb_webhook_renotified",
            "Alerts queued again for a receiver, by reason: dead_lettered (their latest "
            "notification to it was dead-lettered, open ones or resolved ones whose resolve it "
            "was) or changed_in_flight (left out of an attempt in flight to it, another replica "
            "changed them since).",
            ["reason"],
            registry=registry,
        )
        for reason in (_DEAD_LETTERED, _CHANGED_IN_FLIGHT):
            self._renotified.labels(reason)
        self._stale = Counter(
            "exesdb_webhook_stale",
            "Alert notifications left out of a delivery, never to be sent, because another "
            "replica notified their alert since or it resolved before they reached a receiver "
            "with send_resolved false.",
            registry=registry,
        )
        self._refused = Counter(
            "exesdb_alerts_refused",
            "New alerts refused because the cap on open alerts was reached.",
            registry=registry,
        )
        self._stale_events = Counter(
            "exesdb_alerts_stale_events",
            "Alert events left out because their message was sent before the event that last "
            "changed their alert (delivered late or again).",
            registry=registry,
        )
        self._forgotten = Counter(
            "exesdb_alerts_resolves_forgotten",
            "Resolves of alerts unknown to the bridge forgotten before their time because the "
            "10 000 remembered were newer.",
            registry=registry,
        )
        registry.register(_ActiveAlerts(self, holds_work_queue))
        Gauge(
            "exesdb_alerts_pending",
            "Health conditions degraded or unhealthy for less than EXESDB_ALERT_FOR_MS, not yet "
            "alerted on.",
            registry=registry,
        ).set_function(lambda: float(waiting()))
        self._posts = Counter(
            "exesdb_alertmanager_posts",
            "Posts of the current alerts to Alertmanager, by result (ok, failed).",
            ["result"],
            registry=registry,
        )  # its series made by posting(), when there is a poster

    def attempted(self, result: DeliveryResult, seconds: float) -> None:
        """Count one delivery attempt and its duration."""
        self._deliveries.labels(result.value).inc()
        self._latency.observe(seconds)

    def renotified(self, count: int) -> None:
        """Count open alerts queued again after their notification was dead-lettered."""
        self._renotified.labels(_DEAD_LETTERED).inc(count)

    def told_again(self, count: int) -> None:
        """Count alerts queued again after another replica changed them while they were left
        out of an attempt in flight (``DeliveryQueue.finish_attempt``)."""
        self._renotified.labels(_CHANGED_IN_FLIGHT).inc(count)

    def withheld(self, count: int) -> None:
        """Count ``count`` alert notifications left out as stale."""
        self._stale.inc(count)

    def refused(self, count: int) -> None:
        """Count new alerts refused by the open-alert cap."""
        self._refused.inc(count)

    def stale_events(self, count: int) -> None:
        """Count alert events left out as older than their alert's last change."""
        self._stale_events.inc(count)

    def resolves_forgotten(self, count: int) -> None:
        """Count resolves of unknown alerts forgotten at the cap (``RESOLVES_REMEMBERED``)."""
        self._forgotten.inc(count)

    def posting(self) -> None:
        """An Alertmanager poster is configured: show its posts counter at 0 for each result
        from the first scrape (made only then, so a bridge without one shows none)."""
        for result in PostResult:
            self._posts.labels(result.value)

    def posted(self, result: PostResult) -> None:
        """Count one post to Alertmanager."""
        self._posts.labels(result.value).inc()


class _ActiveAlerts(Collector):
    """``exesdb_alerts_active{severity}``: open alerts in the outbox, as of the last refresh;
    0 for every severity while this replica does not hold the work queue."""

    def __init__(self, metrics: AlertMetrics, holds_work_queue: Callable[[], bool]) -> None:
        self._metrics = metrics
        self._holds_work_queue = holds_work_queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "exesdb_alerts_active",
            "Alerts open (firing or acknowledged) in the alert outbox by severity, 0 at a "
            "replica without the work-queue lease on Redis.",
            labels=["severity"],
        )
        # Read at each scrape: a replica that loses the lease shows 0 from that moment, and one
        # that takes it has taken the open alerts up into its outbox before it holds it.
        active = self._metrics.active if self._holds_work_queue() else {}
        for severity in SEVERITIES:
            family.add_metric([severity], active.get(severity, 0))
        yield family
