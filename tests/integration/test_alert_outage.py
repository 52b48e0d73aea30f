"""A webhook receiver down for many grouping windows while alerts change (a real HTTP receiver)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.receivers import resolve_receivers
from bridge.sinks.alerts.delivery import WebhookSender
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.sources import AlertEvent
from bridge.sinks.alerts.thread import DbThread
from tests.integration.servers.webhook import Answer, WebhookReceiver, webhook_receiver
from tests.sinks.alerts.helpers import T0, db, event, webhook_worker
from tests.support import ManualClock

pytestmark = pytest.mark.integration

__all__ = ["db", "webhook_receiver"]  # the fixtures, imported for the tests below

WINDOW = 0.5  # EXESDB_WEBHOOK_GROUP_WAIT_MS's default
DEADLINE = 30.0  # EXESDB_WEBHOOK_DEADLINE_MS, shortened: 60 windows
STEADY = [f"a{n}" for n in range(5)]


def change(alert_id: str, status: str, severity: str, now: float) -> AlertEvent:
    """An alert event at ``now``."""
    return event(alert_id, status, severity=severity, at=datetime.fromtimestamp(now, UTC))


async def run_outage(
    tmp_path: Path, receiver: WebhookReceiver, db: DbThread, windows: int
) -> tuple[Outbox, int, dict[str, tuple[str, str]]]:
    """Keep ``receiver`` answering 503 for ``windows`` grouping windows, in each of which one of
    five open alerts changes severity and a sixth flaps, then bring it back and send everything:
    the outbox, how many deliveries were made while it was down, and each alert's latest state
    (status as a receiver is told it, severity) as the outbox holds it."""
    [hook], _ = resolve_receivers(
        [receiver.url], None, secret=None, timeout=5.0, max_alerts=50, min_severity="info"
    )
    outbox = Outbox.in_dir(tmp_path, urls=[hook.key])
    clock = ManualClock(T0)
    sender = WebhookSender(hook, clock=clock)
    worker = webhook_worker(outbox, db, sender, clock, deadline=DEADLINE, group_wait=WINDOW)
    receiver.default = Answer(503)
    try:
        outbox.alerts.apply(
            [change(a, "firing", "warning", clock.now) for a in [*STEADY, "flap"]], clock.now
        )
        for n in range(windows):
            severity = "critical" if n // len(STEADY) % 2 == 0 else "warning"
            flap = "resolved" if n % 2 == 0 else "firing"
            outbox.alerts.apply(
                [
                    change(STEADY[n % len(STEADY)], "firing", severity, clock.now),
                    change("flap", flap, "critical", clock.now),
                ],
                clock.now,
            )
            clock.advance(WINDOW)
            await worker.step()
        assert receiver.requests, "the receiver was never tried while down"
        made = outbox.queue.count()
        receiver.default = Answer(200)
        clock.advance(10 * DEADLINE)  # every retry due, and anything queued past its window
        for _ in range(2 * windows):  # an attempt a step, however many were made
            await worker.step()
    finally:
        await worker.aclose()
        await sender.aclose()
    latest = {
        r.alert_id: ("resolved" if r.state.value == "resolved" else "firing", r.severity)
        for r in outbox.alerts.find()
    }
    return outbox, made, latest


def told_last(receiver: WebhookReceiver) -> dict[str, tuple[str, str]]:
    """Each alert's state the receiver took last (status, severity), in the order it took them."""
    told: dict[str, tuple[str, str]] = {}
    for request in receiver.accepted():
        for alert in request.json()["alerts"]:
            told[alert["labels"]["alert_id"]] = (alert["status"], alert["labels"]["severity"])
    return told


@pytest.mark.parametrize(
    ("windows", "dead"),
    [(40, 0), (100, 1)],  # 20 s, within the deadline; 50 s, past it once
    ids=["within-deadline", "past-deadline"],
)
async def test_a_receiver_down_for_many_windows_is_sent_each_alerts_latest_state_once(
    tmp_path: Path, webhook_receiver, db: DbThread, windows: int, dead: int
) -> None:
    """While a receiver answers 503, alerts changing in every grouping window wait in it rather
    than make a delivery each: at most two deliveries are made (the failing one, and the one
    made once the deadline dead-letters it), and, back, it takes every alert's latest state."""
    receiver: WebhookReceiver = webhook_receiver()
    outbox, made, latest = await run_outage(tmp_path, receiver, db, windows)
    try:
        assert made <= 2, f"{made} deliveries made while the receiver was down"
        depth = outbox.queue.depth()
        assert (depth.queued, depth.pending, depth.dead) == (0, 0, dead)
        assert told_last(receiver) == latest
        assert len(receiver.accepted()) == 2  # the one failing when it came back, then the window
    finally:
        outbox.close()
