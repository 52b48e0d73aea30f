"""The alert sink: bus messages in, durable signed webhooks and Alertmanager posts out.

The bus handler takes everything queued at once, works out what it changes
(``sources.batch_changes``) and writes every change (alert states and queued notifications) to
the outbox in ONE transaction before it returns, so on the Redis bus a message is acknowledged
only once it is safe on disk, and on the in-process bus HTTP ingest answers 202 only once its
alerts are (see ``Bus.publish_verified_durably``). On Redis each change is made in the
open-alert index first (``index``), so that the next work-queue holder takes the open alerts up
(``states`` makes each change where it belongs). Per-receiver workers (``EXESDB_WEBHOOK_URLS``
and ``EXESDB_WEBHOOK_CONFIG_FILE``'s, see ``bridge.receivers``) then group, keep what the
receiver wants (``min_severity``, ``send_resolved``) and deliver; a housekeeping loop
(``housekeeping``) escalates, refreshes the depth gauges and prunes old rows; the Alertmanager
poster mirrors alert states to Alertmanager when configured (on Redis, the lease holder's
alone). The admin routes (``admin``), the index, the dates a batch is judged by
(``batch_dates``), the check of a delivery before each attempt (``vetting``) and the
self-metrics (``metrics``) live in modules of their own.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

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
from bridge.errors import BridgeError, ConfigError
from bridge.httpclient import ClientSettings, TokenSources
from bridge.messages import AlertAck, Message, NotificationStatus
from bridge.operations import OperationRecorder
from bridge.receiver_keys import ReceiverKeys, receiver_label
from bridge.redaction import safe_url
from bridge.routes import AdminGuard
from bridge.settings import Settings
from bridge.sinks.alerts.admin import AlertQuery, alert_routes
from bridge.sinks.alerts.alertmanager import AlertmanagerPoster
from bridge.sinks.alerts.announce import AckAnnouncer
from bridge.sinks.alerts.batch_dates import BatchDates
from bridge.sinks.alerts.delivery import (
    AttemptResult,
    DeliveryWorker,
    RetryPolicy,
    Sleep,
    WebhookSender,
    keep_for,
    wait_or_wake,
)
from bridge.sinks.alerts.displaced import DisplacedOutbox
from bridge.sinks.alerts.escalation import Escalator
from bridge.sinks.alerts.housekeeping import Housekeeping
from bridge.sinks.alerts.index import AlertIndex
from bridge.sinks.alerts.kept import KeptChanges
from bridge.sinks.alerts.metrics import AlertMetrics, DeliveryResult
from bridge.sinks.alerts.outbox import Outbox, unopenable_problem
from bridge.sinks.alerts.payload import build_payloads
from bridge.sinks.alerts.pending import PendingConditions
from bridge.sinks.alerts.queue import BuildPayloads
from bridge.sinks.alerts.records import (
    Acknowledgement,
    ActiveCounts,
    AlertDetail,
    AlertRecord,
    Applied,
    Delivery,
    DeliveryState,
    Escalated,
    Recipients,
)
from bridge.sinks.alerts.refusals import RefusalLog
from bridge.sinks.alerts.sources import (
    SOURCE_TYPES,
    AlertEvent,
    batch_changes,
)
from bridge.sinks.alerts.states import AlertStates
from bridge.sinks.alerts.thread import DbThread
from bridge.sinks.alerts.vetting import DeliveryVetting
from bridge.tracing import ClientSpan

if TYPE_CHECKING:  # the receivers file's models: imported by Settings when it has receivers
    from bridge.receivers import AlertmanagerConfig, Receiver

__all__ = ["HIGH_WATER", "MAX_OPEN_ALERTS", "SUBSCRIBED_INSTANCES", "AlertSink", "alert_sink"]

_logger = logging.getLogger(__name__)

# The work queue of a shared transport is exactly what this stage takes.
SUBSCRIBED_INSTANCES: Final = tuple(sorted(WORK_QUEUE_INSTANCES))
# The share of EXESDB_ALERT_QUEUE_SIZE from which HTTP ingest refuses new work (503).
HIGH_WATER: Final = 0.8
# Kept from what is left of EXESDB_SHUTDOWN_TIMEOUT_MS for stopping the workers once the queue
# is drained (at most a fifth of it).
_CLOSE_MARGIN_SECONDS: Final = 1.0
# Open (firing or acknowledged) alerts kept at most; new ones beyond are refused and counted
# (an event alert from nine tenths of it: transitions.open_cap).
MAX_OPEN_ALERTS: Final = 50_000
# Health readings this many health intervals apart are a silence (as the health collector's own
# are), when that is longer than EXESDB_ALERT_RESOLVE_TIMEOUT_MS.
_SILENT_INTERVALS: Final = 2.5
# Ingest's answer to a batch holding alerts while the outbox cannot store one (KeptChanges).
_OUTBOX_REFUSING: Final = (
    "the alert outbox cannot store alerts now (its disk full, or failing): the batch is not"
    " taken; send it again"
)
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

Publish = Callable[[str, Message], Any]


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
        self._recorder = recorder
        self._clock = clock
        # What a batch's events are dated by: the coordinator's clock (Redis's), and when every
        # message the queue holds was taken in after.
        self._dates = BatchDates(coordinator, clock=clock, monotonic=monotonic)
        self._random = random
        self._sleep = sleep
        self._alertmanager_interval = alertmanager_interval
        self._max_open = max_open_alerts
        self._resolve_after = settings.alert_resolve_timeout_ms / 1000
        self._db = db or DbThread(clock=monotonic)
        self._min_severity = settings.webhook_min_severity
        # Origins whose links in a SystemAlert's metadata are shown whole (sources.details_of).
        self._links = frozenset(settings.alert_link_origins)
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
                self._resolve_after,
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
        self._refusals = RefusalLog(max_open_alerts, clock=monotonic)
        self._errors = bus.metrics.handler_errors.labels(self.name).inc
        self._announcer = AckAnnouncer(bus, self.holds_work_queue)
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
        # On the in-process bus a batch the outbox refuses is kept and stored again (on Redis
        # the work queue hands its frames back).
        self._kept = KeptChanges(
            self._apply,
            clock=clock,
            sleep=sleep,
            dropped=lambda: self.subscription.inbox.drops,
            queue_size=settings.alert_queue_size,
            on_error=self._errors,
            on_fault=self._refuse_ingest,
        )
        self._kept_fault = False
        # An outbox file deleted or replaced under the bridge (its folder removed): checked
        # before each housekeeping pass.
        self._displaced = DisplacedOutbox(self._outbox_displaced, self._refusing)
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
        self._house_wake = asyncio.Event()
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
        settings = self.settings
        if self._outbox is None:
            try:
                self._outbox = await self._db.call(Outbox.in_dir, settings.state_dir)
            except (OSError, sqlite3.Error) as exc:
                raise _outbox_failure("open", settings.state_dir, exc) from exc
        # (closed by aclose, however start-up ends.) The receivers file as load_settings read
        # it (Settings.receivers_file), keyed as the outbox keys its receivers.
        try:
            self.receivers, self._alertmanager_section = settings.webhook_receivers(
                ReceiverKeys(self._outbox.receiver_secret)
            )
        except ConfigError as exc:
            raise ConfigError(
                [f"EXESDB_WEBHOOK_CONFIG_FILE: {problem}" for problem in exc.problems]
            ) from exc
        self._prepared = True

    async def start(self) -> None:
        """Open the outbox (unless prepared); start the delivery workers, housekeeping and
        Alertmanager poster."""
        if self._started:
            return
        self._started = True
        await self.prepare()
        await self._claim_receiver_rows()
        escalator = self._make_escalator()
        self._states = self._make_states(
            None if self._shared is None else self._make_index(self._shared, escalator)
        )
        self.senders = {receiver.key: self._make_sender(receiver) for receiver in self.receivers}
        vetting = DeliveryVetting(
            states=self.states,
            alerts=self.outbox.alerts,
            queue=self.outbox.queue,
            db=self._db,
            lease=self._lease,
            withheld=self.metrics.withheld,
            changed=self._house_wake.set,  # the depth gauges
            clock=self._clock,
        )
        self.workers = {r.key: self._make_worker(r, vetting) for r in self.receivers}
        self.alertmanager = self._make_alertmanager()
        self._housekeeping = housekeeping = self._make_housekeeping(escalator)
        for sender in self.senders.values():
            await sender.start()
        await self._dead_letter_orphans()
        await housekeeping.refresh_gauges()
        # Dead letters left from before the start wait for a person: how to see and resend them.
        self._resend_hint = await self._db.call(self.outbox.dead_letters.resend_hint)
        self._ready.set()
        for worker in self.workers.values():
            worker.start()
        if self.alertmanager is not None:
            self.alertmanager.start()
        housekeeping.start()
        self._log_started()

    async def _claim_receiver_rows(self) -> None:
        """Give each configured receiver its queue, and the rows kept under its older keys."""
        queue = self.outbox.queue
        receivers = self.receivers
        # Receivers without a secret are warned of with the settings (start_warnings).
        try:
            await self._db.call(queue.queue_for, [receiver.key for receiver in receivers])
            # A configured receiver's rows stay its own, even when its url_file is another's.
            stored = await self._db.call(queue.receiver_keys) - {r.key for r in receivers}
            for receiver in receivers:
                for old in (*receiver.legacy_keys, *ReceiverKeys.spellings(receiver.key, stored)):
                    await self._db.call(queue.move_receiver_rows, old, receiver.key)
        except (OSError, sqlite3.Error) as exc:
            # Opened, but not written to (a full disk): said as the opening's failure is.
            raise _outbox_failure("write", self.settings.state_dir, exc) from exc

    def _make_escalator(self) -> Escalator:
        return Escalator(
            escalate=self._escalate,
            after_seconds=self.settings.escalation_after_ms / 1000,
            publish=self._publish,
            notify=self._changed,
            clock=self._clock,
        )

    def _make_states(self, index: AlertIndex | None) -> AlertStates:
        """Where alert states change: the outbox, or through ``index`` on Redis."""
        settings = self.settings
        return AlertStates(
            self.outbox.alerts,
            db=self._db,
            index=index,
            max_open=self._max_open,
            resolve_after=self._resolve_after,
            # A health condition alert no reading keeps up ends when its series would leave
            # /metrics.
            stale_after=settings.series_ttl_ms / 1000,
            hold_seconds=self._pending.for_seconds,
            # A message sent before a resolve is refused once the replay window has passed
            # since: remembering the resolve longer (than for those taken in by then, however
            # long they wait in the queue: batch_dates) would stop nothing more.
            remember_for=settings.replay_window_ms / 1000,
            holding=self.holds_work_queue,
            monotonic=self._monotonic,
        )

    def _make_housekeeping(self, escalator: Escalator) -> Housekeeping:
        settings = self.settings
        return Housekeeping(
            self.outbox,
            db=self._db,
            states=self.states,
            escalator=escalator,
            pending=self._pending,
            metrics=self.metrics,
            labels={key: worker.label for key, worker in self.workers.items()},
            holds_work_queue=self.holds_work_queue,
            changed=self._changed,
            on_error=self._errors,
            renotify_after=settings.webhook_renotify_interval_ms / 1000,
            dead_letter_ttl=settings.webhook_dead_letter_ttl_ms / 1000,
            wake=self._house_wake,
            clock=self._clock,
            sleep=self._sleep,
            watch=self._displaced.check,
        )

    def _make_index(self, state: SharedState, escalator: Escalator) -> AlertIndex:
        """The open alerts kept in Redis (``state``) for the next work-queue holder."""
        return AlertIndex(
            state,
            alerts=self.outbox.alerts,
            queue=self.outbox.queue,
            db=self._db,
            clock=self._clock,
            limit=self._max_open,
            holding=self.holds_work_queue,
            notify=self._changed,
            escalated=escalator.announce,
            withheld=self.metrics.withheld,
        )

    def _make_sender(self, receiver: Receiver) -> WebhookSender:
        return WebhookSender(
            receiver,
            clock=self._clock,
            monotonic=self._monotonic,
            record_span=self._record_span,
            tokens=self._tokens,
        )

    def _make_worker(self, receiver: Receiver, vetting: DeliveryVetting) -> DeliveryWorker:
        """``receiver``'s delivery worker, sending with its sender (made first), each delivery
        checked by ``vetting`` before it is tried."""
        return DeliveryWorker(
            receiver.key,
            label=receiver.label,
            queue=self.outbox.queue,
            db=self._db,
            sender=self.senders[receiver.key],
            policy=self.policy,
            group_wait=self.settings.webhook_group_wait_ms / 1000,
            build=self._builder(receiver),
            keep=keep_for(receiver),
            vet=vetting.vet if receiver.send_resolved else vetting.without_resolved,
            report=self._report,
            clock=self._clock,
            sleep=self._sleep,
            on_error=self._errors,
            told_again=self.metrics.told_again,
        )

    def _make_alertmanager(self) -> AlertmanagerPoster | None:
        """The Alertmanager poster, when ``EXESDB_ALERTMANAGER_URL`` or the receivers file's
        ``alertmanager`` section names one (the variable first)."""
        settings, section = self.settings, self._alertmanager_section
        alertmanager_url = settings.alertmanager_url or (section.url if section else None)
        if not alertmanager_url:
            return None
        self.metrics.posting()
        timeout = section.timeout if section is not None and section.timeout else None
        return AlertmanagerPoster(
            alertmanager_url,
            alerts=self.outbox.alerts,
            db=self._db,
            external_url=lambda: self.external_url,
            timeout=timeout or settings.webhook_timeout_ms / 1000,
            client=ClientSettings(
                section.http_config if section is not None else None,
                clock=self._monotonic,
                tokens=self._tokens,
            ),
            interval=self._alertmanager_interval,
            count=self.metrics.posted,
            clock=self._clock,
            sleep=self._sleep,
            random=self._random,
            on_error=self._errors,
            record_span=self._record_span,
            holding=self.holds_work_queue,
            reachable=self.work_queue_reachable,
        )

    async def _dead_letter_orphans(self) -> None:
        """Dead-letter what waits for a receiver no longer configured, and say so."""
        dead_letters = self.outbox.dead_letters
        orphaned = await self._db.call(dead_letters.add_orphans, self._clock(), self._build)
        if orphaned:
            _logger.warning(
                "alerts: dead-lettered %d delivery(ies) for receivers no longer in"
                " EXESDB_WEBHOOK_URLS nor EXESDB_WEBHOOK_CONFIG_FILE; once the receiver is"
                " configured again, `exesdb-bridge outbox retry --all` sends them; if it is not"
                " to be, `exesdb-bridge outbox drop --receiver ORIGIN` deletes them",
                orphaned,
            )

    def _log_started(self) -> None:
        depth = self.metrics.depth
        _logger.info(
            "alerts: %d webhook receiver(s)%s; outbox %s: %d pending, %d dead-lettered%s",
            len(self.workers),
            ", Alertmanager " + self.alertmanager.shown_url if self.alertmanager else "",
            self.outbox.path.absolute(),  # what `outbox list` run from another folder needs
            depth.queued + depth.pending,
            depth.dead,
            self._resend_hint,
        )
        for receiver in self.receivers:  # the keys outbox list and the pages show, told apart
            _logger.info("alerts: webhook receiver %s is %s", receiver.label, receiver.source)

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
        if kept := self._kept.unready:
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
        stop every task, close the outbox; idempotent. Cancelled (the deadline passed), it
        still stops its tasks and closes its sessions and the outbox."""
        if self._closed:
            return
        self._closed = True
        if self._housekeeping is not None:
            self._housekeeping.stop()  # no pass more while the queue drains
        self._shutdown.begin()  # the bridge's began already; one of the sink's own, now
        cancelled = False
        try:
            # Drain first: what the bus already queued for us reaches the outbox before it
            # closes. The HTTP listener closed before us, so the backlog is bounded; so is the
            # wait: what the stages before us left, less a margin for what follows.
            # A start that failed (no outbox) never becomes ready: the handler would wait on it
            # until the deadline, so what is queued is left at once.
            left = self._shutdown.left() if self._ready.is_set() else 0.0
            # On Redis: stop taking work-queue entries first (what is not taken yet goes to the
            # next holder), then drain (each change also kept in Redis), then give the lease up
            # at once.
            if self._lease is not None:
                await self._lease.stop_reading()
            await self.subscription.stop(left - min(_CLOSE_MARGIN_SECONDS, left / 5))
            if self._lease is not None:
                try:
                    # Within half of what is left: the workers and the outbox close after.
                    await self._lease.release(self._shutdown.left() / 2)
                except Exception:
                    self._errors()
                    _logger.exception("alerts: giving the work-queue lease up failed")
        except asyncio.CancelledError:
            cancelled = True  # while draining: no later await would be cancelled again
            raise
        finally:
            await self._stop(cancelled)

    async def _stop(self, cancelled: bool) -> None:
        """Stop the workers and close the outbox; ``cancelled``: the stop's deadline passed
        already (the caller's cancellation goes on), so everything closes at once."""
        # Attempts in flight end within half of what is left of the deadline (less the margin
        # for the outbox): each recorded is one a receiver that took it is not sent again, and
        # the stages closing after this sink (OTLP's last export, the bus) keep the other half.
        left = self._shutdown.left()
        loop = asyncio.get_running_loop()
        until = loop.time() + min(left / 2, left - min(_CLOSE_MARGIN_SECONDS, left / 5))
        at_once = cancelled
        try:
            # The bus handler first, whatever it was doing: cancelled mid-drain (or before it),
            # it would still be storing a batch, and retry it, on the outbox closed below. Its
            # batch then is not acknowledged (on Redis the work queue hands it back at the next
            # start) and the stop says how many messages it left.
            await self.subscription.stop(0.0)
        except asyncio.CancelledError:
            at_once = True
        for worker in self.workers.values():
            worker.stop()
        try:
            for worker in self.workers.values():
                await worker.aclose(0.0 if at_once else until - loop.time())
        except asyncio.CancelledError:
            # The stop's deadline passed meanwhile: the rest closes at once (the outbox too,
            # without waiting for its thread), then the cancellation goes on.
            at_once = True
            for worker in self.workers.values():
                await worker.aclose()
        if self.alertmanager is not None:
            await self.alertmanager.aclose()
        if self._housekeeping is not None:
            await self._housekeeping.aclose()
        for sender in self.senders.values():
            await sender.aclose()
        try:
            if not at_once:
                await self._db.aclose()  # what is queued on it finishes first
        finally:
            # Cancelled while waiting for it: committed transactions are on disk (each call
            # is one), and a call queued after this one fails on the closed file. One under
            # way is not waited for here, nor on another thread: it closes the file as it ends
            # (``Database.close``), and the thread ends after it.
            self._db.close(wait=False)
            if self._outbox is not None:
                self._outbox.close()
        if at_once and not cancelled:
            raise asyncio.CancelledError

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

    # -- the bus stage --

    async def _on_batch(self, envelopes: Sequence[Envelope]) -> None:
        subscription = self.subscription
        await self._dates.handle(
            subscription.mark, subscription.depth, lambda: self._take(envelopes)
        )

    async def _take(self, envelopes: Sequence[Envelope]) -> None:
        await self._ready.wait()  # messages may arrive between bus start and ours
        changes = batch_changes(
            envelopes,
            pending=self._pending,
            may_be_active=self.outbox.alerts.maybe_active_ids,
            links=self._links,
            min_severity=self._min_severity,
        )
        if not changes:
            return
        if self._lease is None:
            applied = await self._kept.store(changes, len(envelopes))
        else:
            applied = await self._apply(changes, self._clock())
        if applied.refused:
            self.metrics.refused(applied.refused)
            self._refusals.refused(applied.refused)
        if applied.forgotten:
            self.metrics.resolves_forgotten(applied.forgotten)
            self._refusals.forgotten(applied.forgotten)
        if applied.stale:
            self.metrics.stale_events(applied.stale)
            _logger.debug(
                "alerts: %d event(s) sent before the event that last changed their alert left"
                " out as stale",
                applied.stale,
            )
        if applied.changed:
            self._changed()

    async def _outbox_displaced(self) -> str | None:
        outbox = self._outbox
        return None if outbox is None else await self._db.call(outbox.displaced)

    def _refuse_ingest(self, refusing: bool) -> None:
        self._kept_fault = refusing
        self._refusing()

    def _refusing(self) -> None:
        # While a batch is kept, ingest answers 503 not_committed to a batch holding alerts:
        # taken, it would only wait in memory, lost to a crash, where the sender keeps it. So
        # while the outbox file is gone: taken, it would be lost at the next start.
        kept = _OUTBOX_REFUSING if self._kept_fault else None
        self.subscription.refusing = self._displaced.problem or kept

    async def _apply(self, changes: Sequence[AlertEvent | Acknowledgement], now: float) -> Applied:
        dates = await self._dates.dates()
        return await self.states.apply(changes, now, dates.latest, dates.arrived_after)

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

    def _builder(self, receiver: Receiver) -> BuildPayloads:
        """The payloads of ``receiver``: at most ``max_alerts`` alerts each."""

        def build(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
            return build_payloads(
                records, max_alerts=receiver.max_alerts, external_url=self.external_url
            )

        return build

    def _record_span(self, span: ClientSpan) -> None:
        for recorder in self._client_spans():
            recorder.record_client_span(span)

    def _report(
        self, delivery: Delivery, result: AttemptResult, state: DeliveryState, attempt: int
    ) -> None:
        outcome = DeliveryResult.of(result, state)
        self.metrics.attempted(outcome, result.seconds)
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
        self._house_wake.set()

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
        answering.
        """
        made = await self.states.acknowledge(ack, self._clock())
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


def _outbox_failure(doing: str, state_dir: str, exc: BaseException) -> ConfigError:
    """The start-up error for an outbox that could not be opened or written (``doing``)."""
    return ConfigError([unopenable_problem(doing, state_dir, exc)])
