"""A delivery changed by something else while its attempt is in flight (a real HTTP receiver)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from bridge.backoff import Backoff
from bridge.receivers import resolve_receivers
from bridge.sinks.alerts.delivery import DeliveryWorker, RetryPolicy, WebhookSender
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.payload import build_payloads
from bridge.sinks.alerts.records import DeliveryState
from bridge.sinks.alerts.thread import DbThread
from tests.sinks.alerts.helpers import T0, db, event
from tests.support import ManualClock

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
    worker = DeliveryWorker(
        hook.key,
        queue=outbox.queue,
        db=db,
        sender=sender,
        policy=RetryPolicy(Backoff(base=1.0, cap=4.0, rng=lambda: 0.5), deadline=600.0),
        group_wait=0.0,
        build=lambda records: build_payloads(records, max_alerts=50, external_url="http://b"),
        report=lambda delivery, result, state, number: None,
        clock=clock,
    )
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
