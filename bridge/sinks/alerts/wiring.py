"""How the alert sink's parts are made as it starts, each given only what it uses.

``AlertSink.start`` makes them in this order, from what the sink holds (``StageWiring``): the
escalator, the alert states (through the open-alert index on Redis), a sender and a delivery
worker per receiver (each delivery vetted before it is tried), the Alertmanager poster when one
is configured, and the housekeeping loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.bus import SharedState, WorkQueueLease
from bridge.httpclient import ClientSettings, TokenSources
from bridge.settings import Settings
from bridge.sinks.alerts.alertmanager import AlertmanagerPoster
from bridge.sinks.alerts.delivery import (
    DeliveryWorker,
    Report,
    RetryPolicy,
    Sleep,
    WebhookSender,
    keep_for,
)
from bridge.sinks.alerts.escalation import Escalator
from bridge.sinks.alerts.housekeeping import Housekeeping
from bridge.sinks.alerts.index import AlertIndex
from bridge.sinks.alerts.metrics import AlertMetrics
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.payload import build_payloads
from bridge.sinks.alerts.pending import PendingConditions
from bridge.sinks.alerts.queue import BuildPayloads
from bridge.sinks.alerts.records import AlertRecord, Escalated
from bridge.sinks.alerts.reports import Publish
from bridge.sinks.alerts.states import AlertStates
from bridge.sinks.alerts.thread import DbThread
from bridge.sinks.alerts.vetting import DeliveryVetting
from bridge.tracing import ClientSpan

if TYPE_CHECKING:  # the receivers file's models: imported by Settings when it has receivers
    from bridge.receivers import AlertmanagerConfig, Receiver

__all__ = ["StageWiring"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StageWiring:
    """What the alert sink's parts share: its settings, the open ``outbox`` and its ``db``
    thread, the self-metrics, the clocks, and the sink's callbacks (``changed`` wakes what
    sends, ``holding`` and ``reachable`` answer for the work-queue lease, ``on_error`` counts
    a stage failure).

    ``max_open`` caps the open alerts; ``tokens`` are the oauth2 token sources the senders and
    the poster share; ``external_url`` is asked for at each payload (the port bound late)."""

    settings: Settings
    outbox: Outbox
    db: DbThread
    metrics: AlertMetrics
    pending: PendingConditions
    policy: RetryPolicy
    tokens: TokenSources
    max_open: int
    alertmanager_interval: float
    external_url: Callable[[], str]
    publish: Publish
    report: Report
    record_span: Callable[[ClientSpan], None]
    changed: Callable[[], None]
    holding: Callable[[], bool]
    reachable: Callable[[], bool]
    on_error: Callable[[], None]
    clock: Callable[[], float]
    monotonic: Callable[[], float]
    random: Callable[[], float]
    sleep: Sleep

    def escalator(
        self, escalate: Callable[[float, float], Awaitable[list[Escalated]]]
    ) -> Escalator:
        """The escalator, escalating what is due with ``escalate`` (``AlertStates.escalate``)."""
        return Escalator(
            escalate=escalate,
            after_seconds=self.settings.escalation_after_ms / 1000,
            publish=self.publish,
            notify=self.changed,
            clock=self.clock,
        )

    def states(self, index: AlertIndex | None) -> AlertStates:
        """Where alert states change: the outbox, or through ``index`` on Redis."""
        settings = self.settings
        return AlertStates(
            self.outbox.alerts,
            db=self.db,
            index=index,
            max_open=self.max_open,
            resolve_after=settings.alert_resolve_timeout_ms / 1000,
            # A health condition alert no reading keeps up ends when its series would leave
            # /metrics.
            stale_after=settings.series_ttl_ms / 1000,
            hold_seconds=self.pending.for_seconds,
            # A message sent before a resolve is refused once the replay window has passed
            # since: remembering the resolve longer (than for those taken in by then, however
            # long they wait in the queue: batch_dates) would stop nothing more.
            remember_for=settings.replay_window_ms / 1000,
            holding=self.holding,
            monotonic=self.monotonic,
        )

    def index(self, state: SharedState, escalator: Escalator) -> AlertIndex:
        """The open alerts kept in Redis (``state``) for the next work-queue holder."""
        return AlertIndex(
            state,
            alerts=self.outbox.alerts,
            queue=self.outbox.queue,
            db=self.db,
            clock=self.clock,
            limit=self.max_open,
            holding=self.holding,
            notify=self.changed,
            escalated=escalator.announce,
            withheld=self.metrics.withheld,
        )

    def sender(self, receiver: Receiver) -> WebhookSender:
        """``receiver``'s webhook sender (started by the sink)."""
        return WebhookSender(
            receiver,
            clock=self.clock,
            monotonic=self.monotonic,
            record_span=self.record_span,
            tokens=self.tokens,
        )

    def vetting(
        self, states: AlertStates, lease: WorkQueueLease | None, wake: asyncio.Event
    ) -> DeliveryVetting:
        """The check of each delivery before it is tried (``wake``: the depth gauges')."""
        return DeliveryVetting(
            states=states,
            alerts=self.outbox.alerts,
            queue=self.outbox.queue,
            db=self.db,
            lease=lease,
            withheld=self.metrics.withheld,
            changed=wake.set,  # the depth gauges
            clock=self.clock,
        )

    def worker(
        self, receiver: Receiver, sender: WebhookSender, vetting: DeliveryVetting
    ) -> DeliveryWorker:
        """``receiver``'s delivery worker, sending with ``sender``, each delivery checked by
        ``vetting`` before it is tried."""
        return DeliveryWorker(
            receiver.key,
            label=receiver.label,
            queue=self.outbox.queue,
            db=self.db,
            sender=sender,
            policy=self.policy,
            group_wait=self.settings.webhook_group_wait_ms / 1000,
            build=self._builder(receiver),
            keep=keep_for(receiver),
            vet=vetting.vet if receiver.send_resolved else vetting.without_resolved,
            report=self.report,
            clock=self.clock,
            sleep=self.sleep,
            on_error=self.on_error,
            told_again=self.metrics.told_again,
        )

    def alertmanager(self, section: AlertmanagerConfig | None) -> AlertmanagerPoster | None:
        """The Alertmanager poster, when ``EXESDB_ALERTMANAGER_URL`` or the receivers file's
        ``alertmanager`` section names one (the variable first)."""
        settings = self.settings
        alertmanager_url = settings.alertmanager_url or (section.url if section else None)
        if not alertmanager_url:
            return None
        self.metrics.posting()
        timeout = section.timeout if section is not None and section.timeout else None
        return AlertmanagerPoster(
            alertmanager_url,
            alerts=self.outbox.alerts,
            db=self.db,
            external_url=self.external_url,
            timeout=timeout or settings.webhook_timeout_ms / 1000,
            client=ClientSettings(
                section.http_config if section is not None else None,
                clock=self.monotonic,
                tokens=self.tokens,
            ),
            interval=self.alertmanager_interval,
            count=self.metrics.posted,
            clock=self.clock,
            sleep=self.sleep,
            random=self.random,
            on_error=self.on_error,
            record_span=self.record_span,
            holding=self.holding,
            reachable=self.reachable,
        )

    def housekeeping(
        self,
        states: AlertStates,
        escalator: Escalator,
        *,
        labels: dict[str, str],
        wake: asyncio.Event,
        check_outbox: Callable[[], Awaitable[str | None]],
    ) -> Housekeeping:
        """The housekeeping loop, woken by ``wake``, ``check_outbox`` (is the outbox file
        gone?) asked before each pass; ``labels``: each receiver's, by key."""
        settings = self.settings
        return Housekeeping(
            self.outbox,
            db=self.db,
            states=states,
            escalator=escalator,
            pending=self.pending,
            metrics=self.metrics,
            labels=labels,
            holds_work_queue=self.holding,
            changed=self.changed,
            on_error=self.on_error,
            renotify_after=settings.webhook_renotify_interval_ms / 1000,
            dead_letter_ttl=settings.webhook_dead_letter_ttl_ms / 1000,
            wake=wake,
            clock=self.clock,
            sleep=self.sleep,
            check_outbox=check_outbox,
        )

    def payloads(self, records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
        """The payloads of ``records`` for a receiver no longer configured: at most
        ``EXESDB_WEBHOOK_MAX_ALERTS`` alerts each."""
        return build_payloads(
            records, max_alerts=self.settings.webhook_max_alerts, external_url=self.external_url()
        )

    def _builder(self, receiver: Receiver) -> BuildPayloads:
        """The payloads of ``receiver``: at most ``max_alerts`` alerts each."""

        def build(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
            return build_payloads(
                records, max_alerts=receiver.max_alerts, external_url=self.external_url()
            )

        return build
