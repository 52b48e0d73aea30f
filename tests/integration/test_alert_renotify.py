"""Open alerts whose notification was dead-lettered reach their receiver again (real receiver)."""

from __future__ import annotations

import sqlite3
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bridge.sinks.alerts import Outbox
from bridge.sinks.alerts.records import Acknowledgement
from tests.integration.servers.webhook import Answer, WebhookReceiver, webhook_receiver
from tests.integration.webhooks_support import FAST, counted
from tests.sinks.alerts.helpers import T0, URL, alert_bridge, event, observe, system_alert
from tests.support import ManualClock, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below

# Event alerts that stay open through the injected day (they resolve when acknowledged so).
OPEN: dict[str, Any] = {**FAST, "EXESDB_ALERT_RESOLVE_TIMEOUT_MS": str(30 * 86_400_000)}


def taken(receiver: WebhookReceiver, alert_id: str) -> bool:
    """Whether ``receiver`` answered 2xx to a delivery of ``alert_id``."""
    return alert_id in receiver.accepted_alert_ids()


def renotified(bridge: Any) -> float:
    """exesdb_webhook_renotified_total of the dead-lettered."""
    value = bridge.registry.get_sample_value(
        "exesdb_webhook_renotified_total", {"reason": "dead_lettered"}
    )
    return value or 0.0


async def dead_letter_a1(bridge: Any, sink: Any, clock: ManualClock) -> None:
    """Publish the warning a1 to the receiver, down, and let a day pass: a1 is dead-lettered."""
    bridge.bus.publish("disk_full", system_alert("a1", severity="warning"))
    await async_wait_until(lambda: counted(bridge, "retry") == 1, what="a1 refused")
    clock.advance(86_400.0 + 1)  # a day later: its next attempt is past the deadline
    for worker in sink.workers.values():
        worker.wake()
    await async_wait_until(lambda: counted(bridge, "expired") == 1, what="a1 dead-lettered")


async def test_an_alert_dead_lettered_through_a_long_outage_reaches_the_receiver_once_back(
    tmp_path: Path, webhook_receiver
) -> None:
    """A firing dead-lettered after a receiver was down past EXESDB_WEBHOOK_DEADLINE_MS is sent
    again, as it stands, as soon as the receiver takes a later delivery, once, under a new
    delivery id; its resolve then ends an alert the receiver was told of."""
    receiver: WebhookReceiver = webhook_receiver(start=False)  # down: its port refuses
    clock = ManualClock(T0)
    async with alert_bridge(
        tmp_path, clock=clock, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **OPEN
    ) as (bridge, sink, _):
        await dead_letter_a1(bridge, sink, clock)
        [dead] = sink.outbox.queue.deliveries("dead")
        receiver.start()
        bridge.bus.publish("disk_full", system_alert("a2", severity="warning"))
        await async_wait_until(
            lambda: receiver.accepted_alert_ids() == {"a1", "a2"}, what="a1 sent once a2 was"
        )
        [taken, again] = receiver.accepted()
        assert (taken.alert_ids(), again.alert_ids()) == (["a2"], ["a1"])
        assert again.json()["alerts"][0]["status"] == "firing"
        assert again.delivery_id not in (dead.id, taken.delivery_id)
        assert renotified(bridge) == 1.0
        await sink.acknowledge(Acknowledgement("a1", "ops", None, "freed space"))
        await async_wait_until(lambda: len(receiver.accepted()) == 3, what="a1's resolve")
        assert receiver.accepted()[2].json()["alerts"][0]["status"] == "resolved"
        clock.advance(5 * 3600.0)  # past EXESDB_WEBHOOK_RENOTIFY_INTERVAL_MS: nothing more
        await sink.housekeeping.housekeep()
        assert (len(receiver.requests), renotified(bridge)) == (3, 1.0)
        assert sink.outbox.queue.depth().queued == 0


async def test_a_resolve_dead_lettered_through_a_long_outage_reaches_the_receiver_once_back(
    tmp_path: Path, webhook_receiver
) -> None:
    """A resolve dead-lettered after a receiver that took the alert's firing was down past
    EXESDB_WEBHOOK_DEADLINE_MS is sent again as soon as the receiver takes a later delivery,
    once, so it does not show the alert firing for good; the dead letter is then superseded."""
    receiver: WebhookReceiver = webhook_receiver()
    clock = ManualClock(T0)
    async with alert_bridge(
        tmp_path, clock=clock, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **OPEN
    ) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("a1", severity="warning"))
        await async_wait_until(partial(taken, receiver, "a1"), what="a1 taken")
        receiver.default = Answer(503)  # down from here on
        await sink.acknowledge(Acknowledgement("a1", "ops", None, "freed space"))
        await async_wait_until(lambda: counted(bridge, "retry") >= 1, what="a1's resolve refused")
        clock.advance(86_400.0 + 1)  # a day later: its next attempt is past the deadline
        for worker in sink.workers.values():
            worker.wake()
        await async_wait_until(lambda: counted(bridge, "expired") == 1, what="it dead-lettered")
        [dead] = sink.outbox.queue.deliveries("dead")
        receiver.default = Answer()  # back
        bridge.bus.publish("disk_full", system_alert("a2", severity="warning"))
        await async_wait_until(lambda: len(receiver.accepted()) == 3, what="a1's resolve again")
        [_, later, again] = receiver.accepted()
        assert (later.alert_ids(), again.alert_ids()) == (["a2"], ["a1"])
        assert again.json()["alerts"][0]["status"] == "resolved"
        assert again.delivery_id != dead.id
        assert renotified(bridge) == 1.0
        await async_wait_until(
            lambda: dead_letters(bridge) == {"needs_action": 0.0, "superseded": 1.0},
            what="the dead letter counted superseded by housekeeping",
        )
        clock.advance(5 * 3600.0)  # past EXESDB_WEBHOOK_RENOTIFY_INTERVAL_MS: nothing more
        await sink.housekeeping.housekeep()
        assert (len(receiver.accepted()), renotified(bridge)) == (3, 1.0)


async def test_an_alert_refused_is_sent_again_only_after_the_renotify_interval(
    tmp_path: Path, webhook_receiver
) -> None:
    """A firing the receiver refused (400, final) is not sent again at the next delivery the
    receiver takes, nor at each after it, but once EXESDB_WEBHOOK_RENOTIFY_INTERVAL_MS has
    passed since it was dead-lettered."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(400)
    clock = ManualClock(T0)
    async with alert_bridge(
        tmp_path,
        clock=clock,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_RENOTIFY_INTERVAL_MS="3600000",
        **OPEN,
    ) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("a1", severity="warning"))
        await async_wait_until(lambda: counted(bridge, "rejected") == 1, what="a1 refused")
        for alert_id in ("a2", "a3"):
            bridge.bus.publish("disk_full", system_alert(alert_id, severity="warning"))
            await async_wait_until(partial(taken, receiver, alert_id), what=f"{alert_id} taken")
            await sink.housekeeping.housekeep()
        assert (len(receiver.requests), renotified(bridge)) == (3, 0.0)
        clock.advance(3600.0)
        await async_wait_until(lambda: "a1" in receiver.accepted_alert_ids(), what="a1 again")
        assert [r.alert_ids() for r in receiver.requests] == [["a1"], ["a2"], ["a3"], ["a1"]]
        assert renotified(bridge) == 1.0


async def test_an_alert_auto_resolved_is_sent_at_once_when_renotifying_then_fails(
    tmp_path: Path, webhook_receiver
) -> None:
    """An alert a housekeeping pass auto-resolves is sent at once even when the pass fails
    after (re-notifying, on a full disk): the workers are woken for it before that step, not
    left to find it at their next poll, 5 s on."""
    receiver: WebhookReceiver = webhook_receiver()
    clock = ManualClock(T0)
    async with alert_bridge(
        tmp_path,
        clock=clock,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        **{**FAST, "EXESDB_ALERT_RESOLVE_TIMEOUT_MS": "60000"},
    ) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("w1", severity="warning"))
        await async_wait_until(partial(taken, receiver, "w1"), what="w1 taken")

        def full(*args: Any, **kwargs: Any) -> Any:
            raise sqlite3.OperationalError("database or disk is full")

        sink.outbox.dead_letters.renotify = full  # type: ignore[method-assign]
        clock.advance(61)  # past the resolve timeout: the next pass resolves w1
        await async_wait_until(
            lambda: len(receiver.accepted()) == 2, within=3.0, what="w1's resolve within 3 s"
        )
        assert receiver.accepted()[1].json()["alerts"][0]["status"] == "resolved"


async def test_a_long_outages_dead_letters_are_taken_up_a_hundred_a_pass_a_second_apart(
    tmp_path: Path,
) -> None:
    """250 dead letters due at once are taken up 100 a housekeeping pass, the passes at the
    housekeeping's tick (a second) apart, not back to back: a pass that queued alerts again does
    not start the next at once."""
    box = Outbox.in_dir(tmp_path, urls=[URL])
    for n in range(250):
        observe(box, event(f"a{n:03}", requires_ack=False), T0)
    with box.database.transaction() as db:  # each one's notification died at T0
        db.execute(
            "INSERT INTO deliveries (id, url, body, alert_ids, created_at, next_attempt_at,"
            " state, last_error, finished_at) SELECT 'd-' || alert_id, url, CAST(alert_id AS"
            " BLOB), json_array(alert_id), :t0, :t0, 'dead', 'timed out after 10s', :t0"
            " FROM queued ORDER BY alert_id",
            {"t0": T0},
        )
        db.execute("DELETE FROM queued")
    box.close()
    clock = ManualClock(T0 + 5 * 3600.0)  # past EXESDB_WEBHOOK_RENOTIFY_INTERVAL_MS (4 h)
    first_seen: dict[int, float] = {}  # how many alerts wait, and when first seen waiting

    def all_queued(sink: Any) -> bool:
        queued = sink.outbox.queue.depth().queued
        first_seen.setdefault(queued, time.monotonic())
        return bool(queued == 250)

    async with alert_bridge(
        tmp_path,
        clock=clock,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=URL,
        **{**OPEN, "EXESDB_WEBHOOK_GROUP_WAIT_MS": "600000"},  # no delivery made meanwhile
    ) as (_, sink, _):
        await async_wait_until(partial(all_queued, sink), what="all 250 queued again")
    assert [n for n in sorted(first_seen) if n] == [100, 200, 250]
    assert first_seen[250] - first_seen[100] >= 1.5, first_seen


def dead_letters(bridge: Any) -> dict[str, float | None]:
    """exesdb_webhook_dead_letters by state."""
    return {
        state: bridge.registry.get_sample_value("exesdb_webhook_dead_letters", {"state": state})
        for state in ("needs_action", "superseded")
    }


async def test_a_dead_letter_needs_action_until_the_receiver_back_took_its_alerts_again(
    tmp_path: Path, webhook_receiver
) -> None:
    """The dead-letters gauge counts a firing dead-lettered through an outage under
    needs_action, and, once the receiver is back and took its re-notification, under
    superseded (the shipped alert fires on the first alone); the dead letter stays."""
    receiver: WebhookReceiver = webhook_receiver(start=False)  # down: its port refuses
    clock = ManualClock(T0)
    async with alert_bridge(
        tmp_path, clock=clock, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **OPEN
    ) as (bridge, sink, _):
        await dead_letter_a1(bridge, sink, clock)
        await sink.housekeeping.refresh_gauges()
        assert dead_letters(bridge) == {"needs_action": 1.0, "superseded": 0.0}
        receiver.start()
        bridge.bus.publish("disk_full", system_alert("a2", severity="warning"))
        await async_wait_until(
            lambda: receiver.accepted_alert_ids() == {"a1", "a2"}, what="a1 sent once a2 was"
        )
        await async_wait_until(
            lambda: dead_letters(bridge) == {"needs_action": 0.0, "superseded": 1.0},
            what="the dead letter counted superseded by housekeeping",
        )
        assert [d.state for d in sink.outbox.queue.deliveries("dead")] == ["dead"]
