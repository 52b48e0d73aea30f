"""A graceful hand-over of the work queue on a real redis-server: nothing handled runs twice.

The holder stops as the alert sink stops it (``WorkQueueLease``): it reads no more, drains what
it took, and gives the lease up; the replica standing by then takes the work queue over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bridge.bus import Envelope
from bridge.bus.redis import GROUP
from bridge.messages import SystemAlert
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.test_redis_bus import ALERTS, Replica, replicas
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]

STREAM = f"exesdb:bus:{ALERTS}"
# A short lease: the replica standing by takes over within a third of it.
LEASE_MS = 600


def pending_of(server: RedisServer, consumer: str) -> int:
    """How many work-queue entries Redis holds pending for ``consumer``."""
    with server.client() as client:
        summary = client.xpending(STREAM, GROUP)
    return sum(
        int(entry["pending"])
        for entry in summary["consumers"]
        if entry["name"] in (consumer, consumer.encode())
    )


def alert_ids(envelopes: list[Envelope]) -> set[str]:
    return {e.payload.alert_id for e in envelopes if isinstance(e.payload, SystemAlert)}


async def test_a_graceful_hand_over_leaves_nothing_handled_for_the_next_holder(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A holder that drains what it took and gives the lease up has acknowledged all of it by
    then: Redis holds none of its entries pending, and the replica that takes the work queue
    over handles none of them again."""
    server = redis_server()
    holder = Replica(server.url, "holder", group=False, claim_idle_ms=LEASE_MS)
    handled: list[Envelope] = []
    gate = asyncio.Event()

    async def handle(envelope: Envelope) -> None:
        handled.append(envelope)
        await gate.wait()  # held until the stop begins: the drain handles the rest

    subscription = holder.bridge.bus.subscribe("work", handle, instances=[ALERTS], group=True)
    replicas.append(await holder.start())
    await async_wait_until(lambda: holder.transport.leading, 10, "the lease taken")
    standby = await Replica(server.url, "standby", claim_idle_ms=LEASE_MS).start()
    replicas.append(standby)
    await async_wait_until(standby.ready, 10, "the standby ready")
    for number in range(5):
        holder.publish_alert(number)
    await async_wait_until(lambda: handled, 10, "the first taken")
    lease = holder.transport.capabilities.lease
    assert lease is not None
    await lease.stop_reading()
    gate.set()
    await subscription.stop(5.0)
    await lease.release()
    assert pending_of(server, holder.transport.consumer) == 0
    # Once the standby handles a newer alert it has claimed all it would (before any read).
    await async_wait_until(lambda: standby.transport.leading, 10, "the standby took over")
    standby.publish_alert(99)
    await async_wait_until(lambda: "alert-0099" in alert_ids(standby.taken), 10, "read on")
    assert not alert_ids(handled) & alert_ids(standby.taken)
