"""The alert sink: bus messages in, durable signed webhooks and Alertmanager posts out.

The bus handler takes everything queued at once and writes every change (alert states and queued
notifications) to the outbox in ONE transaction before it returns, so on the Redis bus a message
is acknowledged only once it is safe on disk, and on the in-process bus HTTP ingest answers 202
only once its alerts are (see ``Bus.publish_verified_durably``). Per-URL
workers then group and deliver; a housekeeping loop escalates, refreshes the depth gauges and
prunes old rows; the Alertmanager poster mirrors alert states to Alertmanager when configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random as _random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.bus import WORK_QUEUE_INSTANCES, Bus, Envelope, HandOver, WorkQueueLease
from bridge.component import Context
from bridge.config import Settings
from bridge.errors import BridgeError, ConfigError
from bridge.messages import AlertAck, Message, NotificationStatus
from bridge.operations import OperationRecorder
from bridge.redaction import safe_url
from bridge.routes import AdminGuard, error_response
from bridge.sinks.alerts.alertmanager import AlertmanagerPoster
from bridge.sinks.alerts.delivery import (
    AttemptResult,
    DeliveryWorker,
    Outcome,
    RetryPolicy,
    Sleep,
    WebhookSender,
    wait_or_wake,
)
from bridge.sinks.alerts.escalation import Escalator
from bridge.sinks.alerts.outbox import (
    Acknowledgement,
    AlertRecord,
    AlertState,
    Delivery,
    DeliveryState,
    Outbox,
    OutboxDepth,
)
from bridge.sinks.alerts.payload import build_payloads
from bridge.sinks.alerts.sources import (
    SEVERITIES,
    SOURCE_TYPES,
    AlertEvent,
    alert_events,
    meets,
)
from bridge.sinks.alerts.thread import DbThread

__all__ = ["SUBSCRIBED_INSTANCES", "AlertSink", "alert_sink"]

_logger = logging.getLogger(__name__)

# The work queue of a shared transport is exactly what this stage takes.
SUBSCRIBED_INSTANCES: Final = tuple(sorted(WORK_QUEUE_INSTANCES))
RESULTS: Final = ("delivered", "retry", "rejected", "expired")
_HOUSEKEEPING_SECONDS: Final = 1.0
_PRUNE_EVERY_SECONDS: Final = 3600.0
_KEEP_DELIVERED_SECONDS: Final = 86_400.0
_KEEP_RESOLVED_SECONDS: Final = 7 * 86_400.0
# The share of EXESDB_ALERT_QUEUE_SIZE from which HTTP ingest refuses new work (503).
HIGH_WATER: Final = 0.8
# Kept from EXESDB_SHUTDOWN_TIMEOUT_MS for stopping the workers once the queue is drained (at
# most a fifth of it).
_CLOSE_MARGIN_SECONDS: Final = 1.0
# Open (firing or acknowledged) alerts kept at most; new ones beyond are refused and counted.
MAX_OPEN_ALERTS: Final = 50_000
_MAX_LIST: Final = 10_000
_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Publish = Callable[[str, Message], Any]


def external_url(settings: Settings) -> str:
    """``EXESDB_EXTERNAL_URL``, or the bridge's own address when unset."""
    if settings.external_url:
        return settings.external_url
    host, port = settings.listen
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the listen-on-all address
        host = settings.node
    return f"http://{host}:{port}"


class AlertSink:
    """The ``alerts`` component (SPEC section 9)."""

    name = "alerts"
    required = True

    def __init__(
        self,
        settings: Settings,
        *,
        bus: Bus,
        publish: Publish,
        registry: CollectorRegistry,
        recorder: OperationRecorder | None = None,
        lease: WorkQueueLease | None = None,
        hand_over: HandOver | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        sleep: Sleep = wait_or_wake,
        alertmanager_interval: float = 60.0,
        max_open_alerts: int = MAX_OPEN_ALERTS,
    ) -> None:
        self.settings = settings
        self.external_url = external_url(settings)
        self._admin = AdminGuard(settings.admin_token)
        self._urls = tuple(dict.fromkeys(settings.webhook_urls))
        self._publish = publish
        self._recorder = recorder
        self._clock = clock
        self._random = random
        self._sleep = sleep
        self._alertmanager_interval = alertmanager_interval
        self._max_open = max_open_alerts
        self._resolve_after = settings.alert_resolve_timeout_ms / 1000
        self._active: dict[str, int] = {}
        self._db = DbThread()
        self._depth = OutboxDepth(0, 0, 0)
        self._min_severity = settings.webhook_min_severity
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        self.sender = WebhookSender(
            secret=secret or None,
            timeout=settings.webhook_timeout_ms / 1000,
            clock=clock,
            monotonic=monotonic,
        )
        self.policy = RetryPolicy(
            backoff=settings.webhook_backoff_ms / 1000,
            max_backoff=settings.webhook_max_backoff_ms / 1000,
            deadline=settings.webhook_deadline_ms / 1000,
        )
        # Built in start(): constructing a bridge touches no file.
        self._outbox: Outbox | None = None
        self._escalator: Escalator | None = None
        self.workers: dict[str, DeliveryWorker] = {}
        self.alertmanager: AlertmanagerPoster | None = None
        self._ready = asyncio.Event()
        self._register_metrics(registry)
        self.subscription = bus.subscribe(
            "alerts",
            self._on_batch,
            instances=SUBSCRIBED_INSTANCES,
            # Only what makes an alert event or acknowledges one (not every metric or health
            # reading of those instances): less to queue, hand over and wait for at ingest.
            tags=[AlertAck.TAG, *(model.TAG for model in SOURCE_TYPES)],
            group=True,
            queue_size=settings.alert_queue_size,
            batch=True,
            durable=True,
            high_water=HIGH_WATER,
        )
        # On the Redis bus the alert states live with the work-queue lease holder: only it
        # escalates and auto-resolves, and a graceful stop hands its open alerts over to the
        # next holder (through Redis), so that their resolve finds them there.
        self._lease = lease
        self._hand_over_to = hand_over
        if lease is not None:
            lease.on_lead(self._take_over)
        self._house_wake = asyncio.Event()
        self._house_task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self.errors = 0

    def _register_metrics(self, registry: CollectorRegistry) -> None:
        self._deliveries = Counter(
            "exesdb_webhook_deliveries",
            "Webhook delivery attempts by result: delivered, retry, rejected (a final 4xx, "
            "dead-lettered) or expired (deadline passed, dead-lettered).",
            ["result"],
            registry=registry,
        )
        for result in RESULTS:
            self._deliveries.labels(result)
        self._latency = Histogram(
            "exesdb_webhook_delivery_seconds",
            "Duration of one webhook delivery attempt, whatever its outcome.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        Gauge(
            "exesdb_webhook_outbox_depth",
            "Alert notifications not yet delivered: in a grouping window or a pending delivery.",
            registry=registry,
        ).set_function(lambda: float(self._depth.queued + self._depth.pending))
        Gauge(
            "exesdb_webhook_dead_letters",
            "Dead-lettered webhook deliveries, kept until `exesdb-bridge outbox retry`.",
            registry=registry,
        ).set_function(lambda: float(self._depth.dead))
        self._refused = Counter(
            "exesdb_alerts_refused",
            f"New alerts refused because {self._max_open} alerts were already open.",
            registry=registry,
        )
        registry.register(_ActiveAlerts(self))
        self._am_posts = Counter(
            "exesdb_alertmanager_posts",
            "Posts of the current alerts to Alertmanager, by result: ok or failed.",
            ["result"],
            registry=registry,
        )

    # -- life cycle --

    @property
    def outbox(self) -> Outbox:
        """The open outbox (from start() to aclose())."""
        if self._outbox is None:
            raise BridgeError("the alert sink has not started")
        return self._outbox

    async def start(self) -> None:
        """Open the outbox; start the delivery workers, housekeeping and Alertmanager poster."""
        if self._started:
            return
        self._started = True
        settings = self.settings
        try:
            outbox = await self._db.call(Outbox.in_dir, settings.state_dir, urls=self._urls)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                [f"EXESDB_STATE_DIR: cannot open the alert outbox in {settings.state_dir!r}: {exc}"]
            ) from exc
        self._outbox = outbox
        self._escalator = Escalator(
            outbox=outbox,
            db=self._db,
            after_seconds=settings.escalation_after_ms / 1000,
            publish=self._publish,
            notify=self._changed,
            clock=self._clock,
        )
        self.workers = {
            url: DeliveryWorker(
                url,
                outbox=outbox,
                db=self._db,
                sender=self.sender,
                policy=self.policy,
                group_wait=settings.webhook_group_wait_ms / 1000,
                build=self._build,
                report=self._report,
                clock=self._clock,
                random=self._random,
                sleep=self._sleep,
            )
            for url in self._urls
        }
        if settings.alertmanager_url:
            self.alertmanager = AlertmanagerPoster(
                settings.alertmanager_url,
                outbox=outbox,
                db=self._db,
                external_url=self.external_url,
                timeout=settings.webhook_timeout_ms / 1000,
                interval=self._alertmanager_interval,
                count=lambda result: self._am_posts.labels(result).inc(),
                clock=self._clock,
                sleep=self._sleep,
            )
        await self.sender.start()
        orphaned = await self._db.call(outbox.dead_letter_orphans, self._clock(), self._build)
        if orphaned:
            _logger.warning(
                "alerts: dead-lettered %d delivery(ies) for URLs no longer in EXESDB_WEBHOOK_URLS;"
                " once the URL is configured again, `exesdb-bridge outbox retry --all` sends them",
                orphaned,
            )
        self._depth = await self._db.call(outbox.depth)
        self._active = await self._db.call(outbox.active_counts)
        self._ready.set()
        for worker in self.workers.values():
            worker.start()
        if self.alertmanager is not None:
            self.alertmanager.start()
        self._house_task = asyncio.get_running_loop().create_task(
            self._housekeeping(), name="alerts-housekeeping"
        )
        _logger.info(
            "alerts: %d webhook(s)%s; outbox %s: %d pending, %d dead-lettered",
            len(self.workers),
            ", Alertmanager " + self.alertmanager.shown_url if self.alertmanager else "",
            outbox.path,
            self._depth.queued + self._depth.pending,
            self._depth.dead,
        )

    @property
    def active(self) -> dict[str, int]:
        """Open alerts by severity, as of the last housekeeping pass."""
        return self._active

    def readiness(self) -> str | None:
        """None once started and until closed."""
        if self._closed:
            return "the alert sink is closed"
        if not self._started:
            return "the alert sink has not started"
        return None

    async def aclose(self) -> None:
        """Finish handling queued messages, stop every task, close the outbox; idempotent."""
        if self._closed:
            return
        self._closed = True
        # Drain first: what the bus already queued for us reaches the outbox before it closes.
        # The HTTP listener closed before us, so the backlog is bounded; so is the wait.
        timeout = self.settings.shutdown_timeout_ms / 1000
        # On Redis: stop taking work-queue entries first (what is not taken yet goes to the next
        # holder), then drain, then hand the open alerts over with the lease.
        if self._lease is not None:
            await self._lease.stop_reading()
        await self.subscription.stop(timeout - min(_CLOSE_MARGIN_SECONDS, timeout / 5))
        await self._hand_over()
        for worker in self.workers.values():
            await worker.aclose()
        if self.alertmanager is not None:
            await self.alertmanager.aclose()
        task, self._house_task = self._house_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.sender.aclose()
        await asyncio.to_thread(self._db.close)
        if self._outbox is not None:
            self._outbox.close()

    def _holds_work_queue(self) -> bool:
        """True on the in-process bus, and on Redis while this replica holds the lease."""
        return self._lease is None or self._lease.leading

    async def _hand_over(self) -> None:
        hand_over = self._hand_over_to
        if hand_over is None or self._outbox is None or not self._holds_work_queue():
            return
        try:
            records = [
                record
                for state in (AlertState.FIRING, AlertState.ACKNOWLEDGED)
                for record in await self._db.call(self.outbox.alerts, state.value, MAX_OPEN_ALERTS)
            ]
            await hand_over.hand_over(
                "alerts",
                {record.alert_id: _record_json(record) for record in records},
            )
        except Exception:
            _logger.exception("alerts: handing the open alerts over failed")

    async def _take_over(self) -> None:
        """Import the open alerts the previous lease holder handed over."""
        if self._hand_over_to is None:
            return
        await self._ready.wait()
        values = await self._hand_over_to.take_over("alerts")
        records: list[AlertRecord] = []
        for raw in values.values():
            try:
                fields = json.loads(raw)
                fields["state"] = AlertState(fields["state"])
                records.append(AlertRecord(**fields))
            except (ValueError, TypeError, KeyError):
                _logger.warning("alerts: a handed-over alert record is malformed; skipped")
        if records:
            taken = await self._db.call(self.outbox.import_alerts, records)
            _logger.info("alerts: took over %d of %d open alert(s)", taken, len(records))
            self._changed()

    # -- the bus stage --

    async def _on_batch(self, envelopes: Sequence[Envelope]) -> None:
        await self._ready.wait()  # messages may arrive between bus start and ours
        changes: list[AlertEvent | Acknowledgement] = []
        fired: set[str] = set()  # firing earlier in this batch: a resolve must follow it
        for envelope in envelopes:
            payload = envelope.payload
            if isinstance(payload, AlertAck):
                changes.append(
                    Acknowledgement(
                        payload.alert_id, payload.ack_by, payload.ack_note, payload.resolution
                    )
                )
                continue
            for event in alert_events(envelope):
                if event.firing:
                    if meets(event.severity, self._min_severity):
                        fired.add(event.alert_id)
                        changes.append(event)
                elif event.alert_id in fired or self.outbox.may_be_active(event.alert_id):
                    changes.append(event)
                # else: every healthy health message is a resolved event; for an alert that is
                # not active it would change nothing, so it costs no transaction.
        if not changes:
            return
        applied = await self._db.call(
            self.outbox.apply, changes, self._clock(), max_open=self._max_open
        )
        if applied.refused:
            self._refused.inc(applied.refused)
            _logger.warning(
                "alerts: refused %d new alert(s): %d alerts are open (firing or acknowledged)",
                applied.refused,
                self._max_open,
            )
        if applied.changed:
            self._changed()

    async def _acknowledge(
        self, alert_id: str, ack_by: str, note: str | None, resolution: str | None
    ) -> AlertRecord | None:
        record = await self._db.call(
            self.outbox.acknowledge,
            alert_id,
            ack_by,
            self._clock(),
            ack_note=note,
            resolution=resolution,
        )
        if record is not None:
            self._changed()
        return record

    def _changed(self) -> None:
        for worker in self.workers.values():
            worker.wake()
        if self.alertmanager is not None:
            self.alertmanager.wake()
        self._house_wake.set()

    def _build(self, records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
        return build_payloads(
            records, max_alerts=self.settings.webhook_max_alerts, external_url=self.external_url
        )

    def _report(
        self, delivery: Delivery, result: AttemptResult, state: DeliveryState, attempt: int
    ) -> None:
        if result.ok:
            label, status = "delivered", "delivered"
        elif result.outcome is Outcome.REJECTED:
            label, status = "rejected", "bounced"
        else:
            label = "expired" if state is DeliveryState.DEAD else "retry"
            status = "failed"
        self._deliveries.labels(label).inc()
        self._latency.observe(result.seconds)
        if self._recorder is not None:
            self._recorder.record("webhook.delivery", result.seconds, result.ok)
        reason = None
        if not result.ok:
            then = "dead-lettered" if state is DeliveryState.DEAD else "will retry"
            reason = f"{result.error}; {then}"
        recipient = safe_url(delivery.url)
        for alert_id in delivery.alert_ids:
            self._publish(
                "notification_status",
                NotificationStatus(
                    alert_id=alert_id,
                    delivery_method="webhook",
                    recipient=recipient,
                    status=status,
                    error_reason=reason,
                    attempts=attempt,
                ),
            )
        self._house_wake.set()

    async def _housekeeping(self) -> None:
        escalator = self._escalator
        assert escalator is not None
        tick = min(_HOUSEKEEPING_SECONDS, escalator.after_seconds / 4)
        last_prune = self._clock()
        while not self._closed:
            self._house_wake.clear()
            try:
                # Only the work-queue holder escalates and auto-resolves: the others' alert
                # states are stale once the lease moved on.
                if self._holds_work_queue():
                    await escalator.tick()
                    if await self._db.call(
                        self.outbox.resolve_expired, self._clock(), self._resolve_after
                    ):
                        self._changed()
                self._depth = await self._db.call(self.outbox.depth)
                self._active = await self._db.call(self.outbox.active_counts)
                now = self._clock()
                if now - last_prune >= _PRUNE_EVERY_SECONDS:
                    last_prune = now
                    await self._db.call(
                        self.outbox.prune,
                        now,
                        delivered_for=_KEEP_DELIVERED_SECONDS,
                        resolved_for=_KEEP_RESOLVED_SECONDS,
                    )
            except Exception:
                self.errors += 1
                _logger.exception("alert housekeeping failed")
            await self._sleep(tick, self._house_wake)

    # -- HTTP --

    def routes(self) -> list[web.RouteDef]:
        """``GET /v1/alerts`` and ``POST /v1/alerts/{alert_id}/ack`` (admin)."""
        return [
            web.get("/v1/alerts", self._admin(self._list_alerts)),
            web.post("/v1/alerts/{alert_id}/ack", self._admin(self._ack)),
        ]

    async def _list_alerts(self, request: web.Request) -> web.Response:
        """Alerts with state, level, severity, labels and timestamps; ``?state=``, ``?limit=``."""
        state = request.query.get("state")
        if state is not None and state not in {s.value for s in AlertState}:
            return error_response(
                400, "invalid", "state must be firing, acknowledged or resolved", "state"
            )
        raw_limit = request.query.get("limit", "1000")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= _MAX_LIST:
            return error_response(
                400, "invalid", f"limit must be an integer from 1 to {_MAX_LIST}", "limit"
            )
        records = await self._db.call(self.outbox.alerts, state, int(raw_limit))
        return web.json_response({"alerts": [record.as_json() for record in records]})

    async def _ack(self, request: web.Request) -> web.Response:
        """Acknowledge: ``{"ack_by", "ack_note"?, "resolution"?}``; publishes AlertAck."""
        alert_id = request.match_info["alert_id"]
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
            return error_response(400, "malformed", 'the body must be JSON: {"ack_by": "..."}')
        if not isinstance(body, dict):
            return error_response(
                400, "malformed", 'the body must be a JSON object: {"ack_by": "..."}'
            )
        fields: dict[str, str | None] = {}
        for name, required in (("ack_by", True), ("ack_note", False), ("resolution", False)):
            value = body.get(name)
            if value is None and not required:
                fields[name] = None
            elif not isinstance(value, str) or not value or len(value) > 4096:
                return error_response(
                    400, "invalid", f"{name} must be a string of 1-4096 characters", name
                )
            else:
                fields[name] = value
        ack_by = fields["ack_by"]
        assert ack_by is not None
        record = await self._acknowledge(alert_id, ack_by, fields["ack_note"], fields["resolution"])
        if record is None:
            return error_response(404, "unknown_alert", f"no alert {alert_id!r}", "alert_id")
        self._publish(
            "alert_acknowledged",
            AlertAck(
                alert_id=alert_id,
                ack_by=ack_by,
                ack_note=fields["ack_note"],
                resolution=fields["resolution"],
            ),
        )
        return web.json_response({"alert": record.as_json()})


def alert_sink(context: Context) -> AlertSink:
    """The factory ``default_components()`` lists; always on: alert states and the
    ``/v1/alerts`` API are useful without any webhook."""
    return AlertSink(
        context.settings,
        bus=context.bus,
        publish=context.integration.publish,
        registry=context.registry,
        recorder=context.recorder,
        lease=context.capabilities.lease,
        hand_over=context.capabilities.hand_over,
    )


def _record_json(record: AlertRecord) -> bytes:
    fields = dataclasses.asdict(record)
    fields["state"] = record.state.value
    return json.dumps(fields).encode()


class _ActiveAlerts(Collector):
    """``exesdb_alerts_active{severity}``: open alerts in the outbox, as of the last refresh.

    The outbox is the authority; the counts are refreshed by the sink's housekeeping (every
    second) rather than at scrape time, so that a scrape never waits on a SQLite fsync.
    """

    def __init__(self, sink: AlertSink) -> None:
        self._sink = sink

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "exesdb_alerts_active",
            "Alerts firing or acknowledged (not resolved) in the alert outbox, by severity.",
            labels=["severity"],
        )
        active = self._sink.active
        for severity in SEVERITIES:
            family.add_metric([severity], active.get(severity, 0))
        yield family
