"""The spool on a real redis-server: ingested frames on disk until Redis has them, once each.

Replicas are in-process bridges (``tests/integration/redis_replicas.py``'s ``Replica``) with a
spool directory; the crash of a whole bridge process is in ``test_replicas.py``, a stop in
``test_redis_spool_stop.py``, a disk that hangs in ``test_redis_spool_hung_disk.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.bus import Durability, Envelope, Frame, decode_envelope
from bridge.bus.redis.spool import Spool
from bridge.errors import ConfigError
from tests.integration.redis_proxy import Proxy
from tests.integration.redis_replicas import ALERTS, Replica, replicas
from tests.integration.redis_spool_support import KEYRING, alert, alert_ids
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until, free_port

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]  # the fixtures, imported for the tests below


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
