"""A work-queue lease holder whose state directory is removed under it, on a real redis-server
with a real webhook receiver: it gives the lease up, and a replica standing by delivers."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.bus import Envelope, new_message_id
from bridge.messages import utc_now
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.integration.test_redis_outbox_hang import down, replica, statuses
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "webhook_receiver"]  # the fixtures, for the test below


async def test_a_holder_whose_state_directory_is_removed_hands_the_work_queue_over(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    webhook_receiver: Callable[..., WebhookReceiver],
) -> None:
    """The holder A's state directory is removed (its outbox file deleted, still open): A reports
    not ready, refuses ingest of alerts and gives the lease up, B takes it and records and sends
    the next alert, rather than A storing it in the deleted file."""
    server, receiver = redis_server(), webhook_receiver()
    async with replica(tmp_path / "a", server, receiver, "a") as (a, sink_a, _):
        await async_wait_until(sink_a.holds_work_queue, what="A holds the lease")
        async with replica(tmp_path / "b", server, receiver, "b") as (b, sink_b, _):
            await async_wait_until(
                lambda: sink_b.work_queue_holder() is not None, what="B stands by"
            )
            shutil.rmtree(tmp_path / "a")
            await async_wait_until(sink_b.holds_work_queue, what="B takes the work queue over")
            assert not sink_a.holds_work_queue()
            assert "was deleted" in str(a.readiness()["alerts"]["reason"])
            # A's ingest refuses what its alert sink takes, as on the in-process bus.
            message = down("n6")
            envelope = Envelope(
                new_message_id(), message.INSTANCE, "t", message.TAG, "a", utc_now(), message
            )
            refused = a.bus.congestion([envelope])
            assert refused is not None
            assert "was deleted" in str(refused.refusing)
            b.bus.publish("lifecycle", down("n5"))
            await async_wait_until(lambda: statuses(receiver, "n5") == ["firing"], what="n5")
