"""Helpers for the alert sink's tests: alert events, envelopes, a clock, an in-process bridge,
outboxes that can be made to fail as a SIGKILL would and the fixtures that open them, and a
transport with a work-queue lease the test hands out."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.backoff import Backoff
from bridge.bus import (
    Coordinator,
    Envelope,
    LocalCoordinator,
    MemoryTransport,
    Transport,
    TransportCapabilities,
    new_message_id,
)
from bridge.component import Context, Deadline
from bridge.messages import Message, MetricAlert, SystemAlert
from bridge.settings import Settings
from bridge.sinks.alerts import AlertSink, Outbox
from bridge.sinks.alerts.alert_store import AlertStore
from bridge.sinks.alerts.delivery import DeliveryWorker, RetryPolicy, WebhookSender
from bridge.sinks.alerts.payload import build_payloads
from bridge.sinks.alerts.queue import BuildPayloads, Keep
from bridge.sinks.alerts.records import AlertRecord, Applied, Delivery, DeliveryState
from bridge.sinks.alerts.sink import MAX_OPEN_ALERTS
from bridge.sinks.alerts.sources import AlertEvent
from bridge.sinks.alerts.thread import DbThread
from bridge.sinks.alerts.transitions import Plan
from tests.support import ADMIN_TOKEN, ManualClock, async_wait_until

T0 = 1_800_000_000.0
URL = "http://127.0.0.1:9/hook"
AT = datetime.fromtimestamp(T0, UTC)
M = TypeVar("M", bound=Message)
_holding: set[asyncio.Task[None]] = set()


def envelope(
    payload: Message, topic: str | None = None, node: str = "bridge@host", id: str = "m" * 16
) -> Envelope:
    """A verified-looking envelope carrying ``payload``."""
    now = datetime.now(UTC)
    return Envelope(id, payload.INSTANCE, topic or payload.TAG, payload.TAG, node, now, payload)


def observe(outbox: Outbox, event: AlertEvent, now: float) -> AlertRecord | None:
    """Apply one alert event; the alert when receivers must hear of it, else None."""
    changed = outbox.alerts.apply([event], now).changed
    return changed[0] if changed else None


def stored(outbox: Outbox, alert_id: str) -> AlertRecord | None:
    """The alert named ``alert_id`` as the outbox holds it, if it does."""
    found = outbox.alerts.find(alert_id=alert_id, limit=1)
    return found[0] if found else None


class Watcher:
    """Collects the bus messages a test wants to see."""

    def __init__(self) -> None:
        self.seen: list[Envelope] = []

    def __call__(self, envelope: Envelope) -> None:
        self.seen.append(envelope)

    def of(self, model: type[M]) -> list[M]:
        """The payloads of one type seen so far."""
        return [e.payload for e in self.seen if isinstance(e.payload, model)]


@asynccontextmanager
async def alert_bridge(
    state_dir: Path,
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    serve_http: bool = True,
    alertmanager_interval: float = 60.0,
    transport: Transport | None = None,
    max_open_alerts: int = MAX_OPEN_ALERTS,
    db: DbThread | None = None,
    coordinator: Coordinator | None = None,
    **env: str,
) -> AsyncIterator[tuple[Bridge, AlertSink, Watcher]]:
    """An in-process bridge whose only component is the alert sink, and a bus watcher.

    ``env`` holds settings by variable name (``EXESDB_WEBHOOK_URLS=...``); ``db`` is the
    sink's database thread (see ``hold``); ``clock`` its wall clock, ``monotonic`` the clock it
    measures how long it has run by (a test of the stale wait gives it the same ManualClock);
    ``coordinator`` the sink's, when not the bus's (one on ``clock``, whose dates it caps).
    Health readings alert at once unless ``env`` sets ``EXESDB_ALERT_FOR_MS`` (the tests of the
    hold do).
    """
    settings = Settings(
        **{  # type: ignore[arg-type]
            "EXESDB_STATE_DIR": str(state_dir),
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
            "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
            "EXESDB_NODE": "bridge-test",
            "EXESDB_ALERT_FOR_MS": "0",
            **env,
        }
    )
    options: dict[str, Any] = {} if coordinator is None else {"coordinator": coordinator}
    bridge, sink = sink_bridge(
        settings,
        transport=transport,
        clock=clock,
        monotonic=monotonic,
        alertmanager_interval=alertmanager_interval,
        max_open_alerts=max_open_alerts,
        db=db,
        **options,
    )
    watcher = Watcher()
    bridge.bus.subscribe("test-watcher", watcher, instances=["ex_esdb_alerts"])
    try:
        await bridge.start(serve_http=serve_http)
        yield bridge, sink, watcher
    finally:
        await bridge.aclose()


def sink_bridge(
    settings: Settings,
    *,
    transport: Transport | None = None,
    bridge_deadline: bool = False,
    **options: Any,
) -> tuple[Bridge, AlertSink]:
    """A bridge (with a registry of its own) whose only component is an AlertSink, and the sink.

    The sink is made from the bridge's context as ``alert_sink`` makes it (settings, bus,
    publish, registry, recorder, the work-queue lease, shared state, coordinator and the port
    bound; with ``bridge_deadline`` the bridge's stop deadline for its components, else one of
    its own as long, begun when the sink stops), with ``options`` (``clock``, ``db``, …) on
    top. Nothing is started.
    """
    sinks: list[AlertSink] = []

    def factory(context: Context) -> AlertSink:
        sink = AlertSink(
            context.settings,
            bus=context.bus,
            publish=context.integration.publish,
            registry=context.registry,
            recorder=context.recorder,
            lease=context.capabilities.lease,
            state=context.capabilities.state,
            shutdown=context.shutdown if bridge_deadline else Deadline(context.shutdown.seconds),
            bound_port=context.bound_port,
            **{"coordinator": context.capabilities.coordinator, **options},
        )
        sinks.append(sink)
        return sink

    bridge = Bridge(
        settings, registry=CollectorRegistry(), transport=transport, components=[factory]
    )
    return bridge, sinks[0]


def system_alert(
    alert_id: str,
    severity: str = "critical",
    node: str = "n1",
    source: str = "test",
    metadata: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> SystemAlert:
    """A SystemAlert with the given id (sent ``at``, else now)."""
    alert = SystemAlert(
        alert_id=alert_id,
        severity=severity,
        category="system",
        title=f"alert {alert_id}",
        description="something broke",
        source=source,
        node=node,
        metadata=metadata or {},
    )
    return alert if at is None else alert.model_copy(update={"timestamp": at})


def critical_cpu(node: str = "n1") -> MetricAlert:
    """A sender's critical alert: ``node``'s CPU at 97%, over its maximum of 95."""
    return MetricAlert(
        metric_name="cpu_usage_percent",
        current_value=97,
        threshold_value=95,
        threshold_type="max",
        severity="critical",
        node=node,
    )


async def hold(db: DbThread) -> threading.Event:
    """Block ``db`` (the sink's database thread) until the returned event is set: the sink's
    next outbox call waits behind it. Returns once the thread is blocked."""
    release = threading.Event()
    blocked = threading.Event()

    def block() -> None:
        blocked.set()
        release.wait(30)

    task = asyncio.get_running_loop().create_task(db.call(block))
    _holding.add(task)  # a reference, until it ends
    task.add_done_callback(_holding.discard)
    await async_wait_until(blocked.is_set, what="the database thread blocked")
    return release


def event(
    alert_id: str = "node_failure:n1", status: str = "firing", **changes: object
) -> AlertEvent:
    """An alert event with sensible defaults."""
    base = AlertEvent(
        alert_id=alert_id,
        alertname="node_failure",
        status="firing",
        severity="critical",
        category="system",
        node="n1",
        title="node n1 is down",
        description="silent",
        requires_ack=True,
        at=AT,
    )
    return replace(base, status=status, **changes)  # type: ignore[arg-type]


def returns(nodes: Iterable[int], first: float, step: float = 0.001) -> list[AlertEvent]:
    """The returns of nodes ``n<i>`` for each ``i`` of ``nodes``, their alerts unknown: each
    resolves ``node_failure:n<i>``, dated ``first`` plus ``i`` times ``step`` seconds (a
    millisecond; 0: all at ``first``)."""
    return [
        event(f"node_failure:n{i}", "resolved", at=datetime.fromtimestamp(first + i * step, UTC))
        for i in nodes
    ]


class CrashingStore(AlertStore):
    """An alert store that dies (as SIGKILL would) before storing its next plan."""

    crash = False

    def commit(self, plan: Plan, *, tell: bool = False) -> Applied:
        if self.crash:
            raise RuntimeError("killed before the outbox stored the plan")
        return super().commit(plan, tell=tell)


class CrashingOutbox(Outbox):
    """An outbox whose alert store is a ``CrashingStore`` (``alerts.crash``)."""

    alerts: CrashingStore

    def __init__(self, path: Path, *, urls: Collection[str] = ()) -> None:
        super().__init__(path, urls=list(urls))
        self.alerts = CrashingStore(self.database, self.queue)


@pytest.fixture
def db() -> Iterator[DbThread]:
    """A database thread for the outboxes."""
    thread = DbThread()
    yield thread
    thread.close()


@pytest.fixture
def boxes(tmp_path: Path) -> Iterator[dict[str, CrashingOutbox]]:
    """Each replica's outbox (``boxes["a"]``, …), one webhook URL; closed afterwards."""
    opened: dict[str, CrashingOutbox] = {}

    class Boxes(dict):  # type: ignore[type-arg]
        def __missing__(self, node: str) -> CrashingOutbox:
            box = CrashingOutbox(tmp_path / f"{node}.sqlite3", urls=[URL])
            opened[node] = self[node] = box
            return box

    yield Boxes()
    for box in opened.values():
        box.close()


def one_each(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
    """A payload builder: one delivery per alert, the body being the alert id."""
    return [(r.alert_id.encode(), [r.alert_id]) for r in records]


def dead_lettered(box: Outbox, status: int = 404) -> list[Delivery]:
    """Each of ``box``'s deliveries (every one, newest first) finished as a dead letter at
    ``T0``, its last answer ``status``."""
    deliveries = box.queue.deliveries(limit=None)
    for delivery in deliveries:
        box.queue.finish_attempt(
            delivery.id,
            state=DeliveryState.DEAD,
            next_attempt_at=T0,
            status=status,
            error=f"HTTP {status}",
            now=T0,
        )
    return deliveries


def first_attempt_failed(
    box: Outbox,
    url: str,
    build: BuildPayloads,
    retry_at: float,
    status: int,
    keep: Keep | None = None,
) -> Delivery:
    """The one delivery ``url``'s window makes at T0 of what was observed, its first attempt
    failed then with HTTP ``status`` and its retry due at ``retry_at`` (the window held), as it
    was before that attempt."""
    assert box.queue.group(url, T0, 0.0, build, keep) == 1
    due = box.queue.next_due(url, T0)
    assert due is not None
    box.queue.finish_attempt(
        due.id,
        state=DeliveryState.PENDING,
        next_attempt_at=retry_at,
        status=status,
        error=f"HTTP {status}",
        now=T0,
    )
    return due


def seed(path: Path, statement: str, params: Sequence[object] = ()) -> None:
    """Write a row into the outbox file through a connection of our own (committed at once)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(statement, params)
    finally:
        db.close()


def query_plans(
    outbox: Outbox, calls: Callable[[], object], kinds: tuple[str, ...] = ("SELECT", "WITH")
) -> list[list[str]]:
    """SQLite's query plan of each statement ``calls`` makes on the outbox file that begins with
    one of ``kinds`` (in any letter case; its reads, by default), line by line."""
    statements: list[str] = []
    with outbox.database.read() as db:
        db.set_trace_callback(statements.append)
    try:
        calls()
    finally:
        with outbox.database.read() as db:
            db.set_trace_callback(None)
    with outbox.database.read() as db:
        return [
            [str(row["detail"]) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            for sql in dict.fromkeys(statements)  # each once: SQLite may trace one twice
            if sql.lstrip().upper().startswith(tuple(kind.upper() for kind in kinds))
        ]


def insert_deliveries(
    outbox: Outbox, rows: Sequence[tuple[str, Sequence[str], str, float | None]]
) -> None:
    """Add deliveries to the outbox in the order given, each ``(receiver key, alert ids, state,
    finished at)``, as rows written in one transaction (their triggers fire as ever)."""
    with outbox.database.transaction() as db:
        db.executemany(
            "INSERT INTO deliveries (id, url, body, alert_ids, created_at, next_attempt_at,"
            " state, finished_at) VALUES (?, ?, x'7b7d', ?, 0, 0, ?, ?)",
            [
                (new_message_id(), url, json.dumps(list(alert_ids)), state, finished_at)
                for url, alert_ids, state, finished_at in rows
            ],
        )


def webhook_worker(
    outbox: Outbox,
    db: DbThread,
    sender: WebhookSender,
    clock: ManualClock,
    *,
    deadline: float,
    group_wait: float = 0.0,
    **options: Any,
) -> DeliveryWorker:
    """A worker of ``sender``'s receiver on ``clock``: retries after 1 s doubling to 4 s
    (random() = 0.5) until ``deadline``, payloads of up to 50 alerts, attempts reported to
    nobody; ``options`` (``keep``, ``vet``) as DeliveryWorker takes them."""
    return DeliveryWorker(
        sender.receiver.key,
        queue=outbox.queue,
        db=db,
        sender=sender,
        policy=RetryPolicy(Backoff(base=1.0, cap=4.0, rng=lambda: 0.5), deadline=deadline),
        group_wait=group_wait,
        build=lambda records: build_payloads(records, max_alerts=50, external_url="http://b"),
        report=lambda delivery, result, state, number: None,
        clock=clock,
        **options,
    )


class Lease:
    """A work-queue lease the test hands out (as the Redis transport's)."""

    leading = False
    holder: str | None = None
    reachable = True
    kept = False

    def on_lead(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Taking the lease is the test's doing here: nothing to call back."""

    def require(self, check: Callable[[], str | None]) -> None:
        """Giving the lease up is the test's doing here: nothing to check."""

    async def stop_reading(self) -> None:
        """Nothing is read from a work queue here."""

    async def release(self, within: float = 2.0) -> None:
        """Nothing to give up here."""

    async def first_answer(self, within: float) -> bool:
        """The test's store answers from the start, when reachable."""
        return self.reachable


class LeaseTransport(MemoryTransport):
    """The in-process transport with a work-queue lease (as on Redis)."""

    def __init__(self) -> None:
        super().__init__()
        self.lease = Lease()

    @property
    def capabilities(self) -> TransportCapabilities:
        return TransportCapabilities(shared=False, coordinator=LocalCoordinator(), lease=self.lease)
