"""A delivery changed by something else while its attempt is in flight (a real HTTP receiver)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from bridge.messages import NotificationStatus
from bridge.receivers import resolve_receivers
from bridge.sinks.alerts.delivery import WebhookSender
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import DeliveryState
from bridge.sinks.alerts.thread import DbThread
from tests.sinks.alerts.helpers import T0, alert_bridge, db, event, system_alert, webhook_worker
from tests.support import ManualClock, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["db"]  # the fixture, imported for the tests below


class GatedReceiver:
    """An aiohttp receiver on loopback that holds each request until ``answer`` is set, then
    answers ``status``; ``arrived`` is set as a request comes in."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.arrived = asyncio.Event()
        self.answer = asyncio.Event()
        self.bodies: list[bytes] = []
        self.url = ""

    async def _hook(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        self.arrived.set()
        await self.answer.wait()
        return web.Response(status=self.status)

    async def serve(self) -> AsyncIterator[GatedReceiver]:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"
        try:
            yield self
        finally:
            self.answer.set()
            await runner.cleanup()


@pytest.fixture
async def gated() -> AsyncIterator[GatedReceiver]:
    """A receiver answering 503 once let go."""
    async for receiver in GatedReceiver(503).serve():
        yield receiver


async def test_a_delivery_withheld_while_in_flight_is_not_tried_again(
    tmp_path: Path, gated: GatedReceiver, db: DbThread
) -> None:
    """A delivery left out as stale while its attempt is in flight (on Redis, the lease taken
    up meanwhile finds another replica notified a newer state) stays stale when the receiver
    then answers 503: it is never sent again."""
    [hook], _ = resolve_receivers(
        [gated.url], None, secret=None, timeout=30.0, max_alerts=50, min_severity="info"
    )
    outbox = Outbox.in_dir(tmp_path, urls=[hook.key])
    clock = ManualClock(T0)
    sender = WebhookSender(hook, clock=clock)
    worker = webhook_worker(outbox, db, sender, clock, deadline=600.0)
    try:
        outbox.alerts.apply([event("a1", "firing", at=datetime.fromtimestamp(T0, UTC))], clock.now)
        step = asyncio.ensure_future(worker.step())
        await asyncio.wait_for(gated.arrived.wait(), 10)
        [delivery] = await db.call(outbox.queue.deliveries, "pending")
        left, withheld = await db.call(
            outbox.queue.withhold, delivery.id, ["a1"], clock.now, "stale: a test's"
        )
        assert (left, withheld) == (None, 1)
        gated.answer.set()
        await asyncio.wait_for(step, 10)
        [after] = await db.call(outbox.queue.deliveries, None, ids=[delivery.id])
        assert after.state is DeliveryState.STALE
        clock.advance(60.0)  # every retry would be due
        await worker.step()
        assert len(gated.bodies) == 1
    finally:
        await sender.aclose()
        outbox.close()


@pytest.fixture
async def taking() -> AsyncIterator[GatedReceiver]:
    """A receiver answering 200 once let go."""
    async for receiver in GatedReceiver(200).serve():
        yield receiver


@pytest.mark.parametrize(
    ("withheld", "stale_left"),
    [(["a1", "a2"], "the whole delivery"), (["a1"], "a delivery split off for a1")],
)
async def test_a_delivery_withheld_while_in_flight_that_the_receiver_took_is_delivered(
    tmp_path: Path, taking: GatedReceiver, db: DbThread, withheld: list[str], stale_left: str
) -> None:
    """A delivery whose alerts (all, or some) are left out as stale while its attempt is in
    flight, and which the receiver then takes (200), is delivered, holding what was sent: the
    outbox lists no stale delivery the receiver in fact took."""
    [hook], _ = resolve_receivers(
        [taking.url], None, secret=None, timeout=30.0, max_alerts=50, min_severity="info"
    )
    outbox = Outbox.in_dir(tmp_path, urls=[hook.key])
    clock = ManualClock(T0)
    sender = WebhookSender(hook, clock=clock)
    worker = webhook_worker(outbox, db, sender, clock, deadline=600.0)
    try:
        at = datetime.fromtimestamp(T0, UTC)
        outbox.alerts.apply([event("a1", at=at), event("a2", at=at)], clock.now)
        step = asyncio.ensure_future(worker.step())
        await asyncio.wait_for(taking.arrived.wait(), 10)
        [delivery] = await db.call(outbox.queue.deliveries, "pending")
        assert sorted(delivery.alert_ids) == ["a1", "a2"]
        await db.call(outbox.queue.withhold, delivery.id, withheld, clock.now, "stale: a test's")
        assert await db.call(outbox.queue.deliveries, "stale"), stale_left
        taking.answer.set()
        await asyncio.wait_for(step, 10)
        [after] = await db.call(outbox.queue.deliveries, None)
        assert (after.id, after.state, after.body, after.last_error) == (
            delivery.id,
            DeliveryState.DELIVERED,
            taking.bodies[0],
            None,
        )
        assert sorted(after.alert_ids) == ["a1", "a2"]
    finally:
        await sender.aclose()
        outbox.close()


async def test_a_failed_attempt_of_a_delivery_withheld_meanwhile_is_reported_as_not_retried(
    tmp_path: Path, gated: GatedReceiver, db: DbThread, caplog: pytest.LogCaptureFixture
) -> None:
    """The 503 to a delivery left out as stale while in flight is reported as what it came to:
    counted as result stale (not retry), its NotificationStatus and log line saying it is not
    retried, never that it will be."""
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        db=db,
        EXESDB_WEBHOOK_URLS=gated.url,
        EXESDB_WEBHOOK_GROUP_WAIT_MS="0",
    ) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await asyncio.wait_for(gated.arrived.wait(), 10)
        [delivery] = await db.call(sink.outbox.queue.deliveries, "pending")
        await db.call(sink.outbox.queue.withhold, delivery.id, ["a1"], T0, "stale: a test's")
        with caplog.at_level(logging.INFO, logger="bridge.sinks.alerts"):
            gated.answer.set()
            [status] = await async_wait_until(
                lambda: watcher.of(NotificationStatus), what="the attempt's NotificationStatus"
            )
        assert (status.status, status.attempts) == ("failed", 1)
        assert status.error_reason == "HTTP 503; left out as stale while in flight, not retried"
        counts = {
            result: bridge.registry.get_sample_value(
                "exesdb_webhook_deliveries_total", {"result": result}
            )
            for result in ("retry", "stale")
        }
        assert counts == {"retry": 0.0, "stale": 1.0}
        [worker] = sink.workers.values()
        said = [r.getMessage() for r in caplog.records if r.name.startswith("bridge.sinks")]
        assert said == [
            f"webhook delivery {delivery.id} to {worker.label} failed: HTTP 503; not retried:"
            " it was left out as stale while in flight; the receiver is failing"
        ]


async def test_an_alert_changed_elsewhere_while_left_out_in_flight_is_counted_as_queued_again(
    tmp_path: Path, taking: GatedReceiver, db: DbThread
) -> None:
    """An alert left out of an attempt in flight that another replica changed meanwhile is
    queued for the receiver again once the receiver takes the attempt, and counted in
    exesdb_webhook_renotified_total under reason changed_in_flight, not dead_lettered."""
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        db=db,
        EXESDB_WEBHOOK_URLS=taking.url,
        EXESDB_WEBHOOK_GROUP_WAIT_MS="0",
    ) as (bridge, sink, _):

        def counted(reason: str) -> float | None:
            return bridge.registry.get_sample_value(
                "exesdb_webhook_renotified_total", {"reason": reason}
            )

        assert (counted("changed_in_flight"), counted("dead_lettered")) == (0.0, 0.0)
        bridge.bus.publish("disk_full", system_alert("a1"))
        await asyncio.wait_for(taking.arrived.wait(), 10)
        outbox = sink.outbox
        [delivery] = await db.call(outbox.queue.deliveries, "pending")
        current = await db.call(outbox.alerts.get, "a1")
        assert current is not None
        eased = dataclasses.replace(current, severity="warning")  # another replica's change
        await db.call(outbox.queue.withhold, delivery.id, ["a1"], T0, "stale: a test's")
        await db.call(outbox.alerts.adopt_open_alerts, {"a1": eased}, T0)
        taking.answer.set()
        await async_wait_until(
            lambda: counted("changed_in_flight") == 1.0, what="a1 counted as queued again"
        )
        assert counted("dead_lettered") == 0.0
        await async_wait_until(lambda: len(taking.bodies) == 2, what="a1 sent again")
        assert b'"severity":"warning"' in taking.bodies[1]
