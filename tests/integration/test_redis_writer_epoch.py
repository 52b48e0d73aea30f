"""The Redis writer on a real redis-server: the data set's epoch it holds, and acknowledgements that
wait while Redis refuses them for now.

A writer is built alone on a ``Link`` (``running_writer`` of ``redis_spool_support.py``); a proxy
between it and Redis changes Redis's data between two of its commands, where a race would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from bridge.bus import Durability, Frame
from bridge.bus.redis import GROUP
from bridge.bus.redis.spool import Spool
from tests.integration.redis_proxy import Proxy, copy_stream
from tests.integration.redis_replicas import ALERTS, Replica, calls, signed_entry
from tests.integration.redis_spool_support import running_writer
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until, refusing_port

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]

STREAM = f"exesdb:bus:{ALERTS}"
EPOCH = b"exesdb:bus:epoch"


class EpochGoneAfterAnotherSetIt(Proxy):
    """A proxy that, at the writer's first SET NX of the epoch, sets it first as another replica
    would (so that the writer's is refused), and deletes it before the refusal reaches the writer
    (a FLUSHALL, or an eviction under an allkeys-* policy, just then)."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.done = False
        self._redis = Redis(port=upstream_port)

    async def sent(self, data: bytes, marked: asyncio.Event) -> None:
        if not self.done and EPOCH in data and b"NX" in data:
            await self._redis.set(EPOCH, "another-replicas")
            marked.set()

    async def answered(self, data: bytes, marked: asyncio.Event) -> bool:
        if marked.is_set() and not self.done:
            await self._redis.delete(EPOCH)
            self.done = True
        return True

    async def aclose(self) -> None:
        await super().aclose()
        await self._redis.aclose()


async def test_an_epoch_gone_before_the_writer_read_it_is_asked_again_not_taken_for_a_loss(
    redis_server: Callable[[], RedisServer],
) -> None:
    """The epoch another replica set vanishes between the writer's refused SET NX and its read:
    the epoch is unknown and asked again, so no data loss is counted and nothing written twice."""
    server = redis_server()
    proxy = await EpochGoneAfterAnotherSetIt(server.port).start()
    try:
        async with running_writer(proxy.url) as (writer, _):
            writer.send(Frame(ALERTS, b"body", "00"))  # a work-queue frame: kept and looked at
            await async_wait_until(lambda: writer.written == 1, 10, "written")
            assert proxy.done
            looks = calls(server, "xinfo|groups")
            await async_wait_until(
                lambda: calls(server, "xinfo|groups") >= looks + 2, 10, "looked twice"
            )
            assert (writer.data_losses, writer.rewritten) == (0, 0)
            with server.client() as client:
                assert client.xlen(STREAM) == 1
                assert client.get(EPOCH) is not None
    finally:
        await proxy.aclose()


async def test_entries_claimed_again_while_acks_wait_are_acknowledged_once_each(
    redis_server: Callable[[], RedisServer],
) -> None:
    """While Redis refuses the acknowledgements for now (READONLY), entries handled again
    (claimed anew) queue no second one: once Redis takes writes, one XACK names each entry once,
    in order."""
    server = redis_server()
    with server.client() as client:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        ids = [client.xadd(STREAM, {"e": b"{}", "s": b"00"}) for _ in range(5)]
        client.xreadgroup(GROUP, "tester", {STREAM: ">"})
        client.set(EPOCH, "ours")  # a data set's: the writer only reads it
        client.config_set("slowlog-log-slower-than", 0)  # every command logged with its words
        client.config_set("slowlog-max-len", 10_000)
        with refusing_port() as port:
            client.replicaof("127.0.0.1", port)  # read-only, its data kept: no primary to sync
            async with running_writer(server.url) as (writer, _):
                for round_ in range(7):  # handled again after each claim
                    for entry_id in ids:
                        writer.acknowledge(STREAM, entry_id)
                    await refused_xacks(server, round_ + 1)
                client.slowlog_reset()
                client.replicaof("no", "one")
                await async_wait_until(
                    lambda: client.xpending(STREAM, GROUP)["pending"] == 0, 10, "acknowledged"
                )
        acks = [
            entry["command"].split()[3:]
            for entry in client.slowlog_get(10_000)
            if entry["command"].upper().startswith(b"XACK ")
        ]
    assert acks == [ids]


async def test_acknowledgements_refused_for_now_wait_and_go_once_redis_takes_writes(
    redis_server: Callable[[], RedisServer],
) -> None:
    """Acknowledgements a Redis refuses for now (READONLY: a primary demoted) are kept, not
    dropped: once it takes writes again (promoted back) every entry is acknowledged."""
    server = redis_server()
    with server.client() as client:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        ids = [client.xadd(STREAM, {"e": b"{}", "s": b"00"}) for _ in range(3)]
        client.xreadgroup(GROUP, "tester", {STREAM: ">"})
        client.set(EPOCH, "ours")  # a data set's: the writer only reads it
        with refusing_port() as port:
            client.replicaof("127.0.0.1", port)  # read-only, its data kept: no primary to sync
            async with running_writer(server.url) as (writer, _):
                for entry_id in ids:
                    writer.acknowledge(STREAM, entry_id)
                await refused_xacks(server, 1)
                client.replicaof("no", "one")
                await async_wait_until(
                    lambda: client.xpending(STREAM, GROUP)["pending"] == 0, 10, "acknowledged"
                )


async def refused_xacks(server: RedisServer, count: int) -> None:
    """Wait until ``server`` refused XACK ``count`` times in all."""
    await async_wait_until(lambda: rejected(server, "xack") >= count, 10, f"{count} refused")


def rejected(server: RedisServer, command: str) -> int:
    """How many times Redis refused ``command`` on ``server`` (READONLY, OOM, …)."""
    with server.client() as client:
        stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("rejected_calls", 0))


async def test_acknowledgements_go_through_a_full_redis_that_lost_the_epoch(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A Redis out of memory (noeviction) without the epoch key refuses its SET, but the
    acknowledgements queued meanwhile still go through (XACK frees memory)."""
    server = redis_server()
    with server.client() as client:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        ids = [client.xadd(STREAM, {"e": b"{}", "s": b"00"}) for _ in range(3)]
        client.xreadgroup(GROUP, "tester", {STREAM: ">"})
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
        try:
            async with running_writer(server.url) as (writer, _):
                for entry_id in ids:
                    writer.acknowledge(STREAM, entry_id)
                await async_wait_until(
                    lambda: client.xpending(STREAM, GROUP)["pending"] == 0, 10, "acknowledged"
                )
                # The acks are written before the epoch's SET is tried in the same pass: they
                # may be seen a moment before its refusal is.
                await async_wait_until(
                    lambda: writer.held_back is not None, 10, "the epoch's SET refused"
                )
                assert client.get(EPOCH) is None
        finally:
            client.config_set("maxmemory", 0)


class AcksCut(Proxy):
    """A proxy that cuts each connection an XACK comes on while ``cutting`` (Redis unreachable
    for the acknowledgements alone), counting them in ``cut``."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.cutting = True
        self.cut = 0

    def _pipes(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> tuple[Coroutine[Any, Any, None], Coroutine[Any, Any, None]]:
        async def upstream() -> None:
            while data := await client_r.read(65536):
                if self.cutting and b"XACK" in data.upper():
                    self.cut += 1
                    return
                server_w.write(data)
                await server_w.drain()

        return upstream(), copy_stream(server_r, client_w)


async def test_the_holder_takes_no_more_entries_while_its_acknowledgements_pile_up(
    redis_server: Callable[[], RedisServer],
) -> None:
    """While Redis takes no acknowledgement, the lease holder stops taking entries once
    ``max_inflight`` of them wait (fewer than twice that taken): the rest wait in Redis, and
    once the acknowledgements go, every entry is taken once and acknowledged."""
    server = redis_server()
    proxy = await AcksCut(server.port).start()
    holder = await Replica(proxy.url, "node-a", max_inflight=10).start()
    try:
        await async_wait_until(
            lambda: holder.sample("exesdb_redis_work_queue_leader") == 1, 10, "leads"
        )
        with server.client() as client:
            ids = [client.xadd(STREAM, signed_entry()) for _ in range(100)]
        await async_wait_until(lambda: proxy.cut >= 5, 20, "acknowledgements cut again and again")
        assert 10 <= len(holder.taken) < 20, len(holder.taken)
        proxy.cutting = False
        await async_wait_until(lambda: len(holder.taken) == len(ids), 20, "all taken")
        with server.client() as client:
            await async_wait_until(
                lambda: client.xpending(STREAM, GROUP)["pending"] == 0, 20, "all acknowledged"
            )
        assert len({e.id for e in holder.taken}) == len(ids)
    finally:
        await holder.aclose()
        await proxy.aclose()


class AcksHeld(Proxy):
    """A proxy that holds back what comes with an XACK (and after it on that connection) until
    ``release()``; ``seen`` is set once one came."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.seen = asyncio.Event()
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    def _pipes(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> tuple[Coroutine[Any, Any, None], Coroutine[Any, Any, None]]:
        async def upstream() -> None:
            while data := await client_r.read(65536):
                if b"XACK" in data.upper():
                    self.seen.set()
                    await self._released.wait()
                server_w.write(data)
                await server_w.drain()

        return upstream(), copy_stream(server_r, client_w)


async def test_a_stop_waits_for_the_acknowledgements_being_written(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A stop's flush that begins while acknowledgements are on their way to Redis waits for
    them (within its time), not only for those still queued: their entries are acknowledged
    when it returns, not left for the next holder to take again."""
    server = redis_server()
    with server.client() as client:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        entry_id = client.xadd(STREAM, {"e": b"{}", "s": b"00"})
        client.xreadgroup(GROUP, "tester", {STREAM: ">"})
    proxy = await AcksHeld(server.port).start()
    try:
        async with running_writer(proxy.url) as (writer, link):
            writer.send(Frame("ex_esdb_audit", b"body", "00"))  # fan-out: nothing kept
            await async_wait_until(lambda: link.connected, 10, "connected")
            writer.acknowledge(STREAM, entry_id)
            await async_wait_until(proxy.seen.is_set, 10, "the XACK on its way")
            # The XACK held a moment longer than the flush's first look.
            asyncio.get_running_loop().call_later(0.2, proxy.release)
            await writer.flush(5.0)
            with server.client() as client:
                assert client.xpending(STREAM, GROUP)["pending"] == 0
    finally:
        await proxy.aclose()


async def test_spooled_frames_written_again_go_before_any_spooled_since_however_many_batches(
    redis_server: Callable[[], RedisServer], tmp_path: Path
) -> None:
    """Spooled work-queue frames written again after Redis lost its data, more than a batch,
    all go before a frame spooled since: the spool's next batch waits for the last of them."""
    server = redis_server()
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20)
    await spool.open()
    frames = [Frame(ALERTS, b"body %d" % n, "00") for n in range(13)]  # the writer's batch: 10
    try:
        async with running_writer(server.url, spool) as (writer, _):
            assert await writer.send_durably(frames[:12]) is Durability.COMMITTED
            await async_wait_until(lambda: writer.written == 12, 10, "written")
            server.restart()  # without persistence: Redis loses them
            assert await writer.send_durably(frames[12:]) is Durability.COMMITTED
            with server.client() as client:
                await async_wait_until(lambda: client.xlen(STREAM) == 13, 15, "written again")
                bodies = [fields[b"e"] for _, fields in client.xrange(STREAM)]
        assert bodies == [frame.body for frame in frames]
    finally:
        await spool.aclose()


class BatchAnswerLostThenEvicted(Proxy):
    """A proxy that lets the first batch holding ``body`` run and cuts its answer, then, as the
    batch is written again, deletes the epoch's key and the stream first (evicted under an
    allkeys-* policy), leaving the batch's number, kept elsewhere, in Redis."""

    def __init__(self, upstream_port: int, body: bytes) -> None:
        super().__init__(upstream_port)
        self.body = body
        self.sends = 0
        self._redis = Redis(port=upstream_port)

    async def sent(self, data: bytes, marked: asyncio.Event) -> None:
        if self.body in data and b"EVALSHA" in data.upper():
            self.sends += 1
            if self.sends == 1:
                marked.set()
            elif self.sends == 2:
                await self._redis.delete(EPOCH, STREAM)

    async def answered(self, data: bytes, marked: asyncio.Event) -> bool:
        if marked.is_set():
            marked.clear()
            return False
        return True

    async def aclose(self) -> None:
        await super().aclose()
        await self._redis.aclose()


async def test_frames_written_again_after_a_batch_whose_answer_was_lost_go_under_a_new_number(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A batch whose answer was lost, found at its next write to have met another epoch, keeps
    not its number: the frames Redis lost, written again first, are a batch of their own, not
    taken for it (whose number Redis may still hold) and skipped as written already."""
    server = redis_server()
    proxy = await BatchAnswerLostThenEvicted(server.port, b"second").start()
    try:
        async with running_writer(proxy.url, consumer="replica-0") as (writer, _):
            writer.send(Frame(ALERTS, b"first", "00"))  # a work-queue frame: kept
            await async_wait_until(lambda: writer.written == 1, 10, "written")
            writer.send(Frame(ALERTS, b"second", "00"))
            await async_wait_until(lambda: writer.written == 3, 10, "written again")
            assert writer.rewritten == 1
            with server.client() as client:
                entries: Any = client.xrange(STREAM)
                assert [fields[b"e"] for _, fields in entries] == [b"first", b"second"]
    finally:
        await proxy.aclose()
