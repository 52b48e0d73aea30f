"""A work-queue lease holder whose alert outbox hangs, on a real redis-server with a real webhook
receiver: it gives the lease up, a replica standing by delivers, and once the hung call returns
the old holder neither acts as the holder nor sends anything twice.

Replicas here are in-process bridges whose only component is the alert sink, each with its own
state directory; the outbox call hangs on the test's seam (``hold``, or a wrapped ``commit``),
and each replica's database thread times its calls on a clock of the test's, so that the hang
lasts its 15 s at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.messages import NodeLifecycle
from bridge.sinks.alerts import AlertSink
from bridge.sinks.alerts.thread import DbThread
from bridge.sinks.alerts.transitions import Plan
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.sinks.alerts.helpers import Watcher, alert_bridge, hold, stored
from tests.support import TEST_SECRET, ManualClock, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "webhook_receiver"]  # the fixtures, imported for the tests below

# The lease (and the claim of an entry left pending) in 1.5 s, renewed every half second.
CLAIM_IDLE_MS = "1500"
GAVE_UP = (
    "this replica no longer takes the work queue: the alert outbox has not answered for 15 s"
    " (a write or fsync to its disk hangs); it gives the lease up, for another replica to take"
    " over"
)


@asynccontextmanager
async def replica(
    state_dir: Path, server: RedisServer, receiver: WebhookReceiver, node: str, **options: Any
) -> AsyncIterator[tuple[Bridge, AlertSink, Watcher]]:
    """A replica named ``node`` on ``server``'s bus, keeping its outbox in ``state_dir`` and
    sending its alerts to ``receiver``."""
    async with alert_bridge(
        state_dir,
        serve_http=False,
        EXESDB_BUS=server.url,
        EXESDB_NODE=node,
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_GROUP_WAIT_MS="100",
        EXESDB_REDIS_CLAIM_IDLE_MS=CLAIM_IDLE_MS,
        **options,
    ) as started:
        yield started


def down(node: str) -> NodeLifecycle:
    """``node`` went down: its node_failure fires."""
    return NodeLifecycle(node=node, event="down", cluster_size=2)


def back(node: str) -> NodeLifecycle:
    """``node`` came back: its node_failure resolves."""
    return NodeLifecycle(node=node, event="reconnected", cluster_size=3)


def statuses(receiver: WebhookReceiver, node: str) -> list[str]:
    """The status of each notification of ``node``'s node_failure the receiver took, in order."""
    return [
        alert["status"]
        for request in receiver.accepted()
        for alert in request.json()["alerts"]
        if alert["labels"]["alert_id"] == f"node_failure:{node}"
    ]


def pending_entries(server: RedisServer) -> int:
    """Work-queue entries taken by a replica and not yet acknowledged, in every stream."""
    with server.client() as client:
        return sum(
            int(group["pending"])
            for key in client.scan_iter("exesdb:bus:ex_esdb_*")
            if client.type(key) == b"stream"
            for group in client.xinfo_groups(key)
        )


def settled(server: RedisServer, *sinks: AlertSink) -> bool:
    """Nothing pending in the work queue, and nothing waiting in any outbox to be sent."""
    depths = (sink.outbox.queue.depth() for sink in sinks)
    return pending_entries(server) == 0 and all(d.queued + d.pending == 0 for d in depths)


def alerts_ready(bridge: Bridge) -> bool:
    """Whether the alert sink's readiness check passes."""
    return bridge.readiness()["alerts"]["reason"] is None


async def test_a_holder_whose_outbox_hangs_hands_the_work_queue_over_and_nothing_is_sent_twice(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    webhook_receiver: Callable[..., WebhookReceiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The holder A's outbox hangs 15 s with an alert taken and not stored: A gives the lease up
    (logged), B takes it, claims that alert and sends it, and resolves the alert A had fired;
    once A's call returns, A stays standing by and neither stores nor sends anything of it."""
    caplog.set_level(logging.INFO)
    server, receiver = redis_server(), webhook_receiver()
    clock = ManualClock()
    db = DbThread(clock=clock)
    async with replica(tmp_path / "a", server, receiver, "a", db=db) as (a, sink_a, _):
        await async_wait_until(sink_a.holds_work_queue, what="A holds the lease")
        async with replica(tmp_path / "b", server, receiver, "b") as (b, sink_b, _):
            await async_wait_until(
                lambda: sink_b.work_queue_holder() is not None, what="B stands by"
            )
            a.bus.publish("lifecycle", down("n1"))
            await async_wait_until(lambda: statuses(receiver, "n1") == ["firing"], what="n1")
            release = await hold(db)
            b.bus.publish("lifecycle", down("n2"))
            await async_wait_until(lambda: pending_entries(server) == 1, what="A took n2")
            clock.advance(15.0)
            await async_wait_until(sink_b.holds_work_queue, what="B takes the work queue over")
            assert not sink_a.holds_work_queue()
            assert GAVE_UP in caplog.text
            await async_wait_until(lambda: statuses(receiver, "n2") == ["firing"], what="n2")
            b.bus.publish("lifecycle", back("n1"))
            await async_wait_until(
                lambda: statuses(receiver, "n1") == ["firing", "resolved"], what="n1 resolved"
            )
            release.set()
            await async_wait_until(lambda: alerts_ready(a), what="A's outbox answering again")
            await async_wait_until(lambda: settled(server, sink_a, sink_b), what="settled")
            assert (sink_a.holds_work_queue(), sink_b.holds_work_queue()) == (False, True)
            assert sink_a.work_queue_holder() == sink_b.work_queue_holder()
    assert statuses(receiver, "n1") == ["firing", "resolved"]
    assert statuses(receiver, "n2") == ["firing"]


async def test_a_change_redis_took_before_the_holders_outbox_hung_is_sent_once_by_the_next(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    webhook_receiver: Callable[..., WebhookReceiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The holder A's outbox hangs storing a change Redis already took: B, taking the lease A
    gave up, takes A's note of it over and sends it; once A's store returns, A finds its note
    taken over and leaves the notification out, so the receiver gets it once."""
    caplog.set_level(logging.INFO)
    server, receiver = redis_server(), webhook_receiver()
    clock = ManualClock()
    db = DbThread(clock=clock)
    async with replica(tmp_path / "a", server, receiver, "a", db=db) as (_a, sink_a, _):
        await async_wait_until(sink_a.holds_work_queue, what="A holds the lease")
        entered, release = threading.Event(), threading.Event()
        commit = sink_a.outbox.alerts.commit

        def hanging_commit(plan: Plan, *, tell: bool = False) -> Any:
            """The outbox's commit, hanging (until released) on the change that fires n2."""
            if any(s.record and s.record.alert_id == "node_failure:n2" for s in plan.steps):
                entered.set()
                release.wait(30)
            return commit(plan, tell=tell)

        sink_a.outbox.alerts.commit = hanging_commit  # type: ignore[method-assign]
        async with replica(tmp_path / "b", server, receiver, "b") as (b, sink_b, _):
            await async_wait_until(
                lambda: sink_b.work_queue_holder() is not None, what="B stands by"
            )
            b.bus.publish("lifecycle", down("n2"))
            await async_wait_until(entered.is_set, what="A storing n2, hung")
            clock.advance(15.0)
            await async_wait_until(sink_b.holds_work_queue, what="B takes the work queue over")
            await async_wait_until(lambda: statuses(receiver, "n2") == ["firing"], what="n2")
            release.set()
            await async_wait_until(
                lambda: (
                    "left 1 notification(s) out of the outbox: another replica took over"
                    in caplog.text
                ),
                what="A leaving n2 out",
            )
            await async_wait_until(lambda: settled(server, sink_a, sink_b), what="settled")
            assert (sink_a.holds_work_queue(), sink_b.holds_work_queue()) == (False, True)
    assert statuses(receiver, "n2") == ["firing"]


async def test_a_lone_replica_whose_outbox_hangs_leaves_the_lease_free_until_it_answers(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    webhook_receiver: Callable[..., WebhookReceiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lone holder whose outbox hangs gives the lease up and, the lease free, does not take it
    back while it hangs (said once); once the call returns it takes the lease again and sends
    the alert it had taken, once."""
    caplog.set_level(logging.INFO)
    server, receiver = redis_server(), webhook_receiver()
    clock = ManualClock()
    db = DbThread(clock=clock)
    async with replica(tmp_path / "a", server, receiver, "a", db=db) as (a, sink_a, _):
        await async_wait_until(sink_a.holds_work_queue, what="A holds the lease")
        release = await hold(db)
        a.bus.publish("lifecycle", down("n3"))
        await async_wait_until(lambda: pending_entries(server) == 1, what="A took n3")
        clock.advance(15.0)
        await async_wait_until(
            lambda: "the work-queue lease is free but this replica" in caplog.text,
            what="A declining the free lease",
        )
        assert GAVE_UP in caplog.text
        assert not sink_a.holds_work_queue()
        with server.client() as client:
            assert client.get("exesdb:bus:leader") is None
        release.set()
        await async_wait_until(sink_a.holds_work_queue, what="A takes the lease again")
        await async_wait_until(lambda: statuses(receiver, "n3") == ["firing"], what="n3")
        await async_wait_until(lambda: settled(server, sink_a), what="settled")
    assert statuses(receiver, "n3") == ["firing"]
    declined = [r for r in caplog.records if "lease is free but" in r.getMessage()]
    assert len(declined) == 1


def sink_errors(bridge: Bridge) -> float:
    """``exesdb_sink_errors_total{subscriber="alerts"}`` of ``bridge``."""
    value = bridge.registry.get_sample_value("exesdb_sink_errors_total", {"subscriber": "alerts"})
    return value or 0.0


async def test_a_close_cancelled_mid_write_stops_the_handler_before_the_outbox_closes(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    webhook_receiver: Callable[..., WebhookReceiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The holder's close cancelled (the stop's deadline passed) while its handler is storing an
    alert: the handler is stopped before the outbox closes, so nothing fails on the closed file
    (no error logged or counted), the stop says what it left, and the next start stores it."""
    caplog.set_level(logging.INFO)
    server, receiver = redis_server(), webhook_receiver()
    async with replica(tmp_path / "a", server, receiver, "a") as (a, sink_a, _):
        await async_wait_until(sink_a.holds_work_queue, what="A holds the lease")
        errors = sink_errors(a)
        entered, release = threading.Event(), threading.Event()
        plan = sink_a.outbox.alerts.plan

        def slow_plan(*args: Any, **kwargs: Any) -> Plan:
            """The outbox's first step of storing a batch, held (until released)."""
            entered.set()
            release.wait(30)
            return plan(*args, **kwargs)

        sink_a.outbox.alerts.plan = slow_plan  # type: ignore[method-assign]
        try:
            a.bus.publish("lifecycle", down("n4"))
            await async_wait_until(entered.is_set, what="A storing n4")
            closing = asyncio.create_task(sink_a.aclose())
            await async_wait_until(
                lambda: sink_a.readiness() == "the alert sink is closed", what="the close begun"
            )
            closing.cancel()
            await asyncio.wait({closing}, timeout=5)
            assert closing.cancelled()
        finally:
            release.set()
        # Left running, the handler fails on the closed outbox once its held step returns
        # (counted, and logged); stopped, it is idle at once.
        await async_wait_until(
            lambda: sink_a.subscription.idle or sink_errors(a) > errors,
            what="the handler stopped, or failed on the closed outbox",
        )
        assert sink_errors(a) == errors
        assert "closed database" not in caplog.text
        assert "subscriber alerts stopped with 1 message(s) unhandled" in caplog.text
    async with replica(tmp_path / "a", server, receiver, "a") as (_a, sink_a, _):
        await async_wait_until(
            lambda: stored(sink_a.outbox, "node_failure:n4") is not None,
            within=30,
            what="n4 handed back to the next start and stored",
        )
