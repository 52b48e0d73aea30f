"""The work-queue lease on a real redis-server when Redis's answers are lost or never come: a
lease a lost SET took is held (or given back, unfit or stopping), a holder whose renewal goes
unanswered or times out steps down as its lease runs out in Redis, and what a read or claim
under it got is taken at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from bridge.backoff import Backoff
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.lease import Lease
from bridge.bus.redis.link import Link, redis_client
from tests.integration.redis_lease_support import (
    LEADER,
    TakeAnswerLost,
    release_as_the_work_queue_does,
    running_lease,
)
from tests.integration.redis_proxy import Proxy
from tests.integration.redis_replicas import ALERTS, Replica, replicas, signed_entry
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]  # the fixtures, imported for the tests below


async def test_a_lease_taken_by_a_set_whose_answer_was_lost_is_held(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A lease naming this replica's own consumer that it does not know it holds (its SET ran
    after the answer was given up on: Redis stalled) is taken up at once, not waited out as
    another's."""
    server = redis_server()
    with server.client() as other:
        other.set(LEADER, "a:1", px=60_000)
    async with running_lease(server) as lease:
        await async_wait_until(lambda: lease.leading, 10, "the lease taken up")


async def test_an_unfit_replica_gives_back_a_lease_a_lost_set_took_in_its_name(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """An unfit replica (``require``: its outbox hung) finding the lease in its own name unawares
    (a lost SET's) gives it back at once, not left a whole lease for the others to wait out."""
    server = redis_server()
    with server.client() as other:
        other.set(LEADER, "a:1", px=60_000)

    def leader() -> bytes | None:
        with server.client() as other:
            held: bytes | None = other.get(LEADER)
            return held

    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.lease"):
        async with running_lease(server) as lease:
            lease.require(lambda: "the alert outbox has not answered for 15 s")
            await async_wait_until(lambda: leader() is None, 10, "the lease given back")
            assert not lease.leading
            assert "does not take it: the alert outbox has not answered" in caplog.text


async def test_a_holder_whose_renewal_goes_unanswered_steps_down_as_its_lease_runs_out(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A holder whose link to Redis stops carrying anything (its renewal never answered, the
    client set no socket timeout) no longer says it holds the lease once the lease has run out
    in Redis, where another replica may take it: told as its renewal unanswered before the
    lease ran out, not after redis-py's own read timeout (5 s) however slow the host is."""
    server = redis_server()
    proxy = await Proxy(server.port).start()
    try:
        with caplog.at_level(logging.WARNING, logger="bridge.bus.redis"):
            async with running_lease(server, url=proxy.url) as lease:
                await async_wait_until(lambda: lease.leading, 10, "the lease taken")
                proxy.stall()
                await async_wait_until(
                    lambda: not lease.leading and "is unreachable" in caplog.text,
                    10,
                    "the lease given up, Redis said unreachable",
                )
    finally:
        await proxy.aclose()
    assert "no answer to the work-queue lease's renewal before it ran out (300 ms)" in caplog.text


async def test_a_holder_told_unreachable_by_the_socket_timeout_keeps_its_lease_until_it_runs_out(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """With a lease whose renewal waits longer than the socket timeout (as the default 30 s
    lease's 20 s do the bridge's 6 s), a stalled Redis is told unreachable by the socket
    timeout, as on a replica standing by, and the holder says it holds the lease until the
    lease would have run out in Redis, then gives it up, told as expired while Redis was
    unreachable: not sooner, and not as its renewal unanswered (docs/redis.md)."""
    server = redis_server()
    proxy = await Proxy(server.port).start()
    lease_s, socket_timeout = 3.6, 0.3  # the renewal, every 1.2 s, waits up to 2.4 s
    try:
        with caplog.at_level(logging.WARNING, logger="bridge.bus.redis"):
            async with running_lease(
                server, url=proxy.url, lease_ms=int(lease_s * 1000), socket_timeout=socket_timeout
            ) as lease:
                await async_wait_until(lambda: lease.leading, 10, "the lease taken")
                proxy.stall()
                stalled = asyncio.get_running_loop().time()
                await async_wait_until(
                    lambda: "is unreachable: Timeout reading" in caplog.text, 10, "unreachable"
                )
                told = asyncio.get_running_loop().time() - stalled
                still_held = lease.leading
                await async_wait_until(lambda: not lease.leading, 10, "the lease given up")
                given_up = asyncio.get_running_loop().time() - stalled
    finally:
        await proxy.aclose()
    assert told < lease_s / 3 * 2, told  # by the socket timeout, before the renewal's wait ends
    assert still_held
    # The lease runs out two thirds to a whole of it after the stall (renewed a third before).
    assert lease_s / 3 * 2 - 0.1 <= given_up <= lease_s + 1, given_up
    assert "the lease expired while Redis was unreachable" in caplog.text
    assert "no answer to the work-queue lease's renewal" not in caplog.text


async def test_a_stop_after_a_take_whose_answer_was_lost_gives_the_lease_back(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A graceful stop that comes after a take whose answer was lost (Redis set the lease, the
    replica told only that the connection broke, retrying after its backoff) gives the lease
    back at once, not left for the replicas standing by to wait out."""
    server = redis_server()
    proxy = await TakeAnswerLost(server.port).start()
    client = redis_client(proxy.url, block_ms=1_000)  # no retry of its own, as the bridge's
    link = Link(proxy.url, client, Backoff(60.0, 60.0, 0.0))  # the retry comes after the stop
    lease = Lease(link, Layout("exesdb"), consumer="a:1", lease_ms=60_000)
    running = asyncio.create_task(lease.run())
    try:
        await asyncio.wait_for(proxy.cut.wait(), 10)
        with server.client() as other:
            assert other.get(LEADER) == b"a:1"
        assert not lease.leading
        await release_as_the_work_queue_does(running, lease)
        with server.client() as other:
            assert other.get(LEADER) is None
    finally:
        link.stopping.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await client.aclose()
        await proxy.aclose()


class LostRead(Proxy):
    """A proxy that, once, cuts the connection instead of passing back the answer of a consumer
    group's read that got entries of ex_esdb_alerts: Redis holds them pending at the reader,
    which never saw them (as when a Redis that stalled past the socket timeout serves a blocked
    read)."""

    READ = b"XREADGROUP"

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.cut = False

    async def sent(self, data: bytes, marked: asyncio.Event) -> None:
        # Marked: the connection's last command was a group read.
        if self.READ in data:
            marked.set()
        else:
            marked.clear()

    async def answered(self, data: bytes, marked: asyncio.Event) -> bool:
        if marked.is_set() and not self.cut and ALERTS.encode() in data:
            self.cut = True
            return False
        return True


async def test_entries_a_group_read_got_whose_answer_was_lost_are_taken_at_once(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """The holder's read of the consumer group gets an entry and its answer is lost (the
    connection cut): Redis holds the entry pending at the holder, which takes it at its next
    read from its own pending entries, not a claim's idle time later."""
    server = redis_server()
    proxy = await LostRead(server.port).start()
    try:
        holder = await Replica(proxy.url, "node-a", claim_idle_ms=60_000).start()
        replicas.append(holder)
        await async_wait_until(lambda: holder.sample("exesdb_redis_work_queue_leader") == 1, 10)
        with server.client() as client:
            client.xadd(f"exesdb:bus:{ALERTS}", signed_entry())
        await async_wait_until(lambda: proxy.cut, 10, "the read's answer lost")
        await async_wait_until(lambda: holder.taken_alerts() == ["forged"], 10, "taken")
        assert holder.sample("exesdb_redis_claimed_total") == 0
    finally:
        for replica in replicas:
            await replica.aclose()
        replicas.clear()
        await proxy.aclose()


class LostClaim(LostRead):
    """``LostRead`` for a claim (XAUTOCLAIM) that got entries."""

    READ = b"XAUTOCLAIM"


async def test_entries_a_claim_got_whose_answer_was_lost_are_taken_at_once(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """The holder's claim of an entry a dead replica left gets it and its answer is lost (the
    connection cut): Redis holds the entry pending at the holder, idle no more, which takes it
    at its next read from its own pending entries, not another claim's idle time later."""
    server = redis_server()
    stream = f"exesdb:bus:{ALERTS}"
    with server.client() as client:
        client.xgroup_create(stream, "exesdb-bridge", id="0", mkstream=True)
        entry = client.xadd(stream, signed_entry())
        client.xreadgroup("exesdb-bridge", "dead:1", {stream: ">"})
        # Idle past the claim's idle time already: the first claim round takes it.
        client.xclaim(stream, "exesdb-bridge", "dead:1", 0, [entry], idle=120_000)
    proxy = await LostClaim(server.port).start()
    try:
        holder = await Replica(proxy.url, "node-a", claim_idle_ms=4_000).start()
        replicas.append(holder)
        await async_wait_until(lambda: proxy.cut, 10, "the claim's answer lost")
        # Claimed again it would be 4 s later at the soonest (idle once more).
        await async_wait_until(lambda: holder.taken_alerts() == ["forged"], 3, "taken")
    finally:
        for replica in replicas:
            await replica.aclose()
        replicas.clear()
        await proxy.aclose()
