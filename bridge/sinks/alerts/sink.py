"""The alert sink: bus messages in, durable signed webhooks and Alertmanager posts out.

The bus handler (``intake``) takes everything queued at once, works out what it changes
(``sources.batch_changes``) and writes every change (alert states and queued notifications) to
the outbox in ONE transaction before it returns, so on the Redis bus a message is acknowledged
only once it is safe on disk, and on the in-process bus HTTP ingest answers 202 only once its
alerts are (see ``Bus.publish_verified_durably``). On Redis each change is made in the
open-alert index first (``index``), so that the next work-queue holder takes the open alerts up
(``states`` makes each change where it belongs). Per-receiver workers (``EXESDB_WEBHOOK_URLS``
and ``EXESDB_WEBHOOK_CONFIG_FILE``'s, see ``bridge.receivers``) then group, keep what the
receiver wants (``min_severity``, ``send_resolved``) and deliver, each attempt told
(``reports``); a housekeeping loop (``housekeeping``) escalates, refreshes the depth gauges and
prunes old rows; the Alertmanager poster mirrors alert states to Alertmanager when configured
(on Redis, the lease holder's alone). This module wires them and answers for the component;
how its parts are made (``wiring``), what it checks and tells as it starts (``startup``), how it
stops (``shutdown``), the admin routes (``admin``), the dates a batch is judged by
(``batch_dates``), the check of a delivery before each attempt (``vetting``) and the
self-metrics (``metrics``) live in modules of their own.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from aiohttp import web
from prometheus_client import CollectorRegistry

from bridge.backoff import Backoff
from bridge.bus import (
    WORK_QUEUE_INSTANCES,
    Bus,
    Coordinator,
    Envelope,
    SharedState,
    WorkQueueLease,
)
from bridge.component import Context, Deadline, HasClientSpans
from bridge.errors import BridgeError
from bridge.httpclient import TokenSources
from bridge.messages import AlertAck
from bridge.operations import OperationRecorder
from bridge.receiver_keys import receiver_label
from bridge.redaction import safe_url
from bridge.routes import AdminGuard
from bridge.settings import Settings
from bridge.sinks.alerts.admin import AlertQuery, alert_routes
from bridge.sinks.alerts.alertmanager import AlertmanagerPoster
from bridge.sinks.alerts.announce import AckAnnouncer
from bridge.sinks.alerts.batch_dates import BatchDates
from bridge.sinks.alerts.database import OutboxDisplaced
from bridge.sinks.alerts.delivery import (
    DeliveryWorker,
    RetryPolicy,
    Sleep,
    WebhookSender,
    wait_or_wake,
)
from bridge.sinks.alerts.housekeeping import Housekeeping
from bridge.sinks.alerts.intake import BatchIntake
from bridge.sinks.alerts.metrics import AlertMetrics
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.pending import PendingConditions
from bridge.sinks.alerts.records import (
    Acknowledgement,
    ActiveCounts,
    AlertDetail,
    AlertRecord,
    Delivery,
    Escalated,
    Recipients,
)
from bridge.sinks.alerts.refusals import RefusalLog
from bridge.sinks.alerts.reports import AttemptReports, Publish
from bridge.sinks.alerts.shutdown import close_parts, drain
from bridge.sinks.alerts.sources import SOURCE_TYPES
from bridge.sinks.alerts.startup import (
    claim_receiver_rows,
    dead_letter_orphans,
    log_started,
    open_outbox,
    read_receivers,
)
from bridge.sinks.alerts.states import AlertStates
from bridge.sinks.alerts.thread import DbThread
from bridge.sinks.alerts.wiring import StageWiring
from bridge.tracing import ClientSpan

if TYPE_CHECKING:  # the receivers file's models: imported by Settings when it has receivers
    from bridge.receivers import AlertmanagerConfig, Receiver

__all__ = ["HIGH_WATER", "MAX_OPEN_ALERTS", "SUBSCRIBED_INSTANCES", "AlertSink", "alert_sink"]

# The work queue of a shared transport is exactly what this stage takes.
SUBSCRIBED_INSTANCES: Final = tuple(sorted(WORK_QUEUE_INSTANCES))
# The share of EXESDB_ALERT_QUEUE_SIZE from which HTTP ingest refuses new work (503).
HIGH_WATER: Final = 0.8
# Open (firing or acknowledged) alerts kept at most; new ones beyond are refused and counted
# (an event alert from nine tenths of it: transitions.open_cap).
MAX_OPEN_ALERTS: Final = 50_000
# Health readings this many health intervals apart are a silence (as the health collector's own
# are), when that is longer than EXESDB_ALERT_RESOLVE_TIMEOUT_MS.
_SILENT_INTERVALS: Final = 2.5


def external_url(settings: Settings, bound_port: int | None = None) -> str:
    """``EXESDB_EXTERNAL_URL``, or when unset the bridge's own URL as other hosts reach it:
    ``EXESDB_HTTP_ADDR`` (with ``bound_port``, the port bound, for a port of 0), https when the
    web config serves TLS, a wildcard host named by ``EXESDB_NODE`` (a receiver elsewhere cannot
    use loopback)."""
    return settings.external_url or settings.own_url(for_others=True, port=bound_port)


class AlertSink:
    """The ``alerts`` component (docs/alerts.md).

    ``db`` is the thread every outbox call runs on (one is made when not given); the sink
    closes it. Stage failures (a batch, a housekeeping pass, a webhook worker step, a post to
    Alertmanager, giving the lease up) are counted in
    ``exesdb_sink_errors_total{subscriber="alerts"}``.
    """

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
        state: SharedState | None = None,
        coordinator: Coordinator | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        sleep: Sleep = wait_or_wake,
        alertmanager_interval: float = 60.0,
        max_open_alerts: int = MAX_OPEN_ALERTS,
        db: DbThread | None = None,
        client_spans: Callable[[], Sequence[HasClientSpans]] = tuple,
        shutdown: Deadline | None = None,
        bound_port: Callable[[], int | None] = lambda: None,
        admin: AdminGuard | None = None,
    ) -> None:
        self.settings = settings
        self._bound_port = bound_port
        # The bridge's stop deadline, shared with every other stage; alone, the whole timeout.
        self._shutdown = shutdown or Deadline(settings.shutdown_timeout_ms / 1000)
        # The bridge's guard, which counts its refusals; alone, one of its own.
        self._admin = admin or AdminGuard(settings.admin_token)
        self._client_spans = client_spans
        self._publish = publish
        self._clock = clock
        # What a batch's events are dated by: the coordinator's clock (Redis's), and when every
        # message the queue holds was taken in after.
        self._dates = BatchDates(coordinator, clock=clock, monotonic=monotonic)
        self._random = random
        self._sleep = sleep
        self._alertmanager_interval = alertmanager_interval
        self._max_open = max_open_alerts
        resolve_after = settings.alert_resolve_timeout_ms / 1000
        self._db = db or DbThread(clock=monotonic)
        self._monotonic = monotonic
        # The oauth2 tokens, one per oauth2 block: receivers (and the Alertmanager poster)
        # with equal blocks share one, so N of them make one token request, not N.
        self._tokens = TokenSources()
        self.policy = RetryPolicy(
            backoff=Backoff(
                base=settings.webhook_backoff_ms / 1000,
                cap=settings.webhook_max_backoff_ms / 1000,
                rng=random,
            ),
            deadline=settings.webhook_deadline_ms / 1000,
        )
        # Built in start(): constructing a bridge touches no file.
        self._outbox: Outbox | None = None
        self._resend_hint = ""
        self.receivers: tuple[Receiver, ...] = ()
        self.senders: dict[str, WebhookSender] = {}
        self.workers: dict[str, DeliveryWorker] = {}
        self.alertmanager: AlertmanagerPoster | None = None
        self._ready = asyncio.Event()
        # Health conditions waiting for EXESDB_ALERT_FOR_MS before they alert (see pending);
        # readings further apart than the resolve timeout, or than _SILENT_INTERVALS health
        # intervals when longer, are a silence: with a health interval past the resolve
        # timeout, every reading would otherwise start the wait afresh and none ever alert.
        self._pending = PendingConditions(
            settings.alert_for_seconds,
            forget_after=max(
                resolve_after,
                _SILENT_INTERVALS * settings.health_broadcast_interval / 1000,
            ),
            max_conditions=max_open_alerts,
            clock=clock,
        )
        self._lease = lease
        self.metrics = AlertMetrics(
            registry,
            waiting=self._pending.waiting,
            holds_work_queue=self.holds_work_queue,
        )
        self._errors = bus.metrics.handler_errors.labels(self.name).inc
        self._announcer = AckAnnouncer(bus, self.holds_work_queue)
        self._house_wake = asyncio.Event()
        self._reports = AttemptReports(
            self.metrics, recorder=recorder, publish=publish, changed=self._house_wake.set
        )
        self.subscription = bus.subscribe(
            self.name,
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
        self._intake = BatchIntake(
            self.subscription,
            settings,
            keep=lease is None,  # on Redis the work queue hands a refused batch back
            ready=self._ready,
            dates=self._dates,
            pending=self._pending,
            states=lambda: self.states,
            active_ids=lambda: self.outbox.alerts.maybe_active_ids,
            metrics=self.metrics,
            refusals=RefusalLog(max_open_alerts, clock=monotonic),
            changed=self._changed,
            outbox_displaced=self._outbox_displaced,
            on_error=self._errors,
            clock=clock,
            sleep=sleep,
        )
        # The outbox file deleted or replaced under the bridge: checked by housekeeping.
        self._displaced = self._intake.displaced
        # On the Redis bus the alert states change only at the work-queue lease holder (it alone
        # escalates and auto-resolves), and the open alerts are kept in Redis for the next one
        # (see index): taken up whenever this replica takes the lease.
        self._shared = state if lease is not None else None
        self._states: AlertStates | None = None
        if lease is not None:
            lease.on_lead(self._take_up)
            lease.require(self._db.hung)  # an outbox that hangs leaves the work queue to others
            lease.require(self._db.full)  # so does one whose disk is full
            lease.require(lambda: self._displaced.problem)  # and one whose file is gone
        self._housekeeping: Housekeeping | None = None
        self._alertmanager_section: AlertmanagerConfig | None = None
        self._prepared = False
        self._started = False
        self._closed = False

    @property
    def external_url(self) -> str:
        """The base of every alert's link (``generatorURL``): ``EXESDB_EXTERNAL_URL``, else the
        listen address as other hosts reach it, with the port bound once there is one."""
        return external_url(self.settings, self._bound_port())

    # -- life cycle --

    @property
    def outbox(self) -> Outbox:
        """The open outbox (from start() to aclose())."""
        if self._outbox is None:
            raise BridgeError("the alert sink has not started")
        return self._outbox

    @property
    def states(self) -> AlertStates:
        """Where alert states change (from start() on)."""
        if self._states is None:
            raise BridgeError("the alert sink has not started")
        return self._states

    async def prepare(self) -> None:
        """Open the outbox and read the receivers, before the bus starts: an
        ``EXESDB_STATE_DIR`` or receivers file that fails raises ConfigError then; idempotent."""
        if self._prepared:
            return
        if self._outbox is None:
            self._outbox = await open_outbox(self._db, self.settings.state_dir)
        # (closed by aclose, however start-up ends.)
        self.receivers, self._alertmanager_section = read_receivers(self.settings, self._outbox)
        self._prepared = True

    async def start(self) -> None:
        """Open the outbox (unless prepared); start the delivery workers, housekeeping and
        Alertmanager poster."""
        if self._started:
            return
        self._started = True
        await self.prepare()
        outbox = self.outbox
        await claim_receiver_rows(self._db, outbox.queue, self.receivers, self.settings.state_dir)
        wiring = self._wiring(outbox)
        escalator = wiring.escalator(self._escalate)
        self._states = wiring.states(
            None if self._shared is None else wiring.index(self._shared, escalator)
        )
        self.senders = {receiver.key: wiring.sender(receiver) for receiver in self.receivers}
        vetting = wiring.vetting(self.states, self._lease, self._house_wake)
        self.workers = {
            r.key: wiring.worker(r, self.senders[r.key], vetting) for r in self.receivers
        }
        self.alertmanager = wiring.alertmanager(self._alertmanager_section)
        self._housekeeping = housekeeping = wiring.housekeeping(
            self.states,
            escalator,
            labels={key: worker.label for key, worker in self.workers.items()},
            wake=self._house_wake,
            check_outbox=self._displaced.check,
        )
        for sender in self.senders.values():
            await sender.start()
        await dead_letter_orphans(self._db, outbox.dead_letters, self._clock(), wiring.payloads)
        await housekeeping.refresh_gauges()
        # Dead letters left from before the start wait for a person: how to see and resend them.
        self._resend_hint = await self._db.call(outbox.dead_letters.resend_hint)
        self._ready.set()
        for worker in self.workers.values():
            worker.start()
        if self.alertmanager is not None:
            self.alertmanager.start()
        housekeeping.start()
        log_started(
            self.receivers,
            workers=len(self.workers),
            alertmanager=self.alertmanager,
            outbox=outbox,
            depth=self.metrics.depth,
            resend_hint=self._resend_hint,
        )

    def _wiring(self, outbox: Outbox) -> StageWiring:
        """What the parts made at start share (see ``wiring``)."""
        return StageWiring(
            settings=self.settings,
            outbox=outbox,
            db=self._db,
            metrics=self.metrics,
            pending=self._pending,
            policy=self.policy,
            tokens=self._tokens,
            max_open=self._max_open,
            alertmanager_interval=self._alertmanager_interval,
            external_url=lambda: self.external_url,
            publish=self._publish,
            report=self._reports.report,
            record_span=self._record_span,
            changed=self._changed,
            holding=self.holds_work_queue,
            reachable=self.work_queue_reachable,
            on_error=self._errors,
            clock=self._clock,
            monotonic=self._monotonic,
            random=self._random,
            sleep=self._sleep,
        )

    def readiness(self) -> str | None:
        """None once started and until closed, but while the outbox file is deleted or replaced
        (``DisplacedOutbox``), while an outbox call hangs (its disk hung:
        ``DbThread.hung``), on the Redis bus while its disk counts as full (``DbThread.full``:
        the work queue left to another replica), and while the outbox cannot record a webhook
        attempt's outcome (its disk full): that outcome is kept in memory meanwhile."""
        if self._closed:
            return "the alert sink is closed"
        if not self._started:
            return "the alert sink has not started"
        if displaced := self._displaced.problem:
            return displaced
        if hung := self._db.hung():
            return f"{hung}: alerts taken meanwhile wait in memory, not yet on disk"
        if self._lease is not None and (full := self._db.full()):
            return f"{full}; it leaves the work queue to a replica standing by meanwhile"
        if kept := self._intake.kept.unready:
            return kept
        for worker in self.workers.values():
            if fault := worker.unrecorded_fault:
                return (
                    f"the alert outbox cannot record webhook attempts ({fault}): the outcome of"
                    f" one to {worker.label} is kept in memory until it can"
                )
        return None

    async def aclose(self) -> None:
        """Finish handling queued messages within what is left of the bridge's stop deadline,
        stop every task, close the outbox; idempotent (see ``shutdown``). Cancelled (the
        deadline passed), it still stops its tasks and closes its sessions and the outbox."""
        if self._closed:
            return
        self._closed = True
        if self._housekeeping is not None:
            self._housekeeping.stop()  # no pass more while the queue drains
        self._shutdown.begin()  # the bridge's began already; one of the sink's own, now
        cancelled = False
        try:
            await drain(
                self.subscription,
                ready=self._ready.is_set(),
                shutdown=self._shutdown,
                lease=self._lease,
                on_error=self._errors,
            )
        except asyncio.CancelledError:
            cancelled = True  # while draining: no later await would be cancelled again
            raise
        finally:
            await close_parts(
                cancelled,
                subscription=self.subscription,
                shutdown=self._shutdown,
                workers=self.workers.values(),
                alertmanager=self.alertmanager,
                housekeeping=self._housekeeping,
                senders=self.senders.values(),
                db=self._db,
                outbox=self._outbox,
            )

    def holds_work_queue(self) -> bool:
        """True on the in-process bus, and on Redis while this replica holds the lease."""
        return self._lease is None or self._lease.leading

    def work_queue_holder(self) -> str | None:
        """On Redis, the replica that holds the work-queue lease (its consumer name), as this
        one last saw it; None on the in-process bus, or when it saw none."""
        return None if self._lease is None else self._lease.holder

    def work_queue_lease_kept(self) -> bool:
        """On Redis, whether this replica keeps the work-queue lease without serving the work
        queue (taken back after Redis lost its data, its take-up failing); never on the
        in-process bus."""
        return self._lease is not None and self._lease.kept

    def work_queue_reachable(self) -> bool:
        """Whether this replica can use the lease's store (Redis: it answers, and takes the
        lease's commands): while it cannot, and this replica does not hold the lease, which
        replica does cannot be known here; True on the in-process bus."""
        return self._lease is None or self._lease.reachable

    async def _take_up(self) -> None:
        """On taking the work-queue lease: the open alerts kept in Redis become ours."""
        await self._ready.wait()
        if await self.states.take_up():
            # Counted before the lease is held: exesdb_alerts_active shows the outbox from then.
            await self.housekeeping.refresh_gauges()
            self._changed()

    async def _escalate(self, now: float, after_seconds: float) -> list[Escalated]:
        return await self.states.escalate(now, after_seconds)

    # -- the bus stage (see intake) --

    async def _on_batch(self, envelopes: Sequence[Envelope]) -> None:
        await self._intake.take(envelopes)

    async def _outbox_displaced(self) -> str | None:
        outbox = self._outbox
        return None if outbox is None else await self._db.call(outbox.displaced)

    def _changed(self) -> None:
        for worker in self.workers.values():
            worker.wake()
        if self.alertmanager is not None:
            self.alertmanager.wake()
        self._house_wake.set()

    def _record_span(self, span: ClientSpan) -> None:
        for recorder in self._client_spans():
            recorder.record_client_span(span)

    # -- housekeeping --

    @property
    def housekeeping(self) -> Housekeeping:
        """The housekeeping loop (from start() on)."""
        if self._housekeeping is None:
            raise BridgeError("the alert sink has not started")
        return self._housekeeping

    # -- HTTP --

    def routes(self) -> list[web.RouteDef]:
        """``GET /v1/alerts`` and ``POST /v1/alerts/{alert_id}/ack`` (admin; see ``admin``)."""
        return alert_routes(self._admin, self)

    async def list_alerts(
        self, query: AlertQuery, *, by_start: bool = False, after: AlertRecord | None = None
    ) -> list[AlertRecord]:
        """The alerts matching ``query``, most recently changed first (``by_start``: most
        recently fired first, as the status page lists them); those listed after ``after``."""
        find = self.outbox.alerts.find
        return await self._db.call(
            find, query.state, query.limit, alert_id=query.alert_id, by_start=by_start, after=after
        )

    def active_counts(self) -> ActiveCounts:
        """Open alerts by severity as of the last housekeeping pass (``exesdb_alerts_active``),
        and whether any fired since."""
        fired_since = self.outbox.alerts.count_mark != self.metrics.active_mark
        return ActiveCounts(self.metrics.active, fired_since)

    def recipients(self) -> Recipients:
        """The webhook receivers (outbox key and label) and the Alertmanager alerts go to, as
        the pages show them: without user info (a user name may be a token)."""
        return Recipients(
            tuple(
                (receiver.key, receiver_label(receiver.key, userinfo=False))
                for receiver in self.receivers
            ),
            safe_url(self.alertmanager.url, userinfo=False) if self.alertmanager else None,
            self.alertmanager.failing() if self.alertmanager else None,
            self.metrics.depth.dead - self.metrics.depth.superseded,  # as the gauge counts them
        )

    async def failing_receivers(self) -> tuple[tuple[Delivery, int, int], ...]:
        """Each receiver whose oldest waiting delivery failed an attempt: that delivery, how
        many deliveries wait for the receiver, and how many alerts wait in the grouping window
        that holds (for the status page)."""
        return await self._db.call(self.outbox.queue.failing)

    async def alert_detail(self, alert_id: str) -> AlertDetail | None:
        """One alert with its history, deliveries and grouping windows (for its page); None
        when unknown."""
        return await self._db.call(self.outbox.alerts.detail, alert_id)

    async def acknowledge(self, ack: Acknowledgement) -> AlertRecord | None:
        """Acknowledge through the admin API and publish AlertAck; None when the alert is
        unknown.

        On the in-process bus an alert acknowledged already, or resolved, is returned as it is
        and nothing is published. On Redis only the work-queue holder stores it (in the index,
        then here); any other replica answers with the alert as the holder will make it from
        the AlertAck, which it publishes whatever its own copy says (that may be stale).
        One stored nowhere here returns only once the bus stored its AlertAck (``AckAnnouncer``:
        in the spool on disk) and raises ``TransportError``
        when it could not: nothing is acknowledged, unless Redis took a holder's change without
        answering. While the outbox file is gone (``DisplacedOutbox``), or once found gone after
        storing it, it raises ``OutboxDisplaced``: stored, if at all, only in the file gone.
        """
        if (displaced := self._displaced.problem) is not None:
            # Stored in the file gone, it would be lost at the next start: refused, as ingest is.
            raise OutboxDisplaced(displaced)
        try:
            made = await self.states.acknowledge(ack, self._clock())
        except OutboxDisplaced as exc:
            self._displaced.found(str(exc))  # readiness and ingest refuse from now on
            raise
        record = made.record
        if not made.announce or record is None:
            return record
        self._changed()
        await self._announcer.announce(ack, made)
        return record


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
        state=context.capabilities.state,
        coordinator=context.capabilities.coordinator,
        client_spans=context.client_spans,
        shutdown=context.shutdown,
        bound_port=context.bound_port,
        admin=context.admin,
    )
