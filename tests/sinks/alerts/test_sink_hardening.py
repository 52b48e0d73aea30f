"""The alert sink under load and over time: batch commits, ingest pushback and durability,
auto-resolution, the open-alert cap, exesdb_alerts_active, orphaned URLs, bad ack bodies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from bridge.app import Bridge
from bridge.bus import SIGNATURE_HEADER, Envelope, Keyring, new_message_id
from bridge.errors import ConfigError
from bridge.http import build_app
from bridge.messages import (
    AlertAck,
    ComponentHealth,
    Message,
    MetricAlert,
    NodeHealth,
    NodeLifecycle,
    SecurityAlert,
    utc_now,
)
from bridge.settings import Settings
from bridge.sinks.alerts import AlertSink, Outbox, alert_sink
from bridge.sinks.alerts.records import Acknowledgement, DeliveryState
from bridge.sinks.alerts.thread import DbThread
from tests.sinks.alerts.helpers import (
    T0,
    alert_bridge,
    event,
    hold,
    observe,
    one_each,
    sink_bridge,
    stored,
    system_alert,
)
from tests.sinks.alerts.test_sink import AUTH, call, field_of
from tests.support import TEST_SECRET, ManualClock, async_wait_until

INGEST: dict[str, Any] = {"EXESDB_INGEST": "true", "SECRET_KEY_BASE": TEST_SECRET}


def ndjson(*payloads: Message, topic: str = "disk_full") -> bytes:
    """Signed-ingest body: one envelope per payload."""
    lines = []
    for payload in payloads:
        now = utc_now()
        lines.append(
            Envelope(
                new_message_id(), payload.INSTANCE, topic, payload.TAG, "app@host", now, payload
            ).to_bytes()
        )
    return b"\n".join(lines)


async def ingest(bridge: Any, body: bytes) -> tuple[int, dict[str, str], Any]:
    """POST a signed NDJSON body; (status, headers, JSON body)."""
    host, port = bridge.address
    headers = {
        "Content-Type": "application/x-ndjson",
        SIGNATURE_HEADER: Keyring.from_secrets(TEST_SECRET).sign_header(body, int(time.time())),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://{host}:{port}/v1/messages", data=body, headers=headers) as answer,
    ):
        return answer.status, dict(answer.headers), await answer.json()


@contextlib.asynccontextmanager
async def ingest_served(bridge: Any) -> AsyncIterator[None]:
    """Serve ``bridge``'s HTTP API (a 0.2 s commit wait) on a free port, where ``ingest`` posts."""
    runner = web.AppRunner(build_app(bridge, commit_wait_seconds=0.2))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        bridge.address = ("127.0.0.1", runner.addresses[0][1])
        yield
    finally:
        await runner.cleanup()


def fail_first(sink: Any, failures: list[Exception]) -> None:
    """Make the sink's outbox raise ``failures`` (the last first) before it applies again."""
    real_apply = sink.outbox.alerts.apply

    def failing(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real_apply(*args, **kwargs)

    sink.outbox.alerts.apply = failing


def taken(sink: Any) -> bool:
    """True once the sink's handler has taken everything queued and is handling it."""
    return bool(sink.subscription.depth == 0 and not sink.subscription.idle)


def queue_for(state_dir: Path, url: str, alert_id: str) -> None:
    """Queue ``alert_id`` for ``url`` in the outbox file, through a connection of our own."""
    db = sqlite3.connect(state_dir / "alerts.sqlite3", isolation_level=None)
    try:
        db.execute(
            "INSERT OR IGNORE INTO queued (url, alert_id, queued_at) VALUES (?, ?, ?)",
            (url, alert_id, 1.0),
        )
    finally:
        db.close()


def committed_ids(state_dir: Path) -> set[str]:
    """Alert ids committed to the outbox, read through a connection of our own."""
    db = sqlite3.connect(state_dir / "alerts.sqlite3")
    try:
        return {row[0] for row in db.execute("SELECT alert_id FROM alerts")}
    finally:
        db.close()


async def test_a_batch_of_alerts_is_committed_in_one_transaction(tmp_path: Path) -> None:
    """Alerts queued together reach the outbox in one commit, not one fsync'd commit each."""
    db = DbThread()
    async with alert_bridge(tmp_path, serve_http=False, db=db) as (bridge, sink, _):
        commits: list[int] = []
        real_apply = sink.outbox.alerts.apply

        def counting_apply(*args: Any, **kwargs: Any) -> Any:
            applied = real_apply(*args, **kwargs)
            commits.append(len(args[0]))  # once committed
            return applied

        sink.outbox.alerts.apply = counting_apply  # type: ignore[method-assign]
        release = await hold(db)
        for number in range(300):
            bridge.bus.publish("disk_full", system_alert(f"b{number}"))
        await async_wait_until(lambda: taken(sink), what="the alerts taken by the handler")
        release.set()
        await async_wait_until(lambda: sum(commits) == 300, what="300 alerts applied")
        assert len(commits) <= 3  # the first (held) message, then the backlog at once
        assert max(commits) >= 290
        assert len(committed_ids(tmp_path)) == 300


@contextlib.asynccontextmanager
async def stuck_with_an_alert(
    tmp_path: Path, shutdown_ms: int
) -> AsyncIterator[tuple[Bridge, AlertSink]]:
    """A bridge of the alert sink whose outbox thread is stuck (until the context ends) and
    whose handler has an alert to store behind it; ``shutdown_ms``: its stop's deadline."""
    db = DbThread()
    env: dict[str, Any] = {
        "EXESDB_SHUTDOWN_TIMEOUT_MS": str(shutdown_ms),
        "EXESDB_WEBHOOK_URLS": "http://127.0.0.1:9/h",
    }
    async with alert_bridge(tmp_path, db=db, **env) as (bridge, sink, _):
        release = await hold(db)
        try:
            bridge.bus.publish("disk_full", system_alert("s1"))
            yield bridge, sink
        finally:
            release.set()


async def test_a_sink_stopped_past_the_deadline_still_closes_its_outbox(tmp_path: Path) -> None:
    """With the outbox's thread stuck past EXESDB_SHUTDOWN_TIMEOUT_MS, the bridge's stop cancels
    the alert sink, which has still stopped its workers and closed the outbox by then."""
    async with stuck_with_an_alert(tmp_path, 400) as (bridge, sink):
        await asyncio.wait_for(bridge.aclose(), 10)
        with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
            sink.outbox.queue.depth()


async def test_a_stop_keeps_its_deadline_while_an_outbox_transaction_is_under_way(
    tmp_path: Path,
) -> None:
    """A transaction stuck on the outbox's thread (a slow fsync, SQLite's busy wait) past
    EXESDB_SHUTDOWN_TIMEOUT_MS: the bridge's stop still ends at its deadline (the outbox is
    not closed under it, on the event loop), and the file closes once that transaction ends,
    its change committed."""
    db = DbThread()
    async with alert_bridge(tmp_path, db=db, EXESDB_SHUTDOWN_TIMEOUT_MS="400") as (
        bridge,
        sink,
        _,
    ):
        release = threading.Event()
        blocked = threading.Event()

        def stuck_transaction() -> None:
            with sink.outbox.database.transaction():
                sink.outbox.database.set_meta("stuck", "committed")
                blocked.set()
                release.wait(5)  # the file unreleased this long, when the stop waits for it

        stuck = asyncio.create_task(db.call(stuck_transaction))
        await async_wait_until(blocked.is_set, what="the transaction under way")
        began = time.monotonic()
        try:
            await asyncio.wait_for(bridge.aclose(), 10)
            took = time.monotonic() - began
        finally:
            release.set()
        await stuck
        assert took < 2.0
        await async_wait_until(
            lambda: closed(sink.outbox), what="the outbox closed after the transaction"
        )
    assert meta_value(tmp_path, "stuck") == "committed"


def closed(outbox: Outbox) -> bool:
    """Whether ``outbox``'s file is closed."""
    try:
        outbox.queue.depth()
    except sqlite3.ProgrammingError:
        return True
    return False


def meta_value(state_dir: Path, name: str) -> object:
    """A meta value committed to the outbox, read through a connection of our own."""
    db = sqlite3.connect(state_dir / "alerts.sqlite3")
    try:
        row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    finally:
        db.close()
    return None if row is None else row[0]


async def test_a_sink_close_cancelled_while_it_drains_still_closes_its_outbox_at_once(
    tmp_path: Path,
) -> None:
    """The alert sink's close cancelled while it still drains its queue (the bridge's stop
    deadline passing first, on a loaded host), the outbox's thread stuck: it closes the outbox
    at once, not waiting for that thread, and the cancellation goes on."""
    async with stuck_with_an_alert(tmp_path, 20_000) as (_bridge, sink):
        await async_wait_until(lambda: taken(sink), what="the alert taken by the handler")
        closing = asyncio.create_task(sink.aclose())
        await async_wait_until(
            lambda: sink.readiness() == "the alert sink is closed", what="the close begun"
        )
        closing.cancel()
        await asyncio.wait({closing}, timeout=5)
        assert closing.cancelled()
        with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
            sink.outbox.queue.depth()


async def test_ingest_answers_202_only_once_the_alerts_are_committed(tmp_path: Path) -> None:
    """On the in-process bus a 202 means the batch's alerts are in the outbox already."""
    db = DbThread()
    async with alert_bridge(tmp_path, db=db, **INGEST) as (bridge, sink, _):
        release = await hold(db)
        posting = asyncio.create_task(
            ingest(bridge, ndjson(*(system_alert(f"d{n}") for n in range(20))))
        )
        await async_wait_until(lambda: taken(sink), what="the batch taken by the handler")
        # The outbox cannot commit yet, so no answer may come: none within a generous while (an
        # absence, shown only by time: nothing marks when an early answer would have come; a
        # correct bridge cannot answer while held, its commit wait is 10 s, so this never fails
        # one on a loaded host).
        done, _pending = await asyncio.wait({posting}, timeout=0.3)
        assert not done
        release.set()
        status, _headers, body = await posting
        assert (status, body) == (202, {"accepted": 20})
        assert {f"d{n}" for n in range(20)} <= committed_ids(tmp_path)


async def test_a_batch_the_sink_fails_on_is_answered_503_and_taken_when_resent(
    tmp_path: Path,
) -> None:
    """If the sink fails on a batch otherwise than by the outbox refusing it for now (a
    corrupt file), ingest says 503 not_committed and a resend is accepted."""
    async with alert_bridge(tmp_path, **INGEST) as (bridge, sink, _):
        fail_first(sink, [sqlite3.DatabaseError("database disk image is malformed")])
        body = ndjson(*(system_alert(f"f{n}") for n in range(3)))
        status, headers, answer = await ingest(bridge, body)
        assert (status, answer["error"], headers["Retry-After"]) == (503, "not_committed", "1")
        assert not {f"f{n}" for n in range(3)} & committed_ids(tmp_path)
        status, _, answer = await ingest(bridge, body)
        assert (status, answer) == (202, {"accepted": 3})
        assert {f"f{n}" for n in range(3)} <= committed_ids(tmp_path)


async def test_a_batch_answered_uncommitted_that_the_sink_then_fails_on_is_taken_when_resent(
    tmp_path: Path,
) -> None:
    """In process: a batch answered 202 ``"committed": false`` (the outbox slow) that the
    sink then fails on (a corrupt file) has its ids forgotten, so the very same body sent again
    is taken and stored, not refused as replayed: the alerts are not lost."""
    db = DbThread()
    async with (
        alert_bridge(tmp_path, serve_http=False, db=db, **INGEST) as (bridge, sink, _),
        ingest_served(bridge),
    ):
        failures: list[Exception] = [sqlite3.DatabaseError("database disk image is malformed")]
        fail_first(sink, failures)
        body = ndjson(*(system_alert(f"u{n}") for n in range(3)))
        release = await hold(db)
        status, _, answer = await ingest(bridge, body)
        assert (status, answer) == (202, {"accepted": 3, "committed": False})
        release.set()
        await async_wait_until(
            lambda: not failures and sink.subscription.idle, what="the outbox failed on it"
        )
        assert not {f"u{n}" for n in range(3)} & committed_ids(tmp_path)
        status, _, answer = await ingest(bridge, body)
        # Taken, not refused as replayed; under load its commit may outlast the 0.2 s wait.
        assert (status, answer["accepted"]) == (202, 3)
        await async_wait_until(
            lambda: {f"u{n}" for n in range(3)} <= committed_ids(tmp_path),
            what="the resent batch stored",
        )


async def test_a_batch_answered_uncommitted_that_the_outbox_refuses_is_kept_and_stored(
    tmp_path: Path,
) -> None:
    """In process: a batch the outbox refuses for now (an I/O error, a full disk) is kept and
    stored once it takes it; answered 202 ``"committed": false`` meanwhile, the very same body
    sent again is refused as replayed (409): the bridge holds it."""
    async with (
        alert_bridge(tmp_path, serve_http=False, **INGEST) as (bridge, sink, _),
        ingest_served(bridge),
    ):
        fail_first(sink, [sqlite3.OperationalError("disk I/O error") for _ in range(2)])
        body = ndjson(*(system_alert(f"k{n}") for n in range(3)))
        status, _, answer = await ingest(bridge, body)
        assert (status, answer) == (202, {"accepted": 3, "committed": False})
        await async_wait_until(
            lambda: {f"k{n}" for n in range(3)} <= committed_ids(tmp_path),
            what="the kept batch stored",
        )
        # The rows are read from the file as the commit lands, before the sink hears of it.
        await async_wait_until(
            lambda: bridge.readiness()["alerts"]["reason"] is None, what="the sink ready again"
        )
        status, _, answer = await ingest(bridge, body)
        assert (status, answer["error"]) == (409, "replayed")


async def test_answers_given_before_the_outbox_committed_are_warned_of_once_not_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """In process, while the outbox's disk hangs, every batch of alerts is answered 202
    ``"committed": false`` but warned of once, not once a request: the log does not fill while
    senders go on; every batch is stored once the disk answers again."""
    db = DbThread()
    async with (
        alert_bridge(tmp_path, serve_http=False, db=db, **INGEST) as (bridge, _sink, _),
        ingest_served(bridge),
    ):
        release = await hold(db)
        with caplog.at_level(logging.WARNING, logger="bridge.http"):
            for n in range(4):
                status, _, answer = await ingest(bridge, ndjson(system_alert(f"h{n}")))
                assert (status, answer) == (202, {"accepted": 1, "committed": False})
        release.set()
        await async_wait_until(
            lambda: {f"h{n}" for n in range(4)} <= committed_ids(tmp_path),
            what="the batches stored",
        )
    warned = [r.getMessage() for r in caplog.records if "answered 202 before" in r.getMessage()]
    assert len(warned) == 1, warned


async def test_a_batch_whose_ingest_a_stop_ended_unanswered_and_lost_is_taken_after_restart(
    tmp_path: Path,
) -> None:
    """In process, a batch whose ingest request the bridge's stop ended before it answered
    (the outbox refusing it for now: kept), then lost at the stop, has its ids forgotten: the
    sender's resend after the restart is taken, not refused as replayed from the replay memory
    the stop kept in EXESDB_STATE_DIR."""
    settings = Settings(
        EXESDB_STATE_DIR=str(tmp_path),
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_SHUTDOWN_TIMEOUT_MS="2000",
        **INGEST,
    )
    body = ndjson(system_alert("r1"))
    first = Bridge(settings, components=[alert_sink], keep_replay=True)
    await first.start()
    [sink] = first.components
    assert isinstance(sink, AlertSink)

    def refusing(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    sink.outbox.alerts.apply = refusing  # type: ignore[method-assign]
    sent = asyncio.ensure_future(ingest(first, body))
    try:
        await async_wait_until(lambda: first.readiness()["alerts"]["reason"], what="the batch kept")
        await first.aclose()
        with pytest.raises(aiohttp.ClientError):  # ended unanswered
            await sent
    finally:
        sent.cancel()
        await first.aclose()
    second = Bridge(settings, components=[alert_sink], keep_replay=True)
    await second.start()
    try:
        status, _, answer = await ingest(second, body)
        assert (status, answer) == (202, {"accepted": 1}), answer
    finally:
        await second.aclose()
    assert "r1" in committed_ids(tmp_path)


async def test_a_kept_batch_the_sink_then_fails_on_otherwise_leaves_ingest_and_readiness_as_before(
    tmp_path: Path,
) -> None:
    """A kept batch (the outbox refused it for now) that the sink then fails on otherwise (the
    file found corrupt) is kept no longer: answered 503 not_committed, the alerts check ready
    again, and the very same body sent again is taken and stored, not refused for good."""
    async with alert_bridge(tmp_path, **INGEST) as (bridge, sink, _):
        fail_first(
            sink,
            [
                sqlite3.DatabaseError("database disk image is malformed"),
                sqlite3.OperationalError("disk I/O error"),  # the first: kept
            ],
        )
        body = ndjson(*(system_alert(f"g{n}") for n in range(2)))
        status, _, answer = await ingest(bridge, body)
        assert (status, answer["error"]) == (503, "not_committed"), answer
        assert bridge.readiness()["alerts"]["reason"] is None
        status, _, answer = await ingest(bridge, body)
        assert (status, answer) == (202, {"accepted": 2}), answer
        assert {"g0", "g1"} <= committed_ids(tmp_path)


async def test_ingest_answers_503_with_retry_after_above_the_high_water_mark(
    tmp_path: Path,
) -> None:
    """At 80 % of the alert queue ingest answers 503 with Retry-After; nothing taken is dropped."""
    env: dict[str, Any] = {**INGEST, "EXESDB_ALERT_QUEUE_SIZE": "10"}
    db = DbThread()
    async with alert_bridge(tmp_path, db=db, **env) as (bridge, sink, _):
        release = await hold(db)
        first = asyncio.create_task(ingest(bridge, ndjson(system_alert("q0"))))
        await async_wait_until(lambda: taken(sink), what="q0 taken")
        second = asyncio.create_task(
            ingest(bridge, ndjson(*(system_alert(f"q{n}") for n in range(1, 9))))
        )
        await async_wait_until(lambda: sink.subscription.depth == 8, what="eight waiting")
        refused = ndjson(system_alert("q9"))
        status, headers, body = await ingest(bridge, refused)
        assert status == 503
        assert headers["Retry-After"] == "1"
        assert body["error"] == "overloaded"
        release.set()
        assert (await first)[0] == 202
        assert (await second)[0] == 202
        assert committed_ids(tmp_path) == {f"q{n}" for n in range(9)}
        # Nothing of a refused batch was remembered: the very same signed body goes in now.
        status, _, body = await ingest(bridge, refused)
        assert (status, body) == (202, {"accepted": 1})
        assert "q9" in committed_ids(tmp_path)
        assert bridge.registry.get_sample_value(
            "exesdb_bus_dropped_total", {"subscriber": "alerts"}
        ) in (None, 0.0)


async def test_event_alerts_resolve_after_the_resolve_timeout(tmp_path: Path) -> None:
    """Event alerts resolve after the timeout; requires_ack ones that long after their ack."""
    clock = ManualClock(T0)
    env: dict[str, Any] = {
        "EXESDB_ALERT_RESOLVE_TIMEOUT_MS": "60000",
        "EXESDB_WEBHOOK_URLS": "http://127.0.0.1:9/h",
    }
    async with alert_bridge(tmp_path, clock=clock, serve_http=True, **env) as (bridge, sink, _):
        security = SecurityAlert(
            alert_type="brute_force",
            severity="medium",
            source_ip="10.0.0.1",
            description="many logins",
            node="n1",
        )
        bridge.bus.publish("security", security)
        bridge.bus.publish("disk_full", system_alert("needs-ack", severity="critical"))
        records = await async_wait_until(
            lambda: sink.outbox.alerts.find() if len(sink.outbox.alerts.find()) == 2 else None,
            what="two alerts",
        )
        [event_id] = [r.alert_id for r in records if r.alertname == "brute_force"]
        clock.advance(61)
        await async_wait_until(
            lambda: field_of(sink, event_id, "state") == "resolved", what="auto-resolved"
        )
        assert field_of(sink, "needs-ack", "state") == "firing"
        await call(bridge, "POST", "/v1/alerts/needs-ack/ack", {"ack_by": "ops"})
        clock.advance(30)
        # What housekeeping runs each second: not yet a minute since the ack.
        assert sink.outbox.alerts.resolve_expired(clock.now, 60.0) == []
        assert field_of(sink, "needs-ack", "state") == "acknowledged"
        clock.advance(31)
        await async_wait_until(
            lambda: field_of(sink, "needs-ack", "state") == "resolved", what="resolved after ack"
        )


async def test_a_wall_clock_set_back_holds_no_auto_resolve_back(tmp_path: Path) -> None:
    """A wall clock set back an hour (an NTP step) restarts the resolve timeout of an event
    alert, and of one acknowledged, from the jump: each resolves a timeout after it, not an hour
    and a timeout later, and is not notified meanwhile."""
    clock = ManualClock(T0)
    env: dict[str, Any] = {"EXESDB_ALERT_RESOLVE_TIMEOUT_MS": "60000"}
    async with alert_bridge(tmp_path, clock=clock, serve_http=False, **env) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("w1", severity="warning"))
        bridge.bus.publish("disk_full", system_alert("c1", severity="critical"))
        await async_wait_until(lambda: stored(sink.outbox, "c1"), what="stored")
        await sink.acknowledge(Acknowledgement("c1", "ops", None, None))
        clock.advance(30)
        clock.now -= 3600.0  # an NTP step, a VM resumed
        await sink.housekeeping.housekeep()
        assert {field_of(sink, a, "state") for a in ("w1", "c1")} == {"firing", "acknowledged"}
        clock.advance(59)
        await sink.housekeeping.housekeep()
        assert field_of(sink, "w1", "state") == "firing"
        clock.advance(2)
        await async_wait_until(
            lambda: {field_of(sink, a, "state") for a in ("w1", "c1")} == {"resolved"},
            what="both resolved a timeout after the jump",
        )
        [w1] = sink.outbox.alerts.find(alert_id="w1")
        assert w1.ends_at == clock.now - 1  # a timeout after the jump, when it was seen last


async def test_a_wall_clock_set_back_holds_no_stale_condition_back(tmp_path: Path) -> None:
    """How long the sink has run, from which the stale wait of a health condition counts, is
    measured on the monotonic clock: a wall clock set back an hour after the start leaves a
    component no reading keeps up resolved EXESDB_SERIES_TTL_MS after the jump, not an hour
    later."""
    clock, monotonic = ManualClock(T0), ManualClock(50.0)
    env: dict[str, Any] = {"EXESDB_SERIES_TTL_MS": "60000"}
    async with alert_bridge(
        tmp_path, clock=clock, monotonic=monotonic, serve_http=False, **env
    ) as (bridge, sink, _):
        bridge.bus.publish(
            "otlp:health",
            ComponentHealth(component="otlp", node="n1", status="degraded", timestamp=utc_now()),
        )
        gone = "component_health:n1:otlp"
        await async_wait_until(lambda: stored(sink.outbox, gone), what="fired")
        await sink.housekeeping.housekeep()  # the start, from which the wait counts
        clock.now -= 3600.0  # an NTP step, a VM resumed
        await sink.housekeeping.housekeep()
        for each in (clock, monotonic):
            each.advance(61)
        await async_wait_until(lambda: field_of(sink, gone, "state") == "resolved", what="resolved")


async def test_an_event_alert_seen_again_does_not_resolve(tmp_path: Path) -> None:
    """A repeated event alert counts as seen: the resolve timeout starts again."""
    clock = ManualClock(T0)
    env: dict[str, Any] = {"EXESDB_ALERT_RESOLVE_TIMEOUT_MS": "60000"}
    async with alert_bridge(tmp_path, clock=clock, serve_http=False, **env) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("w1", severity="warning"))
        await async_wait_until(lambda: stored(sink.outbox, "w1"), what="stored")
        clock.advance(40)
        bridge.bus.publish("disk_full", system_alert("w1", severity="warning"))
        await async_wait_until(
            lambda: field_of(sink, "w1", "last_seen") == clock.now, what="seen again"
        )
        clock.advance(40)
        assert sink.outbox.alerts.resolve_expired(clock.now, 60.0) == []
        assert field_of(sink, "w1", "state") == "firing"
        clock.advance(21)
        await async_wait_until(lambda: field_of(sink, "w1", "state") == "resolved", what="resolved")


async def test_a_component_that_stops_reporting_has_its_alert_resolved(tmp_path: Path) -> None:
    """A component_health alert no reading keeps up (the component removed, renamed or no
    longer run) resolves once its series would have left /metrics (EXESDB_SERIES_TTL_MS), so it
    is not left firing for good; one still reported degraded stays firing."""
    clock = ManualClock(T0)
    env: dict[str, Any] = {"EXESDB_SERIES_TTL_MS": "60000"}
    clocks: dict[str, Any] = {"clock": clock, "monotonic": clock}  # the stale wait runs on both
    async with alert_bridge(tmp_path, serve_http=False, **clocks, **env) as (bridge, sink, _):

        def degraded(component: str) -> ComponentHealth:
            return ComponentHealth(
                component=component, node="n1", status="degraded", timestamp=utc_now()
            )

        bridge.bus.publish("otlp:health", degraded("otlp"))
        bridge.bus.publish("orders:health", degraded("orders"))
        gone, kept = "component_health:n1:otlp", "component_health:n1:orders"
        await async_wait_until(
            lambda: stored(sink.outbox, gone) and stored(sink.outbox, kept), what="both fired"
        )
        clock.advance(40)
        bridge.bus.publish("orders:health", degraded("orders"))
        await async_wait_until(
            lambda: field_of(sink, kept, "last_seen") == clock.now, what="orders seen again"
        )
        clock.advance(21)
        await async_wait_until(lambda: field_of(sink, gone, "state") == "resolved", what="resolved")
        assert field_of(sink, kept, "state") == "firing"


async def test_a_resource_alert_no_metric_alert_keeps_up_is_resolved(tmp_path: Path) -> None:
    """A host resource's metric_threshold raised once by another sender, whose NodeHealth has no
    per-resource checks, resolves once no MetricAlert kept it up for EXESDB_SERIES_TTL_MS, so it
    is not left firing for good; one the MetricAlert sent with every sample keeps up stays."""
    clock = ManualClock(T0)
    env: dict[str, Any] = {"EXESDB_SERIES_TTL_MS": "60000"}
    clocks: dict[str, Any] = {"clock": clock, "monotonic": clock}  # the stale wait runs on both
    async with alert_bridge(tmp_path, serve_http=False, **clocks, **env) as (bridge, sink, _):

        def crossing(node: str) -> MetricAlert:
            return MetricAlert(
                metric_name="memory_usage_percent",
                current_value=90,
                threshold_value=85,
                threshold_type="max",
                severity="warning",
                node=node,
            )

        bridge.bus.publish("metric_alert", crossing("other"))
        bridge.bus.publish("metric_alert", crossing("n1"))
        gone = "metric_threshold:other:memory_usage_percent"
        kept = "metric_threshold:n1:memory_usage_percent"
        await async_wait_until(
            lambda: stored(sink.outbox, gone) and stored(sink.outbox, kept), what="both fired"
        )
        clock.advance(40)
        bridge.bus.publish("node:health", NodeHealth(node="other", status="healthy"))
        bridge.bus.publish("metric_alert", crossing("n1"))  # the next sample still breaches
        await async_wait_until(
            lambda: field_of(sink, kept, "last_seen") == clock.now, what="n1 seen again"
        )
        clock.advance(21)
        await async_wait_until(lambda: field_of(sink, gone, "state") == "resolved", what="resolved")
        assert field_of(sink, kept, "state") == "firing"


async def test_after_a_restart_the_stale_wait_gives_the_hold_time_too(tmp_path: Path) -> None:
    """After a restart a health reading at a firing alert's status keeps it up only once held
    anew (EXESDB_ALERT_FOR_MS, kept in memory), so the stale wait (EXESDB_SERIES_TTL_MS) counts
    from the start plus the hold: a hold longer than the wait does not resolve an alert still
    read degraded (and fire it again at the end of the hold); one no reading keeps up resolves."""
    clock = ManualClock(T0)
    ttl: dict[str, Any] = {"EXESDB_SERIES_TTL_MS": "60000"}
    clocks: dict[str, Any] = {"clock": clock, "monotonic": clock}  # the stale wait runs on both
    kept, gone = "component_health:n1:orders", "component_health:n1:otlp"

    def degraded(component: str) -> ComponentHealth:
        at = datetime.fromtimestamp(clock.now, UTC)
        return ComponentHealth(component=component, node="n1", status="degraded", timestamp=at)

    async with alert_bridge(tmp_path, serve_http=False, **clocks, **ttl) as (bridge, sink, _):
        bridge.bus.publish("orders:health", degraded("orders"))
        bridge.bus.publish("otlp:health", degraded("otlp"))
        await async_wait_until(
            lambda: stored(sink.outbox, kept) and stored(sink.outbox, gone), what="both fired"
        )
    clock.advance(10)
    held: dict[str, Any] = {**ttl, "EXESDB_ALERT_FOR_MS": "90000"}
    async with alert_bridge(tmp_path, serve_http=False, **clocks, **held) as (bridge, sink, _):
        await sink.housekeeping.housekeep()  # the start, from which the wait counts
        started = clock.now
        for after in (0, 30, 61):  # held: no event, last_seen stays the first run's
            clock.advance(started + after - clock.now)
            bridge.bus.publish("orders:health", degraded("orders"))
        await sink.housekeeping.housekeep()
        assert (field_of(sink, kept, "state"), field_of(sink, gone, "state")) == (
            "firing",
            "firing",
        )
        clock.advance(started + 91 - clock.now)
        bridge.bus.publish("orders:health", degraded("orders"))  # held for 91 s: seen
        await async_wait_until(
            lambda: field_of(sink, kept, "last_seen") == clock.now, what="orders seen again"
        )
        clock.advance(started + 150 - clock.now)
        await sink.housekeeping.housekeep()
        assert (field_of(sink, kept, "state"), field_of(sink, gone, "state")) == (
            "firing",
            "resolved",
        )


async def test_new_alerts_beyond_the_open_cap_are_refused_and_counted(tmp_path: Path) -> None:
    """Past the cap of open alerts new ones are refused, counted and logged; known ones update."""
    async with alert_bridge(tmp_path, serve_http=False, max_open_alerts=3) as (bridge, sink, _):
        for number in range(5):
            bridge.bus.publish("disk_full", system_alert(f"c{number}", severity="warning"))
        await async_wait_until(
            lambda: bridge.registry.get_sample_value("exesdb_alerts_refused_total") == 2,
            what="two refusals",
        )
        assert committed_ids(tmp_path) == {"c0", "c1", "c2"}
        bridge.bus.publish("disk_full", system_alert("c0", severity="critical"))  # known: updates
        await async_wait_until(lambda: field_of(sink, "c0", "severity") == "critical", what="c0")


async def test_a_flood_of_event_alerts_at_the_cap_leaves_room_for_a_node_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Event alerts raised under new ids stop at nine tenths of the open-alert cap (refused,
    counted and logged with both caps), so a node going down still alerts."""
    async with alert_bridge(tmp_path, serve_http=False, max_open_alerts=10) as (bridge, sink, _):
        for number in range(12):
            bridge.bus.publish("disk_full", system_alert(f"flood{number}", severity="warning"))
        await async_wait_until(
            lambda: bridge.registry.get_sample_value("exesdb_alerts_refused_total") == 3,
            what="three refusals",
        )
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n9", event="down", cluster_size=2))
        await async_wait_until(
            lambda: field_of(sink, "node_failure:n9", "state") == "firing", what="n9 down alerted"
        )
    assert "10 alerts are open (firing or acknowledged), 9 for an event alert" in caplog.text


async def test_alerts_active_comes_from_the_outbox(tmp_path: Path) -> None:
    """exesdb_alerts_active{severity} counts firing and acknowledged alerts, not resolved ones."""
    async with alert_bridge(tmp_path) as (bridge, sink, _):
        for alert_id, severity in (("x1", "critical"), ("x2", "critical"), ("x3", "warning")):
            bridge.bus.publish("disk_full", system_alert(alert_id, severity=severity))
        await async_wait_until(lambda: len(sink.outbox.alerts.find()) == 3, what="three alerts")
        await call(bridge, "POST", "/v1/alerts/x1/ack", {"ack_by": "ops"})
        await call(bridge, "POST", "/v1/alerts/x2/ack", {"ack_by": "ops", "resolution": "fixed"})

        def active(severity: str) -> float | None:
            return bridge.registry.get_sample_value("exesdb_alerts_active", {"severity": severity})

        await async_wait_until(lambda: active("critical") == 1, what="one critical open")
        assert active("warning") == 1
        assert active("info") == 0
        text = bridge.render_metrics("")[0].decode()
        assert text.count("# TYPE exesdb_alerts_active gauge") == 1


async def test_metric_threshold_resolves_on_healthy_node_health_and_fires_again(
    tmp_path: Path,
) -> None:
    """A resource MetricAlert resolves on a healthy NodeHealth; a new crossing notifies again."""
    env: dict[str, Any] = {
        "EXESDB_WEBHOOK_URLS": "http://127.0.0.1:9/h",
        "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
    }
    async with alert_bridge(tmp_path, serve_http=False, **env) as (bridge, sink, _):
        crossing = MetricAlert(
            metric_name="cpu_usage_percent",
            current_value=90,
            threshold_value=85,
            threshold_type="max",
            severity="warning",
            node="n1",
        )
        alert_id = "metric_threshold:n1:cpu_usage_percent"
        bridge.bus.publish("metric_alert", crossing)
        await async_wait_until(lambda: stored(sink.outbox, alert_id), what="fired")
        healthy = NodeHealth(
            node="n1", status="healthy", checks={"cpu": {"usage_percent": 20, "status": "healthy"}}
        )
        bridge.bus.publish("node:health", healthy)
        await async_wait_until(
            lambda: field_of(sink, alert_id, "state") == "resolved", what="resolved"
        )
        # A new sample: the first one sent again was sent before the healthy reading (stale).
        bridge.bus.publish("metric_alert", crossing.model_copy(update={"timestamp": utc_now()}))
        await async_wait_until(
            lambda: field_of(sink, alert_id, "state") == "firing", what="fired again"
        )
        # The receiver (nothing listens) failed the first firing: the resolve and the new
        # firing wait in its grouping window, which sends the alert as it then stands.
        detail = sink.outbox.alerts.detail(alert_id)
        assert detail is not None
        assert [entry.event.value for entry in detail.history].count("fired") == 2
        assert [url for url, _ in detail.waiting] == list(sink.outbox.queue.urls)


async def test_a_node_health_saying_only_healthy_leaves_a_resource_alert_firing(
    tmp_path: Path,
) -> None:
    """The review's case: a cpu MetricAlert fired, then a NodeHealth for the node saying only
    ``healthy`` (no cpu check): node_health's business, not the cpu alert's, which stays
    firing."""
    async with alert_bridge(tmp_path, serve_http=False) as (bridge, sink, _):
        crossing = MetricAlert(
            metric_name="cpu_usage_percent",
            current_value=99,
            threshold_value=95,
            threshold_type="max",
            severity="critical",
            node="n1",
        )
        alert_id = "metric_threshold:n1:cpu_usage_percent"
        bridge.bus.publish("metric_alert", crossing)
        await async_wait_until(lambda: stored(sink.outbox, alert_id), what="fired")
        bridge.bus.publish("node:health", NodeHealth(node="n1", status="healthy"))
        # Taken after the NodeHealth: once it is stored, the NodeHealth has been applied.
        bridge.bus.publish("disk_full", system_alert("after"))
        await async_wait_until(lambda: stored(sink.outbox, "after"), what="the next message")
        assert field_of(sink, alert_id, "state") == "firing"


async def test_queued_alerts_for_a_removed_url_are_dead_lettered_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Work for a removed URL is dead-lettered at start, leaves the depth, stays retryable."""
    old = "http://127.0.0.1:9/old-hook"
    Outbox.in_dir(tmp_path, urls=[old]).close()
    queue_for(tmp_path, old, "o1")
    async with alert_bridge(tmp_path, serve_http=False) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("o1"))
        await async_wait_until(lambda: stored(sink.outbox, "o1"), what="o1 stored")
    # A fresh start on the same directory, with a different URL: the old URL's rows go dead.
    queue_for(tmp_path, old, "o1")
    env: dict[str, Any] = {"EXESDB_WEBHOOK_URLS": "http://127.0.0.1:9/new-hook"}
    async with alert_bridge(tmp_path, serve_http=False, **env) as (bridge, sink, _):
        assert bridge.registry.get_sample_value("exesdb_webhook_outbox_depth") == 0
        [dead] = sink.outbox.queue.deliveries(DeliveryState.DEAD.value)
        assert (dead.url, dead.alert_ids) == (old, ("o1",))
        assert "no longer in EXESDB_WEBHOOK_URLS" in (dead.last_error or "")
    assert any("dead-lettered 1 delivery" in r.getMessage() for r in caplog.records)
    outbox = Outbox.in_dir(tmp_path, urls=[old])
    # `outbox retry` leaves it while the bridge starts without that receiver.
    assert [(d.delivery_id, d.configured) for d in outbox.dead_letters.unretryable()] == [
        (dead.id, False)
    ]
    assert len(outbox.dead_letters.retry(time.time())) == 1
    assert outbox.queue.depth().pending == 1
    outbox.close()


@pytest.mark.parametrize("depth", [10_000, 100_000])
async def test_ack_with_deeply_nested_json_is_a_400(tmp_path: Path, depth: int) -> None:
    """A body nested too deeply for the JSON parser is malformed (400), not a server error."""
    async with alert_bridge(tmp_path) as (bridge, _sink, _):
        assert bridge.address is not None
        host, port = bridge.address
        body = "[" * depth + "]" * depth
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://{host}:{port}/v1/alerts/a1/ack",
                data=body,
                headers={**AUTH, "Content-Type": "application/json"},
            ) as answer,
        ):
            assert answer.status == 400
            assert json.loads(await answer.text())["error"] == "malformed"


async def test_a_resolve_in_the_same_batch_as_its_firing_is_applied(tmp_path: Path) -> None:
    """A condition that fires and clears within one batch ends resolved, not firing."""
    db = DbThread()
    async with alert_bridge(tmp_path, serve_http=False, db=db) as (bridge, sink, _):
        release = await hold(db)
        bridge.bus.publish("disk_full", system_alert("first"))  # taken alone, held
        await async_wait_until(lambda: taken(sink), what="the first alert taken")
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n9", event="down", cluster_size=2))
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n9", event="reconnected", cluster_size=3)
        )
        release.set()
        await async_wait_until(
            lambda: field_of(sink, "node_failure:n9", "state") == "resolved", what="resolved"
        )


async def test_a_bridge_restarted_within_the_hour_still_prunes_its_outbox(tmp_path: Path) -> None:
    """Old rows go at the first housekeeping after start, not only an hour into a run: a bridge
    restarted more often than hourly would otherwise never prune."""
    url = "http://127.0.0.1:9/hook"
    old = Outbox.in_dir(tmp_path, urls=[url])
    for alert_id, finish in (("sent", DeliveryState.DELIVERED), ("refused", DeliveryState.DEAD)):
        observe(old, event(alert_id), T0)
        old.queue.group(url, T0, 0.0, one_each)
        [delivery] = old.queue.deliveries(DeliveryState.PENDING.value)
        old.queue.finish_attempt(
            delivery.id, state=finish, next_attempt_at=T0, status=None, error=None, now=T0
        )
    old.close()
    clock = ManualClock(T0 + 8 * 86_400)  # past a day (delivered) and a week (dead letters)
    async with alert_bridge(tmp_path, clock=clock, serve_http=False) as (_bridge, sink, _):
        await async_wait_until(lambda: not sink.outbox.queue.deliveries(), what="old rows pruned")


async def test_an_alert_of_long_node_and_component_names_has_an_id_acks_can_carry(
    tmp_path: Path,
) -> None:
    """An alert derived from a node and a component name of 4 096 characters each gets an id
    of at most 4 096 characters (AlertAck's limit), the same each time; acknowledging it
    answers 200 and publishes the AlertAck."""
    node, component = "n" * 4096, "c" * 4096
    async with alert_bridge(tmp_path) as (bridge, sink, watcher):
        for _ in range(2):
            health = ComponentHealth(component=component, node=node, status="unhealthy")
            bridge.bus.publish("health", health)
        [record] = await async_wait_until(
            lambda: sink.outbox.alerts.find() or None, what="the component's alert"
        )
        assert len(record.alert_id) <= 4096
        assert record.alert_id.startswith(f"component_health:{node[:4000]}")
        assert re.fullmatch(r".*…#[0-9a-f]{16}", record.alert_id)
        path = f"/v1/alerts/{quote(record.alert_id, safe='')}/ack"
        status, body = await call(bridge, "POST", path, {"ack_by": "ops"})
        assert (status, body["alert"]["state"]) == (200, "acknowledged")
        [ack] = await async_wait_until(lambda: watcher.of(AlertAck) or None, what="the AlertAck")
        assert ack.alert_id == record.alert_id
        assert len(sink.outbox.alerts.find()) == 1


async def test_housekeeping_failing_each_pass_alike_is_logged_once_then_its_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Housekeeping failing pass after pass the same way (the outbox on a full disk: a
    traceback each second) logs its traceback once, then an INFO line counting the failed
    passes once one goes through; each is counted in exesdb_sink_errors_total."""
    async with alert_bridge(tmp_path, EXESDB_ESCALATION_AFTER_MS="200") as (bridge, sink, _):
        real_depth = sink.outbox.queue.depth
        failures = [sqlite3.OperationalError("database or disk is full") for _ in range(4)]

        def failing(*args: Any, **kwargs: Any) -> Any:
            if failures:
                raise failures.pop()
            return real_depth(*args, **kwargs)

        with caplog.at_level("INFO", logger="bridge.sinks.alerts.housekeeping"):
            sink.outbox.queue.depth = failing  # type: ignore[method-assign]
            await async_wait_until(
                lambda: "alert housekeeping works again" in caplog.text,
                what="housekeeping working again",
            )
        errors = bridge.registry.get_sample_value(
            "exesdb_sink_errors_total", {"subscriber": "alerts"}
        )
    lines = [
        (r.levelname, r.getMessage(), r.exc_info is not None)
        for r in caplog.records
        if "housekeeping" in r.getMessage()
    ]
    assert lines == [
        ("ERROR", "alert housekeeping failed", True),
        ("INFO", "alert housekeeping works again after 4 failed pass(es)", False),
    ]
    assert errors == 4


async def test_an_outbox_opened_on_a_full_disk_stops_the_start_saying_so(tmp_path: Path) -> None:
    """An outbox that opens but cannot be written at start (its disk full) stops the start
    with a ConfigError naming EXESDB_STATE_DIR, the fault and what to do, as one that cannot
    be opened does: not an unexpected error with a traceback."""
    settings = Settings(
        EXESDB_STATE_DIR=str(tmp_path),
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_WEBHOOK_URLS="http://127.0.0.1:9/hook",
    )
    bridge, sink = sink_bridge(settings)
    try:
        await sink.prepare()

        def full(*args: Any, **kwargs: Any) -> Any:
            raise sqlite3.OperationalError("database or disk is full")

        sink.outbox.queue.queue_for = full  # type: ignore[method-assign]
        with pytest.raises(ConfigError) as raised:
            await bridge.start(serve_http=False)
    finally:
        await bridge.aclose()
    assert raised.value.problems == (
        f"EXESDB_STATE_DIR: cannot write the alert outbox in {str(tmp_path)!r}: database or disk"
        " is full; the file system holding it is full: free some space there, or give a"
        " directory on another",
    )


async def test_readyz_fails_while_an_outbox_write_hangs_and_healthz_does_not(
    tmp_path: Path,
) -> None:
    """An outbox call that has not returned for 15 s (a write or fsync to a hung disk) makes
    `/readyz` answer 503 naming the alert outbox, so no more alerts are routed here, while
    `/healthz` stays 200 (a restart would lose what waits in memory); ready again once it
    returns."""
    clock = ManualClock()
    db = DbThread(clock=clock)
    async with alert_bridge(tmp_path, db=db) as (bridge, _sink, _):
        release = await hold(db)
        clock.advance(14.9)
        assert (await call(bridge, "GET", "/readyz"))[0] == 200  # a slow disk is no hung one
        clock.advance(0.1)
        status, body = await call(bridge, "GET", "/readyz")
        assert status == 503, body
        reason = body["checks"]["alerts"]["reason"]
        assert reason.startswith("the alert outbox has not answered for 15 s"), reason
        assert await call(bridge, "GET", "/healthz") == (200, {"status": "ok"})
        release.set()
        await async_wait_until(
            lambda: bridge.readiness()["alerts"]["reason"] is None, what="ready again"
        )
        assert (await call(bridge, "GET", "/readyz"))[0] == 200
