"""A stop of a bridge on a real redis-server with a spool: what it could not write is kept in
the spool for the next start, said in its log, and the stop keeps to the time it is given
(Redis lost, paused or stalled meanwhile)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.bus import Envelope, Frame, decode_envelope
from bridge.bus.redis.spool import Spool
from tests.integration.redis_proxy import Proxy
from tests.integration.redis_replicas import ALERTS, Replica, replicas
from tests.integration.redis_spool_support import alert_ids, awaiting, running_writer
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until, free_port

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]  # the fixtures, imported for the tests below


async def test_a_close_that_loses_redis_while_flushing_returns_at_once_with_the_frames_spooled(
    redis_server: Callable[[], RedisServer], tmp_path: Path, replicas: list[Replica]
) -> None:
    """Redis goes while a close with a long flush deadline waits for the buffer to be written:
    the close returns at once, not at the deadline, and the unwritten frames are in the spool."""
    server = redis_server()
    proxy = await Proxy(server.port).start()
    try:
        replica = Replica(proxy.url, "node-a", group=False, spool_dir=tmp_path / "spool")
        replicas.append(replica)
        await replica.start()
        first = replica.publish_alert(0)
        await async_wait_until(lambda: replica.seen_alerts() == [first], 10, "connected")
        proxy.stall()  # the writer's next command waits for an answer: these stay buffered
        unwritten = [replica.publish_alert(n) for n in range(1, 6)]
        started = time.monotonic()
        closing = asyncio.create_task(replica.transport.aclose(flush_seconds=30))
        # The close stops the node name's marking first, then waits in the writer's flush.
        await async_wait_until(lambda: "flush" in awaiting(closing), 10, "the close flushing")
        assert not closing.done()
        assert replica.transport.connected
        assert replica.transport.buffered == len(unwritten)
        await proxy.aclose()  # Redis gone: the held command fails, and reconnecting is refused
        await asyncio.wait_for(closing, 10)  # a regression fails here rather than after 30 s
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"the close took {elapsed:.1f}s: it waited out its flush deadline"
        spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20)
        assert await spool.open() == len(unwritten)
        batch = await spool.peek(len(unwritten) + 1)
        await spool.aclose()
        assert batch is not None
        spooled = [decode_envelope(frame.body) for frame in batch.frames]
        assert alert_ids([e for e in spooled if isinstance(e, Envelope)]) == unwritten
        with server.client() as client:
            assert client.xlen(f"exesdb:bus:{ALERTS}") == 1
    finally:
        for replica in replicas:
            await replica.aclose()
        await proxy.aclose()


async def test_a_close_given_little_time_by_a_paused_redis_keeps_to_it_with_the_frames_spooled(
    redis_server: Callable[[], RedisServer], tmp_path: Path, replicas: list[Replica]
) -> None:
    """The lease holder's close given a fifth of a second while redis-server is paused
    (SIGSTOP): it returns about then (the node name's mark and the lease left to expire, as
    after a crash), not after half a second of its own for the mark, and what it could not
    write is in the spool."""
    server = redis_server()
    assert server.process is not None
    replica = Replica(server.url, "node-a", spool_dir=tmp_path / "spool")
    replicas.append(replica)
    await replica.start()
    first = replica.publish_alert(0)
    await async_wait_until(lambda: replica.seen_alerts() == [first], 10, "connected")
    await async_wait_until(lambda: replica.transport.leading, 10, "the lease held")
    os.kill(server.process.pid, signal.SIGSTOP)  # every command waits for an answer
    try:
        unwritten = [replica.publish_alert(n) for n in range(1, 6)]
        started = time.monotonic()
        await asyncio.wait_for(replica.transport.aclose(0.2), 10)
        elapsed = time.monotonic() - started
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    # And what its own tasks and the spool's write take past it on a loaded host.
    assert elapsed < 0.6, f"the close took {elapsed:.2f}s of the 0.2s it was given"
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20)
    assert await spool.open() == len(unwritten)
    await spool.aclose()


async def test_what_a_stop_could_not_write_is_kept_in_the_spool_for_the_next_start(
    redis_server: Callable[[], RedisServer], tmp_path: Path, replicas: list[Replica]
) -> None:
    """Messages the bridge published itself, still in its memory buffer when it stops with
    Redis unreachable, go to the spool and are written after the next start, not dropped."""
    port = free_port()
    stopped = await Replica(
        f"redis://127.0.0.1:{port}/0", "node-a", group=False, spool_dir=tmp_path / "spool"
    ).start()
    expected = [stopped.publish_alert(n) for n in range(3)]
    await stopped.aclose()
    assert stopped.sample("exesdb_bus_dropped_total", subscriber="transport") == 0
    server = RedisServer(port=port).start(tmp_path / "redis")
    try:
        again = await Replica(server.url, "node-a", spool_dir=tmp_path / "spool").start()
        replicas.append(again)
        await async_wait_until(lambda: sorted(again.taken_alerts()) == expected, 15, "written")
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_stop_says_what_the_spool_holds_in_all_not_only_its_own_frames(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop with Redis down says how many frames it left in the spool and how many the
    spool holds in all: with those an earlier stop left there, still unsent."""
    server = RedisServer().start(tmp_path / "redis")
    server.stop()  # down before either run: what they publish stays with them
    counts = []
    for run, published in enumerate((3, 2)):
        replica = Replica(server.url, "node-a", group=False, spool_dir=tmp_path / "spool")
        await replica.start()
        for n in range(published):
            replica.publish_alert(10 * run + n)
        caplog.clear()
        with caplog.at_level(logging.WARNING, "bridge.bus.redis.writer"):
            await replica.aclose()
        counts.append([r.getMessage() for r in caplog.records if "stopped" in r.getMessage()])
    assert counts == [
        [
            f"Redis bus stopped with {unwritten} frame(s) unwritten: kept in the spool, which"
            f" holds {held} frame(s) in all for the next start to write"
        ]
        for unwritten, held in ((3, 3), (2, 5))
    ]


async def test_a_write_answered_after_a_stops_flush_gave_up_on_it_is_no_fault_of_the_writer(
    redis_server: Callable[[], RedisServer], tmp_path: Path
) -> None:
    """A stop's flush that ends while a batch's write waits on a stalled Redis keeps the batch
    in the spool; the write's answer, coming after all (the stall over before the writer is
    stopped), is taken without a fault: no stage restarted, nothing counted failed."""
    server = redis_server()
    proxy = await Proxy(server.port).start()
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20)
    await spool.open()
    # A fan-out instance: no work-queue frame is kept, so no other command is sent meanwhile.
    frames = [Frame("ex_esdb_audit", b"body %d" % n, "00") for n in range(2)]
    try:
        async with running_writer(proxy.url, spool) as (writer, link):
            writer.send(frames[0])
            await async_wait_until(lambda: writer.written == 1, 10, "connected")
            proxy.stall()
            writer.send(frames[1])
            await writer.flush(0.2)  # the write of the second waits on Redis all along
            assert writer.buffered == 0
            assert writer.spool_bytes > 0
            proxy.resume()
            await async_wait_until(
                lambda: writer.written >= 2 or link.stage_errors > 0, 10, "the answer taken"
            )
            assert link.stage_errors == 0
    finally:
        await spool.aclose()
        await proxy.aclose()
