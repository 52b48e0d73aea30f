"""The Redis transport on a real redis-server writes each batch of frames in one round trip and
the acknowledgements queued, whatever their streams, in one; its readers take a backlog a
thousand entries a read.

A proxy between the writer and Redis keeps each piece the writer sends: each round trip sends at
least one (the next command waits for the answer), so a writer taking one round trip per frame
sends at least as many pieces as frames, where one taking one per batch sends one per batch.
The reads are counted by redis-server itself (``INFO commandstats``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.bus import Durability, Frame
from bridge.bus.redis import GROUP
from bridge.bus.redis.spool import Spool
from tests.integration.redis_proxy import Proxy
from tests.integration.redis_replicas import ALERTS, Replica, calls, replicas, signed_entry
from tests.integration.redis_spool_support import running_writer
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]

# The writer's batch in ``running_writer``, and the batches of a burst.
BATCH = 10
BATCHES = 3
# A backlog three times what a read takes (the transport's COUNT, 1 000).
BACKLOG = 3_000
# Reads of such a backlog, 4 or 5 measured: the blocked read answered at its first entry, three
# of 1 000 and the next, blocked; 30 would be reads of 100.
BACKLOG_READS = 8


class CountingProxy(Proxy):
    """A proxy that keeps the start of each piece clients send (each read of what one sent)."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.pieces: list[bytes] = []

    async def sent(self, data: bytes, marked: asyncio.Event) -> None:
        self.pieces.append(data[:40])


def frames(count: int, start: int = 0) -> list[Frame]:
    """``count`` frames of a fan-out instance (none kept for a consumer group to take, so the
    writer sends nothing else meanwhile)."""
    return [Frame("ex_esdb_audit", b"body %d" % n, "00") for n in range(start, start + count)]


@pytest.mark.parametrize("durably", [False, True], ids=["buffered", "spooled"])
async def test_a_burst_of_frames_goes_to_redis_in_one_round_trip_per_batch(
    redis_server: Callable[[], RedisServer], tmp_path: Path, durably: bool
) -> None:
    """Frames sent together, buffered or spooled, reach Redis in one round trip per batch (its
    XADDs in one script call), not one per frame: 30 frames in batches of 10 are 3 round trips,
    and a spool segment's one more (its progress deleted after its last batch; never asked
    before its first, since this process made it: Redis cannot hold any)."""
    server = redis_server()
    proxy = await CountingProxy(server.port).start()
    spool = None
    if durably:
        spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20)
        await spool.open()
    try:
        async with running_writer(proxy.url, spool) as (writer, _):

            async def send(burst: list[Frame]) -> None:
                if durably:
                    assert await writer.send_durably(burst) is Durability.COMMITTED
                else:
                    # Each taken before the loop can run: the burst waits in the buffer whole.
                    assert all([writer.send(frame) for frame in burst])

            # The first write connects, loads the script and reads the data set's epoch.
            await send(frames(1))
            await async_wait_until(lambda: writer.written == 1, 10, "the first frame written")
            with server.client() as client:
                # A spent segment's progress is deleted after its frames are counted written.
                await async_wait_until(
                    lambda: not client.keys("exesdb:spool:*"), 10, "the first segment's end"
                )
            proxy.pieces.clear()
            await send(frames(BATCH * BATCHES, start=1))
            await async_wait_until(
                lambda: writer.written == 1 + BATCH * BATCHES, 10, "the burst written"
            )
            assert len(proxy.pieces) <= BATCHES + (1 if durably else 0), proxy.pieces
        with server.client() as client:
            assert client.xlen("exesdb:bus:ex_esdb_audit") == 1 + BATCH * BATCHES
    finally:
        await proxy.aclose()
        if spool is not None:
            await spool.aclose()


async def test_acknowledgements_of_several_streams_go_to_redis_in_one_round_trip(
    redis_server: Callable[[], RedisServer],
) -> None:
    """Acknowledgements queued together, of entries in three streams, reach Redis in one round
    trip (one XACK a stream, pipelined), not one per entry nor one per stream."""
    server = redis_server()
    streams = [f"exesdb:bus:acked-{n}" for n in range(3)]
    with server.client() as client:
        for stream in streams:
            client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            for n in range(BATCH):
                client.xadd(stream, {"e": b"body %d" % n, "s": b"00"})
        taken = client.xreadgroup(GROUP, "tester", {stream: ">" for stream in streams})
    proxy = await CountingProxy(server.port).start()
    try:
        async with running_writer(proxy.url) as (writer, _):
            # The first write connects, loads the script and reads the data set's epoch.
            writer.send(frames(1)[0])
            await async_wait_until(lambda: writer.written == 1, 10, "the first frame written")
            proxy.pieces.clear()
            for stream, entries in taken:
                for entry_id, _fields in entries:
                    writer.acknowledge(stream.decode(), entry_id)
            with server.client() as client:
                await async_wait_until(
                    lambda: all(client.xpending(s, GROUP)["pending"] == 0 for s in streams),
                    10,
                    "every entry acknowledged",
                )
            assert len(proxy.pieces) == 1, proxy.pieces
    finally:
        await proxy.aclose()


async def test_a_backlog_reaches_the_readers_a_thousand_entries_a_read(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """3 000 entries written at once reach the lease holder's fan-out and work-queue
    subscribers in a few reads each (XREAD and XREADGROUP with a COUNT of 1 000), not in one
    read per entry nor per few."""
    server = redis_server()
    # Idle reads block 30 s: none comes back empty while the backlog is read.
    holder = await Replica(server.url, "holder", block_ms=30_000).start()
    replicas.append(holder)
    await async_wait_until(lambda: holder.transport.leading, 10, "the holder holds the lease")
    entries = [signed_entry() for _ in range(BACKLOG)]
    before = {command: calls(server, command) for command in ("xread", "xreadgroup")}
    # Written with a synchronous client: the holder's loop reads nothing until all are in Redis.
    with server.client() as client:
        pipe = client.pipeline(transaction=False)
        for fields in entries:
            pipe.xadd(f"exesdb:bus:{ALERTS}", fields)
        pipe.execute()
    await async_wait_until(
        lambda: len(holder.seen) == len(holder.taken) == BACKLOG, 30, "every entry read twice"
    )
    reads = {command: calls(server, command) - count for command, count in before.items()}
    assert all(count <= BACKLOG_READS for count in reads.values()), reads
