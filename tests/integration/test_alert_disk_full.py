"""The alert outbox on a disk that is really full: a small tmpfs as EXESDB_STATE_DIR, filled up."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from bridge.messages import NodeHealth, SystemAlert, ThroughputMetric
from tests.integration.servers.tmpfs import SmallDisk, small_disk
from tests.integration.servers.webhook import Answer, WebhookReceiver, webhook_receiver
from tests.sinks.alerts.helpers import alert_bridge, system_alert
from tests.sinks.alerts.test_sink_hardening import INGEST, ingest, ndjson
from tests.support import ADMIN_TOKEN, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["small_disk", "webhook_receiver"]  # the fixtures, imported for the tests below

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FAST: dict[str, Any] = {
    "EXESDB_WEBHOOK_BACKOFF_MS": "50",
    "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "200",
    "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
    "EXESDB_WEBHOOK_SECRET": "webhook-secret-for-tests",
}


def delivery_states(state_dir: Path) -> list[tuple[str, int]]:
    """Each delivery's state and attempts, read from the outbox file through a connection of
    our own."""
    db = sqlite3.connect(f"file:{state_dir / 'alerts.sqlite3'}?mode=ro", uri=True)
    try:
        return list(db.execute("SELECT state, attempts FROM deliveries"))
    finally:
        db.close()


async def test_a_delivery_whose_outcome_cannot_be_recorded_is_not_sent_again(
    small_disk: SmallDisk, webhook_receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A delivery the receiver took while the outbox's disk filled up is sent once, not again
    and again while the disk stays full: its outcome waits in memory, the alert sink's
    readiness says why, and it is recorded (delivered, one attempt) once there is space."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(Answer(200, delay=2.0))
    async with alert_bridge(
        small_disk.path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, _sink, _):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: receiver.requests, what="the delivery in flight")
        small_disk.fill()
        with caplog.at_level(logging.INFO, logger="bridge.sinks.alerts.delivery"):
            await async_wait_until(
                lambda: bridge.readiness()["alerts"]["reason"], what="the alerts not ready"
            )
            reason = bridge.readiness()["alerts"]["reason"]
            # Steps failing on the full disk, at each of which a worker forgetting the outcome
            # would send the delivery again (the count is the worker's and housekeeping's: the
            # worker's own steps are told by its log below).
            failed = _sink_errors(bridge)
            await async_wait_until(
                lambda: _sink_errors(bridge) >= failed + 2, 20, "two more steps failed"
            )
            assert len(receiver.requests) == 1, "sent again while the disk is full"
            assert "database or disk is full" in reason
            assert delivery_states(small_disk.path) == [("pending", 0)]
            small_disk.free()
            await async_wait_until(
                lambda: delivery_states(small_disk.path) == [("delivered", 1)],
                within=40.0,
                what="the outcome recorded",
            )
            # Logged as the step that recorded it ends.
            [steps] = await async_wait_until(
                lambda: [
                    int(found[1])
                    for r in caplog.records
                    if (found := re.search(r"works again after (\d+) failed step", r.getMessage()))
                ],
                what="the worker working again",
            )
        assert bridge.readiness()["alerts"]["reason"] is None
        assert len(receiver.requests) == 1
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1, "the fault logged once while it lasts"
    # The failed steps in a row: the first and more (two more, unless a housekeeping pass failed).
    assert steps >= 2, "the worker's steps while the disk was full"


async def test_an_alert_arriving_while_the_disk_is_full_is_delivered_once_there_is_space(
    small_disk: SmallDisk, webhook_receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A SystemAlert put on the in-process bus (sent once, as the cluster monitor's node down
    is) while the outbox's disk is full is kept, the alerts check not ready meanwhile, and
    stored and delivered to the receiver once, when there is space again."""
    receiver: WebhookReceiver = webhook_receiver()
    async with alert_bridge(
        small_disk.path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, _sink, watcher):
        small_disk.fill()
        with caplog.at_level(logging.INFO, logger="bridge"):
            bridge.bus.publish("disk_full", system_alert("a1"))
            bridge.bus.publish("disk_full", system_alert("a2", severity="warning"))
            await async_wait_until(
                lambda: _sink_errors(bridge) >= 2, what="the outbox failing the batch twice"
            )
            reason = bridge.readiness()["alerts"]["reason"]
            assert "database or disk is full" in (reason or ""), reason
            # The other subscribers go on meanwhile: the bus is not held up.
            await async_wait_until(
                lambda: len(watcher.of(SystemAlert)) == 2, what="the watcher's share"
            )
            assert not receiver.requests
            small_disk.free()
            await async_wait_until(
                lambda: receiver.accepted_alert_ids() == {"a1", "a2"},
                within=20.0,
                what="the kept alerts delivered",
            )
        await async_wait_until(
            lambda: delivery_states(small_disk.path) == [("delivered", 1)],
            what="the delivery recorded",
        )
        assert [r.alert_ids() for r in receiver.requests] == [["a1", "a2"]]
        assert bridge.readiness()["alerts"]["reason"] is None
    said = [r.getMessage() for r in caplog.records if r.name.startswith("bridge.sinks.alerts")]
    assert len([r for r in caplog.records if r.exc_info is not None]) == 1, said
    assert any("outbox stored the batch" in m for m in said), said


async def test_what_arrives_past_the_queue_while_the_disk_is_full_is_counted_and_logged(
    small_disk: SmallDisk, webhook_receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """While the sink keeps a batch the full disk refused, what arrives past
    EXESDB_ALERT_QUEUE_SIZE is dropped, counted in exesdb_bus_dropped_total and logged; the
    rest is stored, in order, once there is space."""
    receiver: WebhookReceiver = webhook_receiver()
    async with alert_bridge(
        small_disk.path,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_ALERT_QUEUE_SIZE="3",
        **FAST,
    ) as (bridge, _sink, _):
        small_disk.fill()
        with caplog.at_level(logging.WARNING, logger="bridge"):
            bridge.bus.publish("disk_full", system_alert("a0"))
            await async_wait_until(lambda: _sink_errors(bridge) >= 1, what="the batch refused")
            for n in range(1, 6):  # three queue behind the kept batch, two are dropped
                bridge.bus.publish("disk_full", system_alert(f"a{n}"))
            dropped = bridge.registry.get_sample_value(
                "exesdb_bus_dropped_total", {"subscriber": "alerts"}
            )
            assert dropped == 2
            small_disk.free()
            await async_wait_until(
                lambda: receiver.accepted_alert_ids() == {"a0", "a1", "a2", "a3"},
                within=20.0,
                what="the kept and queued alerts delivered",
            )
    said = [r.getMessage() for r in caplog.records]
    assert any("dropped" in m and "alerts" in m for m in said), said


async def test_a_stop_while_the_disk_is_still_full_logs_the_kept_batch_lost(
    small_disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    """A bridge stopped while the outbox's disk is still full tries the kept batch until its
    stop deadline, then says at error that it is lost, naming how many messages: never
    silently."""
    with caplog.at_level(logging.WARNING, logger="bridge"):
        async with alert_bridge(
            small_disk.path, serve_http=False, EXESDB_SHUTDOWN_TIMEOUT_MS="1500"
        ) as (bridge, _sink, _):
            small_disk.fill()
            bridge.bus.publish("disk_full", system_alert("a1"))
            await async_wait_until(lambda: _sink_errors(bridge) >= 1, what="the batch refused")
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert (
        "ERROR",
        "alerts: stopped with a batch of 1 message(s) the outbox could not store"
        " (OperationalError: database or disk is full): lost",
    ) in said, said


def _sink_errors(bridge: Any) -> float:
    """exesdb_sink_errors_total{subscriber="alerts"}."""
    value = bridge.registry.get_sample_value("exesdb_sink_errors_total", {"subscriber": "alerts"})
    return value or 0.0


async def test_ingest_takes_no_alert_while_a_kept_batch_waits_for_the_disk(
    small_disk: SmallDisk, webhook_receiver
) -> None:
    """While the outbox's full disk keeps a batch of alerts in memory, ingest answers a new
    batch holding an alert, or a health reading, 503 not_committed with Retry-After, taking none
    of it (its sender keeps it, safe from a crash), and a batch of neither 202; once there is
    space the kept batch is stored and the refused body, sent again as it was, is taken and
    delivered."""
    receiver: WebhookReceiver = webhook_receiver()
    async with alert_bridge(
        small_disk.path, EXESDB_WEBHOOK_URLS=receiver.url, **INGEST, **FAST
    ) as (bridge, _sink, _):
        small_disk.fill()
        bridge.bus.publish("disk_full", system_alert("kept-1"))  # the cluster monitor's way
        await async_wait_until(
            lambda: bridge.readiness()["alerts"]["reason"], what="the batch kept"
        )
        alert_body = ndjson(system_alert("ingested-1"))
        status, headers, answer = await ingest(bridge, alert_body)
        assert (status, headers.get("Retry-After"), answer["error"]) == (
            503,
            "1",
            "not_committed",
        ), answer
        assert "the alert outbox cannot store alerts now" in answer["detail"]
        # A health reading makes alerts too (node_health): refused alike.
        health = ndjson(NodeHealth(node="db-1", status="unhealthy"), topic="node:health")
        status, _headers, answer = await ingest(bridge, health)
        assert (status, answer["error"]) == (503, "not_committed"), answer
        reading = ndjson(
            ThroughputMetric(operation="write", count=10, duration_ms=1000.0, node="db-1"),
            topic="throughput",
        )
        status, _headers, answer = await ingest(bridge, reading)
        assert (status, answer) == (202, {"accepted": 1}), answer
        small_disk.free()
        await async_wait_until(
            lambda: bridge.readiness()["alerts"]["reason"] is None,
            within=20.0,
            what="the kept batch stored",
        )
        status, _headers, answer = await ingest(bridge, alert_body)
        assert (status, answer) == (202, {"accepted": 1}), answer
        await async_wait_until(
            lambda: receiver.accepted_alert_ids() == {"kept-1", "ingested-1"},
            within=20.0,
            what="both alerts delivered",
        )


async def test_an_acknowledgement_on_a_full_disk_is_answered_503_retry_later(
    small_disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    """POST /v1/alerts/{id}/ack while the outbox's disk is full answers 503 not_committed with
    Retry-After and why, logged once (no traceback) however often it is tried; the alert stays
    firing, and the same ack goes through once there is space."""
    async with alert_bridge(small_disk.path) as (bridge, _sink, _):
        bridge.bus.publish("disk_full", system_alert("a1"))
        path = f"/v1/alerts/{quote('a1', safe='')}/ack"
        await async_wait_until(lambda: _listed(bridge), what="the alert stored")
        small_disk.fill()
        with caplog.at_level(logging.INFO):
            answers = [await _ack(bridge, path) for _ in range(3)]
            for status, headers, body in answers:
                assert (status, headers.get("Retry-After"), body["error"]) == (
                    503,
                    "1",
                    "not_committed",
                )
                assert "database or disk is full" in body["detail"]
            _status, _headers, listed = await _listed_now(bridge)
            assert listed["alerts"][0]["state"] == "firing"
            small_disk.free()
            status, _headers, body = await _ack(bridge, path)
            assert (status, body["alert"]["state"]) == (200, "acknowledged")
    assert not [r for r in caplog.records if r.exc_info is not None]
    said = [r.getMessage() for r in caplog.records if "acknowledg" in r.getMessage()]
    assert len([m for m in said if "could not be stored" in m]) == 1, said


async def _ack(bridge: Any, path: str) -> tuple[int, dict[str, str], Any]:
    """POST alice's acknowledgement; (status, headers, JSON body)."""
    host, port = bridge.address
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://{host}:{port}{path}", json={"ack_by": "alice"}, headers=AUTH
        ) as response,
    ):
        return response.status, dict(response.headers), await response.json()


async def _listed_now(bridge: Any) -> tuple[int, dict[str, str], Any]:
    """GET /v1/alerts; (status, headers, JSON body)."""
    host, port = bridge.address
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{host}:{port}/v1/alerts", headers=AUTH) as response,
    ):
        return response.status, dict(response.headers), await response.json()


async def _listed(bridge: Any) -> bool:
    """True once /v1/alerts lists an alert."""
    _status, _headers, body = await _listed_now(bridge)
    return bool(body["alerts"])
