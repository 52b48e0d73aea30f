"""A work-queue lease holder whose alert outbox's disk is full, on a real redis-server with a
real webhook receiver: it gives the lease up, a replica standing by records and delivers.

The holder's state directory is a small tmpfs of the test's own, filled up; its database thread
times how long ago the disk was full on a clock of the test's, so that it is fit again at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.sinks.alerts.thread import DbThread
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.servers.tmpfs import SmallDisk, small_disk
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.integration.test_redis_outbox_hang import (
    alerts_ready,
    down,
    pending_entries,
    replica,
    settled,
    statuses,
)
from tests.support import ManualClock, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "small_disk", "webhook_receiver"]  # the fixtures, for the tests below

GAVE_UP = (
    "this replica no longer takes the work queue: the alert outbox's disk is full"
    " (OperationalError: database or disk is full, 0 s ago): it cannot store the alerts it would"
    " take; it gives the lease up, for another replica to take over"
)


async def test_a_holder_whose_outbox_disk_is_full_hands_the_work_queue_over(
    tmp_path: Path,
    small_disk: SmallDisk,
    redis_server: Callable[[], RedisServer],
    webhook_receiver: Callable[..., WebhookReceiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The holder A's disk fills up and it cannot store an alert it took: A gives the lease up
    (logged), B takes it, claims the alert and sends it once; with space again A stands by."""
    caplog.set_level(logging.INFO)
    server, receiver = redis_server(), webhook_receiver()
    clock = ManualClock()
    db = DbThread(clock=clock)
    async with replica(small_disk.path, server, receiver, "a", db=db) as (_a, sink_a, _):
        await async_wait_until(sink_a.holds_work_queue, what="A holds the lease")
        async with replica(tmp_path / "b", server, receiver, "b") as (b, sink_b, _):
            await async_wait_until(
                lambda: sink_b.work_queue_holder() is not None, what="B stands by"
            )
            small_disk.fill()
            b.bus.publish("lifecycle", down("n4"))
            await async_wait_until(sink_b.holds_work_queue, what="B takes the work queue over")
            assert not sink_a.holds_work_queue()
            assert GAVE_UP in caplog.text
            await async_wait_until(lambda: statuses(receiver, "n4") == ["firing"], what="n4")
            small_disk.free()
            clock.advance(30.0)  # A fit again: the lease is B's, so A stands by
            await async_wait_until(lambda: settled(server, sink_a, sink_b), what="settled")
            assert pending_entries(server) == 0
            assert (sink_a.holds_work_queue(), sink_b.holds_work_queue()) == (False, True)
    assert statuses(receiver, "n4") == ["firing"]


async def test_a_lone_holder_whose_disk_is_full_leaves_the_lease_free_until_it_counts_as_fit(
    small_disk: SmallDisk,
    redis_server: Callable[[], RedisServer],
    webhook_receiver: Callable[..., WebhookReceiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lone holder whose disk fills up as it takes an alert gives the lease up and, the lease
    free, does not take it back (said once), not ready meanwhile; 30 s after the last write
    refused, the disk freed meanwhile, it takes the lease again, ready, and sends the alert."""
    caplog.set_level(logging.INFO)
    server, receiver = redis_server(), webhook_receiver()
    clock = ManualClock()
    db = DbThread(clock=clock)
    async with replica(small_disk.path, server, receiver, "a", db=db) as (a, sink_a, _):
        await async_wait_until(sink_a.holds_work_queue, what="A holds the lease")
        small_disk.fill()
        a.bus.publish("lifecycle", down("n5"))
        await async_wait_until(
            lambda: "the work-queue lease is free but this replica" in caplog.text,
            what="A declining the free lease",
        )
        assert "this replica no longer takes the work queue: the alert outbox's disk is full" in (
            caplog.text
        )
        with server.client() as client:
            assert client.get("exesdb:bus:leader") is None
        assert a.readiness()["alerts"]["reason"] == (
            "the alert outbox's disk is full (OperationalError: database or disk is full, 0 s"
            " ago): it cannot store the alerts it would take; it leaves the work queue to a"
            " replica standing by meanwhile"
        )
        small_disk.free()
        clock.advance(30.0)  # past the last write refused: A counts as fit again
        await async_wait_until(sink_a.holds_work_queue, what="A takes the lease again")
        assert alerts_ready(a)
        await async_wait_until(lambda: statuses(receiver, "n5") == ["firing"], what="n5")
        await async_wait_until(lambda: settled(server, sink_a), what="settled")
    assert statuses(receiver, "n5") == ["firing"]
    declined = [r for r in caplog.records if "lease is free but" in r.getMessage()]
    assert len(declined) == 1
