"""A receiver's own options in a receivers file: send_resolved, min_severity, max_alerts and
timeout, and a receiver added while an alert fires hearing nothing of its resolve (in-process
bridge, real receivers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.messages import NodeHealth, NodeLifecycle, NotificationStatus
from bridge.sinks.alerts import AlertSink, DeliveryState
from bridge.sinks.alerts.thread import DbThread
from tests.integration.receivers_file_support import FAST, configured, write
from tests.integration.servers.webhook import HANG, Answer, WebhookReceiver, webhook_receiver
from tests.sinks.alerts.helpers import alert_bridge, system_alert
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below


def outbox_empty(sink: AlertSink) -> bool:
    """Nothing is queued or pending in ``sink``'s outbox."""
    depth = sink.outbox.queue.depth()
    return depth.queued == 0 and depth.pending == 0


async def test_a_receivers_own_max_alerts_splits_its_deliveries_alone(
    tmp_path: Path, webhook_receiver
) -> None:
    """A receiver's max_alerts: 2 gets five alerts raised together in deliveries of at most two
    (truncatedAlerts counting the rest of the group), while a receiver without one gets them
    as EXESDB_WEBHOOK_MAX_ALERTS allows, five in one."""
    small: WebhookReceiver = webhook_receiver()
    large: WebhookReceiver = webhook_receiver()
    config = write(
        tmp_path / "receivers.yml",
        f"webhook_configs:\n  - url: {small.url}\n    max_alerts: 2\n  - url: {large.url}\n",
    )
    ids = [f"many-{n}" for n in range(5)]
    # Published together, well within the group wait: one group of five.
    async with configured(
        tmp_path / "state",
        config,
        EXESDB_WEBHOOK_MAX_ALERTS="50",
        EXESDB_WEBHOOK_GROUP_WAIT_MS="200",
    ) as (bridge, _, _):
        for alert_id in ids:
            bridge.bus.publish("disk_full", system_alert(alert_id))
        await async_wait_until(
            lambda: small.accepted_alert_ids() == large.accepted_alert_ids() == set(ids),
            what="every alert delivered to both",
        )
    assert [len(r.alert_ids()) for r in large.requests] == [5]
    assert sorted(len(r.alert_ids()) for r in small.requests) == [1, 2, 2]
    assert sorted(r.json()["truncatedAlerts"] for r in small.requests) == [3, 3, 4]


async def test_send_resolved_false_gets_the_firing_but_not_the_resolved_notification(
    tmp_path: Path, webhook_receiver
) -> None:
    """Of two receivers, the one with send_resolved: false hears of the alert firing only."""
    every: WebhookReceiver = webhook_receiver()
    firing_only: WebhookReceiver = webhook_receiver()
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {every.url}
  - url: {firing_only.url}
    send_resolved: false
""",
    )
    async with configured(tmp_path / "state", config) as (bridge, sink, _):
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n9", event="down", cluster_size=2))
        await async_wait_until(lambda: len(firing_only.accepted()) == 1, what="the firing")
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n9", event="reconnected", cluster_size=3)
        )
        await async_wait_until(lambda: len(every.accepted()) == 2, what="the resolve")
        # Nothing is left waiting for the other receiver: it was judged and left out.
        await async_wait_until(
            lambda: outbox_empty(sink),
            what="an empty outbox",
        )
    assert [r.json()["status"] for r in every.requests] == ["firing", "resolved"]
    assert [r.json()["status"] for r in firing_only.requests] == ["firing"]


def failing_firing_only(
    tmp_path: Path, webhook_receiver: Callable[[], WebhookReceiver]
) -> tuple[WebhookReceiver, Path]:
    """A receiver answering 503, and a receivers file naming it with send_resolved: false."""
    firing_only = webhook_receiver()
    firing_only.default = Answer(503)
    config = write(
        tmp_path / "receivers.yml",
        f"webhook_configs:\n  - url: {firing_only.url}\n    send_resolved: false\n",
    )
    return firing_only, config


async def fire_and_resolve_while_failing(
    bridge: Bridge, sink: AlertSink, receiver: WebhookReceiver
) -> None:
    """Node n9 goes down (an attempt to ``receiver`` fails) and comes back (the alert
    resolved), then ``receiver`` answers 200 again."""
    bridge.bus.publish("lifecycle", NodeLifecycle(node="n9", event="down", cluster_size=2))
    await async_wait_until(lambda: receiver.requests, what="a failed attempt")
    bridge.bus.publish("lifecycle", NodeLifecycle(node="n9", event="reconnected", cluster_size=3))
    await async_wait_until(
        lambda: not sink.outbox.alerts.find(state="firing"), what="the alert resolved"
    )
    receiver.default = Answer(200)


async def test_send_resolved_false_is_not_sent_a_firing_that_resolved_while_it_waited(
    tmp_path: Path, webhook_receiver
) -> None:
    """A receiver with send_resolved: false, failing while an alert fired and resolved, is not
    sent the firing once it answers again: it would never hear of the resolve and keep the
    alert firing (Alertmanager's next flush no longer holds it); the notification is kept in a
    delivery in state stale, counted in exesdb_webhook_stale_total."""
    firing_only, config = failing_firing_only(tmp_path, webhook_receiver)
    async with configured(tmp_path / "state", config) as (bridge, sink, _):
        await fire_and_resolve_while_failing(bridge, sink, firing_only)

        def stale_counted() -> float | None:
            return bridge.registry.get_sample_value("exesdb_webhook_stale_total")

        # Counted once the delivery's stale state is written: the outbox may be seen empty
        # between the two.
        await async_wait_until(
            lambda: outbox_empty(sink) and stale_counted(), what="an empty outbox, stale counted"
        )
        [stale] = sink.outbox.queue.deliveries(state="stale")
        assert stale.last_error is not None
        assert "send_resolved: false" in stale.last_error
        assert stale_counted() == 1
    assert not firing_only.accepted()


class LeftOutMeanwhile(DbThread):
    """The sink's database thread, on which the first ``withhold`` of a delivery finds it left
    out already: another withhold ran just before (as the open-alert index's does when the
    work-queue lease is taken up), and was counted by ``count``."""

    def __init__(self) -> None:
        super().__init__()
        self.count: Callable[[int], None] = lambda count: None
        self.raced = False  # the raced withhold has returned (its caller resumes at once)

    async def call(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn``, after one more withhold of the same the first time it is ``withhold``."""
        if getattr(fn, "__name__", "") != "withhold" or self.raced:
            return await super().call(fn, *args, **kwargs)
        _left, withheld = await super().call(fn, *args, **kwargs)
        self.count(withheld)
        result = await super().call(fn, *args, **kwargs)
        self.raced = True
        return result


async def test_notifications_left_out_meanwhile_are_not_counted_stale_twice(
    tmp_path: Path, webhook_receiver
) -> None:
    """A send_resolved: false receiver's delivery whose resolved alerts were left out meanwhile
    (the delivery no longer pending once the check withholds them) is not counted again in
    exesdb_webhook_stale_total: one notification, counted once."""
    firing_only, config = failing_firing_only(tmp_path, webhook_receiver)
    db = LeftOutMeanwhile()
    bridge_of = alert_bridge(
        tmp_path / "state", serve_http=False, db=db, EXESDB_WEBHOOK_CONFIG_FILE=str(config), **FAST
    )
    async with bridge_of as (bridge, sink, _):
        db.count = sink.metrics.withheld
        await fire_and_resolve_while_failing(bridge, sink, firing_only)
        await async_wait_until(lambda: db.raced, what="the check's withhold")
        assert sink.outbox.queue.count(DeliveryState.STALE.value) == 1
        assert bridge.registry.get_sample_value("exesdb_webhook_stale_total") == 1
    assert not firing_only.accepted()


async def test_a_receiver_told_of_an_alert_hears_its_resolve_after_it_eased_below_its_minimum(
    tmp_path: Path, webhook_receiver
) -> None:
    """A critical-only receiver told of an unhealthy node hears of it easing to degraded
    (warning) and of its resolve: it is never left with the alert firing; a degraded node
    it was never told of stays unheard of."""
    critical: WebhookReceiver = webhook_receiver()
    config = write(
        tmp_path / "receivers.yml",
        f"webhook_configs:\n  - url: {critical.url}\n    min_severity: critical\n",
    )
    async with configured(tmp_path / "state", config) as (bridge, sink, _):
        bridge.bus.publish("health", NodeHealth(node="n1", status="unhealthy"))
        await async_wait_until(lambda: len(critical.accepted()) == 1, what="the firing")
        bridge.bus.publish("health", NodeHealth(node="n1", status="degraded"))
        bridge.bus.publish("health", NodeHealth(node="n2", status="degraded"))
        bridge.bus.publish("health", NodeHealth(node="n1", status="healthy"))
        bridge.bus.publish("health", NodeHealth(node="n2", status="healthy"))
        await async_wait_until(
            lambda: not sink.outbox.alerts.find(state="firing") and outbox_empty(sink),
            what="both resolved and an empty outbox",
        )
    heard = [
        (alert["labels"]["node"], alert["labels"]["severity"], alert["status"])
        for request in critical.accepted()
        for alert in request.json()["alerts"]
    ]
    assert heard[0] == ("n1", "critical", "firing")
    assert heard[-1] == ("n1", "warning", "resolved")
    assert all(node == "n1" for node, _, _ in heard)


async def test_a_receiver_added_while_an_alert_fires_hears_nothing_of_its_resolve(
    tmp_path: Path, webhook_receiver
) -> None:
    """A receiver added (a restart with a new receivers file) while an alert is open was never
    told of it: its resolve goes to the receiver that got the firing, none to the new one, as
    Alertmanager sends nothing to a receiver it never notified."""
    told: WebhookReceiver = webhook_receiver()
    added: WebhookReceiver = webhook_receiver()
    before = write(tmp_path / "before.yml", f"webhook_configs:\n  - url: {told.url}\n")
    after = write(
        tmp_path / "after.yml", f"webhook_configs:\n  - url: {told.url}\n  - url: {added.url}\n"
    )
    async with configured(tmp_path / "state", before) as (bridge, sink, _):
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n9", event="down", cluster_size=2))
        await async_wait_until(lambda: len(told.accepted()) == 1, what="the firing")
        # Recorded as delivered too, else the restart sends it again (at least once).
        await async_wait_until(
            lambda: sink.outbox.queue.depth().pending == 0, what="the firing recorded delivered"
        )
    async with configured(tmp_path / "state", after) as (bridge, sink, _):
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n9", event="reconnected", cluster_size=3)
        )
        await async_wait_until(lambda: len(told.accepted()) == 2, what="the resolve")
        await async_wait_until(
            lambda: outbox_empty(sink),
            what="an empty outbox",
        )
    assert [r.json()["status"] for r in told.requests] == ["firing", "resolved"]
    assert added.requests == []


async def test_a_receivers_own_timeout_gives_up_on_a_hung_attempt(
    tmp_path: Path, webhook_receiver
) -> None:
    """A receiver's timeout (a Go duration) overrides EXESDB_WEBHOOK_TIMEOUT_MS: its hung
    attempt is given up on after 300ms, not the bridge-wide minute, and retried."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(HANG)
    config = write(
        tmp_path / "receivers.yml",
        f"webhook_configs:\n  - url: {receiver.url}\n    timeout: 300ms\n",
    )
    async with alert_bridge(
        tmp_path / "state",
        serve_http=False,
        EXESDB_WEBHOOK_CONFIG_FILE=str(config),
        EXESDB_WEBHOOK_TIMEOUT_MS="60000",
        **FAST,
    ) as (bridge, _, watcher):
        bridge.bus.publish("disk_full", system_alert("slow-1"))
        await async_wait_until(lambda: receiver.accepted(), what="the retry accepted")
        failed = await async_wait_until(
            lambda: [s for s in watcher.of(NotificationStatus) if s.status == "failed"],
            what="the failed attempt reported",
        )
    assert failed[0].error_reason == "timed out after 0.3s; will retry"
    assert len(receiver.requests) == 2
