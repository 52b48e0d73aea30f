"""The spool on a real redis-server: ingested frames on disk until Redis has them, once each.

Replicas are in-process bridges (``tests/integration/redis_replicas.py``'s ``Replica``) with a
spool directory; the crash of a whole bridge process is in ``test_replicas.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import aiohttp
import pytest
from redis.asyncio import Redis

from bridge.app import Bridge
from bridge.backoff import Backoff
from bridge.bus import (
    SIGNATURE_HEADER,
    Durability,
    Envelope,
    Frame,
    Keyring,
    decode_envelope,
    new_message_id,
)
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.link import Link
from bridge.bus.redis.spool import Spool
from bridge.bus.redis.writer import Writer
from bridge.errors import ConfigError
from bridge.messages import SystemAlert
from bridge.settings import Settings
from tests.integration.redis_replicas import ALERTS, Replica, replicas
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import TEST_SECRET, async_wait_until, free_port, make_settings

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]

KEYRING = Keyring.from_secrets(TEST_SECRET)


def alert(number: int) -> Envelope:
    """A SystemAlert envelope whose alert_id carries ``number``."""
    now = datetime.now(UTC)
    payload = SystemAlert(
        alert_id=f"spooled-{number:04d}",
        severity="critical",
        category="system",
        title=f"alert {number}",
        description="spool test",
        source="test",
        node="app-1",
    )
    return Envelope(
        new_message_id(), payload.INSTANCE, "t", payload.TAG, "app-1", now, payload, now.timestamp()
    )


def awaiting(task: asyncio.Task[Any]) -> list[str]:
    """The names of the coroutines ``task`` is suspended in, the outermost first."""
    names = []
    awaited: Any = task.get_coro()
    while awaited is not None and hasattr(awaited, "cr_code"):
        names.append(awaited.cr_code.co_name)
        awaited = awaited.cr_await
    return names


def alert_ids(envelopes: list[Envelope]) -> list[str]:
    return [e.payload.alert_id for e in envelopes if isinstance(e.payload, SystemAlert)]


class Proxy:
    """A TCP proxy in front of Redis. ``stall()`` holds back what clients send from then on
    (their commands wait for an answer); ``aclose()`` cuts every connection and refuses new
    ones (Redis gone)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.url = ""
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"
        return self

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        """Let what was held back go on to Redis (a stall that ends)."""
        self._flowing.set()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._connections, return_exceptions=True)

    async def sent(self, data: bytes, marked: asyncio.Event) -> None:
        """What a client sent, seen before it goes on to Redis; ``marked`` is its connection's
        mark, for ``answered`` to see (a subclass's: this one lets everything through)."""

    async def answered(self, data: bytes, marked: asyncio.Event) -> bool:
        """An answer of Redis, seen before it goes back to the client of the connection
        ``marked`` is the mark of: False cuts that connection instead."""
        return True

    def _pipes(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> tuple[Coroutine[Any, Any, None], Coroutine[Any, Any, None]]:
        """The two directions of one connection: what the client sends, what Redis answers."""
        marked = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                await self._flowing.wait()
                await self.sent(data, marked)
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if not await self.answered(data, marked):
                    return
                client_w.write(data)
                await client_w.drain()

        return upstream(), downstream()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        connection = asyncio.current_task()
        assert connection is not None
        self._connections.add(connection)
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except BaseException:
            # Redis gone (or the proxy closing): the client is cut, as Redis would cut it,
            # rather than its socket left open for the garbage collector to warn about.
            client_w.close()
            raise
        pipes = self._pipes(client_r, client_w, server_r, server_w)
        tasks = [asyncio.create_task(pipe) for pipe in pipes]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                self._tasks.discard(task)
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()


async def copy_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """What ``reader`` reads written to ``writer``, until it ends (one direction of a proxy)."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


class LostReply(Proxy):
    """A proxy that, once, lets a spool write's script call run and cuts the connection instead
    of passing its answer back (a reset or timeout after Redis ran it)."""

    MARK = b"exesdb:spool:"

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.cut = False

    def _pipes(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> tuple[Coroutine[Any, Any, None], Coroutine[Any, Any, None]]:
        armed = asyncio.Event()

        async def upstream() -> None:
            tail = b""
            while data := await client_r.read(65536):
                if not self.cut and self.MARK in tail + data:
                    armed.set()
                tail = data[-len(self.MARK) :]
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                # An array answer to the armed call: the script ran (NOSCRIPT is passed on).
                if armed.is_set() and not self.cut and data[:1] == b"*":
                    self.cut = True
                    return
                client_w.write(data)
                await client_w.drain()

        return upstream(), downstream()


async def test_what_ingest_stored_while_redis_was_down_arrives_in_order_once_redis_is_back(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """With Redis down, durably published batches are COMMITTED once in the spool (counted in
    ``exesdb_redis_spool_bytes``); when Redis comes they are written in order, and the work
    queue takes each once."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    publisher = await Replica(url, "publisher", group=False, spool_dir=tmp_path / "spool").start()
    replicas.append(publisher)
    for first in range(0, 30, 10):
        batch = [alert(n) for n in range(first, first + 10)]
        count, outcome = await publisher.bridge.bus.publish_verified_durably(batch, 10)
        assert (count, outcome) == (10, Durability.COMMITTED)
    assert publisher.sample("exesdb_redis_spool_bytes") > 0
    assert publisher.sample("exesdb_redis_spooled_total") == 30
    server = RedisServer(port=port).start(tmp_path / "redis")
    try:
        reader = await Replica(url, "reader").start()
        replicas.append(reader)
        expected = [f"spooled-{n:04d}" for n in range(30)]
        await async_wait_until(lambda: alert_ids(publisher.seen) == expected, 15, "in order")
        await async_wait_until(lambda: alert_ids(reader.taken) == expected, 15, "taken once")
        # The gauge reaches 0 as the last frame is taken; the used segment's file is removed
        # just after it, so both are waited on.
        await async_wait_until(
            lambda: (
                publisher.sample("exesdb_redis_spool_bytes") == 0
                and not list((tmp_path / "spool").glob("*.spool"))
            ),
            10,
            "the spool emptied and its segment removed",
        )
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_restart_sends_only_what_redis_does_not_already_hold(
    redis_server: Callable[[], RedisServer], tmp_path: Path, replicas: list[Replica]
) -> None:
    """A crash after Redis took part of the spool (its progress written in the same
    transaction) and before the spool's head moved: the restarted bridge sends the rest, and
    nothing twice."""
    server = redis_server()
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20)
    await spool.open()
    frames = []
    for n in range(10):
        envelope = alert(n)
        body = envelope.to_bytes()
        frames.append(Frame(envelope.instance, body, KEYRING.sign(body), envelope))
    assert await spool.append(frames)
    taken = await spool.peek(4)
    assert taken is not None
    await spool.aclose()
    reader = await Replica(server.url, "reader").start()
    replicas.append(reader)
    await async_wait_until(reader.ready, 10)
    # What the crashed bridge had written: the first four entries, and its progress with them.
    with server.client() as client:
        for frame in taken.frames:
            client.xadd(f"exesdb:bus:{frame.instance}", {b"e": frame.body, b"s": frame.signature})
        client.set(f"exesdb:spool:{taken.segment}", taken.end)
    restarted = await Replica(server.url, "restarted", spool_dir=tmp_path / "spool").start()
    replicas.append(restarted)
    expected = [f"spooled-{n:04d}" for n in range(10)]
    await async_wait_until(lambda: alert_ids(reader.seen) == expected, 15, "each once, in order")
    await async_wait_until(lambda: restarted.sample("exesdb_redis_spool_bytes") == 0, 10)
    assert alert_ids(reader.seen) == expected


async def test_a_spool_write_whose_answer_was_lost_is_not_sent_twice(
    redis_server: Callable[[], RedisServer], tmp_path: Path, replicas: list[Replica]
) -> None:
    """The connection drops after Redis ran a spool batch's script and before its answer came:
    the writer asks Redis how far it got and sends only what Redis lacks, once."""
    server = redis_server()
    proxy = await LostReply(server.port).start()
    try:
        replica = Replica(proxy.url, "node-a", group=False, spool_dir=tmp_path / "spool")
        replicas.append(replica)
        await replica.start()
        batch = [alert(n) for n in range(5)]
        count, outcome = await replica.bridge.bus.publish_verified_durably(batch, 5)
        assert (count, outcome) == (5, Durability.COMMITTED)
        await async_wait_until(lambda: replica.sample("exesdb_redis_spool_bytes") == 0, 15)
        assert proxy.cut
        stream = f"exesdb:bus:{batch[0].instance}"
        with server.client() as client:
            assert client.xlen(stream) == 5
    finally:
        for replica in replicas:
            await replica.aclose()
        await proxy.aclose()


class LostBufferedReply(LostReply):
    """``LostReply`` for the script writing a batch of published frames (the only EVALSHA of a
    replica without a spool or the work queue)."""

    MARK = b"EVALSHA"


async def test_a_buffered_batch_whose_answer_was_lost_is_not_written_twice(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """The connection drops after Redis ran the script writing a batch of published frames and
    before its answer came (as when a Redis stalled past the socket timeout runs it on
    resuming): the batch, written again under its number, is not written twice."""
    server = redis_server()
    proxy = await LostBufferedReply(server.port).start()
    try:
        replica = Replica(proxy.url, "node-a", group=False)
        replicas.append(replica)
        await replica.start()
        for number in range(5):
            replica.publish_alert(number)
        await async_wait_until(lambda: replica.sample("exesdb_redis_written_total") == 5, 15)
        assert proxy.cut
        with server.client() as client:
            assert client.xlen(f"exesdb:bus:{ALERTS}") == 5
    finally:
        for replica in replicas:
            await replica.aclose()
        await proxy.aclose()


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


async def test_ingest_answers_503_with_retry_after_once_the_spool_is_full(
    tmp_path: Path,
) -> None:
    """With Redis down, ingest answers 202 while the spool has room, then 503 ``overloaded``
    with ``Retry-After`` (nothing of that batch taken: a resend is not refused as a replay)."""
    settings = make_settings(
        EXESDB_BUS=f"redis://127.0.0.1:{free_port()}/0",
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_INGEST="true",
        EXESDB_STATE_DIR=str(tmp_path / "state"),
        EXESDB_MAX_BODY_BYTES="262144",
        EXESDB_REDIS_SPOOL_BYTES="1048576",
    )
    bridge = Bridge(settings, components=[])
    await bridge.start()
    try:
        assert bridge.address is not None
        url = f"http://127.0.0.1:{bridge.address[1]}/v1/messages"
        statuses: list[int] = []
        async with aiohttp.ClientSession() as session:
            for round_ in range(20):
                body = b"\n".join(alert(round_ * 200 + n).to_bytes() for n in range(200))
                headers = {
                    "Content-Type": "application/x-ndjson",
                    SIGNATURE_HEADER: KEYRING.sign_header(body, int(datetime.now(UTC).timestamp())),
                }
                async with session.post(url, data=body, headers=headers) as response:
                    statuses.append(response.status)
                    if response.status == 503:
                        assert response.headers["Retry-After"] == "1"
                        assert (await response.json())["error"] == "overloaded"
                        break
        assert statuses[0] == 202
        assert statuses[-1] == 503
        assert (tmp_path / "state" / "spool").is_dir()
    finally:
        await bridge.aclose()


def _health_line(message_id: str, payload: str) -> bytes:
    """A node_health_updated envelope with ``payload`` (JSON text) as its payload; its escaped
    surrogates (U+DC80-U+DCFF) stand for bytes, not UTF-8."""
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (
        f'{{"v": 1, "id": "{message_id}", "instance": "ex_esdb_health", "topic": "t", '
        f'"tag": "node_health_updated", "node": "app-1", "ts": "{ts}", "payload": {payload}}}'
    ).encode("utf-8", "surrogateescape")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ('{"status": "healthy", "checks": {"a": ' + "[" * 300 + "]" * 300 + "}}",
         "payload.checks.a" + ".0" * 61),
        ('{"status": "healthy", "checks": {"a": "\\udc00"}}', "payload.checks.a"),
        ('{"status": "healthy", "load_avg": NaN}', "payload.load_avg"),
        # U+D800's bytes as UTF-8 would write it: no UTF-8, so the body is refused.
        ('{"status": "healthy", "checks": {"a": "o\udced\udca0\udc80k"}}', "body"),
    ],
    ids=["nested-300-deep", "lone-surrogate", "NaN", "a-surrogates-bytes"],
)  # fmt: skip
async def test_on_redis_input_no_message_could_carry_is_refused_before_its_id_is_kept(
    tmp_path: Path, redis_server: Callable[[], RedisServer], payload: str, field: str
) -> None:
    """On the Redis bus (whose spool writes each envelope's wire form), a payload nested
    hundreds deep, holding a lone surrogate (escaped, or its bytes) or NaN is answered 400
    naming where, not taken and then failed on (a 500, after which the resend was refused as
    replayed): the corrected body, with the same id, is taken."""
    server = redis_server()
    settings = make_settings(
        EXESDB_BUS=server.url,
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_INGEST="true",
        EXESDB_STATE_DIR=str(tmp_path / "state"),
    )
    bridge = Bridge(settings, components=[])
    await bridge.start()
    try:
        assert bridge.address is not None
        url = f"http://127.0.0.1:{bridge.address[1]}/v1/messages"
        message_id = new_message_id()
        async with aiohttp.ClientSession() as session:
            for body, status in (
                (_health_line(message_id, payload), 400),
                (_health_line(message_id, '{"status": "healthy"}'), 202),
            ):
                headers = {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: KEYRING.sign_header(body, int(datetime.now(UTC).timestamp())),
                }
                async with session.post(url, data=body, headers=headers) as response:
                    answer = await response.json()
                    assert response.status == status, answer
                    if status == 400:
                        assert (answer["error"], answer["field"]) == ("malformed", field)
    finally:
        await bridge.aclose()


async def test_a_spooled_frame_older_than_half_the_window_is_signed_again_and_accepted(
    redis_server: Callable[[], RedisServer], tmp_path: Path, replicas: list[Replica]
) -> None:
    """A frame that waited in the spool past the replay window (a long outage, a stopped
    bridge) is written with a fresh ts and the same id, so every replica accepts it."""
    server = redis_server()
    then = datetime.now(UTC) - timedelta(seconds=1.3)
    old = alert(1)
    envelope = Envelope(
        old.id, old.instance, old.topic, old.tag, old.node, then, old.payload, then.timestamp()
    )
    body = envelope.to_bytes()
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20)
    await spool.open()
    assert await spool.append([Frame(envelope.instance, body, KEYRING.sign(body), envelope)])
    await spool.aclose()
    replica = Replica(
        server.url, "node-a", group=False, replay_window_ms=1_000, spool_dir=tmp_path / "spool"
    )
    replicas.append(replica)
    await replica.start()
    await async_wait_until(lambda: alert_ids(replica.seen) == ["spooled-0001"], 10, "accepted")
    assert replica.seen[0].id == envelope.id
    assert replica.seen[0].unix_ts > then.timestamp() + 1.0
    assert replica.sample("exesdb_redis_resigned_total") == 1
    assert replica.sample("exesdb_bus_rejected_total", reason="expired") == 0


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


async def test_a_spool_that_cannot_be_opened_stops_start_naming_the_state_dir(
    tmp_path: Path,
) -> None:
    """The spool's directory under a plain file: start fails with a ConfigError naming
    EXESDB_STATE_DIR (``exesdb-bridge run`` exits 2)."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    replica = Replica(f"redis://127.0.0.1:{free_port()}/0", "node-a", spool_dir=blocker / "spool")
    with pytest.raises(ConfigError, match="EXESDB_STATE_DIR"):
        await replica.start()
    await replica.aclose()


async def test_a_head_that_cannot_be_stored_on_disk_stops_nothing_and_sends_nothing_twice(
    redis_server: Callable[[], RedisServer], tmp_path: Path, replicas: list[Replica]
) -> None:
    """The spool's head cannot be written (its directory refuses the file, as a full disk
    would) after Redis took each batch: the writer goes on from its head in memory, Redis is
    not taken for unreachable (the bridge stays ready), and the reader takes each entry
    once."""
    server = redis_server()
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / "head.tmp").mkdir()  # where the head is written first: refused
    reader = await Replica(server.url, "reader").start()
    replicas.append(reader)
    await async_wait_until(reader.ready, 10)
    writer = await Replica(server.url, "node-a", group=False, spool_dir=spool_dir).start()
    replicas.append(writer)
    for start in range(0, 30, 10):
        batch = [alert(n) for n in range(start, start + 10)]
        count, outcome = await writer.bridge.bus.publish_verified_durably(batch, 10)
        assert (count, outcome) == (10, Durability.COMMITTED)
        await async_wait_until(lambda: writer.sample("exesdb_redis_spool_bytes") == 0, 15)
    expected = [f"spooled-{n:04d}" for n in range(30)]
    await async_wait_until(lambda: alert_ids(reader.taken) == expected, 15, "taken once")
    assert writer.ready()
    assert writer.sample("exesdb_redis_connection_errors_total") == 0
    assert writer.sample("exesdb_redis_written_total") == 30
    assert list(spool_dir.glob("*.spool")) == []


# The writing script's words when the ACL refuses it the progress, and the script named.
SCRIPT_DENIED = "ERR The user executing the script can't"
WRITING_SPOOLED = (
    "(the writing of a spooled batch with the spool's progress, a script running XADD and SET)"
)


@pytest.mark.parametrize(
    ("rules", "refusal"),
    [
        # SET on every key of the bridge but the spool's (an ACL selector): refused in the script.
        (
            ("~*", "+@all", "-set", "(+set ~exesdb:bus:* ~exesdb:state:* ~exesdb:cluster:*)"),
            f"{SCRIPT_DENIED} access at least one of the keys",
        ),
        # The spool's keys read-only (and no MULTI, lest a transaction write the entries
        # without the progress): the script refused up front, for its keys.
        (
            (
                "~exesdb:bus:*",
                "~exesdb:state:*",
                "~exesdb:cluster:*",
                "%R~exesdb:spool:*",
                "+@all",
                "-multi",
            ),
            "NOPERM this user has no permissions to access one of the keys",
        ),
    ],
    ids=["set-refused-in-script", "spool-keys-refused"],
)
async def test_a_batch_whose_progress_the_acl_refuses_waits_unwritten_and_goes_once_granted(
    redis_server: Callable[[], RedisServer],
    tmp_path: Path,
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
    rules: tuple[str, ...],
    refusal: str,
) -> None:
    """On an ACL user that may not set the spool's progress, a spooled batch is refused whole:
    over several retries not one of its entries is written (Redis keeps a script's writes
    before a refused command, and each retry would add them again), /readyz and one warning
    say Redis refuses the bridge's commands (naming the writing script when it is the
    script's refusal), its tries counted; granted, each frame is written exactly once."""
    server = redis_server()
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "bridge", "on", ">pw", *rules)
        admin.execute_command("ACL", "LOG", "RESET")
    url = f"redis://bridge:pw@127.0.0.1:{server.port}/0"
    publisher = await Replica(url, "publisher", group=False, spool_dir=tmp_path / "spool").start()
    replicas.append(publisher)
    await async_wait_until(publisher.ready, 10, "ready before anything is spooled")
    batch = [alert(n) for n in range(5)]
    assert await publisher.bridge.bus.publish_verified_durably(batch, 5) == (
        5,
        Durability.COMMITTED,
    )
    stream = f"exesdb:bus:{batch[0].instance}"

    def refused() -> bool:
        return publisher.sample("exesdb_redis_connection_errors_total") >= 4

    await async_wait_until(refused, 15, "the batch tried and refused several times")
    with server.client() as admin:
        assert admin.xlen(stream) == 0  # refused before anything was written, each time
        assert not admin.keys("exesdb:spool:*")
    reason = publisher.bridge.readiness()["bus"]["reason"] or ""
    assert f"refuses the bridge's commands: {refusal}" in reason
    assert (WRITING_SPOOLED in reason) == refusal.startswith(SCRIPT_DENIED)
    assert not publisher.ready()
    with server.client() as admin:
        denied = [entry["object"] for entry in admin.acl_log()]
        assert [key for key in denied if key.startswith("exesdb:spool:")], denied
        admin.execute_command("ACL", "SETUSER", "bridge", "~*", "+@all")
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len([line for line in warned if refusal in line]) == 1, warned
    await async_wait_until(lambda: publisher.sample("exesdb_redis_spool_bytes") == 0, 15)
    await async_wait_until(publisher.ready, 10, "ready once granted")
    with server.client() as admin:
        entries = admin.xrange(stream)
    written = [decode_envelope(fields[b"e"]) for _, fields in entries]
    assert alert_ids(written) == [f"spooled-{n:04d}" for n in range(5)]  # type: ignore[arg-type]


class HangingDisk:
    """``os.fsync`` of a spool segment (a ``.spool`` file under ``directory``) that hangs until
    ``release``, then fails with EIO, as a dying disk's does; every other fsync as it is."""

    def __init__(self, directory: Path, fsync: Callable[[int], None]) -> None:
        self.directory = str(directory)
        self.entered = threading.Event()
        self.released = threading.Event()
        self._fsync = fsync

    def fsync(self, descriptor: int) -> None:
        path = os.readlink(f"/proc/self/fd/{descriptor}")
        if not (path.startswith(self.directory) and path.endswith(".spool")):
            self._fsync(descriptor)
            return
        self.entered.set()
        self.released.wait(30)  # the test releases it once the stop ended the request
        raise OSError(errno.EIO, os.strerror(errno.EIO))


@dataclass
class HungIngest:
    """A started bridge whose ingest request (``sent``) waits in the spool's fsync on
    ``disk``, hung; ``closing``, its stop once ``close`` began it."""

    bridge: Bridge
    disk: HangingDisk
    sent: asyncio.Future[tuple[int, Any]]
    closing: asyncio.Future[None] | None = None

    def close(self) -> asyncio.Future[None]:
        """Begin the bridge's stop, the disk still hung."""
        self.closing = asyncio.ensure_future(self.bridge.aclose())
        return self.closing


@contextlib.asynccontextmanager
async def ingest_on_a_hung_disk(
    settings: Settings, state: Path, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[HungIngest]:
    """A bridge on ``settings`` started, then ``body`` posted to it and waited for until its
    store hangs in the spool's fsync; afterwards the disk released, the request cancelled, the
    bridge stopped and ``os.fsync`` the disk's again."""
    disk = HangingDisk(state / "spool", os.fsync)
    bridge = Bridge(settings, components=[], keep_replay=True)
    await bridge.start()
    monkeypatch.setattr(os, "fsync", disk.fsync)
    hung = HungIngest(bridge, disk, asyncio.ensure_future(ingest(bridge, body)))
    try:
        await async_wait_until(disk.entered.is_set, 10, "the spool's fsync under way")
        yield hung
    finally:
        disk.released.set()
        hung.sent.cancel()
        await (hung.closing or bridge.aclose())
        monkeypatch.undo()


async def ingest(bridge: Bridge, body: bytes) -> tuple[int, Any]:
    """POST ``body``, signed, to ``bridge``'s /v1/messages: the status and the JSON answer."""
    assert bridge.address is not None
    url = f"http://127.0.0.1:{bridge.address[1]}/v1/messages"
    headers = {
        "Content-Type": "application/x-ndjson",
        SIGNATURE_HEADER: KEYRING.sign_header(body, int(time.time())),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def spool_thread_ended() -> bool:
    """True once no spool thread runs (one a hung disk held is done, the write it failed cut
    off its segment)."""
    return not any(thread.name == "redis-spool" for thread in threading.enumerate())


def ingesting_on(server: RedisServer, state: Path, *, shutdown_ms: int) -> Settings:
    """A bridge's settings with ingest on, on ``server``'s bus, its state in ``state``."""
    return make_settings(
        EXESDB_BUS=server.url,
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_INGEST="true",
        EXESDB_STATE_DIR=str(state),
        EXESDB_SHUTDOWN_TIMEOUT_MS=str(shutdown_ms),
    )


async def resend_is_taken(settings: Settings, server: RedisServer, body: bytes) -> None:
    """A bridge started again on ``settings`` takes ``body`` (202), not refused as replayed,
    and writes it to the alerts stream of ``server``, empty until then."""
    bridge = Bridge(settings, components=[], keep_replay=True)
    await bridge.start()
    try:
        assert await ingest(bridge, body) == (202, {"accepted": 1})
        with server.client() as client:
            stream = f"exesdb:bus:{ALERTS}"
            await async_wait_until(lambda: client.xlen(stream) == 1, 10, "written to Redis")
    finally:
        await bridge.aclose()


async def test_a_batch_whose_ingest_a_stop_ended_unanswered_and_unstored_is_taken_after_restart(
    redis_server: Callable[[], RedisServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose ingest request the bridge's stop ended before it answered (the spool's
    disk hanging), and whose store the disk then refused, has its ids forgotten before the stop
    keeps the replay memory: the sender's resend after the restart is taken and written to
    Redis, not refused as replayed (which tells the sender the bridge holds it)."""
    server = redis_server()
    state = tmp_path / "state"
    settings = ingesting_on(server, state, shutdown_ms=2000)
    body = alert(1).to_bytes()

    async with ingest_on_a_hung_disk(settings, state, body, monkeypatch) as hung:
        closing = hung.close()
        with pytest.raises(aiohttp.ClientError):  # ended unanswered
            await hung.sent
        hung.disk.released.set()
        await closing
    await resend_is_taken(settings, server, body)


async def test_a_stop_whose_spool_disk_hangs_ends_within_the_shutdown_timeout_and_says_why(
    redis_server: Callable[[], RedisServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stop while the spool's disk hangs in fsync ends within EXESDB_SHUTDOWN_TIMEOUT_MS
    (not when the disk comes back), logs at error the batch it leaves unstored and forgotten,
    and the sender's resend after the restart is taken, not refused as replayed."""
    server = redis_server()
    state = tmp_path / "state"
    settings = ingesting_on(server, state, shutdown_ms=2000)
    body = alert(1).to_bytes()

    async with ingest_on_a_hung_disk(settings, state, body, monkeypatch) as hung:
        closing = hung.close()
        # The disk stays hung: the stop must end without it (2 s, and a margin for the spool's
        # last half second and a loaded machine), not wait for it.
        done, _ = await asyncio.wait([closing], timeout=2.0 + 1.5)
        assert done, "the stop waits for the hung disk"
        closing.result()
        with pytest.raises(aiohttp.ClientError):  # ended unanswered
            await hung.sent
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(
        "the disk did not finish writing within the stop's" in line
        and "1 batch(es) of 1 frame(s) not stored" in line
        and "ids forgotten" in line
        and "EXESDB_SHUTDOWN_TIMEOUT_MS" in line
        for line in errors
    ), errors
    await async_wait_until(spool_thread_ended, 10, "the hung fsync over")
    await resend_is_taken(settings, server, body)


async def test_a_bridge_started_while_a_stopped_ones_spool_write_hangs_is_refused_the_spool(
    redis_server: Callable[[], RedisServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop that leaves its spool's write to a hung disk keeps the spool's lock until that
    write is over: a bridge started in the same process meanwhile is refused the spool (the
    write, cut back when it fails, would cut off the batches it answered 202), and opens it
    once the write ended."""
    server = redis_server()
    state = tmp_path / "state"
    settings = ingesting_on(server, state, shutdown_ms=1000)
    body = alert(1).to_bytes()

    async with ingest_on_a_hung_disk(settings, state, body, monkeypatch) as hung:
        await hung.close()  # within the shutdown timeout, the disk still hung
        with pytest.raises(aiohttp.ClientError):  # ended unanswered
            await hung.sent
        monkeypatch.undo()  # the hung write keeps its fsync; the next bridge's are the disk's
        second = Bridge(settings, components=[], keep_replay=True)
        try:
            with pytest.raises(ConfigError, match="another bridge process has it open"):
                await second.start(serve_http=False)
        finally:
            await second.aclose()
    await async_wait_until(spool_thread_ended, 10, "the hung fsync over")
    await resend_is_taken(settings, server, body)


async def test_a_stop_whose_spool_disk_hangs_moving_the_head_ends_within_the_shutdown_timeout(
    redis_server: Callable[[], RedisServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stop while the spool's disk hangs storing the head (a batch sent, its head file
    renamed into place on a hung mount) ends within EXESDB_SHUTDOWN_TIMEOUT_MS, says so at
    error, and the batch, already in Redis, is not sent again after the restart."""
    server = redis_server()
    state = tmp_path / "state"
    settings = ingesting_on(server, state, shutdown_ms=1000)
    entered, released = threading.Event(), threading.Event()
    replace = os.replace

    def hanging_replace(source: Any, target: Any, **kwargs: Any) -> None:
        if str(target) == str(state / "spool" / "head"):
            entered.set()
            released.wait(30)  # the test releases it once the stop ended
        replace(source, target, **kwargs)

    first = Bridge(settings, components=[], keep_replay=True)
    await first.start()
    monkeypatch.setattr(os, "replace", hanging_replace)
    closing: asyncio.Future[None] | None = None
    try:
        assert await ingest(first, alert(1).to_bytes()) == (202, {"accepted": 1})
        await async_wait_until(entered.is_set, 10, "the spool's head being stored")
        closing = asyncio.ensure_future(first.aclose())
        # The disk stays hung: the stop must end without it (1 s, and a margin for the spool's
        # last half second and a loaded machine), not wait for it.
        done, _ = await asyncio.wait([closing], timeout=1.0 + 1.5)
        assert done, "the stop waits for the hung disk"
        closing.result()
    finally:
        released.set()
        await (closing or first.aclose())
        monkeypatch.undo()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("the disk did not finish a call within the stop's" in line for line in errors)
    await async_wait_until(spool_thread_ended, 10, "the hung rename over")
    second = Bridge(settings, components=[], keep_replay=True)
    await second.start()
    try:
        assert await ingest(second, alert(2).to_bytes()) == (202, {"accepted": 1})
        with server.client() as client:
            stream = f"exesdb:bus:{ALERTS}"
            await async_wait_until(lambda: client.xlen(stream) == 2, 10, "written to Redis")
            written = [decode_envelope(fields[b"e"]) for _, fields in client.xrange(stream)]
        assert alert_ids(written) == ["spooled-0001", "spooled-0002"]  # type: ignore[arg-type]
    finally:
        await second.aclose()


@asynccontextmanager
async def running_writer(
    url: str,
    spool: Spool | None = None,
    *,
    clock: Callable[[], float] = time.time,
    client: Redis | None = None,
    consumer: str = "",
) -> AsyncIterator[tuple[Writer, Link]]:
    """A writer (and its link) on Redis at ``url``, with ``spool`` if given, reading ``clock``,
    through ``client`` if given (closed afterwards), its loop running (and stopped
    afterwards); ``consumer`` names its batches' mark (none by default)."""
    client = Redis.from_url(url) if client is None else client
    link = Link(url, client, Backoff(0.01, 0.1, 0.0))
    positioned = asyncio.Event()
    positioned.set()  # no fan-out reader here to find the tails
    writer = Writer(
        link,
        Layout("exesdb"),
        positioned=positioned,
        buffer_size=100,
        stream_maxlen=1000,
        batch_size=10,
        claim_idle_ms=30_000,
        replay_window_ms=300_000,
        clock=clock,
        spool=spool,
        consumer=consumer,
    )
    running = asyncio.create_task(link.keep_running("writer", writer.run))
    try:
        yield writer, link
    finally:
        link.stopping.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await client.aclose()


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
