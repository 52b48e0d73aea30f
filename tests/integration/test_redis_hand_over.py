"""A graceful hand-over of the work queue on a real redis-server: nothing handled runs twice.

The holder stops as the alert sink stops it (``WorkQueueLease``): it reads no more, drains what
it took, and gives the lease up; the replica standing by then takes the work queue over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from bridge.backoff import Backoff
from bridge.bus import Envelope
from bridge.bus.redis import GROUP
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.lease import Lease
from bridge.bus.redis.link import Link
from bridge.messages import SystemAlert
from tests.integration.redis_replicas import ALERTS, Replica, replicas
from tests.integration.redis_spool_support import awaiting, running_writer
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until, each_turn_until

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


async def test_a_hand_over_cut_short_by_the_stop_deadline_is_done_by_the_next_release(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A graceful hand-over cancelled part way (the stop's deadline passing while it stops its
    readers, the lease still held) leaves the lease to the next release (the transport's stop),
    which gives it back at once rather than leaving it for the replica standing by to wait
    out."""
    server = redis_server()
    holder = Replica(server.url, "holder", claim_idle_ms=LEASE_MS)
    replicas.append(await holder.start())
    await async_wait_until(lambda: holder.transport.leading, 10, "the lease taken")
    lease = holder.transport.capabilities.lease
    assert lease is not None
    cut_short = asyncio.create_task(lease.release())
    await each_turn_until(lambda: "stop_reading" in awaiting(cut_short), 5, "readers stopping")
    cut_short.cancel()
    await asyncio.gather(cut_short, return_exceptions=True)
    leader = Layout("exesdb").leader
    with server.client() as client:
        assert cut_short.cancelled()
        assert client.get(leader) is not None  # cut short before it gave the lease back
    await lease.release()
    with server.client() as client:
        assert client.get(leader) is None


class ReleaseWatched(Redis):
    """A client noting, each time it sends the lease's release (the script deleting it), how
    many entries Redis holds pending then (``server``'s, set after it is made)."""

    server: RedisServer
    pending_at_release: list[int]

    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        """Note the entries pending before a release goes, then send the script."""
        if "'del'" in script:
            with self.server.client() as client:
                self.pending_at_release.append(int(client.xpending(STREAM, GROUP)["pending"]))
        return await super().eval(script, numkeys, *keys_and_args)


async def test_an_unfit_holder_writes_its_acknowledgements_before_it_gives_the_lease_up(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A holder found unfit (its outbox hung) just after it handled an entry writes that entry's
    acknowledgement before it gives the lease up, not 10 ms after (lingering for company), when
    the replica taking over may claim it and handle it again."""
    server = redis_server()
    with server.client() as client:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        entry_id = client.xadd(STREAM, {"e": b"handled"})
        client.xreadgroup(GROUP, "a:1", {STREAM: ">"})
    redis = cast(ReleaseWatched, ReleaseWatched.from_url(server.url))  # the class's own
    redis.server, redis.pending_at_release = server, []
    async with running_writer(server.url, client=redis) as (writer, link):
        lease = Lease(
            link,
            Layout("exesdb"),
            consumer="a:1",
            lease_ms=LEASE_MS,
            write_acks=writer.write_acks,
        )
        hung = asyncio.Event()

        def check() -> str | None:
            if not hung.is_set():
                return None
            if not writer.unacknowledged and not redis.pending_at_release:
                # The entry's handling ends as the outbox is found hung: its acknowledgement is
                # queued by the time the holder gives the lease up.
                writer.acknowledge(STREAM, entry_id)
            return "the alert outbox has not answered for 15 s"

        lease.require(check)
        leasing = asyncio.create_task(lease.run())
        try:
            await async_wait_until(lambda: lease.leading, 10, "the lease taken")
            hung.set()
            await async_wait_until(lambda: redis.pending_at_release, 10, "the lease given up")
            assert redis.pending_at_release[0] == 0
        finally:
            link.stopping.set()
            leasing.cancel()
            await asyncio.gather(leasing, return_exceptions=True)


async def test_a_stop_while_an_unfit_holder_writes_its_acknowledgements_still_gives_the_lease_back(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A graceful stop that comes while a holder found unfit waits for its acknowledgements
    (cancelling that wait) still gives the lease back at once, not left for the replica standing
    by to wait out."""
    server = redis_server()
    redis = Redis.from_url(server.url)
    link = Link(server.url, redis, Backoff(0.01, 0.1, 0.0))
    writing = asyncio.Event()

    async def slow_acks(seconds: float) -> bool:
        writing.set()
        # Redis taking its time with them, past ``seconds``: the stop comes first, however
        # slowly the test runs (a wait of ``seconds`` could end before it, the lease given up
        # then for being unfit, not for the stop).
        await asyncio.Event().wait()
        return True

    lease_ms = 3_000  # renewed each second: a lease left behind holds for seconds after it
    lease = Lease(link, Layout("exesdb"), consumer="a:1", lease_ms=lease_ms, write_acks=slow_acks)
    unfit = asyncio.Event()
    lease.require(lambda: "the alert outbox has not answered for 15 s" if unfit.is_set() else None)
    task = asyncio.create_task(lease.run())
    try:
        await async_wait_until(lambda: lease.leading, 10, "the lease taken")
        unfit.set()
        await asyncio.wait_for(writing.wait(), 20)  # found unfit at its next renewal
        link.stopping.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await lease.release()
        with server.client() as client:
            assert client.get(Layout("exesdb").leader) is None
    finally:
        link.stopping.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await redis.aclose()
